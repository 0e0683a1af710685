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
//! | escrow              | `ESCROW#{id}`                       | `ESCROW`        |
//! | its milestones      | `ESCROW#{id}`                       | `MILESTONE#{idx:03}` |
//! | its timeline        | `ESCROW_EVENTS#{id}`                | `{at}#{nn}#{uuid}` |
//! | deadline-missed guard | `DEADLINE_MISSED#{escrow}`        | `GUARD`         |
//! | payment             | `PAYMENT#{id}`                      | `PAYMENT`       |
//! | PSP reference       | `PSP_REF#{psp_ref}`                 | `PSP_REF`       |
//! | PSP webhook event   | `PSP_EVENT#{sha256 hex of event id}` | `PSP_EVENT`    |
//! | alert               | `ALERT#{type}#{sha256 hex of cause}` | `ALERT`        |
//! | allowlist entry     | `ALLOWLIST#{owner}`                 | `RECIPIENT#{id}` |
//! | certification       | `CERTIFIED#{user}`                  | `CERTIFIED`     |
//! | transaction         | `TRANSACTION#{id}`                  | `TRANSACTION`   |
//! | usage payee         | `PAYEE#{escrow}#{payee ref}`        | `PAYEE`         |
//! | proof upload (TTL 1 day) | `UPLOAD#{upload_id}`            | `UPLOAD`        |
//! | proof               | `PROOF#{id}`                        | `PROOF`         |
//! | proof file guard    | `PROOF_HASH#{sha256 hex}`           | `GUARD`         |
//!
//! Escrows reuse the list indexes: `gsi1` by client (`CLIENT#{id}`), `gsi2`
//! by provider (`PROVIDER#{id}`), `gsi3` by kind (`ESCROW#{shard}`); payments
//! are in `gsi1` by escrow (`ESCROW_PAYMENTS#{id}`) and `gsi3` by kind, and
//! so are proofs (`ESCROW_PROOFS#{id}`, `PROOF#{shard}`). The
//! payees are in `gsi1` by escrow (`ESCROW_PAYEES#{id}`). A SETTLED
//! payment is also in `gsi2` by the day it settled
//! (`SETTLED_ON#{yyyy-mm-dd}#{shard}`, sorted by `{settled_at}#{id}`): what
//! a settlement report of a period reads. The
//! transactions (restricted transfers) are in `gsi1` by sender
//! (`TRANSFER_SENDER#{id}`), `gsi2` by receiver (`TRANSFER_RECEIVER#{id}`,
//! stored as `beneficiary_id` for the index filter) and `gsi3` by kind. The
//! sparse `active_by_expiry` index also holds, by deadline, the escrows the
//! deadline sweep can act on (`domain::escrow::deadline_duty`): RELEASABLE
//! ones (`RELEASABLE_ESCROW#{shard}`) and FUNDED ones not yet alerted
//! (`OPEN_ESCROW#{shard}`). An escrow also stores its
//! client and provider as `sender_id` / `beneficiary_id`, the party
//! attributes the list indexes project, so that a list filtered on both
//! parties can filter in the index.
//!
//! Sparse GSIs: `gsi1` mandates by sender, `gsi2` mandates by beneficiary,
//! `gsi3` all items of a kind (mandates, API keys), each sorted by zero-padded
//! id; `active_by_expiry` holds only ACTIVE mandates, by expiry. Alerts reuse
//! `gsi3` (all alerts, `ALERTS#{shard}`) and `gsi1` (by type,
//! `ALERTS#{type}#{shard}`) with the sort key `{created_at}#{zero-padded id}`,
//! newest first; those partitions hold nothing else, so the two sort key
//! shapes never meet in one Query. An alert is also in `gsi2` under
//! `ALERT_ID#{id}` (how `POST /alerts/{id}/ack` finds it). PSP events are in
//! `gsi3` under `PSP_EVENT#{shard}`, sorted by `{received_at}#{hash}`.
//!
//! No write puts items under one system-wide partition: `gsi3` and
//! `active_by_expiry` partitions carry a shard, `{kind}#{id % shards}`, and
//! readers query every shard and merge. The shard count (`KOBATELA_INDEX_SHARDS`,
//! default 8) must stay the same for stored data: changing it needs a backfill
//! that rewrites `gsi3pk`/`expiry_pk` of every mandate and API key.
//!
//! Projections hold only keys and attributes that rarely change (status and
//! the parties, used by list filters): a purchase's balance update then writes
//! no index entry. Lists read the page's items from the table afterwards.

use crate::domain::{escrow::DeadlineDuty, ids::Id, mandate::MandateParties, time::Timestamp};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const TTL: &str = "ttl";

/// Non-key attributes the list indexes carry: the list filters' attributes,
/// which a purchase never writes.
pub const LIST_PROJECTION: Projected =
    Projected::Include(&["status", "sender_id", "beneficiary_id"]);

pub const GSI_BY_SENDER: Index = Index {
    name: "gsi1",
    pk: "gsi1pk",
    sk: "gsi1sk",
    projection: LIST_PROJECTION,
};
pub const GSI_BY_BENEFICIARY: Index = Index {
    name: "gsi2",
    pk: "gsi2pk",
    sk: "gsi2sk",
    projection: LIST_PROJECTION,
};
pub const GSI_BY_KIND: Index = Index {
    name: "gsi3",
    pk: "gsi3pk",
    sk: "gsi3sk",
    projection: LIST_PROJECTION,
};
pub const GSI_ACTIVE_BY_EXPIRY: Index = Index {
    name: "active_by_expiry",
    pk: "expiry_pk",
    sk: "expiry_sk",
    projection: Projected::KeysOnly,
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
    pub projection: Projected,
}

/// What an index copies from the table besides the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projected {
    KeysOnly,
    Include(&'static [&'static str]),
}

impl Index {
    /// Whether writing `attribute` on an item in this index rewrites its entry.
    pub fn projects(&self, attribute: &str) -> bool {
        attribute == self.pk
            || attribute == self.sk
            || attribute == PK
            || attribute == SK
            || matches!(self.projection, Projected::Include(names) if names.contains(&attribute))
    }
}

/// Default number of shards of the kind and expiry indexes.
pub const DEFAULT_INDEX_SHARDS: u64 = 8;

/// The shard count, from `KOBATELA_INDEX_SHARDS` (1–64) or the default; read
/// once. See the module comment: changing it needs a backfill.
pub fn index_shards() -> u64 {
    static SHARDS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SHARDS.get_or_init(|| {
        crate::config::index_shards(std::env::var("KOBATELA_INDEX_SHARDS").ok().as_deref())
    })
}

/// The shard of `id` among `shards`.
pub fn shard_of(id: Id, shards: u64) -> u64 {
    id.get() % shards
}

/// `{kind}#{shard}`: the sharded partition of `id` in a kind/expiry index.
pub fn sharded_partition(kind: &str, id: Id) -> String {
    format!("{kind}#{}", shard_of(id, index_shards()))
}

/// Every partition of a sharded kind, for readers.
pub fn all_shards(kind: &str) -> Vec<String> {
    (0..index_shards()).map(|i| format!("{kind}#{i}")).collect()
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

/// Never updated or deleted once created: purchases remember merchants
/// (`store::purchases::PurchaseMemory`).
pub fn merchant(id: Id) -> Key {
    Key::new(format!("MERCHANT#{id}"), "MERCHANT")
}

/// Grants (this and [`category_allowance`]) are only ever added: purchases
/// remember those they found (`store::purchases::PurchaseMemory`).
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

/// The alert raised by one cause: the key is derived from the cause, so the
/// alert's conditional Put fails if that cause already raised it.
pub fn alert(alert_type: &str, cause_sha256_hex: &str) -> Key {
    Key::new(format!("ALERT#{alert_type}#{cause_sha256_hex}"), "ALERT")
}

/// `gsi3` partition of every alert (sharded by alert id).
pub const ALERTS: &str = "ALERTS";

/// `gsi1` partition kind of the alerts of one type (sharded by alert id).
pub fn alerts_of_type(alert_type: &str) -> String {
    format!("{ALERTS}#{alert_type}")
}

/// An alert's id entry in `gsi2`: how `POST /alerts/{id}/ack` finds it.
pub fn alert_by_id(id: Id) -> String {
    format!("ALERT_ID#{id}")
}

/// Sort key of alerts in both indexes: fixed-width time, then id.
pub fn alert_sort_key(created_at: Timestamp, id: Id) -> String {
    format!("{created_at}#{}", id_sort_key(id))
}

/// A SETTLED payment's entry in `gsi2`: the day (UTC) it settled, sharded,
/// so that a settlement report reads the payments of its period only.
pub fn settled_on_partition(at: Timestamp, id: Id) -> String {
    sharded_partition(&settled_on_kind(at), id)
}

/// Every `gsi2` partition of the payments settled from `from` to `to`: each
/// day of the period, each shard.
pub fn settled_on_partitions(from: Timestamp, to: Timestamp) -> Vec<String> {
    let mut partitions = Vec::new();
    let mut day = from;
    while settled_on_kind(day) <= settled_on_kind(to) {
        partitions.extend(all_shards(&settled_on_kind(day)));
        day = day.plus_seconds(24 * 3600);
    }
    partitions
}

/// A SETTLED payment's `gsi2` sort key: when it settled, then its id.
pub fn settled_on_sort_key(at: Timestamp, id: Id) -> String {
    format!("{at}#{}", id_sort_key(id))
}

fn settled_on_kind(at: Timestamp) -> String {
    // The canonical form starts with the date: `2026-12-07T…`.
    format!("SETTLED_ON#{}", &at.to_string()[..10])
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

pub fn escrow(id: Id) -> Key {
    Key::new(escrow_partition(id), "ESCROW")
}

/// The partition of an escrow and its milestones.
pub fn escrow_partition(id: Id) -> String {
    format!("ESCROW#{id}")
}

pub fn milestone(escrow: Id, idx: u32) -> Key {
    Key::new(escrow_partition(escrow), &format!("MILESTONE#{idx:03}"))
}

/// The partition of an escrow's timeline, oldest first.
pub fn escrow_events_partition(escrow: Id) -> String {
    format!("ESCROW_EVENTS#{escrow}")
}

pub fn escrow_event(escrow: Id, at: Timestamp, unique: &str) -> Key {
    Key::new(escrow_events_partition(escrow), &format!("{at}#{unique}"))
}

/// Guards the one `ESCROW_DEADLINE_MISSED` alert of an escrow.
pub fn deadline_missed(escrow: Id) -> Key {
    Key::new(format!("DEADLINE_MISSED#{escrow}"), "GUARD")
}

pub fn payment(id: Id) -> Key {
    Key::new(format!("PAYMENT#{id}"), "PAYMENT")
}

/// Points from the reference the PSP echoes to its payment.
pub fn psp_ref(psp_ref: &str) -> Key {
    Key::new(format!("PSP_REF#{psp_ref}"), "PSP_REF")
}

/// One PSP webhook event, by the SHA-256 of its id (a PSP's id may be any
/// text: the key stays short and of one shape).
pub fn psp_event(event_id: &str) -> Key {
    use sha2::{Digest, Sha256};
    Key::new(
        format!(
            "PSP_EVENT#{}",
            hex::encode(Sha256::digest(event_id.as_bytes()))
        ),
        "PSP_EVENT",
    )
}

/// An upload prepared by `POST /proofs/uploads` (expires by TTL).
pub fn upload(upload_id: &str) -> Key {
    Key::new(format!("UPLOAD#{upload_id}"), "UPLOAD")
}

pub fn proof(id: Id) -> Key {
    Key::new(format!("PROOF#{id}"), "PROOF")
}

/// Guards a file's SHA-256: one proof per file, ever.
pub fn proof_hash(sha256_hex: &str) -> Key {
    Key::new(format!("PROOF_HASH#{sha256_hex}"), "GUARD")
}

pub fn client_partition(client: Id) -> String {
    format!("CLIENT#{client}")
}

pub fn provider_partition(provider: Id) -> String {
    format!("PROVIDER#{provider}")
}

pub fn escrow_payments_partition(escrow: Id) -> String {
    format!("ESCROW_PAYMENTS#{escrow}")
}

pub fn escrow_proofs_partition(escrow: Id) -> String {
    format!("ESCROW_PROOFS#{escrow}")
}

/// The sender's allowlist entry for one recipient (`POST /allowlist`).
pub fn allowlisted(owner: Id, recipient: Id) -> Key {
    Key::new(
        format!("ALLOWLIST#{owner}"),
        &format!("RECIPIENT#{recipient}"),
    )
}

/// A user's certification (`POST /certified`), any level.
pub fn certification(user: Id) -> Key {
    Key::new(format!("CERTIFIED#{user}"), "CERTIFIED")
}

pub fn transaction(id: Id) -> Key {
    Key::new(format!("TRANSACTION#{id}"), "TRANSACTION")
}

pub fn transfer_sender_partition(sender: Id) -> String {
    format!("TRANSFER_SENDER#{sender}")
}

pub fn transfer_receiver_partition(receiver: Id) -> String {
    format!("TRANSFER_RECEIVER#{receiver}")
}

/// A usage payee of an escrow, by its reference (`POST /spend`).
pub fn payee(escrow: Id, payee_ref: &str) -> Key {
    Key::new(format!("PAYEE#{escrow}#{payee_ref}"), "PAYEE")
}

pub fn escrow_payees_partition(escrow: Id) -> String {
    format!("ESCROW_PAYEES#{escrow}")
}

pub const KIND_TRANSACTION: &str = "TRANSACTION";
pub const KIND_ESCROW: &str = "ESCROW";
pub const KIND_PAYMENT: &str = "PAYMENT";
pub const KIND_PROOF: &str = "PROOF";
pub const KIND_PSP_EVENT: &str = "PSP_EVENT";
/// FUNDED escrows not yet alerted, by deadline, in `active_by_expiry`.
/// (Entries written before the index held only what a sweep can act on
/// are here too, for every open status: the sweep cleans them.)
pub const OPEN_ESCROWS: &str = "OPEN_ESCROW";
/// RELEASABLE escrows by deadline, in `active_by_expiry`: a partition of
/// their own, which the sweep reads first, so money due to a provider is
/// never queued behind alerts or stale entries.
pub const RELEASABLE_ESCROWS: &str = "RELEASABLE_ESCROW";

/// The deadline index partition kind of an escrow with `duty`.
pub fn deadline_kind(duty: DeadlineDuty) -> &'static str {
    match duty {
        DeadlineDuty::Release => RELEASABLE_ESCROWS,
        DeadlineDuty::Alert => OPEN_ESCROWS,
    }
}
/// PENDING payments by when they became PENDING, in `active_by_expiry`: the
/// stuck-payout sweep's (`deadlines.rs`). Leaving PENDING removes the entry.
pub const PENDING_PAYMENTS: &str = "PENDING_PAYMENT";
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
    fn a_period_reads_each_day_it_touches_once_in_every_shard() {
        let at = |t: &str| Timestamp::parse(t).unwrap();
        let shards = index_shards() as usize;
        let id = Id::new(42).unwrap();
        let late = at("2026-12-06T23:59:59.999999Z");
        assert_eq!(
            settled_on_partition(late, id),
            format!("SETTLED_ON#2026-12-06#{}", 42 % index_shards())
        );
        assert_eq!(
            settled_on_sort_key(late, id),
            "2026-12-06T23:59:59.999999Z#00000000000000000042"
        );
        let day = |from: &str, to: &str| settled_on_partitions(at(from), at(to));
        let one = day("2026-12-06T00:00:00Z", "2026-12-06T23:59:59Z");
        assert_eq!(one.len(), shards);
        assert!(one.contains(&settled_on_partition(late, id)));
        // 23:00 to 01:00 two days later: three days, not two.
        let three = day("2026-12-06T23:00:00Z", "2026-12-08T01:00:00Z");
        assert_eq!(three.len(), 3 * shards);
        assert_eq!(three[0], "SETTLED_ON#2026-12-06#0");
        assert_eq!(
            three[3 * shards - 1],
            format!("SETTLED_ON#2026-12-08#{}", shards - 1)
        );
        assert!(day("2026-12-07T00:00:00Z", "2026-12-06T00:00:00Z").is_empty());
    }

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
    fn alert_sort_keys_order_by_time_then_id() {
        let early = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let late = Timestamp::parse("2030-01-01T00:00:01Z").unwrap();
        let big = Id::new(1000).unwrap();
        let small = Id::new(2).unwrap();
        assert!(alert_sort_key(early, big) < alert_sort_key(late, small));
        assert!(alert_sort_key(early, small) < alert_sort_key(early, big));
        // Alert partitions cannot meet the kind partitions of gsi3.
        for kind in [KIND_MANDATE, KIND_API_KEY] {
            assert!(!sharded_partition(kind, big).starts_with(ALERTS));
        }
    }

    #[test]
    fn shards_cover_every_id_once() {
        let id = Id::new(8 * 3 + 5).unwrap();
        assert_eq!(shard_of(id, 8), 5);
        assert_eq!(shard_of(Id::new(8).unwrap(), 8), 0);
        let all = all_shards(KIND_MANDATE);
        assert_eq!(all.len() as u64, index_shards());
        for n in 1..100 {
            let p = sharded_partition(KIND_MANDATE, Id::new(n).unwrap());
            assert_eq!(all.iter().filter(|s| **s == p).count(), 1);
        }
    }

    #[test]
    fn balance_writes_touch_no_index() {
        for index in INDEXES {
            for attribute in [
                "balance_cents",
                "spent_cents",
                "updated_at",
                // An escrow's balances, moved by deposits and payments.
                "funded_cents",
                "available_cents",
                "paid_cents",
                "refunded_cents",
            ] {
                assert!(!index.projects(attribute), "{} {attribute}", index.name);
            }
            assert!(index.projects(index.pk));
        }
        assert!(GSI_BY_KIND.projects("status"));
        assert!(!GSI_ACTIVE_BY_EXPIRY.projects("status"));
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
