//! PSP webhook events: recorded once by event id by the webhook, applied
//! once by the `psp-events` consumer.
//!
//! One item per event, `PSP_EVENT#{sha256 of event id}`, living
//! [`TTL_DAYS`] (longer than any PSP retry schedule). Its `status`:
//! - `RECEIVED`: recorded, not yet known to be on the queue (the send failed,
//!   or the webhook's answer was lost). A PSP retry of the event sends it
//!   again. Shown as `QUEUED` by `GET /psp/events/{id}`: it is, or will be
//!   with the PSP's retry, and the consumer treats both alike.
//! - `QUEUED`: sent to the queue. A PSP retry is a `duplicate`.
//! - `APPLIED`, `IGNORED`, `CONFLICT`: processed, in the same transaction as
//!   the payment change, audit entry, timeline event and alert it caused,
//!   conditional on the event not being processed yet. A redelivered (or
//!   twice-sent) message fails that condition and changes nothing. The
//!   consumer's use case is `ops::psp_event`.

use super::{
    items::{n, s, to_item, values},
    keys,
    list::{KeyPageRequest, Page},
    retry::aws_error,
    Store,
};
use crate::{
    domain::{
        escrow::payment::{PspEventStatus, PspOutcome},
        ids::Id,
        time::Timestamp,
        webhook::EventIdentity,
    },
    error::AppError,
};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

/// How long an event id is remembered (docs/api.md: at least 7 days).
pub const TTL_DAYS: i64 = 30;

const RECEIVED: &str = "RECEIVED";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PspEventRecord {
    pk: String,
    sk: String,
    pub(crate) event_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) psp_ref: Option<String>,
    /// RECEIVED, QUEUED, APPLIED, IGNORED or CONFLICT.
    status: String,
    received_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    processed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    payment_id: Option<Id>,
    ttl: i64,
    /// All events in `gsi3`, newest first (`GET /psp/events`):
    /// `PSP_EVENT#{shard}`, sorted by `{received_at}#{sha256 of event id}`.
    /// Events recorded before the list existed have none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gsi3pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gsi3sk: Option<String>,
}

impl PspEventRecord {
    /// APPLIED, IGNORED or CONFLICT: nothing left to do.
    pub(crate) fn processed(&self) -> bool {
        !matches!(self.status.as_str(), RECEIVED | "QUEUED")
    }

    /// As `GET /psp/events` shows it: RECEIVED is QUEUED (it is, or will be
    /// with the PSP's retry, and the consumer treats both alike).
    fn into_view(self) -> PspEventView {
        let status = match self.status.as_str() {
            "APPLIED" => PspEventStatus::Applied,
            "IGNORED" => PspEventStatus::Ignored,
            "CONFLICT" => PspEventStatus::Conflict,
            _ => PspEventStatus::Queued,
        };
        PspEventView {
            event_id: self.event_id,
            event_type: self.event_type,
            psp_ref: self.psp_ref,
            status,
            received_at: self.received_at,
            processed_at: self.processed_at,
            payment_id: self.payment_id,
        }
    }
}

/// Where an event sits in the list of all events (pure): its shard, from
/// the hash in its key, and its sort key.
fn list_entry(key: &keys::Key, received_at: Timestamp) -> (String, String) {
    let hash = key.pk.trim_start_matches("PSP_EVENT#");
    let bucket = u64::from_str_radix(&hash[..hash.len().min(15)], 16).unwrap_or(0);
    (
        format!("{}#{}", keys::KIND_PSP_EVENT, bucket % keys::index_shards()),
        format!("{received_at}#{hash}"),
    )
}

/// Whether `sort_key` has the shape of a PSP event list sort key: what a
/// `GET /psp/events` cursor must decode to.
pub fn is_psp_event_sort_key(sort_key: &str) -> bool {
    let Some((at, hash)) = sort_key.split_once('#') else {
        return false;
    };
    Timestamp::parse(at).is_ok_and(|t| t.to_string() == at)
        && hash.len() == 64
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /psp/events/{event_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PspEventView {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub psp_ref: Option<String>,
    pub status: PspEventStatus,
    pub received_at: Timestamp,
    pub processed_at: Option<Timestamp>,
    pub payment_id: Option<Id>,
}

/// What the webhook does with an event after recording it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First seen now: send it.
    New,
    /// Seen before but not known to be queued: send it again.
    NotQueued,
    /// Already queued or processed: answer `duplicate`.
    Duplicate,
}

/// The message the webhook puts on the queue. The consumer trusts only the
/// event id: what it applies is read from the recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedEvent {
    pub event_id: String,
}

impl Store {
    /// Records a verified event (status RECEIVED) unless its id is known:
    /// one conditional Put; a known id costs one more read.
    pub async fn record_psp_event(
        &self,
        identity: &EventIdentity,
        now: Timestamp,
    ) -> Result<Recorded, AppError> {
        let key = keys::psp_event(&identity.event_id);
        let (gsi3pk, gsi3sk) = list_entry(&key, now);
        let record = PspEventRecord {
            pk: key.pk.clone(),
            sk: key.sk.clone(),
            event_id: identity.event_id.clone(),
            event_type: identity.event_type.clone(),
            psp_ref: identity.psp_ref.clone(),
            status: RECEIVED.into(),
            received_at: now,
            processed_at: None,
            payment_id: None,
            ttl: now.unix_seconds() + TTL_DAYS * 86_400,
            gsi3pk: Some(gsi3pk),
            gsi3sk: Some(gsi3sk),
        };
        let item = to_item(&record)?;
        self.retry_busy("record PSP event", || async {
            let put = self
                .client
                .put_item()
                .table_name(self.table())
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match put {
                Ok(_) => Ok(Recorded::New),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    match self.get::<PspEventRecord>(&key).await? {
                        Some(known) if known.status == RECEIVED => Ok(Recorded::NotQueued),
                        Some(_) => Ok(Recorded::Duplicate),
                        // Gone between the two calls (its TTL): try again.
                        None => Err(AppError::busy()),
                    }
                }
                Err(e) => Err(aws_error(e)),
            }
        })
        .await
    }

    /// Marks a sent event QUEUED, unless the consumer got to it first.
    pub async fn mark_psp_event_queued(&self, event_id: &str) -> Result<(), AppError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(super::items::key_item(&keys::psp_event(event_id))))
            .update_expression("SET #status = :queued")
            .condition_expression("#status = :received")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values([
                (":queued", s("QUEUED")),
                (":received", s(RECEIVED)),
            ])))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws_error(e)),
        }
    }

    /// One event as `GET /psp/events/{id}` shows it.
    pub async fn psp_event(&self, event_id: &str) -> Result<Option<PspEventView>, AppError> {
        Ok(self
            .get::<PspEventRecord>(&keys::psp_event(event_id))
            .await?
            .map(PspEventRecord::into_view))
    }

    /// One page of events, newest first, with `status` only those: one Query
    /// per shard of `gsi3`, then one `BatchGetItem`. QUEUED (stored as
    /// RECEIVED or QUEUED) is filtered on the items, the others in the index.
    pub async fn psp_events(
        &self,
        status: Option<PspEventStatus>,
        page: &KeyPageRequest,
    ) -> Result<Page<PspEventView>, AppError> {
        let partitions: Vec<(keys::Index, String)> = keys::all_shards(keys::KIND_PSP_EVENT)
            .into_iter()
            .map(|p| (keys::GSI_BY_KIND, p))
            .collect();
        let filters = match status {
            Some(s_) if s_ != PspEventStatus::Queued => vec![("status", s(s_.as_str()))],
            _ => Vec::new(),
        };
        let mut page = self
            .list_by_sort_key::<PspEventRecord>(&partitions, &filters, page)
            .await?
            .map(PspEventRecord::into_view);
        if let Some(wanted) = status {
            page.items.retain(|e| e.status == wanted);
        }
        Ok(page)
    }

    /// The recorded event `event_id`, as the consumer reads it.
    pub(crate) async fn psp_event_record(
        &self,
        event_id: &str,
    ) -> Result<Option<PspEventRecord>, AppError> {
        self.get::<PspEventRecord>(&keys::psp_event(event_id)).await
    }

    /// The event's update once processed (`outcome`, the payment it names),
    /// conditional on not being processed yet.
    pub(crate) fn event_processed(
        &self,
        key: &keys::Key,
        outcome: &PspOutcome,
        payment: Option<Id>,
        now: Timestamp,
    ) -> TransactWriteItem {
        let mut set = "SET #status = :status, processed_at = :now".to_string();
        let mut vals = values([
            (":status", s(outcome.event_status().as_str())),
            (":now", s(now.to_string())),
            (":received", s(RECEIVED)),
            (":queued", s("QUEUED")),
        ]);
        if let Some(id) = payment {
            set.push_str(", payment_id = :payment");
            vals.insert(":payment".into(), n(id));
        }
        let update = Update::builder()
            .set_key(Some(super::items::key_item(key)))
            .update_expression(set)
            .condition_expression("#status IN (:received, :queued)")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(vals));
        self.update(update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::escrow::payment::PaymentTransition;

    fn offline_store() -> Store {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        Store::new(aws_sdk_dynamodb::Client::from_conf(config), "t", 1)
    }

    #[test]
    fn event_keys_are_the_hash_of_the_id() {
        let key = keys::psp_event("evt_1");
        assert!(key.pk.starts_with("PSP_EVENT#"));
        assert_eq!(key.pk.len(), "PSP_EVENT#".len() + 64);
        assert_eq!(key.sk, "PSP_EVENT");
        assert_eq!(keys::psp_event("evt_1"), key);
        assert_ne!(keys::psp_event("evt_2").pk, key.pk);
        // Any text, however long, makes a key of one shape.
        assert_eq!(keys::psp_event(&"x".repeat(5000)).pk.len(), key.pk.len());
    }

    fn record(status: &str) -> PspEventRecord {
        PspEventRecord {
            pk: "p".into(),
            sk: "s".into(),
            event_id: "e".into(),
            event_type: None,
            psp_ref: None,
            status: status.into(),
            received_at: Timestamp::parse("2030-01-01T00:00:00Z").unwrap(),
            processed_at: None,
            payment_id: None,
            ttl: 0,
            gsi3pk: None,
            gsi3sk: None,
        }
    }

    #[test]
    fn events_are_listed_by_shard_and_time() {
        let key = keys::psp_event("evt_1");
        let at = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let (partition, sort) = list_entry(&key, at);
        assert!(partition.starts_with("PSP_EVENT#"), "{partition}");
        let shard: u64 = partition["PSP_EVENT#".len()..].parse().unwrap();
        assert!(shard < keys::index_shards());
        assert_eq!(list_entry(&key, at), (partition, sort.clone()));
        assert!(sort.starts_with("2030-01-01T00:00:00.000000Z#"));
        assert!(is_psp_event_sort_key(&sort), "{sort}");
        for bad in ["", "x", "2030-01-01T00:00:00Z#ab", &sort[..sort.len() - 1]] {
            assert!(!is_psp_event_sort_key(bad), "{bad:?}");
        }
        // RECEIVED shows as QUEUED; the others as stored.
        assert_eq!(
            record("RECEIVED").into_view().status,
            PspEventStatus::Queued
        );
        assert_eq!(
            record("CONFLICT").into_view().status,
            PspEventStatus::Conflict
        );
    }

    #[test]
    fn only_received_and_queued_events_are_still_to_process() {
        for (status, processed) in [
            ("RECEIVED", false),
            ("QUEUED", false),
            ("APPLIED", true),
            ("IGNORED", true),
            ("CONFLICT", true),
        ] {
            assert_eq!(record(status).processed(), processed, "{status}");
        }
    }

    #[test]
    fn marking_processed_is_conditional_on_not_processed_yet() {
        let store = offline_store();
        let now = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let outcome = PspOutcome::Applied(PaymentTransition::Failed);
        let item = store.event_processed(&keys::psp_event("e"), &outcome, Id::new(7), now);
        let update = item.update().unwrap();
        assert_eq!(
            update.condition_expression(),
            Some("#status IN (:received, :queued)")
        );
        let values = update.expression_attribute_values().unwrap();
        assert_eq!(values[":status"].as_s().unwrap(), "APPLIED");
        assert_eq!(values[":payment"].as_n().unwrap(), "7");
        assert!(update.update_expression().contains("payment_id = :payment"));
        let ignored = store.event_processed(
            &keys::psp_event("e"),
            &PspOutcome::UnknownReference,
            None,
            now,
        );
        let update = ignored.update().unwrap();
        assert_eq!(
            update.expression_attribute_values().unwrap()[":status"]
                .as_s()
                .unwrap(),
            "IGNORED"
        );
        assert!(!update.update_expression().contains("payment_id"));
    }

    #[test]
    fn queued_messages_carry_the_event_id_only() {
        let text = serde_json::to_string(&QueuedEvent {
            event_id: "evt_1".into(),
        })
        .unwrap();
        assert_eq!(text, r#"{"event_id":"evt_1"}"#);
    }
}
