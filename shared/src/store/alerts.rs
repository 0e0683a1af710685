//! Alerts (`GET /alerts`): one item per alert, raised inside the transaction
//! of its cause and never on its own.
//!
//! Layout (see `keys`): the item's key is derived from the alert type and its
//! cause (`ALERT#{type}#{sha256 hex of cause}`), and the Put is conditional on
//! that key being new. A retried cause (same `Idempotency-Key`, redelivered
//! message, second sweep) therefore raises no second alert: its transaction
//! fails on the alert's condition, like on its other guards. A cause is a
//! stable text naming what happened once, e.g. `transfer:{idempotency scope}`,
//! `escrow:{id}:deadline`, `psp-event:{event id}`.
//!
//! Readers: `gsi3` holds every alert under `ALERTS#{id % shards}` and `gsi1`
//! the alerts of one type under `ALERTS#{type}#{id % shards}`, both sorted by
//! `{created_at}#{id}`; no write lands on one system-wide partition. A page
//! queries every shard (newest first, `limit + 1` entries each), merges, and
//! reads the page's items with one `BatchGetItem`.

use super::{
    audit::{action, entity, Actor, AuditEntry},
    items::{key_item, key_of, s, to_item, values},
    keys::{self, Index, Key, GSI_BY_BENEFICIARY, GSI_BY_KIND, GSI_BY_SENDER},
    list::{KeyPageRequest, Page},
    Store,
};
use crate::{
    domain::{alert::AlertType, ids::Id, time::Timestamp},
    error::AppError,
};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Counter of alert ids (`Store::next_id`).
pub const ID_KIND: &str = super::ids::ALERT;

/// An alert to raise, as its cause's write path knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    /// From `Store::next_id(alerts::ID_KIND)`.
    pub id: Id,
    pub alert_type: AlertType,
    /// What happened once; the same cause never raises a second alert.
    pub cause: String,
    pub message: String,
    pub actor_user_id: Option<Id>,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

/// What [`Store::raise_alert_once`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// This call raised the alert.
    Now,
    /// The cause had raised it already, at about this time.
    Before(Timestamp),
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub pk: String,
    pub sk: String,
    pub id: u64,
    #[serde(rename = "type")]
    pub alert_type: String,
    pub message: String,
    pub actor_user_id: Option<u64>,
    /// JSON text of the payload.
    pub payload: String,
    pub created_at: String,
    pub cause: String,
    pub gsi3pk: String,
    pub gsi3sk: String,
    pub gsi1pk: String,
    pub gsi1sk: String,
    /// Finds the alert by id (`POST /alerts/{id}/ack`): `ALERT_ID#{id}`.
    /// Alerts raised before acknowledgement existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
    /// Who acknowledged it (`apikey:{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
}

/// An alert as `GET /alerts` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    pub id: u64,
    #[serde(rename = "type")]
    pub alert_type: String,
    pub message: String,
    pub actor_user_id: Option<u64>,
    pub payload: serde_json::Value,
    pub created_at: String,
    /// When staff acknowledged it (`POST /alerts/{id}/ack`), or null.
    pub acknowledged_at: Option<String>,
    /// Who acknowledged it (`apikey:{id}`), or null.
    pub acknowledged_by: Option<String>,
}

impl From<AlertRecord> for AlertView {
    fn from(record: AlertRecord) -> AlertView {
        AlertView {
            id: record.id,
            alert_type: record.alert_type,
            message: record.message,
            actor_user_id: record.actor_user_id,
            payload: serde_json::from_str(&record.payload)
                .unwrap_or(serde_json::Value::String(record.payload)),
            created_at: record.created_at,
            acknowledged_at: record.acknowledged_at,
            acknowledged_by: record.acknowledged_by,
        }
    }
}

/// The key of the alert `cause` raises as `alert_type`.
pub fn alert_key(alert_type: AlertType, cause: &str) -> Key {
    keys::alert(alert_type.as_str(), &hex::encode(Sha256::digest(cause)))
}

/// The stored form of `alert` among `shards` index shards (pure).
pub fn record(alert: &NewAlert, shards: u64) -> AlertRecord {
    let key = alert_key(alert.alert_type, &alert.cause);
    let shard = keys::shard_of(alert.id, shards);
    let sort = keys::alert_sort_key(alert.created_at, alert.id);
    AlertRecord {
        pk: key.pk,
        sk: key.sk,
        id: alert.id.get(),
        alert_type: alert.alert_type.as_str().to_string(),
        message: alert.message.clone(),
        actor_user_id: alert.actor_user_id.map(Id::get),
        payload: alert.payload.to_string(),
        created_at: alert.created_at.to_string(),
        cause: alert.cause.clone(),
        gsi3pk: format!("{}#{shard}", keys::ALERTS),
        gsi3sk: sort.clone(),
        gsi1pk: format!(
            "{}#{shard}",
            keys::alerts_of_type(alert.alert_type.as_str())
        ),
        gsi1sk: sort,
        gsi2pk: Some(keys::alert_by_id(alert.id)),
        gsi2sk: Some(keys::id_sort_key(alert.id)),
        acknowledged_at: None,
        acknowledged_by: None,
    }
}

/// The transaction item that raises `alert` in table `table` (pure): a Put
/// that fails if its cause already raised it. Write paths add it to the
/// transaction of the cause.
pub fn alert_put(table: &str, alert: &NewAlert) -> Result<TransactWriteItem, AppError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(to_item(&record(alert, keys::index_shards()))?))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(AppError::internal)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Whether `sort_key` has the shape of an alert sort key: what a
/// `GET /alerts` cursor must decode to.
pub fn is_alert_sort_key(sort_key: &str) -> bool {
    let Some((at, id)) = sort_key.split_once('#') else {
        return false;
    };
    Timestamp::parse(at).is_ok_and(|t| t.to_string() == at)
        && id.len() == 20
        && id.bytes().all(|b| b.is_ascii_digit())
}

impl Store {
    /// Raises an alert of `alert_type` for `cause` on its own (a finding of
    /// a check, not part of a write's transaction), unless that cause raised
    /// one before. It looks first, so a cause already alerted takes no id.
    pub async fn raise_alert_once(
        &self,
        alert_type: AlertType,
        cause: String,
        message: String,
        payload: serde_json::Value,
        now: Timestamp,
    ) -> Result<Raised, AppError> {
        let key = alert_key(alert_type, &cause);
        if let Some(before) = self.get::<AlertRecord>(&key).await? {
            let at = Timestamp::parse(&before.created_at)
                .map_err(|e| AppError::internal(format!("alert {}: {e}", before.id)))?;
            return Ok(Raised::Before(at));
        }
        let alert = self.alert_put(&NewAlert {
            id: self.next_id(ID_KIND).await?,
            alert_type,
            cause,
            message,
            actor_user_id: None,
            payload,
            created_at: now,
        })?;
        match self.transact(vec![alert]).await {
            Ok(()) => Ok(Raised::Now),
            // Raised meanwhile by another invocation.
            Err(e) if e.failed_condition(0) => Ok(Raised::Before(now)),
            Err(e) if e.is_busy() => Err(AppError::busy()),
            Err(e) => Err(e.unexpected()),
        }
    }

    /// The transaction item raising `alert` in this store's table.
    pub fn alert_put(&self, alert: &NewAlert) -> Result<TransactWriteItem, AppError> {
        alert_put(self.table(), alert)
    }

    /// One page of alerts, newest first, of one type or all: one Query per
    /// shard, then one `BatchGetItem`. `acknowledged` keeps only the alerts
    /// acknowledged (or not): a filter on the items, so a page may come
    /// back short, with a cursor.
    pub async fn alerts(
        &self,
        alert_type: Option<AlertType>,
        acknowledged: Option<bool>,
        page: &KeyPageRequest,
    ) -> Result<Page<AlertView>, AppError> {
        let (index, kind) = match alert_type {
            Some(t) => (GSI_BY_SENDER, keys::alerts_of_type(t.as_str())),
            None => (GSI_BY_KIND, keys::ALERTS.to_string()),
        };
        let partitions: Vec<(Index, String)> = (0..keys::index_shards())
            .map(|shard| (index, format!("{kind}#{shard}")))
            .collect();
        let page = self
            .list_by_sort_key::<AlertRecord>(&partitions, &Vec::new(), page)
            .await?;
        let mut alerts = page.map(AlertView::from);
        if let Some(wanted) = acknowledged {
            alerts
                .items
                .retain(|a| a.acknowledged_at.is_some() == wanted);
        }
        Ok(alerts)
    }

    /// Alert `id` as stored, found through its id entry in `gsi2`: one Query
    /// and one consistent read.
    async fn alert_by_id(&self, id: Id) -> Result<Option<AlertRecord>, AppError> {
        let index = GSI_BY_BENEFICIARY;
        let output = self
            .client
            .query()
            .table_name(self.table())
            .index_name(index.name)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", index.pk)
            .set_expression_attribute_values(Some(values([(":pk", s(keys::alert_by_id(id)))])))
            .limit(1)
            .send()
            .await
            .map_err(super::retry::aws_error)?;
        let Some(key) = output.items().first().and_then(key_of) else {
            return Ok(None);
        };
        self.get::<AlertRecord>(&key).await
    }

    /// Acknowledges alert `id` for `actor`: who and when on the alert, and
    /// the audit entry `ALERT_ACKNOWLEDGED`, in one transaction conditional
    /// on the alert not being acknowledged yet. An alert acknowledged before
    /// is answered unchanged; `None`: no such alert.
    pub async fn acknowledge_alert(
        &self,
        id: Id,
        actor: &Actor,
    ) -> Result<Option<AlertView>, AppError> {
        self.retry_busy("acknowledge alert", || {
            self.try_acknowledge_alert(id, actor)
        })
        .await
    }

    async fn try_acknowledge_alert(
        &self,
        id: Id,
        actor: &Actor,
    ) -> Result<Option<AlertView>, AppError> {
        let Some(mut alert) = self.alert_by_id(id).await? else {
            return Ok(None);
        };
        if alert.acknowledged_at.is_some() {
            return Ok(Some(alert.into()));
        }
        let now = Timestamp::now();
        let who = actor.to_string();
        let key = Key {
            pk: alert.pk.clone(),
            sk: alert.sk.clone(),
        };
        let update = Update::builder()
            .set_key(Some(key_item(&key)))
            .update_expression("SET acknowledged_at = :at, acknowledged_by = :by")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(acknowledged_at)")
            .set_expression_attribute_values(Some(values([
                (":at", s(now.to_string())),
                (":by", s(who.as_str())),
            ])));
        let audit = AuditEntry::new(
            actor,
            action::ALERT_ACKNOWLEDGED,
            entity::ALERT,
            id,
            serde_json::json!({"type": alert.alert_type, "acknowledged_by": who}),
            now,
        );
        match self
            .transact(vec![self.update(update), self.audit(&audit)?])
            .await
        {
            Ok(()) => {
                alert.acknowledged_at = Some(now.to_string());
                alert.acknowledged_by = Some(who);
                Ok(Some(alert.into()))
            }
            // Acknowledged meanwhile: read again, which answers it unchanged.
            Err(e) if e.failed_condition(0) => Err(AppError::busy()),
            Err(e) => Err(e.unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: u64, cause: &str) -> NewAlert {
        NewAlert {
            id: Id::new(id).unwrap(),
            alert_type: AlertType::PaymentFailed,
            cause: cause.to_string(),
            message: "Payment failed.".into(),
            actor_user_id: None,
            payload: serde_json::json!({"payment_id": 4}),
            created_at: Timestamp::parse("2026-03-04T05:06:07Z").unwrap(),
        }
    }

    #[test]
    fn the_key_comes_from_the_cause_not_the_id() {
        let first = record(&alert(1, "payment:4:failed"), 8);
        let retry = record(&alert(2, "payment:4:failed"), 8);
        let other = record(&alert(3, "payment:5:failed"), 8);
        assert_eq!((&first.pk, &first.sk), (&retry.pk, &retry.sk));
        assert_ne!(first.pk, other.pk);
        assert!(first.pk.starts_with("ALERT#PAYMENT_FAILED#"));
        assert_eq!(first.pk.len(), "ALERT#PAYMENT_FAILED#".len() + 64);
        let mut escrow = alert(1, "payment:4:failed");
        escrow.alert_type = AlertType::EscrowDeadlineMissed;
        assert_ne!(record(&escrow, 8).pk, first.pk);
    }

    #[test]
    fn records_are_sharded_and_sorted_by_time_then_id() {
        let r = record(&alert(13, "c"), 8);
        assert_eq!(r.gsi3pk, "ALERTS#5");
        assert_eq!(r.gsi1pk, "ALERTS#PAYMENT_FAILED#5");
        assert_eq!(r.gsi3sk, "2026-03-04T05:06:07.000000Z#00000000000000000013");
        assert_eq!(r.gsi1sk, r.gsi3sk);
        assert_eq!(r.gsi2pk.as_deref(), Some("ALERT_ID#13"));
        assert_eq!(r.gsi2sk.as_deref(), Some("00000000000000000013"));
        assert!(is_alert_sort_key(&r.gsi3sk));
        for bad in [
            "",
            "x",
            "2026-03-04T05:06:07Z#00000000000000000013",
            "2026-03-04T05:06:07.000000Z#13",
        ] {
            assert!(!is_alert_sort_key(bad), "{bad:?}");
        }
        let view = AlertView::from(r);
        assert_eq!(
            serde_json::to_value(view).unwrap(),
            serde_json::json!({
                "id": 13, "type": "PAYMENT_FAILED", "message": "Payment failed.",
                "actor_user_id": null, "payload": {"payment_id": 4},
                "created_at": "2026-03-04T05:06:07.000000Z",
                "acknowledged_at": null, "acknowledged_by": null
            })
        );
    }

    #[test]
    fn the_put_is_conditional_on_a_new_key() {
        let item = alert_put("t", &alert(1, "c")).unwrap();
        let put = item.put().unwrap();
        assert_eq!(put.table_name(), "t");
        assert_eq!(put.condition_expression(), Some("attribute_not_exists(pk)"));
        assert_eq!(put.item()["type"].as_s().unwrap(), "PAYMENT_FAILED");
    }
}
