//! `TransactWriteItems` with its cancellation reasons decoded, and the bounded,
//! jittered backoff used when a transaction loses a race or is throttled.

use super::{
    items::{key_item, values, Item},
    keys::Key,
    Store,
};
use crate::error::AppError;
use aws_sdk_dynamodb::{
    error::SdkError,
    operation::transact_write_items::TransactWriteItemsError,
    types::{ConditionCheck, Delete, Put, ReturnConsumedCapacity, TransactWriteItem, Update},
};

/// Why DynamoDB cancelled one item of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// This item was fine; another one failed.
    None,
    /// Its condition expression was false.
    ConditionFailed,
    /// Another transaction was writing the same item, or the table was
    /// throttled: nothing was written; retry from a fresh read.
    Busy(String),
    Other(String),
}

#[derive(Debug)]
pub enum TransactError {
    /// Cancelled: one reason per item, in the order the items were given.
    Cancelled(Vec<Reason>),
    /// Anything else: not the caller's fault.
    Failed(AppError),
}

impl TransactError {
    /// Contended or throttled: nothing was written, trying again is safe.
    pub fn is_busy(&self) -> bool {
        match self {
            TransactError::Cancelled(reasons) => {
                reasons.iter().any(|r| matches!(r, Reason::Busy(_)))
            }
            TransactError::Failed(e) => e.is_busy(),
        }
    }

    /// True if item `index` failed its condition.
    pub fn failed_condition(&self, index: usize) -> bool {
        matches!(self, TransactError::Cancelled(r) if r.get(index) == Some(&Reason::ConditionFailed))
    }

    /// For outcomes the caller does not handle itself: `SERVICE_BUSY` when
    /// busy (for `retry_busy`), else an internal error.
    pub fn unexpected(self) -> AppError {
        if self.is_busy() {
            return AppError::busy();
        }
        match self {
            TransactError::Cancelled(reasons) => {
                AppError::internal(format!("transaction cancelled unexpectedly: {reasons:?}"))
            }
            TransactError::Failed(e) => e,
        }
    }
}

/// The table key (`pk`, `sk`) of an item of a transaction.
fn item_key(item: &TransactWriteItem) -> Option<(&str, &str)> {
    let key = if let Some(put) = item.put() {
        put.item()
    } else if let Some(update) = item.update() {
        update.key()
    } else if let Some(delete) = item.delete() {
        delete.key()
    } else {
        item.condition_check()?.key()
    };
    let part = |name: &str| {
        key.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    Some((part("pk")?, part("sk").unwrap_or("")))
}

/// The first key (`pk|sk`) that two items of `items` name, if any: DynamoDB
/// refuses a transaction that touches one item twice. Compared pair by pair:
/// a transaction holds at most 100 items, a purchase 4.
fn named_twice(items: &[TransactWriteItem]) -> Option<String> {
    let keys: Vec<(&str, &str)> = items.iter().filter_map(item_key).collect();
    keys.iter()
        .enumerate()
        .find(|&(i, key)| keys[..i].contains(key))
        .map(|(_, (pk, sk))| format!("{pk}|{sk}"))
}

impl Store {
    /// Runs one all-or-nothing transaction. Its client request token makes
    /// the SDK's own retry of it idempotent: if a first try landed but its
    /// answer was lost (a timeout), DynamoDB answers the retry with success
    /// and writes nothing again.
    pub async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TransactError> {
        if let Some(key) = named_twice(&items) {
            // DynamoDB refuses such a transaction whole (ValidationException):
            // a builder bug, never the caller's. Loud in tests, clear in logs.
            debug_assert!(false, "a transaction names {key} twice");
            tracing::error!(%key, "a transaction names one item twice: not sent");
            return Err(TransactError::Failed(AppError::internal(format!(
                "a transaction names {key} twice"
            ))));
        }
        let count = items.len();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                // What it cost, for whoever tunes capacity (DynamoDB prices a
                // transactional write at 2 WCU per started KiB per item).
                tracing::debug!(consumed = ?output.consumed_capacity(), items = count, "transaction");
                Ok(())
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    let mut reasons: Vec<Reason> = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| match r.code() {
                            None | Some("None") => Reason::None,
                            Some("ConditionalCheckFailed") => Reason::ConditionFailed,
                            Some(code) if super::retry::is_busy_reason(code) => {
                                Reason::Busy(code.to_string())
                            }
                            Some(other) => Reason::Other(other.to_string()),
                        })
                        .collect();
                    reasons.resize(count, Reason::None);
                    Err(TransactError::Cancelled(reasons))
                }
                other => Err(TransactError::Failed(super::retry::aws_error(other))),
            },
            Err(other) => Err(TransactError::Failed(super::retry::aws_error(other))),
        }
    }

    pub(crate) fn put_new(&self, item: Item) -> TransactWriteItem {
        self.put_if(item, "attribute_not_exists(pk)")
    }

    pub(crate) fn put_if(&self, item: Item, condition: &str) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .expect("table, item and condition are set");
        TransactWriteItem::builder().put(put).build()
    }

    pub(crate) fn exists_check(&self, key: &Key) -> TransactWriteItem {
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(key_item(key)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .expect("table, key and condition are set");
        TransactWriteItem::builder().condition_check(check).build()
    }

    /// Deletes a guard unless it guards someone else (never another's).
    pub(crate) fn delete_guard(
        &self,
        key: &Key,
        owner_attribute: &str,
        owner: u64,
    ) -> TransactWriteItem {
        let delete = Delete::builder()
            .table_name(self.table())
            .set_key(Some(key_item(key)))
            .condition_expression(format!(
                "attribute_not_exists(pk) OR {owner_attribute} = :owner"
            ))
            .set_expression_attribute_values(Some(values([(":owner", super::items::n(owner))])))
            .build()
            .expect("table, key and condition are set");
        TransactWriteItem::builder().delete(delete).build()
    }

    pub(crate) fn update(
        &self,
        update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    ) -> TransactWriteItem {
        let update: Update = update
            .table_name(self.table())
            .build()
            .expect("key and update expression are set");
        TransactWriteItem::builder().update(update).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_naming_one_item_twice_is_caught_whatever_the_item_kinds() {
        use aws_sdk_dynamodb::types::AttributeValue;
        let key = |pk: &str, sk: &str| {
            std::collections::HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk.into())),
                ("sk".to_string(), AttributeValue::S(sk.into())),
            ])
        };
        let check = |pk: &str, sk: &str| {
            let c = ConditionCheck::builder()
                .table_name("t")
                .set_key(Some(key(pk, sk)))
                .condition_expression("attribute_exists(pk)")
                .build()
                .unwrap();
            TransactWriteItem::builder().condition_check(c).build()
        };
        let put = |pk: &str, sk: &str| {
            let p = Put::builder()
                .table_name("t")
                .set_item(Some(key(pk, sk)))
                .build()
                .unwrap();
            TransactWriteItem::builder().put(p).build()
        };
        let update = |pk: &str, sk: &str| {
            let u = Update::builder()
                .table_name("t")
                .set_key(Some(key(pk, sk)))
                .update_expression("SET a = :a")
                .build()
                .unwrap();
            TransactWriteItem::builder().update(u).build()
        };
        let delete = |pk: &str, sk: &str| {
            let d = Delete::builder()
                .table_name("t")
                .set_key(Some(key(pk, sk)))
                .build()
                .unwrap();
            TransactWriteItem::builder().delete(d).build()
        };
        let distinct = vec![
            update("ESCROW#1", "ESCROW"),
            check("ESCROW#1", "MILESTONE#1"),
            check("ESCROW#1", "MILESTONE#2"),
            put("PAYMENT#3", "PAYMENT"),
            delete("GUARD#1", "GUARD"),
        ];
        assert_eq!(named_twice(&distinct), None);
        // The review's case: one milestone checked by the hook and the proof.
        let mut twice = distinct.clone();
        twice.push(check("ESCROW#1", "MILESTONE#1"));
        assert_eq!(named_twice(&twice).as_deref(), Some("ESCROW#1|MILESTONE#1"));
        for other in [put("GUARD#1", "GUARD"), update("PAYMENT#3", "PAYMENT")] {
            let mut twice = distinct.clone();
            twice.push(other);
            assert!(named_twice(&twice).is_some());
        }
    }

    #[test]
    fn decodes_which_item_failed() {
        let e = TransactError::Cancelled(vec![Reason::None, Reason::ConditionFailed]);
        assert!(e.failed_condition(1));
        assert!(!e.failed_condition(0));
        assert!(!e.failed_condition(5));
        assert!(!e.is_busy());
        assert_eq!(e.unexpected().status(), 500);
        for code in [
            "TransactionConflict",
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
        ] {
            let busy = TransactError::Cancelled(vec![Reason::None, Reason::Busy(code.into())]);
            assert!(busy.is_busy(), "{code}");
            assert_eq!(
                busy.unexpected().code,
                crate::domain::error::ErrorCode::ServiceBusy
            );
        }
        let failed = TransactError::Failed(AppError::busy());
        assert!(failed.is_busy());
        assert_eq!(failed.unexpected().status(), 503);
    }
}
