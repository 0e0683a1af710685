//! Escrows: a client's money held for a provider, paid out milestone by
//! milestone against proofs, or all at once on the client's word.
//!
//! `decide` is the whole state machine of docs/api.md ("Escrows"): every
//! (state, action) pair not in its table is refused with
//! `ESCROW_INVALID_STATE` and changes nothing. The original accepted deposits
//! in any state, revived terminal escrows and released FUNDED escrows at the
//! deadline; none of that is reachable here.
//!
//! Balances keep `funded = available + paid + refunded` (see
//! [`EscrowBalances`]); every transition that moves money goes through
//! [`EscrowBalances::apply`], which refuses to break it.

//!
//! The folder is one aggregate, its files a DAG (docs/architecture.md):
//! `status`, `balances` and `timeline` at the bottom, importing nothing of
//! the folder; `milestone` (the payout schedule) above `status`; `payment`
//! above `balances`, `milestone` and `timeline`; this file, the escrow and
//! its state machine, on top, re-exporting the bottom's types as the
//! aggregate's face. No file of the folder imports this one.

pub mod balances;
pub mod milestone;
pub mod payment;
pub mod status;
pub mod timeline;

pub use balances::{BalanceDelta, EscrowBalances};
pub use status::EscrowStatus;
pub use timeline::EscrowEventKind;

use super::{
    error::ErrorCode,
    geo::{self, GeoPoint},
    ids::Id,
    money::{Amount, Money},
    time::Timestamp,
};
use milestone::{MilestoneSlot, MilestoneStatus};
use payment::{PaymentKind, PaymentTransition};
use serde::{Deserialize, Serialize};

/// What the deadline sweep can still do for an escrow once its deadline
/// has passed. The deadline index holds an escrow only while this is
/// `Some`, so it never fills with escrows no run can act on (DRAFT ones,
/// FUNDED ones already alerted, closed ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadlineDuty {
    /// RELEASABLE: released to the provider (the client's silence).
    Release,
    /// FUNDED and not yet alerted: one `ESCROW_DEADLINE_MISSED` alert.
    Alert,
}

/// The deadline duty of an escrow in `status`; `alerted`: its one
/// `ESCROW_DEADLINE_MISSED` alert was raised already.
pub fn deadline_duty(status: EscrowStatus, alerted: bool) -> Option<DeadlineDuty> {
    match status {
        EscrowStatus::Releasable => Some(DeadlineDuty::Release),
        EscrowStatus::Funded if !alerted => Some(DeadlineDuty::Alert),
        _ => None,
    }
}

/// What `decide` needs to know of an escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowState {
    pub status: EscrowStatus,
    pub total: Amount,
    pub deadline_at: Timestamp,
    pub balances: EscrowBalances,
}

/// What someone (or the schedule) asks of an escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscrowAction {
    /// `POST /escrows/{id}/deposit` by the client.
    Deposit { amount: Amount },
    /// `POST /escrows/{id}/mark-delivered` by the provider.
    MarkDelivered,
    /// `POST /escrows/{id}/client-approve`.
    ClientApprove,
    /// `POST /escrows/{id}/client-reject`.
    ClientReject,
    /// The deadline sweep or `POST /escrows/{id}/check-deadline`.
    DeadlineCheck { now: Timestamp },
    /// A milestone's payout (auto-approved proof or approval decision).
    /// `last`: every other milestone of the escrow is already PAID, so this
    /// payout closes the escrow (see [`milestone::pays_last_milestone`]).
    PayMilestone { amount: Amount, last: bool },
    /// A usage spend to an allowed payee (`POST /spend`); the payee's limits
    /// are checked before (`super::spend::authorize_spend`).
    Spend { amount: Amount },
}

/// A payment the transition creates, PENDING, in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentOrder {
    pub kind: PaymentKind,
    pub amount: Amount,
}

/// Audit actions written by escrow transitions (entity `escrow`, or
/// `payment` for the ones that create a payment: `PAYOUT_PENDING`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EscrowAudit {
    Created,
    Deposited,
    Delivered,
    Released,
    Refunded,
    Cancelled,
    PayoutPending,
    RefundPending,
    UsageSpend,
}

impl EscrowAudit {
    pub fn as_str(self) -> &'static str {
        match self {
            EscrowAudit::Created => "ESCROW_CREATED",
            EscrowAudit::Deposited => "ESCROW_DEPOSITED",
            EscrowAudit::Delivered => "ESCROW_DELIVERED",
            EscrowAudit::Released => "ESCROW_RELEASED",
            EscrowAudit::Refunded => "ESCROW_REFUNDED",
            EscrowAudit::Cancelled => "ESCROW_CANCELLED",
            EscrowAudit::PayoutPending => "PAYOUT_PENDING",
            EscrowAudit::RefundPending => "REFUND_PENDING",
            EscrowAudit::UsageSpend => "USAGE_SPEND",
        }
    }
}

/// A change to write, all of it in one transaction with the escrow's
/// conditional update (status and balances as read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowTransition {
    pub status: EscrowStatus,
    pub balances: EscrowBalances,
    pub payment: Option<PaymentOrder>,
    /// In the order they happen.
    pub audit: Vec<EscrowAudit>,
    /// In the order they happen.
    pub events: Vec<EscrowEventKind>,
}

/// What `decide` answers when it does not refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscrowOutcome {
    Changed(EscrowTransition),
    /// Nothing to do: a repeat of the transition that led here, or a
    /// deadline check with nothing due. 200 with the escrow as it is.
    Unchanged,
    /// A FUNDED escrow past its deadline: nobody is paid; one
    /// `ESCROW_DEADLINE_MISSED` alert and one `DEADLINE_MISSED` event (once
    /// per escrow: the store guards it), the escrow otherwise unchanged.
    DeadlineMissed,
}

/// Why `decide` refuses. Refusals change nothing; each is answered with one
/// code and message (`From<EscrowRefusal> for AppError`, in `error.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EscrowRefusal {
    /// The status does not allow this action.
    InvalidState,
    /// A spend from a RELEASED, REFUNDED or CANCELLED escrow.
    NotActive,
    /// A deposit beyond what the escrow still misses.
    DepositExceedsTotal,
    /// Not that much is available.
    InsufficientBalance,
}

impl EscrowRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            EscrowRefusal::InvalidState => ErrorCode::EscrowInvalidState,
            EscrowRefusal::NotActive => ErrorCode::EscrowNotActive,
            EscrowRefusal::DepositExceedsTotal => ErrorCode::DepositExceedsTotal,
            EscrowRefusal::InsufficientBalance => ErrorCode::InsufficientEscrowBalance,
        }
    }
}

/// The escrow state machine of docs/api.md. Refusals change nothing.
pub fn decide(state: &EscrowState, action: EscrowAction) -> Result<EscrowOutcome, EscrowRefusal> {
    use EscrowAction as A;
    use EscrowStatus as S;
    let invalid = Err(EscrowRefusal::InvalidState);
    match (state.status, action) {
        (S::Draft, A::Deposit { amount }) => deposit(state, amount),
        (_, A::Deposit { .. }) => invalid,

        (S::Funded, A::MarkDelivered) => Ok(change(
            state,
            S::Releasable,
            None,
            vec![EscrowAudit::Delivered],
            vec![EscrowEventKind::Delivered],
        )),
        (S::Releasable, A::MarkDelivered) => Ok(EscrowOutcome::Unchanged),
        (_, A::MarkDelivered) => invalid,

        (S::Funded | S::Releasable, A::ClientApprove) => Ok(settle_remainder(
            state,
            S::Released,
            EscrowEventKind::ClientApproved,
        )),
        (S::Released, A::ClientApprove) => Ok(EscrowOutcome::Unchanged),
        (_, A::ClientApprove) => invalid,

        (S::Funded | S::Releasable, A::ClientReject) => Ok(settle_remainder(
            state,
            S::Refunded,
            EscrowEventKind::ClientRejected,
        )),
        // Spends made while DRAFT are gone; what is still held goes back.
        (S::Draft, A::ClientReject) => Ok(settle_remainder(
            state,
            S::Cancelled,
            EscrowEventKind::ClientRejected,
        )),
        (S::Refunded | S::Cancelled, A::ClientReject) => Ok(EscrowOutcome::Unchanged),
        (_, A::ClientReject) => invalid,

        // "Past" is `deadline_at <= now`, as for mandates. The client's
        // silence after delivery is acceptance.
        (S::Releasable, A::DeadlineCheck { now }) if state.deadline_at <= now => Ok(
            settle_remainder(state, S::Released, EscrowEventKind::DeadlineReleased),
        ),
        // Never delivered: paying the provider would reward doing nothing.
        (S::Funded, A::DeadlineCheck { now }) if state.deadline_at <= now => {
            Ok(EscrowOutcome::DeadlineMissed)
        }
        // check-deadline answers 200 with the escrow, changed or not.
        (_, A::DeadlineCheck { .. }) => Ok(EscrowOutcome::Unchanged),

        (S::Funded | S::Releasable, A::PayMilestone { amount, last }) => {
            pay_milestone(state, amount, last)
        }
        (_, A::PayMilestone { .. }) => invalid,

        // Spends come out of what is held, in any open state, and change no
        // status; a settled escrow holds nothing to spend.
        (S::Draft | S::Funded | S::Releasable, A::Spend { amount }) => spend(state, amount),
        (_, A::Spend { .. }) => Err(EscrowRefusal::NotActive),
    }
}

fn deposit(state: &EscrowState, amount: Amount) -> Result<EscrowOutcome, EscrowRefusal> {
    let missing = state.total.minor_units() - state.balances.funded.minor_units();
    if amount.minor_units() > missing {
        return Err(EscrowRefusal::DepositExceedsTotal);
    }
    let balances = state
        .balances
        .deposit(amount)
        .ok_or(EscrowRefusal::DepositExceedsTotal)?;
    let status = if balances.funded == state.total.money() {
        EscrowStatus::Funded
    } else {
        EscrowStatus::Draft
    };
    Ok(EscrowOutcome::Changed(EscrowTransition {
        status,
        balances,
        payment: None,
        audit: vec![EscrowAudit::Deposited],
        events: vec![EscrowEventKind::Deposit],
    }))
}

/// Approve, reject or deadline release: what is still available (if any)
/// goes to the provider (RELEASED) or back to the client (REFUNDED,
/// CANCELLED) as one payment.
fn settle_remainder(
    state: &EscrowState,
    to: EscrowStatus,
    event: EscrowEventKind,
) -> EscrowOutcome {
    let (kind, sent, audit) = match to {
        EscrowStatus::Released => (
            PaymentKind::Payout,
            EscrowAudit::PayoutPending,
            EscrowAudit::Released,
        ),
        EscrowStatus::Refunded => (
            PaymentKind::Refund,
            EscrowAudit::RefundPending,
            EscrowAudit::Refunded,
        ),
        _ => (
            PaymentKind::Refund,
            EscrowAudit::RefundPending,
            EscrowAudit::Cancelled,
        ),
    };
    let mut audits = vec![audit];
    let mut events = vec![event];
    let payment = Amount::try_from(state.balances.available)
        .ok()
        .map(|amount| PaymentOrder { kind, amount });
    if payment.is_some() {
        audits.push(sent);
        events.push(EscrowEventKind::PaymentPending);
    }
    change(state, to, payment, audits, events)
}

fn pay_milestone(
    state: &EscrowState,
    amount: Amount,
    last: bool,
) -> Result<EscrowOutcome, EscrowRefusal> {
    let order = PaymentOrder {
        kind: PaymentKind::Payout,
        amount,
    };
    let balances = debit(&state.balances, order).ok_or(EscrowRefusal::InsufficientBalance)?;
    let mut audit = vec![EscrowAudit::PayoutPending];
    let mut events = vec![EscrowEventKind::PaymentPending];
    let status = if last {
        audit.push(EscrowAudit::Released);
        events.push(EscrowEventKind::Closed);
        EscrowStatus::Released
    } else {
        state.status
    };
    Ok(EscrowOutcome::Changed(EscrowTransition {
        status,
        balances,
        payment: Some(order),
        audit,
        events,
    }))
}

fn spend(state: &EscrowState, amount: Amount) -> Result<EscrowOutcome, EscrowRefusal> {
    let order = PaymentOrder {
        kind: PaymentKind::UsageSpend,
        amount,
    };
    let balances = debit(&state.balances, order).ok_or(EscrowRefusal::InsufficientBalance)?;
    Ok(EscrowOutcome::Changed(EscrowTransition {
        status: state.status,
        balances,
        payment: Some(order),
        audit: vec![EscrowAudit::UsageSpend],
        events: vec![EscrowEventKind::PaymentPending],
    }))
}

fn debit(balances: &EscrowBalances, order: PaymentOrder) -> Option<EscrowBalances> {
    balances.apply(BalanceDelta::of(
        order.kind,
        order.amount,
        PaymentTransition::Pending,
    ))
}

fn change(
    state: &EscrowState,
    status: EscrowStatus,
    payment: Option<PaymentOrder>,
    audit: Vec<EscrowAudit>,
    events: Vec<EscrowEventKind>,
) -> EscrowOutcome {
    let balances = match payment {
        // Only ever the whole available balance: it always fits.
        Some(order) => debit(&state.balances, order).expect("available covers itself"),
        None => state.balances,
    };
    EscrowOutcome::Changed(EscrowTransition {
        status,
        balances,
        payment,
        audit,
        events,
    })
}

// ---------------------------------------------------------------------------
// The escrow as answered

/// A milestone as the API answers it (`Milestone` of docs/api.md).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Milestone {
    pub id: Id,
    pub idx: u32,
    pub label: String,
    pub amount: Amount,
    pub proof_type: String,
    pub geofence: Option<Geofence>,
    pub status: MilestoneStatus,
}

/// An escrow as the API answers it (`Escrow` of docs/api.md).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Escrow {
    pub id: Id,
    pub client_id: Id,
    pub provider_id: Id,
    pub currency: super::currency::Currency,
    pub amount_total: Amount,
    pub amount_funded: Money,
    pub amount_available: Money,
    pub amount_paid: Money,
    pub amount_refunded: Money,
    pub status: EscrowStatus,
    pub release_conditions: serde_json::Value,
    pub deadline_at: Timestamp,
    pub milestones: Vec<Milestone>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Escrow {
    pub fn balances(&self) -> EscrowBalances {
        EscrowBalances {
            funded: self.amount_funded,
            available: self.amount_available,
            paid: self.amount_paid,
            refunded: self.amount_refunded,
        }
    }

    /// What `decide` needs.
    pub fn state(&self) -> EscrowState {
        EscrowState {
            status: self.status,
            total: self.amount_total,
            deadline_at: self.deadline_at,
            balances: self.balances(),
        }
    }

    pub fn parties(&self) -> [Id; 2] {
        [self.client_id, self.provider_id]
    }

    /// The milestones as the sequence rule sees them.
    pub fn slots(&self) -> Vec<MilestoneSlot> {
        self.milestones
            .iter()
            .map(|m| MilestoneSlot {
                idx: m.idx,
                status: m.status,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Creation

pub const MAX_MILESTONES: usize = 50;
pub const MAX_LABEL_CHARS: usize = 200;
pub const MAX_PROOF_TYPE_CHARS: usize = 50;

/// Where a PHOTO proof must be taken, as the client sent it; checked by
/// [`check_escrow_terms`] with the rules of [`geo`] (which every bad field
/// reports). Degrees and metres are geometry, not money, so `f64` is right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Geofence {
    pub lat: f64,
    pub lng: f64,
    pub radius_m: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MilestoneTerms {
    pub label: String,
    pub amount: Amount,
    pub proof_type: String,
    pub geofence: Option<Geofence>,
}

/// An escrow as the client asks for it, fields already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct EscrowTerms {
    pub client_id: Id,
    pub provider_id: Id,
    pub amount_total: Amount,
    pub deadline_at: Timestamp,
    /// `None`: an escrow released as a whole, without milestones.
    pub milestones: Option<Vec<MilestoneTerms>>,
}

/// One bad field, for `details.fields` of a 422 `VALIDATION_ERROR`:
/// `provider_id`, `deadline_at`, `milestones`, `milestones[2].label`,
/// `milestones[0].geofence.lat`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub problem: &'static str,
}

/// Every rule on the terms alone, each bad field named once. Whether the
/// users exist and are active is the store's to check.
pub fn check_escrow_terms(terms: &EscrowTerms, now: Timestamp) -> Result<(), Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut bad = |field: String, problem: &'static str| {
        problems.push(FieldProblem { field, problem });
    };
    if terms.client_id == terms.provider_id {
        bad("provider_id".into(), "must differ from client_id");
    }
    if terms.deadline_at <= now {
        bad("deadline_at".into(), "must be in the future");
    }
    if let Some(milestones) = &terms.milestones {
        if milestones.is_empty() || milestones.len() > MAX_MILESTONES {
            bad("milestones".into(), "must hold 1 to 50 milestones");
        } else {
            // At most 50 × MAX: no overflow in i128.
            let sum: i128 = milestones
                .iter()
                .map(|m| i128::from(m.amount.minor_units()))
                .sum();
            if sum != i128::from(terms.amount_total.minor_units()) {
                bad("milestones".into(), "amounts must add up to amount_total");
            }
        }
        for (i, milestone) in milestones.iter().enumerate() {
            if !text_fits(&milestone.label, MAX_LABEL_CHARS) {
                bad(
                    format!("milestones[{i}].label"),
                    "must be 1 to 200 characters, not blank",
                );
            }
            if !text_fits(&milestone.proof_type, MAX_PROOF_TYPE_CHARS) {
                bad(
                    format!("milestones[{i}].proof_type"),
                    "must be 1 to 50 characters, not blank",
                );
            }
            if let Some(fence) = milestone.geofence {
                for (name, problem) in geofence_problems(fence) {
                    bad(format!("milestones[{i}].geofence.{name}"), problem);
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn text_fits(text: &str, max_chars: usize) -> bool {
    !text.trim().is_empty() && text.chars().count() <= max_chars
}

/// Every bad field of a geofence, by the one set of rules in `geo`.
fn geofence_problems(fence: Geofence) -> Vec<(&'static str, &'static str)> {
    let origin = GeoPoint::new(0.0, 0.0).expect("the origin is a point");
    [
        GeoPoint::new(fence.lat, 0.0).err(),
        GeoPoint::new(0.0, fence.lng).err(),
        geo::Geofence::new(origin, fence.radius_m).err(),
    ]
    .into_iter()
    .flatten()
    .map(|e| (e.field(), e.problem()))
    .collect()
}

impl Geofence {
    /// The checked geofence the proof rules use.
    pub fn parse(self) -> Result<geo::Geofence, geo::GeoError> {
        geo::Geofence::parse(self.lat, self.lng, self.radius_m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mandate::tests::{at, id};

    const DEADLINE: &str = "2030-01-01T00:00:00Z";

    fn amount(cents: i64) -> Amount {
        Amount::from_minor_units(cents).unwrap()
    }

    fn money(cents: i64) -> Money {
        Money::from_minor_units(cents).unwrap()
    }

    fn balances(funded: i64, available: i64, paid: i64, refunded: i64) -> EscrowBalances {
        EscrowBalances {
            funded: money(funded),
            available: money(available),
            paid: money(paid),
            refunded: money(refunded),
        }
    }

    /// A total of 10.00 and, for each status, balances it can really have.
    fn escrow(status: EscrowStatus) -> EscrowState {
        use EscrowStatus as S;
        let balances = match status {
            S::Draft => balances(400, 400, 0, 0),
            S::Funded | S::Releasable => balances(1000, 600, 400, 0),
            S::Released => balances(1000, 0, 1000, 0),
            S::Refunded => balances(1000, 0, 400, 600),
            S::Cancelled => balances(400, 0, 0, 400),
        };
        EscrowState {
            status,
            total: amount(1000),
            deadline_at: at(DEADLINE),
            balances,
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        To(EscrowStatus),
        Unchanged,
        Missed,
        Refused(ErrorCode),
    }

    fn actions() -> [(&'static str, EscrowAction); 15] {
        use EscrowAction as A;
        [
            (
                "deposit part",
                A::Deposit {
                    amount: amount(100),
                },
            ),
            (
                "deposit rest",
                A::Deposit {
                    amount: amount(600),
                },
            ),
            (
                "deposit over",
                A::Deposit {
                    amount: amount(601),
                },
            ),
            ("mark-delivered", A::MarkDelivered),
            ("approve", A::ClientApprove),
            ("reject", A::ClientReject),
            (
                "deadline before",
                A::DeadlineCheck {
                    now: at("2029-12-31T23:59:59.999999Z"),
                },
            ),
            ("deadline at", A::DeadlineCheck { now: at(DEADLINE) }),
            (
                "deadline after",
                A::DeadlineCheck {
                    now: at("2030-06-01T00:00:00Z"),
                },
            ),
            (
                "milestone",
                A::PayMilestone {
                    amount: amount(100),
                    last: false,
                },
            ),
            (
                "last milestone",
                A::PayMilestone {
                    amount: amount(600),
                    last: true,
                },
            ),
            (
                "milestone too big",
                A::PayMilestone {
                    amount: amount(601),
                    last: false,
                },
            ),
            (
                "last milestone too big",
                A::PayMilestone {
                    amount: amount(601),
                    last: true,
                },
            ),
            (
                "spend",
                A::Spend {
                    amount: amount(100),
                },
            ),
            (
                "spend too big",
                A::Spend {
                    amount: amount(601),
                },
            ),
        ]
    }

    /// docs/api.md's state table, one row per status, one column per `actions()`.
    fn expected(status: EscrowStatus) -> [Expect; 15] {
        use EscrowStatus as S;
        use Expect::*;
        let invalid = Refused(ErrorCode::EscrowInvalidState);
        let short = Refused(ErrorCode::InsufficientEscrowBalance);
        let closed = Refused(ErrorCode::EscrowNotActive);
        match status {
            S::Draft => [
                To(S::Draft),
                To(S::Funded),
                Refused(ErrorCode::DepositExceedsTotal),
                invalid,
                invalid,
                To(S::Cancelled),
                Unchanged,
                Unchanged,
                Unchanged,
                invalid,
                invalid,
                invalid,
                invalid,
                To(S::Draft),
                short,
            ],
            S::Funded => [
                invalid,
                invalid,
                invalid,
                To(S::Releasable),
                To(S::Released),
                To(S::Refunded),
                Unchanged,
                Missed,
                Missed,
                To(S::Funded),
                To(S::Released),
                short,
                short,
                To(S::Funded),
                short,
            ],
            S::Releasable => [
                invalid,
                invalid,
                invalid,
                Unchanged,
                To(S::Released),
                To(S::Refunded),
                Unchanged,
                To(S::Released),
                To(S::Released),
                To(S::Releasable),
                To(S::Released),
                short,
                short,
                To(S::Releasable),
                short,
            ],
            S::Released => [
                invalid, invalid, invalid, invalid, Unchanged, invalid, Unchanged, Unchanged,
                Unchanged, invalid, invalid, invalid, invalid, closed, closed,
            ],
            S::Refunded | S::Cancelled => [
                invalid, invalid, invalid, invalid, invalid, Unchanged, Unchanged, Unchanged,
                Unchanged, invalid, invalid, invalid, invalid, closed, closed,
            ],
        }
    }

    #[test]
    fn every_state_and_action_follows_the_contract_table() {
        for status in EscrowStatus::ALL {
            let state = escrow(status);
            for ((name, action), expect) in actions().into_iter().zip(expected(status)) {
                let got = match decide(&state, action) {
                    Ok(EscrowOutcome::Changed(t)) => {
                        assert!(t.balances.is_consistent(), "{status:?} {name}");
                        assert!(t.balances.funded >= state.balances.funded);
                        Expect::To(t.status)
                    }
                    Ok(EscrowOutcome::Unchanged) => Expect::Unchanged,
                    Ok(EscrowOutcome::DeadlineMissed) => Expect::Missed,
                    Err(refusal) => Expect::Refused(refusal.code()),
                };
                assert_eq!(got, expect, "{status:?} + {name}");
            }
        }
    }

    fn changed(state: &EscrowState, action: EscrowAction) -> EscrowTransition {
        match decide(state, action) {
            Ok(EscrowOutcome::Changed(t)) => t,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn a_partial_deposit_stays_draft_and_the_last_one_funds() {
        let mut state = escrow(EscrowStatus::Draft);
        state.balances = EscrowBalances::ZERO;
        let first = changed(
            &state,
            EscrowAction::Deposit {
                amount: amount(999),
            },
        );
        assert_eq!(first.status, EscrowStatus::Draft);
        assert_eq!(first.balances, balances(999, 999, 0, 0));
        assert_eq!(first.payment, None);
        assert_eq!(first.audit, vec![EscrowAudit::Deposited]);
        assert_eq!(first.events, vec![EscrowEventKind::Deposit]);

        state.balances = first.balances;
        let over = decide(&state, EscrowAction::Deposit { amount: amount(2) });
        assert_eq!(over, Err(EscrowRefusal::DepositExceedsTotal));
        let last = changed(&state, EscrowAction::Deposit { amount: amount(1) });
        assert_eq!(last.status, EscrowStatus::Funded);
        assert_eq!(last.balances, balances(1000, 1000, 0, 0));
    }

    #[test]
    fn a_single_deposit_of_the_total_funds_at_once() {
        let mut state = escrow(EscrowStatus::Draft);
        state.balances = EscrowBalances::ZERO;
        let t = changed(
            &state,
            EscrowAction::Deposit {
                amount: amount(1000),
            },
        );
        assert_eq!(t.status, EscrowStatus::Funded);
        assert_eq!(
            decide(
                &state,
                EscrowAction::Deposit {
                    amount: amount(1001)
                }
            ),
            Err(EscrowRefusal::DepositExceedsTotal)
        );
    }

    #[test]
    fn deposits_count_what_was_funded_not_what_is_left() {
        // A DRAFT escrow already spent from: 4.00 funded, 1.00 left.
        let mut state = escrow(EscrowStatus::Draft);
        state.balances = balances(400, 100, 300, 0);
        assert_eq!(
            decide(
                &state,
                EscrowAction::Deposit {
                    amount: amount(601)
                }
            ),
            Err(EscrowRefusal::DepositExceedsTotal)
        );
        let t = changed(
            &state,
            EscrowAction::Deposit {
                amount: amount(600),
            },
        );
        assert_eq!(t.status, EscrowStatus::Funded);
        assert_eq!(t.balances, balances(1000, 700, 300, 0));
    }

    #[test]
    fn mark_delivered_moves_no_money() {
        let t = changed(&escrow(EscrowStatus::Funded), EscrowAction::MarkDelivered);
        assert_eq!(t.status, EscrowStatus::Releasable);
        assert_eq!(t.balances, escrow(EscrowStatus::Funded).balances);
        assert_eq!(t.payment, None);
        assert_eq!(t.audit, vec![EscrowAudit::Delivered]);
        assert_eq!(t.events, vec![EscrowEventKind::Delivered]);
    }

    #[test]
    fn approval_pays_the_whole_remainder_to_the_provider() {
        for status in [EscrowStatus::Funded, EscrowStatus::Releasable] {
            let t = changed(&escrow(status), EscrowAction::ClientApprove);
            assert_eq!(t.status, EscrowStatus::Released);
            assert_eq!(
                t.payment,
                Some(PaymentOrder {
                    kind: PaymentKind::Payout,
                    amount: amount(600)
                })
            );
            assert_eq!(t.balances, balances(1000, 0, 1000, 0));
            assert_eq!(
                t.audit,
                vec![EscrowAudit::Released, EscrowAudit::PayoutPending]
            );
            assert_eq!(
                t.events,
                vec![
                    EscrowEventKind::ClientApproved,
                    EscrowEventKind::PaymentPending
                ]
            );
        }
    }

    #[test]
    fn rejection_refunds_the_whole_remainder_to_the_client() {
        let t = changed(
            &escrow(EscrowStatus::Releasable),
            EscrowAction::ClientReject,
        );
        assert_eq!(t.status, EscrowStatus::Refunded);
        assert_eq!(
            t.payment,
            Some(PaymentOrder {
                kind: PaymentKind::Refund,
                amount: amount(600)
            })
        );
        assert_eq!(t.balances, balances(1000, 0, 400, 600));
        assert_eq!(
            t.audit,
            vec![EscrowAudit::Refunded, EscrowAudit::RefundPending]
        );
        assert_eq!(
            t.events,
            vec![
                EscrowEventKind::ClientRejected,
                EscrowEventKind::PaymentPending
            ]
        );
    }

    #[test]
    fn rejecting_a_draft_cancels_and_refunds_what_is_held() {
        let t = changed(&escrow(EscrowStatus::Draft), EscrowAction::ClientReject);
        assert_eq!(t.status, EscrowStatus::Cancelled);
        assert_eq!(
            t.payment,
            Some(PaymentOrder {
                kind: PaymentKind::Refund,
                amount: amount(400)
            })
        );
        assert_eq!(t.balances, balances(400, 0, 0, 400));
        assert_eq!(
            t.audit,
            vec![EscrowAudit::Cancelled, EscrowAudit::RefundPending]
        );
    }

    #[test]
    fn nothing_left_means_no_payment() {
        let mut empty_draft = escrow(EscrowStatus::Draft);
        empty_draft.balances = EscrowBalances::ZERO;
        let t = changed(&empty_draft, EscrowAction::ClientReject);
        assert_eq!(t.status, EscrowStatus::Cancelled);
        assert_eq!(t.payment, None);
        assert_eq!(t.audit, vec![EscrowAudit::Cancelled]);
        assert_eq!(t.events, vec![EscrowEventKind::ClientRejected]);

        // Every milestone's payout still in flight: nothing left to release.
        let mut paid_out = escrow(EscrowStatus::Releasable);
        paid_out.balances = balances(1000, 0, 1000, 0);
        for action in [
            EscrowAction::ClientApprove,
            EscrowAction::ClientReject,
            EscrowAction::DeadlineCheck { now: at(DEADLINE) },
        ] {
            let t = changed(&paid_out, action);
            assert_eq!(t.payment, None, "{action:?}");
            assert_eq!(t.balances, paid_out.balances);
            assert!(!t.events.contains(&EscrowEventKind::PaymentPending));
        }
    }

    #[test]
    fn deadline_releases_a_delivered_escrow_as_an_approval() {
        let t = changed(
            &escrow(EscrowStatus::Releasable),
            EscrowAction::DeadlineCheck { now: at(DEADLINE) },
        );
        let approved = changed(
            &escrow(EscrowStatus::Releasable),
            EscrowAction::ClientApprove,
        );
        assert_eq!(t.status, approved.status);
        assert_eq!(t.payment, approved.payment);
        assert_eq!(t.balances, approved.balances);
        assert_eq!(t.audit, approved.audit);
        assert_eq!(
            t.events,
            vec![
                EscrowEventKind::DeadlineReleased,
                EscrowEventKind::PaymentPending
            ]
        );
    }

    #[test]
    fn the_deadline_index_holds_exactly_what_a_sweep_can_act_on() {
        use DeadlineDuty::{Alert, Release};
        let expected = [
            (EscrowStatus::Draft, None, None),
            (EscrowStatus::Funded, Some(Alert), None),
            (EscrowStatus::Releasable, Some(Release), Some(Release)),
            (EscrowStatus::Released, None, None),
            (EscrowStatus::Refunded, None, None),
            (EscrowStatus::Cancelled, None, None),
        ];
        for (status, fresh, alerted) in expected {
            assert_eq!(deadline_duty(status, false), fresh, "{status:?}");
            assert_eq!(deadline_duty(status, true), alerted, "{status:?} alerted");
            // A duty exactly where a deadline check past the deadline does
            // something: the index never hides work, nor keeps idle entries.
            let outcome = decide(
                &escrow(status),
                EscrowAction::DeadlineCheck { now: at(DEADLINE) },
            );
            match (fresh, outcome) {
                (None, Ok(EscrowOutcome::Unchanged)) => {}
                (Some(Alert), Ok(EscrowOutcome::DeadlineMissed)) => {}
                (Some(Release), Ok(EscrowOutcome::Changed(t))) => {
                    assert_eq!(t.status, EscrowStatus::Released)
                }
                (duty, outcome) => panic!("{status:?}: duty {duty:?}, outcome {outcome:?}"),
            }
        }
    }

    #[test]
    fn a_funded_escrow_past_its_deadline_pays_nobody() {
        let state = escrow(EscrowStatus::Funded);
        for now in [DEADLINE, "2031-01-01T00:00:00Z"] {
            assert_eq!(
                decide(&state, EscrowAction::DeadlineCheck { now: at(now) }),
                Ok(EscrowOutcome::DeadlineMissed)
            );
        }
        // The client may still take the money back.
        let t = changed(&state, EscrowAction::ClientReject);
        assert_eq!(t.status, EscrowStatus::Refunded);
    }

    #[test]
    fn a_milestone_payout_debits_available_and_the_last_closes() {
        let state = escrow(EscrowStatus::Funded);
        let t = changed(
            &state,
            EscrowAction::PayMilestone {
                amount: amount(250),
                last: false,
            },
        );
        assert_eq!(t.status, EscrowStatus::Funded);
        assert_eq!(t.balances, balances(1000, 350, 650, 0));
        assert_eq!(t.audit, vec![EscrowAudit::PayoutPending]);
        assert_eq!(t.events, vec![EscrowEventKind::PaymentPending]);

        let t = changed(
            &state,
            EscrowAction::PayMilestone {
                amount: amount(600),
                last: true,
            },
        );
        assert_eq!(t.status, EscrowStatus::Released);
        assert_eq!(t.balances, balances(1000, 0, 1000, 0));
        assert_eq!(
            t.audit,
            vec![EscrowAudit::PayoutPending, EscrowAudit::Released]
        );
        assert_eq!(
            t.events,
            vec![EscrowEventKind::PaymentPending, EscrowEventKind::Closed]
        );
        assert_eq!(
            t.payment,
            Some(PaymentOrder {
                kind: PaymentKind::Payout,
                amount: amount(600)
            })
        );
    }

    #[test]
    fn statuses_round_trip_and_classify() {
        for status in EscrowStatus::ALL {
            assert_eq!(EscrowStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(EscrowStatus::parse("draft"), None);
        let open: Vec<_> = EscrowStatus::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .collect();
        assert_eq!(
            open,
            [
                EscrowStatus::Draft,
                EscrowStatus::Funded,
                EscrowStatus::Releasable
            ]
        );
        let active: Vec<_> = EscrowStatus::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active, [EscrowStatus::Funded, EscrowStatus::Releasable]);
    }

    #[test]
    fn event_kinds_and_audit_actions_have_the_contract_names() {
        use EscrowEventKind as K;
        let kinds = [
            (K::Created, "CREATED"),
            (K::Deposit, "DEPOSIT"),
            (K::Delivered, "DELIVERED"),
            (K::ProofSubmitted, "PROOF_SUBMITTED"),
            (K::ProofApproved, "PROOF_APPROVED"),
            (K::ProofRejected, "PROOF_REJECTED"),
            (K::PaymentPending, "PAYMENT_PENDING"),
            (K::PaymentSent, "PAYMENT_SENT"),
            (K::PaymentSettled, "PAYMENT_SETTLED"),
            (K::PaymentFailed, "PAYMENT_FAILED"),
            (K::ClientApproved, "CLIENT_APPROVED"),
            (K::ClientRejected, "CLIENT_REJECTED"),
            (K::DeadlineReleased, "DEADLINE_RELEASED"),
            (K::DeadlineMissed, "DEADLINE_MISSED"),
            (K::Closed, "CLOSED"),
        ];
        for (kind, text) in kinds {
            assert_eq!(kind.as_str(), text);
            assert_eq!(serde_json::to_value(kind).unwrap(), text);
        }
        use EscrowAudit as A;
        let audits = [
            (A::Created, "ESCROW_CREATED"),
            (A::Deposited, "ESCROW_DEPOSITED"),
            (A::Delivered, "ESCROW_DELIVERED"),
            (A::Released, "ESCROW_RELEASED"),
            (A::Refunded, "ESCROW_REFUNDED"),
            (A::Cancelled, "ESCROW_CANCELLED"),
            (A::PayoutPending, "PAYOUT_PENDING"),
            (A::RefundPending, "REFUND_PENDING"),
            (A::UsageSpend, "USAGE_SPEND"),
        ];
        for (audit, text) in audits {
            assert_eq!(audit.as_str(), text);
        }
    }

    // --- creation ------------------------------------------------------------

    const NOW: &str = "2029-06-01T00:00:00Z";

    fn milestone(cents: i64) -> MilestoneTerms {
        MilestoneTerms {
            label: "Fondations".into(),
            amount: amount(cents),
            proof_type: "PHOTO".into(),
            geofence: Some(Geofence {
                lat: 4.3217,
                lng: 15.3125,
                radius_m: 250.0,
            }),
        }
    }

    fn terms(milestones: Option<Vec<MilestoneTerms>>) -> EscrowTerms {
        EscrowTerms {
            client_id: id(1),
            provider_id: id(2),
            amount_total: amount(1000),
            deadline_at: at(DEADLINE),
            milestones,
        }
    }

    fn fields(result: Result<(), Vec<FieldProblem>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn valid_terms_pass_with_or_without_milestones() {
        assert_eq!(check_escrow_terms(&terms(None), at(NOW)), Ok(()));
        let two = Some(vec![milestone(400), milestone(600)]);
        assert_eq!(check_escrow_terms(&terms(two), at(NOW)), Ok(()));
        let fifty = Some((0..50).map(|_| milestone(20)).collect());
        assert_eq!(check_escrow_terms(&terms(fifty), at(NOW)), Ok(()));
    }

    #[test]
    fn parties_and_deadline_are_named() {
        let mut t = terms(None);
        t.provider_id = t.client_id;
        t.deadline_at = at(NOW);
        assert_eq!(
            fields(check_escrow_terms(&t, at(NOW))),
            ["provider_id", "deadline_at"]
        );
        t.deadline_at = at("2029-05-31T23:59:59Z");
        assert!(fields(check_escrow_terms(&t, at(NOW))).contains(&"deadline_at".to_string()));
    }

    #[test]
    fn milestone_count_and_sum_are_checked() {
        for bad in [
            vec![],
            (0..51).map(|_| milestone(20)).collect(),
            vec![milestone(400), milestone(599)],
            vec![milestone(400), milestone(601)],
        ] {
            assert_eq!(
                fields(check_escrow_terms(&terms(Some(bad)), at(NOW))),
                ["milestones"]
            );
        }
        let problems = check_escrow_terms(&terms(Some(vec![milestone(1)])), at(NOW)).unwrap_err();
        assert_eq!(problems[0].problem, "amounts must add up to amount_total");
    }

    #[test]
    fn milestone_sums_cannot_overflow() {
        let mut t = terms(Some((0..50).map(|_| milestone(1)).collect()));
        for m in t.milestones.as_mut().unwrap() {
            m.amount = Money::MAX.try_into().unwrap();
        }
        t.amount_total = Money::MAX.try_into().unwrap();
        assert_eq!(fields(check_escrow_terms(&t, at(NOW))), ["milestones"]);
    }

    #[test]
    fn milestone_texts_are_bounded_in_characters() {
        let cases = [
            ("", "PHOTO", vec!["milestones[0].label"]),
            ("   ", "PHOTO", vec!["milestones[0].label"]),
            (&"é".repeat(200)[..], "PHOTO", vec![]),
            (&"é".repeat(201)[..], "PHOTO", vec!["milestones[0].label"]),
            ("Toit", "", vec!["milestones[0].proof_type"]),
            ("Toit", &"x".repeat(50)[..], vec![]),
            (
                "Toit",
                &"x".repeat(51)[..],
                vec!["milestones[0].proof_type"],
            ),
        ];
        for (label, proof_type, expected) in cases {
            let mut m = milestone(1000);
            m.label = label.to_string();
            m.proof_type = proof_type.to_string();
            let got = match check_escrow_terms(&terms(Some(vec![m])), at(NOW)) {
                Ok(()) => vec![],
                Err(problems) => problems.into_iter().map(|p| p.field).collect(),
            };
            assert_eq!(got, expected, "{label:?} {proof_type:?}");
        }
    }

    #[test]
    fn geofences_are_checked_field_by_field() {
        let ok = [
            (-90.0, -180.0, 0.001),
            (90.0, 180.0, 100_000.0),
            (0.0, 0.0, 1.0),
        ];
        for (lat, lng, radius_m) in ok {
            let mut m = milestone(1000);
            m.geofence = Some(Geofence { lat, lng, radius_m });
            assert_eq!(
                check_escrow_terms(&terms(Some(vec![m])), at(NOW)),
                Ok(()),
                "{lat} {lng} {radius_m}"
            );
        }
        let bad: [(f64, f64, f64, &[&str]); 8] = [
            (90.0001, 0.0, 1.0, &["lat"]),
            (-90.5, 0.0, 1.0, &["lat"]),
            (0.0, 180.01, 1.0, &["lng"]),
            (0.0, -181.0, 1.0, &["lng"]),
            (0.0, 0.0, 0.0, &["radius_m"]),
            (0.0, 0.0, -5.0, &["radius_m"]),
            (0.0, 0.0, 100_000.01, &["radius_m"]),
            (
                f64::NAN,
                f64::INFINITY,
                f64::NAN,
                &["lat", "lng", "radius_m"],
            ),
        ];
        for (lat, lng, radius_m, names) in bad {
            let mut m = milestone(1000);
            m.geofence = Some(Geofence { lat, lng, radius_m });
            let expected: Vec<String> = names
                .iter()
                .map(|n| format!("milestones[0].geofence.{n}"))
                .collect();
            assert_eq!(
                fields(check_escrow_terms(&terms(Some(vec![m])), at(NOW))),
                expected
            );
        }
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let mut second = milestone(600);
        second.label.clear();
        second.geofence = Some(Geofence {
            lat: 100.0,
            lng: 0.0,
            radius_m: 1.0,
        });
        let mut t = terms(Some(vec![milestone(400), second]));
        t.provider_id = t.client_id;
        assert_eq!(
            fields(check_escrow_terms(&t, at(NOW))),
            [
                "provider_id",
                "milestones[1].label",
                "milestones[1].geofence.lat"
            ]
        );
    }
}
