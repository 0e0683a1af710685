//! The audit log: one append-only item per state change, written in the same
//! transaction as the change (design rule 5), read per entity.

use super::{
    items::{from_item, s, to_item, values},
    keys, Store,
};
use crate::{domain::ids::Id, domain::time::Timestamp, error::AppError};
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::{Deserialize, Serialize};

/// Who did it: an API key (`apikey:{id}`) or the system (the expiry schedule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey(Id),
    System,
}

impl From<&crate::domain::access::Principal> for Actor {
    fn from(principal: &crate::domain::access::Principal) -> Actor {
        Actor::ApiKey(principal.key_id)
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::ApiKey(id) => write!(f, "apikey:{id}"),
            Actor::System => f.write_str("system"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub actor: Actor,
    pub action: &'static str,
    pub entity: &'static str,
    pub entity_id: Id,
    pub data: serde_json::Value,
    pub at: Timestamp,
}

/// An audit entry as stored and as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub pk: String,
    pub sk: String,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: u64,
    /// JSON text of the entry's data.
    pub data: String,
    pub at: String,
}

impl AuditEntry {
    pub fn new(
        actor: &Actor,
        action: &'static str,
        entity: &'static str,
        entity_id: Id,
        data: serde_json::Value,
        at: Timestamp,
    ) -> AuditEntry {
        AuditEntry {
            actor: actor.clone(),
            action,
            entity,
            entity_id,
            data,
            at,
        }
    }

    /// `order` ranks entries written in one transaction (same `at`).
    fn record(&self, order: u8) -> AuditRecord {
        let unique = format!("{order:02}#{}", uuid::Uuid::new_v4().simple());
        let key = keys::audit(self.entity, self.entity_id, self.at, &unique);
        AuditRecord {
            pk: key.pk,
            sk: key.sk,
            actor: self.actor.to_string(),
            action: self.action.to_string(),
            entity: self.entity.to_string(),
            entity_id: self.entity_id.get(),
            data: self.data.to_string(),
            at: self.at.to_string(),
        }
    }
}

impl Store {
    /// The transaction item that appends `entry`.
    pub(crate) fn audit(&self, entry: &AuditEntry) -> Result<TransactWriteItem, AppError> {
        self.audit_nth(entry, 0)
    }

    /// Same, for the `order`-th entry of one entity in one transaction, so
    /// that the trail reads in the order things happened.
    pub(crate) fn audit_nth(
        &self,
        entry: &AuditEntry,
        order: u8,
    ) -> Result<TransactWriteItem, AppError> {
        Ok(self.put_new(to_item(&entry.record(order))?))
    }

    /// Every audit entry of one entity, oldest first (for support tools and tests).
    pub async fn audit_trail(
        &self,
        entity: &str,
        entity_id: Id,
    ) -> Result<Vec<AuditRecord>, AppError> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk")
                .set_expression_attribute_values(Some(values([(
                    ":pk",
                    s(keys::audit_partition(entity, entity_id)),
                )])))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(super::retry::aws_error)?;
            for item in page.items().iter().cloned() {
                records.push(from_item(item)?);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(records);
            }
        }
    }
}

/// Entity names used in audit keys.
pub mod entity {
    pub const USER: &str = "USER";
    pub const API_KEY: &str = "APIKEY";
    pub const CATEGORY: &str = "SPEND_CATEGORY";
    pub const MERCHANT: &str = "MERCHANT";
    pub const ALLOWANCE_OWNER: &str = "USER";
    pub const MANDATE: &str = "USAGE_MANDATE";
    pub const PURCHASE: &str = "PURCHASE";
    pub const ESCROW: &str = "ESCROW";
    pub const PAYMENT: &str = "PAYMENT";
}

/// Actions, as the audit recommended (risk R3).
pub mod action {
    pub const USER_CREATED: &str = "USER_CREATED";
    pub const USER_DEACTIVATED: &str = "USER_DEACTIVATED";
    pub const USER_REACTIVATED: &str = "USER_REACTIVATED";
    pub const API_KEY_CREATED: &str = "API_KEY_CREATED";
    pub const API_KEY_REVOKED: &str = "API_KEY_REVOKED";
    pub const CATEGORY_CREATED: &str = "SPEND_CATEGORY_CREATED";
    pub const MERCHANT_CREATED: &str = "MERCHANT_CREATED";
    pub const USAGE_ALLOWED: &str = "USAGE_ALLOWED";
    pub const MANDATE_CREATED: &str = "USAGE_MANDATE_CREATED";
    pub const MANDATE_DEBITED: &str = "USAGE_MANDATE_DEBITED";
    pub const MANDATE_CONSUMED: &str = "USAGE_MANDATE_CONSUMED";
    pub const MANDATE_EXPIRED: &str = "USAGE_MANDATE_EXPIRED";
}
