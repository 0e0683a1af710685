//! Integer ids from atomic counters. A container reserves a block of ids per
//! counter round trip (`ADD next :block`) and hands them out locally, so
//! steady-state writes pay no extra round trip for their id. Ids stay unique
//! and positive; they are not gap-free, and containers interleave.

use super::{items::values, keys, Store};
use crate::{domain::ids::Id, error::AppError};
use aws_sdk_dynamodb::types::ReturnValue;
use std::{collections::HashMap, ops::Range};
use tokio::sync::Mutex;

pub struct IdAllocator {
    block: u64,
    reserved: Mutex<HashMap<&'static str, Range<u64>>>,
}

impl IdAllocator {
    pub fn new(block: u64) -> IdAllocator {
        IdAllocator {
            block: block.max(1),
            reserved: Mutex::new(HashMap::new()),
        }
    }
}

/// Counters, one per kind of entity.
pub const USER: &str = "user";
pub const API_KEY: &str = "apikey";
pub const CATEGORY: &str = "category";
pub const MERCHANT: &str = "merchant";
pub const MANDATE: &str = "mandate";
pub const PURCHASE: &str = "purchase";
pub const ESCROW: &str = "escrow";
pub const MILESTONE: &str = "milestone";
pub const PAYMENT: &str = "payment";
pub const ALERT: &str = "alert";
pub const TRANSACTION: &str = "transaction";
pub const PAYEE: &str = "payee";
pub const PROOF: &str = "proof";

impl Store {
    /// The id of `kind` kept in `slot` for one request, allocated by the
    /// first of its passes that needs it: a retried pass writes the same id.
    pub(crate) async fn reserve_id(
        &self,
        slot: &std::sync::OnceLock<Id>,
        kind: &'static str,
    ) -> Result<Id, AppError> {
        if let Some(id) = slot.get() {
            return Ok(*id);
        }
        let id = self.next_id(kind).await?;
        Ok(*slot.get_or_init(|| id))
    }

    /// The next id of `kind`: from the reserved block, or a new block.
    pub async fn next_id(&self, kind: &'static str) -> Result<Id, AppError> {
        let mut reserved = self.ids.reserved.lock().await;
        let range = reserved.entry(kind).or_insert(0..0);
        if range.is_empty() {
            *range = self.reserve_block(kind, self.ids.block).await?;
        }
        let id = range.start;
        range.start += 1;
        Id::new(id).ok_or_else(|| AppError::internal(format!("counter {kind} out of range")))
    }

    /// One atomic `ADD`: the block is `(previous high, new high]`.
    async fn reserve_block(&self, kind: &str, block: u64) -> Result<Range<u64>, AppError> {
        let key = keys::counter(kind);
        let output = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(super::items::key_item(&key)))
            .update_expression("ADD high :block")
            .set_expression_attribute_values(Some(values([(":block", super::items::n(block))])))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(super::retry::aws_error)?;
        let high: u64 = output
            .attributes()
            .and_then(|a| a.get("high"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| AppError::internal("counter update returned no value"))?;
        Ok(high - block + 1..high + 1)
    }
}
