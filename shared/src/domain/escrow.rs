//! Escrows: a client's money held for a provider, paid out milestone by
//! milestone against proofs, or all at once on the client's word.
//!
//! `decide` is the whole state machine of API.md ("Escrows"): every
//! (state, action) pair not in its table is refused with
//! `ESCROW_INVALID_STATE` and changes nothing. The original accepted deposits
//! in any state, revived terminal escrows and released FUNDED escrows at the
//! deadline; none of that is reachable here.
//!
//! Balances keep `funded = available + paid + refunded` (see
//! [`EscrowBalances`]); every transition that moves money goes through
//! [`EscrowBalances::apply`], which refuses to break it.

use super::{
    error::ErrorCode,
    ids::Id,
    money::{Amount, Money},
    payment::{BalanceDelta, PaymentKind, PaymentTransition},
    time::Timestamp,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EscrowStatus {
    Draft,
    Funded,
    Releasable,
    Released,
    Refunded,
    Cancelled,
}

impl EscrowStatus {
    pub const ALL: [EscrowStatus; 6] = [
        EscrowStatus::Draft,
        EscrowStatus::Funded,
        EscrowStatus::Releasable,
        EscrowStatus::Released,
        EscrowStatus::Refunded,
        EscrowStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EscrowStatus::Draft => "DRAFT",
            EscrowStatus::Funded => "FUNDED",
            EscrowStatus::Releasable => "RELEASABLE",
            EscrowStatus::Released => "RELEASED",
            EscrowStatus::Refunded => "REFUNDED",
            EscrowStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<EscrowStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Not yet settled one way or the other: the deadline sweep and the
    /// milestone closure only concern these.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            EscrowStatus::Draft | EscrowStatus::Funded | EscrowStatus::Releasable
        )
    }

    /// Money is held and work is under way: proofs and milestone payouts
    /// are accepted only then.
    pub fn is_active(self) -> bool {
        matches!(self, EscrowStatus::Funded | EscrowStatus::Releasable)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MilestoneStatus {
    /// Waiting for a proof (again, after a rejected one).
    Waiting,
    /// A proof awaits the client's (or staff's) decision.
    PendingReview,
    /// Approved but its payout failed at the PSP: paid again by a retry.
    Approved,
    /// Its payout is SENT or SETTLED.
    Paid,
}

impl MilestoneStatus {
    pub const ALL: [MilestoneStatus; 4] = [
        MilestoneStatus::Waiting,
        MilestoneStatus::PendingReview,
        MilestoneStatus::Approved,
        MilestoneStatus::Paid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MilestoneStatus::Waiting => "WAITING",
            MilestoneStatus::PendingReview => "PENDING_REVIEW",
            MilestoneStatus::Approved => "APPROVED",
            MilestoneStatus::Paid => "PAID",
        }
    }

    pub fn parse(text: &str) -> Option<MilestoneStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The money of one escrow. `amount_paid` counts PAYOUT and USAGE_SPEND
/// payments that are SENT or SETTLED, `amount_refunded` REFUND payments in
/// those states; a failed payment gives its amount back to `available`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowBalances {
    pub funded: Money,
    pub available: Money,
    pub paid: Money,
    pub refunded: Money,
}

impl EscrowBalances {
    /// A new escrow: nothing deposited.
    pub const ZERO: EscrowBalances = EscrowBalances {
        funded: Money::ZERO,
        available: Money::ZERO,
        paid: Money::ZERO,
        refunded: Money::ZERO,
    };

    /// `funded = available + paid + refunded`, the contract's money invariant.
    pub fn is_consistent(&self) -> bool {
        self.funded.minor_units()
            == self.available.minor_units() + self.paid.minor_units() + self.refunded.minor_units()
    }

    /// The balances after a payment transition, or `None` if any would go
    /// below zero (for a debit: not enough available) or above `Money::MAX`.
    pub fn apply(&self, delta: BalanceDelta) -> Option<EscrowBalances> {
        fn shift(money: Money, by: i64) -> Option<Money> {
            Money::from_minor_units(money.minor_units().checked_add(by)?).ok()
        }
        Some(EscrowBalances {
            funded: self.funded,
            available: shift(self.available, delta.available)?,
            paid: shift(self.paid, delta.paid)?,
            refunded: shift(self.refunded, delta.refunded)?,
        })
    }

    /// A deposit: it is both funded and available.
    fn deposit(&self, amount: Amount) -> Option<EscrowBalances> {
        Some(EscrowBalances {
            funded: self.funded.checked_add(amount)?,
            available: self.available.checked_add(amount)?,
            ..*self
        })
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
    /// `last`: every other milestone of the escrow is already PAID (see
    /// [`pays_last_milestone`]), so this payout closes the escrow.
    PayMilestone { amount: Amount, last: bool },
}

/// A payment the transition creates, SENT, in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentOrder {
    pub kind: PaymentKind,
    pub amount: Amount,
}

/// Audit actions written by escrow transitions (entity `escrow`, or
/// `payment` for the `*_SENT` ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EscrowAudit {
    Created,
    Deposited,
    Delivered,
    Released,
    Refunded,
    Cancelled,
    PayoutSent,
    RefundSent,
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
            EscrowAudit::PayoutSent => "PAYOUT_SENT",
            EscrowAudit::RefundSent => "REFUND_SENT",
        }
    }
}

/// The kinds of an escrow's timeline (`GET /escrows/{id}/events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EscrowEventKind {
    Created,
    Deposit,
    Delivered,
    ProofSubmitted,
    ProofApproved,
    ProofRejected,
    PaymentSent,
    PaymentSettled,
    PaymentFailed,
    ClientApproved,
    ClientRejected,
    DeadlineReleased,
    DeadlineMissed,
    Closed,
}

impl EscrowEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EscrowEventKind::Created => "CREATED",
            EscrowEventKind::Deposit => "DEPOSIT",
            EscrowEventKind::Delivered => "DELIVERED",
            EscrowEventKind::ProofSubmitted => "PROOF_SUBMITTED",
            EscrowEventKind::ProofApproved => "PROOF_APPROVED",
            EscrowEventKind::ProofRejected => "PROOF_REJECTED",
            EscrowEventKind::PaymentSent => "PAYMENT_SENT",
            EscrowEventKind::PaymentSettled => "PAYMENT_SETTLED",
            EscrowEventKind::PaymentFailed => "PAYMENT_FAILED",
            EscrowEventKind::ClientApproved => "CLIENT_APPROVED",
            EscrowEventKind::ClientRejected => "CLIENT_REJECTED",
            EscrowEventKind::DeadlineReleased => "DEADLINE_RELEASED",
            EscrowEventKind::DeadlineMissed => "DEADLINE_MISSED",
            EscrowEventKind::Closed => "CLOSED",
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

/// The escrow state machine of API.md. Refusals change nothing.
pub fn decide(state: &EscrowState, action: EscrowAction) -> Result<EscrowOutcome, ErrorCode> {
    use EscrowAction as A;
    use EscrowStatus as S;
    let invalid = Err(ErrorCode::EscrowInvalidState);
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
    }
}

fn deposit(state: &EscrowState, amount: Amount) -> Result<EscrowOutcome, ErrorCode> {
    let missing = state.total.minor_units() - state.balances.funded.minor_units();
    if amount.minor_units() > missing {
        return Err(ErrorCode::DepositExceedsTotal);
    }
    let balances = state
        .balances
        .deposit(amount)
        .ok_or(ErrorCode::DepositExceedsTotal)?;
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
            EscrowAudit::PayoutSent,
            EscrowAudit::Released,
        ),
        EscrowStatus::Refunded => (
            PaymentKind::Refund,
            EscrowAudit::RefundSent,
            EscrowAudit::Refunded,
        ),
        _ => (
            PaymentKind::Refund,
            EscrowAudit::RefundSent,
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
        events.push(EscrowEventKind::PaymentSent);
    }
    change(state, to, payment, audits, events)
}

fn pay_milestone(
    state: &EscrowState,
    amount: Amount,
    last: bool,
) -> Result<EscrowOutcome, ErrorCode> {
    let order = PaymentOrder {
        kind: PaymentKind::Payout,
        amount,
    };
    let balances = debit(&state.balances, order).ok_or(ErrorCode::InsufficientEscrowBalance)?;
    let mut audit = vec![EscrowAudit::PayoutSent];
    let mut events = vec![EscrowEventKind::PaymentSent];
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

fn debit(balances: &EscrowBalances, order: PaymentOrder) -> Option<EscrowBalances> {
    balances.apply(BalanceDelta::of(
        order.kind,
        order.amount,
        PaymentTransition::Sent,
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

/// A milestone's place in its escrow, as the sequence rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MilestoneSlot {
    pub idx: u32,
    pub status: MilestoneStatus,
}

/// The current milestone: the lowest idx not PAID (proofs go in order).
pub fn current_milestone(milestones: &[MilestoneSlot]) -> Option<MilestoneSlot> {
    milestones
        .iter()
        .filter(|m| m.status != MilestoneStatus::Paid)
        .min_by_key(|m| m.idx)
        .copied()
}

/// May a proof be submitted (or an upload prepared) for milestone `idx`?
/// The contract's order: unknown milestone, escrow state, none left open,
/// not the current one, current but not WAITING.
pub fn check_proof_target(
    escrow: EscrowStatus,
    milestones: &[MilestoneSlot],
    idx: u32,
) -> Result<(), ErrorCode> {
    let target = milestones
        .iter()
        .find(|m| m.idx == idx)
        .ok_or(ErrorCode::MilestoneNotFound)?;
    if !escrow.is_active() {
        return Err(ErrorCode::EscrowInvalidState);
    }
    let current = current_milestone(milestones).ok_or(ErrorCode::NoOpenMilestone)?;
    if current.idx != target.idx {
        return Err(ErrorCode::SequenceError);
    }
    if target.status != MilestoneStatus::Waiting {
        return Err(ErrorCode::MilestoneNotWaiting);
    }
    Ok(())
}

/// Paying milestone `idx` leaves every milestone PAID: the escrow closes.
pub fn pays_last_milestone(milestones: &[MilestoneSlot], idx: u32) -> bool {
    milestones.iter().any(|m| m.idx == idx)
        && milestones
            .iter()
            .all(|m| m.idx == idx || m.status == MilestoneStatus::Paid)
}

/// A retried milestone payout closes the escrow only if it is still open
/// (a closed escrow is never reopened nor closed twice).
pub fn closes_on_retry(escrow: EscrowStatus, milestones: &[MilestoneSlot], idx: u32) -> bool {
    escrow.is_open() && pays_last_milestone(milestones, idx)
}

// ---------------------------------------------------------------------------
// Creation

pub const MAX_MILESTONES: usize = 50;
pub const MAX_LABEL_CHARS: usize = 200;
pub const MAX_PROOF_TYPE_CHARS: usize = 50;
pub const MAX_GEOFENCE_RADIUS_M: f64 = 100_000.0;

/// Where a PHOTO proof must be taken. Degrees and metres are geometry, not
/// money, so `f64` is right here.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

fn geofence_problems(fence: Geofence) -> Vec<(&'static str, &'static str)> {
    let mut problems = Vec::new();
    // NaN fails every range test, so it is refused too.
    if !(-90.0..=90.0).contains(&fence.lat) {
        problems.push(("lat", "must be between -90 and 90"));
    }
    if !(-180.0..=180.0).contains(&fence.lng) {
        problems.push(("lng", "must be between -180 and 180"));
    }
    if !(fence.radius_m > 0.0 && fence.radius_m <= MAX_GEOFENCE_RADIUS_M) {
        problems.push(("radius_m", "must be greater than 0 and at most 100000"));
    }
    problems
}

