//! Idempotency records, stored with the effect in the same transaction (design
//! rule 3). Scope = route + owner (the acting user for a `user` key, the key
//! for staff) + `Idempotency-Key`; the record keeps the first response
//! (status and body, byte for byte) and a fingerprint of the parsed request,
//! and expires by DynamoDB TTL.

use super::{
    items::{from_item, key_item, n, to_item, values, Item},
    keys::{self, Key},
    Store,
};
use crate::{
    domain::{access::IdempotencyOwner, error::ErrorCode, time::Timestamp},
    error::AppError,
};
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Records live 48 hours: the contract promises at least 24.
pub const RETENTION_SECONDS: i64 = 48 * 3600;

/// Longest accepted `Idempotency-Key`.
pub const MAX_KEY_LEN: usize = 255;

/// Checks an `Idempotency-Key` header value: 1–255 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Where one idempotent request lives: who sent it, on which route, with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub route: &'static str,
    pub owner: IdempotencyOwner,
    pub key: String,
}

impl Scope {
    pub fn storage_key(&self) -> Key {
        let mut hash = Sha256::new();
        for part in [
            self.route.as_bytes(),
            self.owner.to_string().as_bytes(),
            self.key.as_bytes(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        keys::idempotency(&hex::encode(hash.finalize()))
    }
}

/// Fingerprint of a request in its parsed, canonical form (amounts as
/// `"10.00"`, currencies upper case, defaults filled in): `10`, `10.0` and
/// `"10.00"` are the same request; spacing and key order never matter.
pub fn fingerprint(canonical: &serde_json::Value) -> String {
    // serde_json's default map is ordered by key, so this text is canonical.
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// A response as first sent, replayed for every retry of the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub pk: String,
    pub sk: String,
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub created_at: Timestamp,
    pub ttl: i64,
}

impl IdempotencyRecord {
    pub fn new(
        scope: &Scope,
        fingerprint: String,
        response: StoredResponse,
        now: Timestamp,
    ) -> IdempotencyRecord {
        let key = scope.storage_key();
        IdempotencyRecord {
            pk: key.pk,
            sk: key.sk,
            fingerprint,
            status: response.status,
            body: response.body,
            created_at: now,
            ttl: now.unix_seconds() + RETENTION_SECONDS,
        }
    }

    /// Reads a record from an item, ignoring one whose TTL has passed but that
    /// DynamoDB has not deleted yet.
    pub fn from_live_item(
        item: Item,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, AppError> {
        let record: IdempotencyRecord = from_item(item)?;
        Ok((record.ttl > now.unix_seconds()).then_some(record))
    }

    /// The first response again, if this is the same request; else 422.
    pub fn replay(&self, fingerprint: &str) -> Result<StoredResponse, AppError> {
        if self.fingerprint != fingerprint {
            return Err(AppError::new(
                ErrorCode::IdempotencyKeyReused,
                "This Idempotency-Key was already used with a different request body.",
            ));
        }
        Ok(StoredResponse {
            status: self.status,
            body: self.body.clone(),
        })
    }
}

/// Condition for writing a record: none exists, or only an expired one.
const FREE_CONDITION: &str = "attribute_not_exists(pk) OR #ttl < :now";

impl Store {
    /// The transaction item that stores `record` unless the key is taken.
    pub(crate) fn idempotency_put(
        &self,
        record: &IdempotencyRecord,
        now: Timestamp,
    ) -> Result<TransactWriteItem, AppError> {
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(self.table())
            .set_item(Some(to_item(record)?))
            .condition_expression(FREE_CONDITION)
            .expression_attribute_names("#ttl", keys::TTL)
            .set_expression_attribute_values(Some(values([(":now", n(now.unix_seconds()))])))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// After a transaction refused because `scope`'s key was taken
    /// meanwhile: the stored answer, replayed for this `fingerprint`, or
    /// `None` when that record has expired since (decide again).
    pub async fn replay_taken_key(
        &self,
        scope: &Scope,
        fingerprint: &str,
    ) -> Result<Option<StoredResponse>, AppError> {
        match self.idempotency_record(scope, Timestamp::now()).await? {
            Some(record) => record.replay(fingerprint).map(Some),
            None => Ok(None),
        }
    }

    /// The live record of `scope`, read consistently.
    pub async fn idempotency_record(
        &self,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key_item(&scope.storage_key())))
            .consistent_read(true)
            .send()
            .await
            .map_err(super::retry::aws_error)?;
        match output.item {
            Some(item) => IdempotencyRecord::from_live_item(item, now),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Id;
    use serde_json::json;

    fn scope(key: &str) -> Scope {
        Scope {
            route: "POST /spend/purchases",
            owner: IdempotencyOwner::ApiKey(Id::new(1).unwrap()),
            key: key.into(),
        }
    }

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert!(valid_key("a"));
        assert!(valid_key(&"k".repeat(255)));
        for bad in ["", " ", "with space", "tab\t", "é", &"k".repeat(256)] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn scope_separates_route_principal_and_key() {
        let base = scope("abc").storage_key();
        let mut other_principal = scope("abc");
        other_principal.owner = IdempotencyOwner::ApiKey(Id::new(2).unwrap());
        // User 1 and API key 1 are different owners.
        let mut user = scope("abc");
        user.owner = IdempotencyOwner::User(Id::new(1).unwrap());
        assert_ne!(base, user.storage_key());
        let mut other_route = scope("abc");
        other_route.route = "POST /transactions";
        assert_ne!(base, scope("abd").storage_key());
        assert_ne!(base, other_principal.storage_key());
        assert_ne!(base, other_route.storage_key());
        assert_eq!(base, scope("abc").storage_key());
    }

    #[test]
    fn fingerprint_ignores_spacing_and_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1, "b":"x"}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{ "b" : "x", "a" : 1 }"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&json!({"a": 2, "b": "x"})));
    }

    #[test]
    fn replays_only_the_same_request() {
        let now = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let response = StoredResponse {
            status: 201,
            body: r#"{"id":1}"#.into(),
        };
        let record = IdempotencyRecord::new(&scope("k"), "f1".into(), response.clone(), now);
        assert_eq!(record.replay("f1").unwrap(), response);
        let reused = record.replay("f2").unwrap_err();
        assert_eq!(reused.code, ErrorCode::IdempotencyKeyReused);
        assert_eq!(reused.status(), 422);
        assert!(record.ttl - now.unix_seconds() >= 24 * 3600);
    }

    #[test]
    fn expired_records_are_ignored() {
        let now = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let record = IdempotencyRecord::new(
            &scope("k"),
            "f".into(),
            StoredResponse {
                status: 201,
                body: "{}".into(),
            },
            now,
        );
        let item = to_item(&record).unwrap();
        assert!(IdempotencyRecord::from_live_item(item.clone(), now)
            .unwrap()
            .is_some());
        let later = now.plus_seconds(RETENTION_SECONDS);
        assert!(IdempotencyRecord::from_live_item(item, later)
            .unwrap()
            .is_none());
    }
}
