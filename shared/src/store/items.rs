//! Mapping between item records (serde_dynamo) and DynamoDB attribute maps,
//! plus the small attribute helpers expressions need.

use super::keys::{Key, PK, SK};
use crate::error::AppError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

pub fn to_item<T: Serialize>(record: &T) -> Result<Item, AppError> {
    serde_dynamo::to_item(record).map_err(AppError::internal)
}

pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, AppError> {
    serde_dynamo::from_item(item).map_err(AppError::internal)
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn key_item(key: &Key) -> Item {
    HashMap::from([(PK.to_string(), s(&key.pk)), (SK.to_string(), s(&key.sk))])
}

/// The primary key of an item read back from the table.
pub fn key_of(item: &Item) -> Option<Key> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    Some(Key {
        pk: text(PK)?,
        sk: text(SK)?,
    })
}

/// Builds `ExpressionAttributeValues` from `(":name", value)` pairs.
pub fn values<const N: usize>(
    pairs: [(&str, AttributeValue); N],
) -> HashMap<String, AttributeValue> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A uniqueness guard: written with `attribute_not_exists(pk)` in the same
/// transaction as the item it guards, so a second claim of the value fails.
#[derive(serde::Serialize)]
struct GuardRecord {
    pk: String,
    sk: String,
    owner_id: crate::domain::ids::Id,
}

/// The guard of unique `value` (of kind `what`), owned by `owner`.
pub fn unique_guard(
    what: &str,
    value: &str,
    owner: crate::domain::ids::Id,
) -> Result<Item, AppError> {
    let key = super::keys::unique(what, &crate::domain::unique::uniqueness_key(value));
    to_item(&GuardRecord {
        pk: key.pk,
        sk: key.sk,
        owner_id: owner,
    })
}
