//! Consistent reads: one item, or several in one round trip.

use super::{
    items::{from_item, key_item, key_of, Item},
    keys::Key,
    Store,
};
use crate::error::AppError;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use std::collections::HashMap;

impl Store {
    /// A consistent read of one item, mapped to its record.
    pub(crate) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &Key,
    ) -> Result<Option<T>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(super::retry::aws_error)?;
        output.item.map(from_item).transpose()
    }

    /// Consistent reads of up to 100 distinct items in one `BatchGetItem`
    /// (plus a retry for any keys DynamoDB leaves unprocessed). Absent items
    /// are absent from the map.
    pub(crate) async fn get_many(&self, keys: &[Key]) -> Result<HashMap<Key, Item>, AppError> {
        let mut found = HashMap::new();
        let mut unique: Vec<&Key> = Vec::new();
        for key in keys {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        if unique.is_empty() {
            return Ok(found);
        }
        let request = KeysAndAttributes::builder()
            .set_keys(Some(unique.iter().map(|k| key_item(k)).collect()))
            .consistent_read(true)
            .build()
            .map_err(AppError::internal)?;
        let mut pending = Some(HashMap::from([(self.table().to_string(), request)]));
        let mut backoff = super::retry::Backoff::new(8);
        while let Some(request_items) = pending.take() {
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(request_items))
                .send()
                .await
                .map_err(super::retry::aws_error)?;
            if let Some(mut responses) = output.responses {
                for item in responses.remove(self.table()).unwrap_or_default() {
                    if let Some(key) = key_of(&item) {
                        found.insert(key, item);
                    }
                }
            }
            pending = output.unprocessed_keys.filter(|u| !u.is_empty());
            // Keys left unprocessed: the table is over its read throughput.
            if pending.is_some() && !backoff.wait().await {
                tracing::warn!("batch read left keys unprocessed after every retry");
                return Err(AppError::busy());
            }
        }
        Ok(found)
    }
}

/// Takes the record stored under `key` out of a `get_many` result.
pub(crate) fn take<T: serde::de::DeserializeOwned>(
    found: &mut HashMap<Key, Item>,
    key: &Key,
) -> Result<Option<T>, AppError> {
    found.remove(key).map(from_item).transpose()
}
