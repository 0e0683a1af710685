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
    items::{from_item, key_of, s, to_item, Item},
    keys::{self, Key, GSI_BY_KIND, GSI_BY_SENDER},
    list::{encode_cursor, KeyPageRequest, Page},
    Store,
};
use crate::{
    domain::{alert::AlertType, ids::Id, time::Timestamp},
    error::AppError,
};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

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

/// What one shard's Query found: (sort key, table key) newest first, and the
/// sort key it stopped at if it was not read to the end of what a page needs.
#[derive(Debug, Default)]
pub(crate) struct ShardRead {
    pub found: Vec<(String, Key)>,
    pub stopped_at: Option<String>,
}

/// Merges shard reads into one page, newest first (pure). Below the highest
/// `stopped_at` some shard was not read, so the page ends there: every alert
/// is returned once and none skipped.
pub(crate) fn merge(reads: Vec<ShardRead>, limit: usize) -> (Vec<(String, Key)>, Option<String>) {
    let frontier = reads.iter().filter_map(|r| r.stopped_at.clone()).max();
    let mut all: Vec<(String, Key)> = reads
        .into_iter()
        .flat_map(|r| r.found)
        .filter(|(sort, _)| frontier.as_ref().is_none_or(|f| sort >= f))
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0));
    all.dedup_by(|a, b| a.0 == b.0);
    if all.len() > limit {
        all.truncate(limit);
        let last = all.last().map(|(sort, _)| sort.clone());
        return (all, last);
    }
    (all, frontier)
}

impl Store {
    /// The transaction item raising `alert` in this store's table.
    pub fn alert_put(&self, alert: &NewAlert) -> Result<TransactWriteItem, AppError> {
        alert_put(self.table(), alert)
    }

    /// One page of alerts, newest first, of one type or all: one Query per
    /// shard, then one `BatchGetItem`.
    pub async fn alerts(
        &self,
        alert_type: Option<AlertType>,
        page: &KeyPageRequest,
    ) -> Result<Page<AlertView>, AppError> {
        let (index, kind) = match alert_type {
            Some(t) => (GSI_BY_SENDER, keys::alerts_of_type(t.as_str())),
            None => (GSI_BY_KIND, keys::ALERTS.to_string()),
        };
        let mut reads = Vec::new();
        for shard in 0..keys::index_shards() {
            let partition = format!("{kind}#{shard}");
            let mut names = HashMap::from([("#pk".to_string(), index.pk.to_string())]);
            let mut values = HashMap::from([(":pk".to_string(), s(partition))]);
            let mut condition = "#pk = :pk".to_string();
            if let Some(before) = &page.after {
                names.insert("#sk".into(), index.sk.into());
                values.insert(":before".into(), s(before.as_str()));
                condition.push_str(" AND #sk < :before");
            }
            let output = self
                .client
                .query()
                .table_name(self.table())
                .index_name(index.name)
                .key_condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .scan_index_forward(false)
                .limit(page.limit as i32 + 1)
                .send()
                .await
                .map_err(super::retry::aws_error)?;
            let mut read = ShardRead::default();
            for entry in output.items.unwrap_or_default() {
                read.found
                    .push((sort_of(&entry, index.sk)?, key_of_entry(&entry)?));
            }
            // Fewer than asked and not at the end: the shard resumes there.
            if read.found.len() <= page.limit {
                if let Some(last) = output.last_evaluated_key {
                    read.stopped_at = Some(sort_of(&last, index.sk)?);
                }
            }
            reads.push(read);
        }
        let (found, cursor) = merge(reads, page.limit);
        let keys: Vec<Key> = found.into_iter().map(|(_, k)| k).collect();
        let mut items = self.get_many(&keys).await?;
        let mut alerts = Vec::new();
        for key in &keys {
            if let Some(item) = items.remove(key) {
                alerts.push(AlertView::from(from_item::<AlertRecord>(item)?));
            }
        }
        Ok(Page {
            items: alerts,
            next_cursor: cursor.map(|sort| encode_cursor(&sort)),
        })
    }
}

fn sort_of(entry: &Item, attribute: &str) -> Result<String, AppError> {
    entry
        .get(attribute)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| AppError::internal("alert index entry without sort key"))
}

fn key_of_entry(entry: &Item) -> Result<Key, AppError> {
    key_of(entry).ok_or_else(|| AppError::internal("alert index entry without key"))
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
                "created_at": "2026-03-04T05:06:07.000000Z"
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

    fn read(sorts: &[&str], stopped_at: Option<&str>) -> ShardRead {
        ShardRead {
            found: sorts
                .iter()
                .map(|s| (s.to_string(), keys::alert("T", s)))
                .collect(),
            stopped_at: stopped_at.map(str::to_string),
        }
    }

    fn sorts(found: &[(String, Key)]) -> Vec<&str> {
        found.iter().map(|(s, _)| s.as_str()).collect()
    }

    #[test]
    fn merge_orders_newest_first_and_pages() {
        let (found, cursor) = merge(
            vec![read(&["9", "5", "2"], None), read(&["8", "1"], None)],
            10,
        );
        assert_eq!(sorts(&found), vec!["9", "8", "5", "2", "1"]);
        assert_eq!(cursor, None);
        let (found, cursor) = merge(
            vec![read(&["9", "5", "2"], None), read(&["8", "1"], None)],
            2,
        );
        assert_eq!(sorts(&found), vec!["9", "8"]);
        assert_eq!(cursor.as_deref(), Some("8"));
    }

    #[test]
    fn merge_stops_at_an_unfinished_shard() {
        let (found, cursor) = merge(
            vec![read(&["9", "7"], Some("7")), read(&["8", "3"], None)],
            10,
        );
        assert_eq!(sorts(&found), vec!["9", "8", "7"]);
        assert_eq!(cursor.as_deref(), Some("7"));
    }
}
