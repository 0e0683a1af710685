//! The audit log: one item per state change, written in the same transaction
//! as the change (design rule 5), read per entity.
//!
//! What keeps an entry as written: no function may Update or Delete an
//! `AUDIT#` item (an IAM Deny in every function that writes); every audit
//! write in the code is a Put conditioned on `attribute_not_exists(pk)`
//! (`Store::audit_nth` below, checked by a test in `policies.rs`), so a Put
//! that replaced an entry would need code that no function has (IAM cannot
//! refuse such a Put). The tamper-proof copy (the table's stream archived
//! into an S3 bucket with Object Lock in compliance mode) comes with payout
//! dispatch (issue 14, which enables DynamoDB Streams).

use super::list::{KeyPageRequest, Page};
use super::{
    items::{from_item, s, to_item, values},
    keys, Store,
};
use crate::{domain::ids::Id, domain::time::Timestamp, error::AppError};
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::{Deserialize, Serialize};

/// Who did it: an API key (`apikey:{id}`), the system (the expiry
/// schedule), or the PSP (its signed webhook, applied by `psp-events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey(Id),
    System,
    Psp,
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
            Actor::Psp => f.write_str("psp"),
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

/// One audit entry as `GET /audit/{entity}/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub data: serde_json::Value,
}

impl From<AuditRecord> for AuditView {
    fn from(record: AuditRecord) -> AuditView {
        AuditView {
            // Stored data is always JSON text; keep it readable if not.
            data: serde_json::from_str(&record.data)
                .unwrap_or(serde_json::Value::String(record.data)),
            at: record.at,
            actor: record.actor,
            action: record.action,
        }
    }
}

/// Whether `sort_key` has the shape of the sort key of an audit entry or an
/// escrow's timeline event (`{at}#{nn}#{unique}`): what a cursor of `GET
/// /audit/…` or `GET /escrows/{id}/events` must decode to.
pub fn is_trail_sort_key(sort_key: &str) -> bool {
    let mut parts = sort_key.splitn(3, '#');
    let (Some(at), Some(order), Some(unique)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    Timestamp::parse(at).is_ok_and(|t| t.to_string() == at)
        && order.len() == 2
        && order.bytes().all(|b| b.is_ascii_digit())
        && !unique.is_empty()
        && unique.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Store {
    /// One page of one entity's audit trail, oldest first.
    pub async fn audit_page(
        &self,
        entity: &str,
        entity_id: Id,
        page: &KeyPageRequest,
    ) -> Result<Page<AuditView>, AppError> {
        let page = self
            .trail_page::<AuditRecord>(keys::audit_partition(entity, entity_id), page, |r| &r.sk)
            .await?;
        Ok(page.map(AuditView::from))
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
    pub const PROOF: &str = "PROOF";
    pub const PAYMENT: &str = "PAYMENT";
    pub const TRANSACTION: &str = "TRANSACTION";
    pub const ALERT: &str = "ALERT";

    /// The `{entity}` names of `GET /audit/{entity}/{id}`, and the entity
    /// each names in audit keys.
    pub const BY_PATH: [(&str, &str); 9] = [
        ("user", USER),
        ("apikey", API_KEY),
        ("mandate", MANDATE),
        ("purchase", PURCHASE),
        ("escrow", ESCROW),
        ("proof", PROOF),
        ("payment", PAYMENT),
        ("transaction", TRANSACTION),
        ("alert", ALERT),
    ];

    /// The audit-key entity of a path's `{entity}` (exact, lower case).
    pub fn from_path(name: &str) -> Option<&'static str> {
        BY_PATH
            .iter()
            .find(|(path, _)| *path == name)
            .map(|(_, e)| *e)
    }
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
    pub const ALLOWLIST_ADDED: &str = "ALLOWLIST_ADDED";
    pub const CERTIFIED: &str = "CERTIFIED";
    pub const CREATE_TRANSACTION: &str = "CREATE_TRANSACTION";
    pub const ALERT_ACKNOWLEDGED: &str = "ALERT_ACKNOWLEDGED";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_entities_map_to_audit_entities() {
        assert_eq!(entity::from_path("user"), Some("USER"));
        assert_eq!(entity::from_path("mandate"), Some("USAGE_MANDATE"));
        assert_eq!(entity::from_path("apikey"), Some("APIKEY"));
        assert_eq!(entity::from_path("transaction"), Some("TRANSACTION"));
        for bad in ["USER", "merchant", "", "users", "mandate "] {
            assert_eq!(entity::from_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn written_sort_keys_are_valid_cursors() {
        let entry = AuditEntry::new(
            &Actor::System,
            action::USER_CREATED,
            entity::USER,
            Id::new(7).unwrap(),
            serde_json::json!({"a": 1}),
            Timestamp::parse("2026-01-02T03:04:05Z").unwrap(),
        );
        let record = entry.record(3);
        assert_eq!(record.pk, "AUDIT#USER#7");
        assert!(is_trail_sort_key(&record.sk), "{}", record.sk);
        for bad in [
            "",
            "x",
            "2026-01-02T03:04:05Z#00#ab",
            "2026-01-02T03:04:05.000000Z#0#ab",
            "2026-01-02T03:04:05.000000Z#00#",
            "2026-01-02T03:04:05.000000Z#00#a b",
        ] {
            assert!(!is_trail_sort_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn views_show_data_as_json() {
        let entry = AuditEntry::new(
            &Actor::ApiKey(Id::new(1).unwrap()),
            action::MANDATE_CREATED,
            entity::MANDATE,
            Id::new(2).unwrap(),
            serde_json::json!({"total_amount": "10.00"}),
            Timestamp::parse("2026-01-02T03:04:05Z").unwrap(),
        );
        let view = AuditView::from(entry.record(0));
        assert_eq!(view.actor, "apikey:1");
        assert_eq!(view.action, "USAGE_MANDATE_CREATED");
        assert_eq!(view.at, "2026-01-02T03:04:05.000000Z");
        assert_eq!(view.data, serde_json::json!({"total_amount": "10.00"}));
    }
}
