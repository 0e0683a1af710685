//! The single table's key layout, in one place.
//!
//! | item                | pk                                  | sk              |
//! |---------------------|-------------------------------------|-----------------|
//! | id counter          | `COUNTER#{kind}`                    | `COUNTER`       |
//! | user                | `USER#{id}`                         | `USER`          |
//! | unique name guard   | `UNIQUE#{what}#{lower-case value}`  | `GUARD`         |
//! | API key (by hash)   | `APIKEY#{hmac hex}`                 | `APIKEY`        |
//! | API key id pointer  | `APIKEY_ID#{id}`                    | `APIKEY_ID`     |
//! | category / merchant | `CATEGORY#{id}` / `MERCHANT#{id}`   | same word       |
//! | usage allowance     | `ALLOW#{owner}`                     | `MERCHANT#{id}` / `CATEGORY#{id}` |
//! | mandate             | `MANDATE#{id}`                      | `MANDATE`       |
//! | one-ACTIVE guard    | `ACTIVE_MANDATE#{sender}#{beneficiary}#{currency}` | `GUARD` |
//! | purchase            | `PURCHASE#{id}`                     | `PURCHASE`      |
//! | idempotency record  | `IDEMPOTENCY#{sha256 of scope}`     | `IDEMPOTENCY`   |
//! | audit entry         | `AUDIT#{entity}#{id}`               | `{at}#{nn}#{uuid}` |
//!
//! Sparse GSIs (projection ALL): `gsi1` mandates by sender, `gsi2` mandates by
//! beneficiary, `gsi3` all items of a kind (mandates, API keys), each sorted by
//! zero-padded id; `active_by_expiry` holds only ACTIVE mandates, by expiry.

use crate::domain::{ids::Id, mandate::MandateParties, time::Timestamp};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const TTL: &str = "ttl";

pub const GSI_BY_SENDER: Index = Index {
    name: "gsi1",
    pk: "gsi1pk",
    sk: "gsi1sk",
};
pub const GSI_BY_BENEFICIARY: Index = Index {
    name: "gsi2",
    pk: "gsi2pk",
    sk: "gsi2sk",
};
pub const GSI_BY_KIND: Index = Index {
    name: "gsi3",
    pk: "gsi3pk",
    sk: "gsi3sk",
};
pub const GSI_ACTIVE_BY_EXPIRY: Index = Index {
    name: "active_by_expiry",
    pk: "expiry_pk",
    sk: "expiry_sk",
};
pub const INDEXES: [Index; 4] = [
    GSI_BY_SENDER,
    GSI_BY_BENEFICIARY,
    GSI_BY_KIND,
    GSI_ACTIVE_BY_EXPIRY,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub pk: &'static str,
    pub sk: &'static str,
}

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    fn new(pk: String, sk: &str) -> Key {
        Key {
            pk,
            sk: sk.to_string(),
        }
    }
}

pub fn counter(kind: &str) -> Key {
    Key::new(format!("COUNTER#{kind}"), "COUNTER")
}

pub fn user(id: Id) -> Key {
    Key::new(format!("USER#{id}"), "USER")
}

/// Guards a unique value (`what` = USERNAME, EMAIL, CATEGORY_CODE, MERCHANT_NAME);
/// `normalised` is already case-folded.
pub fn unique(what: &str, normalised: &str) -> Key {
    Key::new(format!("UNIQUE#{what}#{normalised}"), "GUARD")
}

pub fn api_key(hash_hex: &str) -> Key {
    Key::new(format!("APIKEY#{hash_hex}"), "APIKEY")
}

pub fn api_key_id(id: Id) -> Key {
    Key::new(format!("APIKEY_ID#{id}"), "APIKEY_ID")
}

pub fn category(id: Id) -> Key {
    Key::new(format!("CATEGORY#{id}"), "CATEGORY")
}

pub fn merchant(id: Id) -> Key {
    Key::new(format!("MERCHANT#{id}"), "MERCHANT")
}

pub fn merchant_allowance(owner: Id, merchant: Id) -> Key {
    Key::new(format!("ALLOW#{owner}"), &format!("MERCHANT#{merchant}"))
}

pub fn category_allowance(owner: Id, category: Id) -> Key {
    Key::new(format!("ALLOW#{owner}"), &format!("CATEGORY#{category}"))
}

pub fn mandate(id: Id) -> Key {
    Key::new(format!("MANDATE#{id}"), "MANDATE")
}

pub fn active_mandate(parties: &MandateParties) -> Key {
    Key::new(
        format!(
            "ACTIVE_MANDATE#{}#{}#{}",
            parties.sender_id, parties.beneficiary_id, parties.currency
        ),
        "GUARD",
    )
}

pub fn purchase(id: Id) -> Key {
    Key::new(format!("PURCHASE#{id}"), "PURCHASE")
}

pub fn idempotency(scope_hash_hex: &str) -> Key {
    Key::new(format!("IDEMPOTENCY#{scope_hash_hex}"), "IDEMPOTENCY")
}

pub fn audit(entity: &str, entity_id: Id, at: Timestamp, unique: &str) -> Key {
    Key::new(
        format!("AUDIT#{entity}#{entity_id}"),
        &format!("{at}#{unique}"),
    )
}

/// The partition holding one entity's audit entries, oldest first.
pub fn audit_partition(entity: &str, entity_id: Id) -> String {
    format!("AUDIT#{entity}#{entity_id}")
}

/// Sort key of list indexes: zero-padded so that text order is id order.
pub fn id_sort_key(id: Id) -> String {
    format!("{:020}", id.get())
}

pub fn sender_partition(sender: Id) -> String {
    format!("SENDER#{sender}")
}

pub fn beneficiary_partition(beneficiary: Id) -> String {
    format!("BENEFICIARY#{beneficiary}")
}

pub const KIND_MANDATE: &str = "MANDATE";
pub const KIND_API_KEY: &str = "APIKEY";
pub const ACTIVE_MANDATES: &str = "ACTIVE_MANDATE";

/// Sort key in `active_by_expiry`: the canonical timestamp is fixed-width, so
/// text order is time order and `<= now` finds every overdue mandate.
pub fn expiry_sort_key(expires_at: Timestamp, id: Id) -> String {
    format!("{expires_at}#{}", id_sort_key(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_sort_keys_order_like_ids() {
        let ids = [1u64, 9, 10, 11, 99, 100, 12345678901];
        let keys: Vec<String> = ids
            .iter()
            .map(|&n| id_sort_key(Id::new(n).unwrap()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn expiry_keys_order_by_time_then_id() {
        let early = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let late = Timestamp::parse("2030-01-01T00:00:00.000001Z").unwrap();
        let big = Id::new(1000).unwrap();
        let small = Id::new(2).unwrap();
        assert!(expiry_sort_key(early, big) < expiry_sort_key(late, small));
        assert!(expiry_sort_key(early, small) < expiry_sort_key(early, big));
        // Everything that expires at `now` sorts at or before `now#~`.
        assert!(expiry_sort_key(early, big) <= format!("{early}#~"));
    }

    #[test]
    fn every_index_has_distinct_names() {
        for (i, a) in INDEXES.iter().enumerate() {
            for b in &INDEXES[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.pk, b.pk);
                assert_ne!(a.sk, b.sk);
            }
        }
    }
}
