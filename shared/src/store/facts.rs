//! Business facts read off the table's stream: from one change of one item
//! (the stream's event name, its old and new image) to the domain events it
//! means, each with a stable id (issue 14, domain events out).
//!
//! Invariants:
//! - Pure: no I/O, no clock. The same change always gives the same facts,
//!   with the same ids, so a redelivered stream record publishes events a
//!   subscriber recognises and drops.
//! - A fact is a status reached (old status ≠ new status; an INSERT has no
//!   old status) or the insert of a fact item (purchase, transfer, proof,
//!   the deadline-missed guard). A change that keeps the status (a balance
//!   move, a retry counter, a re-put of the same item) and a REMOVE (TTL
//!   expiry, guard release) mean nothing.
//! - Only the item kinds listed in [`FACT_ITEMS`] produce facts: audit
//!   entries, timelines, idempotency records, guards, counters, indexes'
//!   pointers never do.
//! - Money leaves as the two-place decimal string of its stored integer
//!   cents (`Money`), ids as decimal strings: never through f64.
//! - Statuses are read as text, so a status this build does not know yet
//!   (payments' PENDING, during a rollout) is still compared, never refused.
//!
//! Event id: the SHA-256 of the item's key, its old and new status, its
//! version marker (`updated_at`, else `created_at`, else nothing: the
//! deadline guard is inserted once per escrow, ever) and the fact type,
//! 32 hex digits. It depends only on the item's content, not on the stream
//! record's `eventID` or sequence number, so it is the same however often
//! and through whatever path (a replay from another stream reader, a backfill
//! from a table export) the change is delivered. Two distinct changes of one
//! item to one status differ in `updated_at` (every status write sets it).

use crate::domain::{money::Money, time::Timestamp};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// The envelope's `version`: bumped only by an incompatible change of `data`.
pub const SCHEMA_VERSION: u32 = 1;

/// Every business fact published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FactType {
    EscrowFunded,
    EscrowReleased,
    EscrowRefunded,
    EscrowDeadlineMissed,
    MilestonePaid,
    ProofSubmitted,
    ProofApproved,
    ProofRejected,
    PaymentPending,
    PaymentSent,
    PaymentSettled,
    PaymentFailed,
    MandateCreated,
    MandateConsumed,
    MandateExpired,
    PurchaseCompleted,
    TransferCreated,
}

impl FactType {
    pub const ALL: [FactType; 17] = [
        FactType::EscrowFunded,
        FactType::EscrowReleased,
        FactType::EscrowRefunded,
        FactType::EscrowDeadlineMissed,
        FactType::MilestonePaid,
        FactType::ProofSubmitted,
        FactType::ProofApproved,
        FactType::ProofRejected,
        FactType::PaymentPending,
        FactType::PaymentSent,
        FactType::PaymentSettled,
        FactType::PaymentFailed,
        FactType::MandateCreated,
        FactType::MandateConsumed,
        FactType::MandateExpired,
        FactType::PurchaseCompleted,
        FactType::TransferCreated,
    ];

    /// The wire name: the event's `type` and EventBridge `DetailType`.
    pub fn as_str(self) -> &'static str {
        match self {
            FactType::EscrowFunded => "escrow.funded",
            FactType::EscrowReleased => "escrow.released",
            FactType::EscrowRefunded => "escrow.refunded",
            FactType::EscrowDeadlineMissed => "escrow.deadline_missed",
            FactType::MilestonePaid => "milestone.paid",
            FactType::ProofSubmitted => "proof.submitted",
            FactType::ProofApproved => "proof.approved",
            FactType::ProofRejected => "proof.rejected",
            FactType::PaymentPending => "payment.pending",
            FactType::PaymentSent => "payment.sent",
            FactType::PaymentSettled => "payment.settled",
            FactType::PaymentFailed => "payment.failed",
            FactType::MandateCreated => "mandate.created",
            FactType::MandateConsumed => "mandate.consumed",
            FactType::MandateExpired => "mandate.expired",
            FactType::PurchaseCompleted => "purchase.completed",
            FactType::TransferCreated => "transfer.created",
        }
    }

    pub fn parse(text: &str) -> Option<FactType> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl fmt::Display for FactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of item that can produce facts, as `(pk prefix, sk or sk
/// prefix)`: the stream's filter in `template.yaml` lists the same.
pub const FACT_ITEMS: [(&str, &str); 8] = [
    ("ESCROW#", "ESCROW"),
    ("ESCROW#", "MILESTONE#"),
    ("DEADLINE_MISSED#", "GUARD"),
    ("PAYMENT#", "PAYMENT"),
    ("PROOF#", "PROOF"),
    ("MANDATE#", "MANDATE"),
    ("PURCHASE#", "PURCHASE"),
    ("TRANSACTION#", "TRANSACTION"),
];

/// One business fact, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Stable across deliveries of the same change (see the module header).
    pub id: String,
    pub fact_type: FactType,
    pub occurred_at: Timestamp,
    pub data: Map<String, Value>,
}

impl Fact {
    /// The published event: `{id, type, version, occurred_at, data}`.
    pub fn envelope(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.fact_type.as_str(),
            "version": SCHEMA_VERSION,
            "occurred_at": self.occurred_at,
            "data": self.data,
        })
    }
}

/// A fact item whose image lacks what its facts need: a stored item this
/// code does not understand, reported rather than skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactError(pub String);

impl fmt::Display for FactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FactError {}

/// The stream's event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

impl ChangeKind {
    pub fn parse(event_name: &str) -> Option<ChangeKind> {
        match event_name {
            "INSERT" => Some(ChangeKind::Insert),
            "MODIFY" => Some(ChangeKind::Modify),
            "REMOVE" => Some(ChangeKind::Remove),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    Escrow,
    Milestone,
    DeadlineMissed,
    Payment,
    Proof,
    Mandate,
    Purchase,
    Transfer,
}

fn item_kind(pk: &str, sk: &str) -> Option<ItemKind> {
    let kinds = [
        ItemKind::Escrow,
        ItemKind::Milestone,
        ItemKind::DeadlineMissed,
        ItemKind::Payment,
        ItemKind::Proof,
        ItemKind::Mandate,
        ItemKind::Purchase,
        ItemKind::Transfer,
    ];
    FACT_ITEMS
        .iter()
        .zip(kinds)
        .find(|((pk_prefix, sk_shape), _)| {
            pk.starts_with(pk_prefix)
                && if sk_shape.ends_with('#') {
                    sk.starts_with(sk_shape)
                } else {
                    sk == *sk_shape
                }
        })
        .map(|(_, kind)| kind)
}

/// The facts of one change. `event_name` is the stream's (`INSERT`,
/// `MODIFY`, `REMOVE`); an absent image is `Value::Null` or an empty object.
/// `recorded_at` (the stream record's creation time) is the fact's time only
/// for an item that carries none of its own; it never enters the id.
pub fn facts_of(
    event_name: &str,
    old: &Value,
    new: &Value,
    recorded_at: Timestamp,
) -> Result<Vec<Fact>, FactError> {
    let Some(change) = ChangeKind::parse(event_name) else {
        return Err(FactError(format!("unknown stream event {event_name:?}")));
    };
    if change == ChangeKind::Remove {
        return Ok(Vec::new());
    }
    let (Some(pk), Some(sk)) = (text(new, "pk"), text(new, "sk")) else {
        return Ok(Vec::new());
    };
    let Some(kind) = item_kind(pk, sk) else {
        return Ok(Vec::new());
    };
    let inserted = change == ChangeKind::Insert;
    let was = if inserted { None } else { text(old, "status") };
    let now = text(new, "status");
    // The status reached by this change, if it changed.
    let reached = now.filter(|s| Some(*s) != was);
    let types: Vec<FactType> = match kind {
        ItemKind::Escrow => match reached {
            Some("FUNDED") => vec![FactType::EscrowFunded],
            Some("RELEASED") => vec![FactType::EscrowReleased],
            Some("REFUNDED") => vec![FactType::EscrowRefunded],
            _ => vec![],
        },
        ItemKind::Milestone => match reached {
            Some("PAID") => vec![FactType::MilestonePaid],
            _ => vec![],
        },
        ItemKind::DeadlineMissed if inserted => vec![FactType::EscrowDeadlineMissed],
        ItemKind::DeadlineMissed => vec![],
        ItemKind::Payment => {
            let mut types = Vec::new();
            if inserted {
                types.push(FactType::PaymentPending);
            }
            match reached {
                Some("SENT") => types.push(FactType::PaymentSent),
                Some("SETTLED") => types.push(FactType::PaymentSettled),
                Some("ERROR") => types.push(FactType::PaymentFailed),
                _ => {}
            }
            types
        }
        ItemKind::Proof => {
            let mut types = Vec::new();
            if inserted {
                types.push(FactType::ProofSubmitted);
            }
            match reached {
                Some("APPROVED") => types.push(FactType::ProofApproved),
                Some("REJECTED") => types.push(FactType::ProofRejected),
                _ => {}
            }
            types
        }
        ItemKind::Mandate => {
            let mut types = Vec::new();
            if inserted {
                types.push(FactType::MandateCreated);
            }
            match reached {
                Some("CONSUMED") => types.push(FactType::MandateConsumed),
                Some("EXPIRED") => types.push(FactType::MandateExpired),
                _ => {}
            }
            types
        }
        ItemKind::Purchase if inserted => vec![FactType::PurchaseCompleted],
        ItemKind::Transfer if inserted => vec![FactType::TransferCreated],
        ItemKind::Purchase | ItemKind::Transfer => vec![],
    };
    if types.is_empty() {
        return Ok(Vec::new());
    }
    let at = |name: &str| {
        text(new, name)
            .map(|t| Timestamp::parse(t).map_err(|_| bad(pk, name)))
            .transpose()
    };
    // When it happened: the write's own time (a status write sets
    // `updated_at`; a fact item is written once, `created_at`).
    let (marker, occurred_at) = match (at("updated_at")?, at("created_at")?) {
        (Some(updated), _) => (text(new, "updated_at"), updated),
        (None, Some(created)) => (text(new, "created_at"), created),
        (None, None) => (None, recorded_at),
    };
    let data = data_of(kind, pk, new)?;
    Ok(types
        .into_iter()
        .map(|fact_type| Fact {
            id: fact_id(
                pk,
                sk,
                was.unwrap_or(""),
                now.unwrap_or(""),
                marker.unwrap_or(""),
                fact_type,
            ),
            fact_type,
            occurred_at,
            data: data.clone(),
        })
        .collect())
}

/// See the module header.
fn fact_id(pk: &str, sk: &str, was: &str, now: &str, marker: &str, t: FactType) -> String {
    let mut hash = Sha256::new();
    for part in [pk, sk, was, now, marker, t.as_str()] {
        hash.update(part.as_bytes());
        // A separator no key or timestamp holds: parts cannot run together.
        hash.update([0x1f]);
    }
    hex::encode(&hash.finalize()[..16])
}

fn bad(pk: &str, name: &str) -> FactError {
    FactError(format!("{pk}: `{name}` is missing or invalid"))
}

fn text<'a>(image: &'a Value, name: &str) -> Option<&'a str> {
    image.get(name).and_then(Value::as_str)
}

/// The `data` of every fact of one item: what a subscriber needs without
/// reading back (ids, parties, amounts, status).
fn data_of(kind: ItemKind, pk: &str, new: &Value) -> Result<Map<String, Value>, FactError> {
    let mut data = Map::new();
    let mut out = Out {
        pk,
        image: new,
        data: &mut data,
    };
    match kind {
        ItemKind::Escrow => {
            out.id("escrow_id", "id")?;
            out.id("client_id", "client_id")?;
            out.id("provider_id", "provider_id")?;
            out.text("currency", "currency")?;
            out.money("amount_total", "total_cents")?;
            out.money("amount_funded", "funded_cents")?;
            out.money("amount_available", "available_cents")?;
            out.money("amount_paid", "paid_cents")?;
            out.money("amount_refunded", "refunded_cents")?;
            out.text("status", "status")?;
        }
        ItemKind::Milestone => {
            out.id("escrow_id", "escrow_id")?;
            out.id("milestone_id", "id")?;
            out.number("idx", "idx")?;
            out.text("label", "label")?;
            out.money("amount", "amount_cents")?;
            out.text("status", "status")?;
        }
        ItemKind::DeadlineMissed => {
            out.id("escrow_id", "escrow_id")?;
        }
        ItemKind::Payment => {
            out.id("payment_id", "id")?;
            out.id("escrow_id", "escrow_id")?;
            out.optional_id("milestone_id", "milestone_id")?;
            out.text("kind", "kind")?;
            out.optional_id("payee_user_id", "payee_user_id")?;
            out.optional_text("payee_ref", "payee_ref");
            out.money("amount", "amount_cents")?;
            out.text("currency", "currency")?;
            out.text("psp_ref", "psp_ref")?;
            out.text("status", "status")?;
        }
        ItemKind::Proof => {
            out.id("proof_id", "id")?;
            out.id("escrow_id", "escrow_id")?;
            out.id("milestone_id", "milestone_id")?;
            out.number("milestone_idx", "milestone_idx")?;
            out.text("proof_type", "type")?;
            out.text("status", "status")?;
            out.optional_text("review_reason", "review_reason");
        }
        ItemKind::Mandate => {
            out.id("mandate_id", "id")?;
            out.id("sender_id", "sender_id")?;
            out.id("beneficiary_id", "beneficiary_id")?;
            out.text("currency", "currency")?;
            // `total_amount` is the remaining balance, as in the API.
            out.money("total_amount", "balance_cents")?;
            out.money("total_spent", "spent_cents")?;
            out.text("expires_at", "expires_at")?;
            out.text("status", "status")?;
        }
        ItemKind::Purchase => {
            out.id("purchase_id", "id")?;
            out.id("mandate_id", "mandate_id")?;
            out.id("sender_id", "sender_id")?;
            out.id("beneficiary_id", "beneficiary_id")?;
            out.id("merchant_id", "merchant_id")?;
            out.optional_id("category_id", "category_id")?;
            out.money("amount", "amount_cents")?;
            out.text("currency", "currency")?;
        }
        ItemKind::Transfer => {
            out.id("transfer_id", "id")?;
            out.id("sender_id", "sender_id")?;
            // Stored under the party attribute the indexes project.
            out.id("receiver_id", "beneficiary_id")?;
            out.money("amount", "amount_cents")?;
            out.text("currency", "currency")?;
        }
    }
    Ok(data)
}

/// Copies attributes of an image into `data`, converted.
struct Out<'a> {
    pk: &'a str,
    image: &'a Value,
    data: &'a mut Map<String, Value>,
}

impl Out<'_> {
    /// An integer attribute (a stored number, or its text) as its digits.
    fn digits(&self, from: &str) -> Result<Option<String>, FactError> {
        let digits = match self.image.get(from) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad(self.pk, from)),
        };
        if digits.is_empty()
            || !digits
                .trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad(self.pk, from));
        }
        Ok(Some(digits))
    }

    fn id(&mut self, to: &str, from: &str) -> Result<(), FactError> {
        self.optional_id(to, from)?;
        if self.data.contains_key(to) {
            Ok(())
        } else {
            Err(bad(self.pk, from))
        }
    }

    fn optional_id(&mut self, to: &str, from: &str) -> Result<(), FactError> {
        if let Some(digits) = self.digits(from)? {
            if digits.starts_with('-') {
                return Err(bad(self.pk, from));
            }
            self.data.insert(to.into(), Value::String(digits));
        }
        Ok(())
    }

    fn number(&mut self, to: &str, from: &str) -> Result<(), FactError> {
        let n: u32 = self
            .digits(from)?
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| bad(self.pk, from))?;
        self.data.insert(to.into(), Value::from(n));
        Ok(())
    }

    /// Integer cents → the two-place decimal text, through `Money` only.
    fn money(&mut self, to: &str, from: &str) -> Result<(), FactError> {
        let money = self
            .digits(from)?
            .and_then(|d| d.parse::<i64>().ok())
            .and_then(|cents| Money::from_minor_units(cents).ok())
            .ok_or_else(|| bad(self.pk, from))?;
        self.data
            .insert(to.into(), Value::String(money.to_string()));
        Ok(())
    }

    fn text(&mut self, to: &str, from: &str) -> Result<(), FactError> {
        let value = text(self.image, from).ok_or_else(|| bad(self.pk, from))?;
        self.data.insert(to.into(), Value::String(value.into()));
        Ok(())
    }

    fn optional_text(&mut self, to: &str, from: &str) {
        if let Some(value) = text(self.image, from) {
            self.data.insert(to.into(), Value::String(value.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    //! Images mirror the store's records field for field (`EscrowRecord`,
    //! `MilestoneRecord`, `PaymentRecord`, `ProofRecord`, `MandateRecord`,
    //! `PurchaseRecord`, `TransactionRecord`, the deadline guard), as
    //! serde_dynamo writes them; the integration test (`tests/api/outbox.rs`)
    //! runs the real records through the same function.
    use super::*;

    const T0: &str = "2030-01-02T03:04:05.000006Z";
    const T1: &str = "2030-01-02T03:04:06.000007Z";

    fn recorded() -> Timestamp {
        Timestamp::parse("2030-01-02T09:00:00Z").unwrap()
    }

    fn with(mut image: Value, changes: Value) -> Value {
        for (k, v) in changes.as_object().unwrap() {
            image[k] = v.clone();
        }
        image
    }

    fn escrow(status: &str) -> Value {
        json!({
            "pk": "ESCROW#7", "sk": "ESCROW", "id": 7, "client_id": 1, "provider_id": 2,
            "sender_id": 1, "beneficiary_id": 2, "currency": "USD",
            "total_cents": 150000, "funded_cents": 150000, "available_cents": 100000,
            "paid_cents": 50000, "refunded_cents": 0, "status": status,
            "release_conditions": "{}", "deadline_at": "2030-02-01T00:00:00.000000Z",
            "milestone_count": 2, "created_at": T0, "updated_at": T1,
            "gsi1pk": "CLIENT#1", "gsi1sk": "00000000000000000007",
            "gsi2pk": "PROVIDER#2", "gsi2sk": "00000000000000000007",
            "gsi3pk": "ESCROW#7", "gsi3sk": "00000000000000000007",
        })
    }

    fn milestone(status: &str) -> Value {
        json!({
            "pk": "ESCROW#7", "sk": "MILESTONE#001", "id": 11, "escrow_id": 7, "idx": 1,
            "label": "Roof", "amount_cents": 50000, "proof_type": "PHOTO",
            "geofence": {"lat": 14.7, "lng": -17.4, "radius_m": 200},
            "status": status, "created_at": T0, "updated_at": T1,
        })
    }

    fn guard() -> Value {
        json!({"pk": "DEADLINE_MISSED#7", "sk": "GUARD", "escrow_id": 7, "created_at": T1})
    }

    fn payment(status: &str) -> Value {
        json!({
            "pk": "PAYMENT#21", "sk": "PAYMENT", "id": 21, "escrow_id": 7, "milestone_id": 11,
            "kind": "PAYOUT", "payee_user_id": 2, "amount_cents": 50000, "currency": "USD",
            "psp_ref": "PSP-abc", "status": status, "attempts": 1, "client_id": 1,
            "provider_id": 2, "created_at": T0, "updated_at": T1,
            "gsi1pk": "ESCROW_PAYMENTS#7", "gsi1sk": "00000000000000000021",
            "gsi3pk": "PAYMENT#5", "gsi3sk": "00000000000000000021",
        })
    }

    fn proof(status: &str) -> Value {
        json!({
            "pk": "PROOF#31", "sk": "PROOF", "id": 31, "escrow_id": 7, "milestone_id": 11,
            "milestone_idx": 1, "type": "PHOTO", "storage_url": "s3://b/k", "sha256": "ab",
            "content_type": "image/jpeg", "size": 1024, "evidence": "{}", "status": status,
            "review_reason": "MANUAL_REVIEW", "client_id": 1, "provider_id": 2,
            "created_at": T0, "updated_at": T1,
        })
    }

    fn mandate(status: &str) -> Value {
        json!({
            "pk": "MANDATE#41", "sk": "MANDATE", "id": 41, "sender_id": 1, "beneficiary_id": 2,
            "balance_cents": 2550, "spent_cents": 7450, "currency": "EUR",
            "allowed_merchant_id": 5, "expires_at": "2030-03-01T00:00:00.000000Z",
            "status": status, "created_at": T0, "updated_at": T1,
            "gsi1pk": "SENDER#1", "gsi1sk": "00000000000000000041",
            "gsi2pk": "BENEFICIARY#2", "gsi2sk": "00000000000000000041",
            "gsi3pk": "MANDATE#1", "gsi3sk": "00000000000000000041",
        })
    }

    fn purchase() -> Value {
        json!({
            "pk": "PURCHASE#51", "sk": "PURCHASE", "id": 51, "sender_id": 1,
            "beneficiary_id": 2, "merchant_id": 5, "category_id": 6, "mandate_id": 41,
            "amount_cents": 7450, "currency": "EUR", "created_at": T0, "updated_at": T0,
        })
    }

    fn transfer() -> Value {
        json!({
            "pk": "TRANSACTION#61", "sk": "TRANSACTION", "id": 61, "sender_id": 1,
            "beneficiary_id": 3, "amount_cents": 1, "currency": "USD",
            "created_at": T0, "updated_at": T0,
            "gsi1pk": "TRANSFER_SENDER#1", "gsi1sk": "00000000000000000061",
            "gsi2pk": "TRANSFER_RECEIVER#3", "gsi2sk": "00000000000000000061",
            "gsi3pk": "TRANSACTION#5", "gsi3sk": "00000000000000000061",
        })
    }

    /// As the handler reads a stream image: through serde_dynamo's item.
    fn via_stream(image: &Value) -> Value {
        if image.is_null() {
            return Value::Null;
        }
        let item: serde_dynamo::Item = serde_dynamo::to_item(image).unwrap();
        serde_dynamo::from_item(item).unwrap()
    }

    fn facts(event: &str, old: &Value, new: &Value) -> Vec<Fact> {
        facts_of(event, &via_stream(old), &via_stream(new), recorded()).unwrap()
    }

    fn types(event: &str, old: &Value, new: &Value) -> Vec<FactType> {
        facts(event, old, new).iter().map(|f| f.fact_type).collect()
    }

    fn only(event: &str, old: &Value, new: &Value, expected: FactType) -> Fact {
        let mut all = facts(event, old, new);
        assert_eq!(
            all.iter().map(|f| f.fact_type).collect::<Vec<_>>(),
            [expected]
        );
        all.remove(0)
    }

    #[test]
    fn escrow_status_changes() {
        let funded = only(
            "MODIFY",
            &escrow("DRAFT"),
            &escrow("FUNDED"),
            FactType::EscrowFunded,
        );
        assert_eq!(
            Value::Object(funded.data),
            json!({
                "escrow_id": "7", "client_id": "1", "provider_id": "2", "currency": "USD",
                "amount_total": "1500.00", "amount_funded": "1500.00",
                "amount_available": "1000.00", "amount_paid": "500.00",
                "amount_refunded": "0.00", "status": "FUNDED",
            })
        );
        assert_eq!(funded.occurred_at, Timestamp::parse(T1).unwrap());
        for from in ["FUNDED", "RELEASABLE"] {
            only(
                "MODIFY",
                &escrow(from),
                &escrow("RELEASED"),
                FactType::EscrowReleased,
            );
            only(
                "MODIFY",
                &escrow(from),
                &escrow("REFUNDED"),
                FactType::EscrowRefunded,
            );
        }
        // Created DRAFT, made RELEASABLE, cancelled: no fact of this list.
        assert!(types("INSERT", &Value::Null, &escrow("DRAFT")).is_empty());
        assert!(types("MODIFY", &escrow("FUNDED"), &escrow("RELEASABLE")).is_empty());
        assert!(types("MODIFY", &escrow("DRAFT"), &escrow("CANCELLED")).is_empty());
    }

    #[test]
    fn the_deadline_guard_insert_is_the_missed_deadline() {
        let fact = only(
            "INSERT",
            &Value::Null,
            &guard(),
            FactType::EscrowDeadlineMissed,
        );
        assert_eq!(Value::Object(fact.data), json!({"escrow_id": "7"}));
        assert_eq!(fact.occurred_at, Timestamp::parse(T1).unwrap());
        // A guard written before it carried its time: the record's time.
        let mut old_shape = guard();
        old_shape.as_object_mut().unwrap().remove("created_at");
        let fact = only(
            "INSERT",
            &Value::Null,
            &old_shape,
            FactType::EscrowDeadlineMissed,
        );
        assert_eq!(fact.occurred_at, recorded());
        assert!(types("MODIFY", &guard(), &guard()).is_empty());
        assert!(types("REMOVE", &guard(), &Value::Null).is_empty());
    }

    #[test]
    fn a_milestone_paid() {
        let fact = only(
            "MODIFY",
            &milestone("APPROVED"),
            &milestone("PAID"),
            FactType::MilestonePaid,
        );
        assert_eq!(
            Value::Object(fact.data),
            json!({"escrow_id": "7", "milestone_id": "11", "idx": 1, "label": "Roof",
                   "amount": "500.00", "status": "PAID"})
        );
        assert!(types(
            "MODIFY",
            &milestone("WAITING"),
            &milestone("PENDING_REVIEW")
        )
        .is_empty());
        assert!(types(
            "MODIFY",
            &milestone("PENDING_REVIEW"),
            &milestone("APPROVED")
        )
        .is_empty());
        assert!(types("INSERT", &Value::Null, &milestone("WAITING")).is_empty());
    }

    #[test]
    fn proofs_submitted_approved_rejected() {
        let submitted = only(
            "INSERT",
            &Value::Null,
            &proof("PENDING"),
            FactType::ProofSubmitted,
        );
        assert_eq!(
            Value::Object(submitted.data),
            json!({"proof_id": "31", "escrow_id": "7", "milestone_id": "11",
                   "milestone_idx": 1, "proof_type": "PHOTO", "status": "PENDING",
                   "review_reason": "MANUAL_REVIEW"})
        );
        only(
            "MODIFY",
            &proof("PENDING"),
            &proof("APPROVED"),
            FactType::ProofApproved,
        );
        only(
            "MODIFY",
            &proof("PENDING"),
            &proof("REJECTED"),
            FactType::ProofRejected,
        );
        // Approved on submission (fresh photo, in the geofence).
        assert_eq!(
            types("INSERT", &Value::Null, &proof("APPROVED")),
            [FactType::ProofSubmitted, FactType::ProofApproved]
        );
    }

    #[test]
    fn payments_pending_sent_settled_failed() {
        let pending = only(
            "INSERT",
            &Value::Null,
            &payment("PENDING"),
            FactType::PaymentPending,
        );
        assert_eq!(
            Value::Object(pending.data),
            json!({"payment_id": "21", "escrow_id": "7", "milestone_id": "11",
                   "kind": "PAYOUT", "payee_user_id": "2", "amount": "500.00",
                   "currency": "USD", "psp_ref": "PSP-abc", "status": "PENDING"})
        );
        only(
            "MODIFY",
            &payment("PENDING"),
            &payment("SENT"),
            FactType::PaymentSent,
        );
        for from in ["PENDING", "SENT"] {
            only(
                "MODIFY",
                &payment(from),
                &payment("SETTLED"),
                FactType::PaymentSettled,
            );
            only(
                "MODIFY",
                &payment(from),
                &payment("ERROR"),
                FactType::PaymentFailed,
            );
        }
        // A retry of a failed payment is sent again.
        only(
            "MODIFY",
            &payment("ERROR"),
            &payment("SENT"),
            FactType::PaymentSent,
        );
        // Today's code creates payments SENT: both facts, distinct ids.
        let both = facts("INSERT", &Value::Null, &payment("SENT"));
        assert_eq!(
            both.iter().map(|f| f.fact_type).collect::<Vec<_>>(),
            [FactType::PaymentPending, FactType::PaymentSent]
        );
        assert_ne!(both[0].id, both[1].id);
        // A usage spend: a payee reference, no milestone, no user.
        let mut spend = payment("PENDING");
        let object = spend.as_object_mut().unwrap();
        object.remove("milestone_id");
        object.remove("payee_user_id");
        object.insert("kind".into(), json!("USAGE_SPEND"));
        object.insert("payee_ref".into(), json!("shop-42"));
        let fact = only("INSERT", &Value::Null, &spend, FactType::PaymentPending);
        assert_eq!(fact.data["payee_ref"], "shop-42");
        assert!(!fact.data.contains_key("milestone_id"));
        assert!(!fact.data.contains_key("payee_user_id"));
    }

    #[test]
    fn mandates_created_consumed_expired() {
        let created = only(
            "INSERT",
            &Value::Null,
            &mandate("ACTIVE"),
            FactType::MandateCreated,
        );
        assert_eq!(
            Value::Object(created.data),
            json!({"mandate_id": "41", "sender_id": "1", "beneficiary_id": "2",
                   "currency": "EUR", "total_amount": "25.50", "total_spent": "74.50",
                   "expires_at": "2030-03-01T00:00:00.000000Z", "status": "ACTIVE"})
        );
        only(
            "MODIFY",
            &mandate("ACTIVE"),
            &mandate("CONSUMED"),
            FactType::MandateConsumed,
        );
        only(
            "MODIFY",
            &mandate("ACTIVE"),
            &mandate("EXPIRED"),
            FactType::MandateExpired,
        );
    }

    #[test]
    fn purchases_and_transfers_on_insert() {
        let fact = only(
            "INSERT",
            &Value::Null,
            &purchase(),
            FactType::PurchaseCompleted,
        );
        assert_eq!(
            Value::Object(fact.data),
            json!({"purchase_id": "51", "mandate_id": "41", "sender_id": "1",
                   "beneficiary_id": "2", "merchant_id": "5", "category_id": "6",
                   "amount": "74.50", "currency": "EUR"})
        );
        assert_eq!(fact.occurred_at, Timestamp::parse(T0).unwrap());
        let fact = only(
            "INSERT",
            &Value::Null,
            &transfer(),
            FactType::TransferCreated,
        );
        assert_eq!(
            Value::Object(fact.data),
            json!({"transfer_id": "61", "sender_id": "1", "receiver_id": "3",
                   "amount": "0.01", "currency": "USD"})
        );
        assert!(types("MODIFY", &purchase(), &purchase()).is_empty());
        assert!(types("MODIFY", &transfer(), &transfer()).is_empty());
    }

    #[test]
    fn every_fact_type_is_reachable_and_named_once() {
        let mut seen = std::collections::BTreeSet::new();
        let cases = [
            ("MODIFY", escrow("DRAFT"), escrow("FUNDED")),
            ("MODIFY", escrow("FUNDED"), escrow("RELEASED")),
            ("MODIFY", escrow("FUNDED"), escrow("REFUNDED")),
            ("INSERT", Value::Null, guard()),
            ("MODIFY", milestone("APPROVED"), milestone("PAID")),
            ("INSERT", Value::Null, proof("APPROVED")),
            ("MODIFY", proof("PENDING"), proof("REJECTED")),
            ("INSERT", Value::Null, payment("SENT")),
            ("MODIFY", payment("SENT"), payment("SETTLED")),
            ("MODIFY", payment("SENT"), payment("ERROR")),
            ("INSERT", Value::Null, mandate("ACTIVE")),
            ("MODIFY", mandate("ACTIVE"), mandate("CONSUMED")),
            ("MODIFY", mandate("ACTIVE"), mandate("EXPIRED")),
            ("INSERT", Value::Null, purchase()),
            ("INSERT", Value::Null, transfer()),
        ];
        for (event, old, new) in &cases {
            seen.extend(types(event, old, new));
        }
        assert_eq!(seen, FactType::ALL.into_iter().collect());
        let names: std::collections::BTreeSet<_> = FactType::ALL.map(FactType::as_str).into();
        assert_eq!(names.len(), FactType::ALL.len());
        for t in FactType::ALL {
            assert_eq!(FactType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn an_unchanged_status_is_no_fact() {
        // A deposit that does not fill the escrow; a payout that keeps it
        // FUNDED; a purchase's debit; a retry counter; a re-put.
        let moved = with(
            escrow("FUNDED"),
            json!({"available_cents": 1, "updated_at": T0}),
        );
        assert!(types("MODIFY", &escrow("FUNDED"), &moved).is_empty());
        assert!(types("MODIFY", &escrow("DRAFT"), &escrow("DRAFT")).is_empty());
        let debited = with(mandate("ACTIVE"), json!({"balance_cents": 1}));
        assert!(types("MODIFY", &mandate("ACTIVE"), &debited).is_empty());
        let retried = with(payment("ERROR"), json!({"attempts": 2}));
        assert!(types("MODIFY", &payment("ERROR"), &retried).is_empty());
        assert!(types("MODIFY", &proof("APPROVED"), &proof("APPROVED")).is_empty());
        assert!(types("MODIFY", &milestone("PAID"), &milestone("PAID")).is_empty());
    }

    #[test]
    fn items_that_are_not_facts_give_none() {
        let unrelated = [
            json!({"pk": "AUDIT#ESCROW#7", "sk": "2030-01-02T03:04:05.000006Z#00#u",
                   "action": "ESCROW_RELEASED", "status": "RELEASED", "at": T0}),
            json!({"pk": "ESCROW_EVENTS#7", "sk": "2030-01-02T03:04:05.000006Z#00#u",
                   "kind": "DEPOSIT", "escrow_id": 7, "at": T0}),
            json!({"pk": "IDEMPOTENCY#ab", "sk": "IDEMPOTENCY", "status": 201,
                   "body": "{}", "ttl": 1}),
            json!({"pk": "ACTIVE_MANDATE#1#2#USD", "sk": "GUARD", "mandate_id": 41}),
            json!({"pk": "UNIQUE#USERNAME#amina", "sk": "GUARD", "owner_id": 1}),
            json!({"pk": "PROOF_HASH#ab", "sk": "GUARD", "owner_id": 31}),
            json!({"pk": "COUNTER#ESCROW", "sk": "COUNTER", "value": 8}),
            json!({"pk": "PSP_REF#PSP-abc", "sk": "PSP_REF", "payment_id": 21}),
            json!({"pk": "PSP_EVENT#ab", "sk": "PSP_EVENT", "status": "APPLIED",
                   "created_at": T0}),
            json!({"pk": "ALERT#ESCROW_DEADLINE_MISSED#ab", "sk": "ALERT", "id": 1,
                   "created_at": T0}),
            json!({"pk": "UPLOAD#u", "sk": "UPLOAD", "escrow_id": 7, "created_at": T0}),
            json!({"pk": "USER#1", "sk": "USER", "id": 1, "created_at": T0}),
            json!({"pk": "PAYEE#7#shop", "sk": "PAYEE", "status": "ACTIVE"}),
            json!({"pk": "APIKEY#ab", "sk": "APIKEY", "status": "ACTIVE"}),
            json!({"pk": "ALLOWLIST#1", "sk": "RECIPIENT#3", "created_at": T0}),
            json!({"pk": "CERTIFIED#1", "sk": "CERTIFIED", "level": "GOLD"}),
            // Shapes close to fact items, but not theirs.
            json!({"pk": "ESCROW#7", "sk": "OTHER", "status": "FUNDED"}),
            json!({"pk": "ESCROW_PAYMENTS#7", "sk": "PAYMENT", "status": "SENT"}),
            json!({"pk": "MANDATE#41", "sk": "GUARD", "status": "ACTIVE"}),
        ];
        for item in &unrelated {
            for event in ["INSERT", "MODIFY", "REMOVE"] {
                let old = with(item.clone(), json!({"status": "X"}));
                assert!(types(event, &old, item).is_empty(), "{event} {item}");
            }
        }
    }

    #[test]
    fn a_remove_is_no_fact() {
        for item in [escrow("FUNDED"), payment("SENT"), purchase(), guard()] {
            assert!(types("REMOVE", &item, &Value::Null).is_empty());
        }
    }

    #[test]
    fn ids_depend_on_the_change_only() {
        let a = facts("MODIFY", &payment("SENT"), &payment("SETTLED"));
        let b = facts("MODIFY", &payment("SENT"), &payment("SETTLED"));
        assert_eq!(a, b, "the same change twice: the same events");
        assert_eq!(a[0].id.len(), 32);
        assert!(a[0].id.bytes().all(|c| c.is_ascii_hexdigit()));
        // Another write of the same status (a later change) is another event.
        let later = with(
            payment("SETTLED"),
            json!({"updated_at": "2030-05-05T00:00:00Z"}),
        );
        let c = facts("MODIFY", &payment("SENT"), &later);
        assert_ne!(a[0].id, c[0].id);
        // Another item, another event.
        let other = with(payment("SETTLED"), json!({"pk": "PAYMENT#22", "id": 22}));
        assert_ne!(a[0].id, facts("MODIFY", &payment("SENT"), &other)[0].id);
        // Another path to the status, another event.
        let from_error = facts("MODIFY", &payment("ERROR"), &payment("SETTLED"));
        assert_ne!(a[0].id, from_error[0].id);
        // Not the record's time: only the item's content.
        let early = facts_of("INSERT", &Value::Null, &purchase(), recorded()).unwrap();
        let late = facts_of("INSERT", &Value::Null, &purchase(), Timestamp::now()).unwrap();
        assert_eq!(early, late);
    }

    #[test]
    fn money_is_exact_at_the_limits() {
        let big = with(
            transfer(),
            json!({"amount_cents": 99_999_999_999_999_999_i64}),
        );
        let fact = only("INSERT", &Value::Null, &big, FactType::TransferCreated);
        assert_eq!(fact.data["amount"], "999999999999999.99");
        let zero = with(escrow("FUNDED"), json!({"paid_cents": 0}));
        let fact = only("MODIFY", &escrow("DRAFT"), &zero, FactType::EscrowFunded);
        assert_eq!(fact.data["amount_paid"], "0.00");
    }

    #[test]
    fn a_fact_item_it_cannot_read_is_an_error() {
        let no_amount = {
            let mut t = transfer();
            t.as_object_mut().unwrap().remove("amount_cents");
            t
        };
        let negative = with(purchase(), json!({"amount_cents": -5}));
        let fractional = with(purchase(), json!({"amount_cents": "1.5"}));
        let bad_time = with(payment("PENDING"), json!({"updated_at": "yesterday"}));
        for image in [no_amount, negative, fractional, bad_time] {
            let result = facts_of("INSERT", &Value::Null, &image, recorded());
            assert!(result.is_err(), "{image}");
        }
        assert!(facts_of("TRUNCATE", &Value::Null, &purchase(), recorded()).is_err());
        // Not a fact item: nothing is read, nothing fails.
        let odd = json!({"pk": "COUNTER#X", "sk": "COUNTER", "amount_cents": "nope"});
        assert!(facts_of("INSERT", &Value::Null, &odd, recorded())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_envelope() {
        let fact = only(
            "INSERT",
            &Value::Null,
            &transfer(),
            FactType::TransferCreated,
        );
        let envelope = fact.envelope();
        assert_eq!(envelope["id"], fact.id.as_str());
        assert_eq!(envelope["type"], "transfer.created");
        assert_eq!(envelope["version"], 1);
        assert_eq!(envelope["occurred_at"], T0);
        assert_eq!(envelope["data"]["transfer_id"], "61");
    }
}
