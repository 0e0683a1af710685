//! Payments: every payout, refund and usage spend of an escrow. A payment is
//! created PENDING, in the transaction that takes its money out of the
//! escrow; the payout dispatcher asks the PSP to pay it (accepted: SENT;
//! refused: ERROR, the money back); the PSP's word (its webhook, which may
//! come before the dispatcher's answer is recorded) settles it (terminal) or
//! fails it (ERROR). Staff may retry a failed one: PENDING again, a new
//! attempt.
//!
//! The original let any webhook overwrite any status (SETTLED → ERROR and
//! back) and never gave money back; here `apply_psp_event` is a total table
//! and a contradiction of a terminal state changes nothing.

use super::{
    balances::{BalanceDelta, EscrowBalances},
    milestone::MilestoneStatus,
    timeline::EscrowEventKind,
};
use crate::domain::{
    alert::AlertType, currency::Currency, error::ErrorCode, ids::Id, money::Amount, time::Timestamp,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentKind {
    /// To the provider: a milestone, or the remainder on release.
    Payout,
    /// Back to the client.
    Refund,
    /// To an allowed payee, from the escrow.
    UsageSpend,
}

impl PaymentKind {
    pub const ALL: [PaymentKind; 3] = [
        PaymentKind::Payout,
        PaymentKind::Refund,
        PaymentKind::UsageSpend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentKind::Payout => "PAYOUT",
            PaymentKind::Refund => "REFUND",
            PaymentKind::UsageSpend => "USAGE_SPEND",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The audit action written when a payment of this kind is created (or
    /// retried): PENDING, its money out of the escrow. A usage spend's is the
    /// spend itself (`USAGE_SPEND`, docs/api.md).
    pub fn pending_audit(self) -> &'static str {
        match self {
            PaymentKind::Payout => "PAYOUT_PENDING",
            PaymentKind::Refund => "REFUND_PENDING",
            PaymentKind::UsageSpend => "USAGE_SPEND",
        }
    }

    /// The audit action written when the PSP accepts a payment of this kind.
    pub fn sent_audit(self) -> &'static str {
        match self {
            PaymentKind::Payout => "PAYOUT_SENT",
            PaymentKind::Refund => "REFUND_SENT",
            PaymentKind::UsageSpend => "USAGE_SPEND_SENT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PaymentStatus {
    /// Its money is out of the escrow; the PSP has not accepted it yet.
    Pending,
    Sent,
    Settled,
    Error,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 4] = [
        PaymentStatus::Pending,
        PaymentStatus::Sent,
        PaymentStatus::Settled,
        PaymentStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "PENDING",
            PaymentStatus::Sent => "SENT",
            PaymentStatus::Settled => "SETTLED",
            PaymentStatus::Error => "ERROR",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// PENDING, SENT and SETTLED payments hold their amount out of
    /// `available`; only ERROR gave it back.
    pub fn holds_money(self) -> bool {
        !matches!(self, PaymentStatus::Error)
    }
}

/// A change of a payment's status, each with its effect on the escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentTransition {
    /// Created PENDING, or an ERROR payment retried: the amount leaves
    /// `available`.
    Pending,
    /// The PSP accepted it (the dispatcher): no money moves.
    Sent,
    /// The PSP paid it: no money moves (it already left `available`).
    Settled,
    /// The PSP failed it: the amount comes back to `available`.
    Failed,
}

impl PaymentTransition {
    /// The payment's status after this transition.
    pub fn status(self) -> PaymentStatus {
        match self {
            PaymentTransition::Pending => PaymentStatus::Pending,
            PaymentTransition::Sent => PaymentStatus::Sent,
            PaymentTransition::Settled => PaymentStatus::Settled,
            PaymentTransition::Failed => PaymentStatus::Error,
        }
    }

    /// The escrow's timeline entry.
    pub fn event_kind(self) -> EscrowEventKind {
        match self {
            PaymentTransition::Pending => EscrowEventKind::PaymentPending,
            PaymentTransition::Sent => EscrowEventKind::PaymentSent,
            PaymentTransition::Settled => EscrowEventKind::PaymentSettled,
            PaymentTransition::Failed => EscrowEventKind::PaymentFailed,
        }
    }

    /// The audit action on the payment.
    pub fn audit(self, kind: PaymentKind) -> &'static str {
        match self {
            PaymentTransition::Pending => kind.pending_audit(),
            PaymentTransition::Sent => kind.sent_audit(),
            PaymentTransition::Settled => "PAYMENT_SETTLED",
            PaymentTransition::Failed => "PAYMENT_FAILED",
        }
    }

    /// A milestone's status after its payout goes through this transition:
    /// PAID when its money leaves, back to APPROVED ("paid out failed") when
    /// it fails, unchanged (PAID) when the PSP accepts or settles it.
    pub fn milestone_status(self) -> Option<MilestoneStatus> {
        match self {
            PaymentTransition::Pending => Some(MilestoneStatus::Paid),
            PaymentTransition::Sent | PaymentTransition::Settled => None,
            PaymentTransition::Failed => Some(MilestoneStatus::Approved),
        }
    }
}

impl BalanceDelta {
    /// How `transition` of a payment of `kind` moves the escrow's balances.
    pub fn of(kind: PaymentKind, amount: Amount, transition: PaymentTransition) -> BalanceDelta {
        let sign = match transition {
            PaymentTransition::Pending => 1,
            PaymentTransition::Sent | PaymentTransition::Settled => return BalanceDelta::default(),
            PaymentTransition::Failed => -1,
        };
        let out = sign * amount.minor_units();
        match kind {
            PaymentKind::Payout | PaymentKind::UsageSpend => BalanceDelta {
                available: -out,
                paid: out,
                refunded: 0,
            },
            PaymentKind::Refund => BalanceDelta {
                available: -out,
                paid: 0,
                refunded: out,
            },
        }
    }
}

/// Who a payment goes to: a user (payouts, refunds) or an allowed payee
/// (usage spends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Payee {
    User { user_id: Id },
    Ref { payee_ref: String },
}

/// A payment as the API answers it (`Payment` of docs/api.md).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Payment {
    pub id: Id,
    pub escrow_id: Id,
    pub milestone_id: Option<Id>,
    pub kind: PaymentKind,
    pub payee: Payee,
    pub amount: Amount,
    pub currency: Currency,
    pub psp_ref: String,
    pub status: PaymentStatus,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A fresh reference for the PSP to echo: `PSP-<uuid>`.
pub fn new_psp_ref() -> String {
    format!("PSP-{}", uuid::Uuid::new_v4())
}

/// The event types the PSP sends, as docs/api.md names them. Exact text: the PSP
/// sends these strings, so `Payment.Settled` is just another type (Other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PspEventType {
    Settled,
    Failed,
    Other,
}

impl PspEventType {
    pub fn parse(text: &str) -> PspEventType {
        match text {
            "payment.settled" | "payment.succeeded" | "payment_succeeded" => PspEventType::Settled,
            "payment.failed" | "payment_failed" => PspEventType::Failed,
            _ => PspEventType::Other,
        }
    }
}

/// What became of one PSP event (`GET /psp/events/{id}`'s `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PspEventStatus {
    Queued,
    Applied,
    Ignored,
    Conflict,
}

impl PspEventStatus {
    pub const ALL: [PspEventStatus; 4] = [
        PspEventStatus::Queued,
        PspEventStatus::Applied,
        PspEventStatus::Ignored,
        PspEventStatus::Conflict,
    ];

    pub fn parse(text: &str) -> Option<PspEventStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PspEventStatus::Queued => "QUEUED",
            PspEventStatus::Applied => "APPLIED",
            PspEventStatus::Ignored => "IGNORED",
            PspEventStatus::Conflict => "CONFLICT",
        }
    }
}

/// The effect of one PSP event on one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PspOutcome {
    /// The payment goes through this transition.
    Applied(PaymentTransition),
    /// Nothing changes: the same state again, or a type we do not act on.
    Ignored,
    /// The event contradicts a terminal state: nothing changes, one
    /// `PSP_EVENT_CONFLICT` alert.
    Conflict,
    /// No payment has this `psp_ref`: nothing changes, one
    /// `PSP_UNKNOWN_REFERENCE` alert (recorded as IGNORED).
    UnknownReference,
}

impl PspOutcome {
    pub fn event_status(self) -> PspEventStatus {
        match self {
            PspOutcome::Applied(_) => PspEventStatus::Applied,
            PspOutcome::Ignored | PspOutcome::UnknownReference => PspEventStatus::Ignored,
            PspOutcome::Conflict => PspEventStatus::Conflict,
        }
    }

    /// The alert this outcome raises, once per event id.
    pub fn alert(self) -> Option<AlertType> {
        match self {
            PspOutcome::Applied(PaymentTransition::Failed) => Some(AlertType::PaymentFailed),
            PspOutcome::Applied(_) | PspOutcome::Ignored => None,
            PspOutcome::Conflict => Some(AlertType::PspEventConflict),
            PspOutcome::UnknownReference => Some(AlertType::PspUnknownReference),
        }
    }
}

/// The consumer's whole rule, for every (status, event type) pair. A PENDING
/// payment takes the PSP's word as a SENT one does: the PSP may answer its
/// webhook before the dispatcher has recorded its acceptance.
pub fn apply_psp_event(status: PaymentStatus, event: PspEventType) -> PspOutcome {
    use PaymentStatus as P;
    use PspEventType as E;
    match (status, event) {
        (P::Pending | P::Sent, E::Settled) => PspOutcome::Applied(PaymentTransition::Settled),
        (P::Pending | P::Sent, E::Failed) => PspOutcome::Applied(PaymentTransition::Failed),
        (P::Settled, E::Settled) | (P::Error, E::Failed) => PspOutcome::Ignored,
        (P::Settled, E::Failed) | (P::Error, E::Settled) => PspOutcome::Conflict,
        (_, E::Other) => PspOutcome::Ignored,
    }
}

/// As [`apply_psp_event`], for a `psp_ref` that may match no payment.
pub fn resolve_psp_event(status: Option<PaymentStatus>, event: PspEventType) -> PspOutcome {
    match status {
        Some(status) => apply_psp_event(status, event),
        None => PspOutcome::UnknownReference,
    }
}

/// What the PSP answered the payout dispatcher, as far as a payment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PspAnswer {
    Accepted,
    /// Definitive (an account closed, a payee unknown): the payment fails.
    Refused,
}

/// What the PSP's answer to attempt `answered` does to a payment read as
/// `status` at attempt `attempts`: only the same attempt, still PENDING,
/// moves (accepted: SENT; refused: ERROR, the money back). Anything else
/// means the PSP's webhook or a retry got there first: nothing to write.
pub fn apply_psp_answer(
    status: PaymentStatus,
    attempts: u32,
    answered: u32,
    answer: PspAnswer,
) -> Option<PaymentTransition> {
    if status != PaymentStatus::Pending || attempts != answered {
        return None;
    }
    Some(match answer {
        PspAnswer::Accepted => PaymentTransition::Sent,
        PspAnswer::Refused => PaymentTransition::Failed,
    })
}

/// The alert a dispatch outcome raises: a refusal is a failed payment.
pub fn psp_answer_alert(transition: PaymentTransition) -> Option<AlertType> {
    (transition == PaymentTransition::Failed).then_some(AlertType::PaymentFailed)
}

/// What `POST /payments/execute/{id}` needs to know of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentState {
    pub kind: PaymentKind,
    pub status: PaymentStatus,
    pub amount: Amount,
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// PENDING, SENT or SETTLED: 200 with the payment as it is, no second
    /// debit.
    Unchanged,
    /// A new attempt: status PENDING, a fresh `psp_ref` (the caller makes it),
    /// these attempts and balances, the milestone (if any) PAID again; all
    /// in one transaction conditional on the balances read.
    Resend {
        attempts: u32,
        balances: EscrowBalances,
    },
}

/// Why a failed payment cannot be sent again. Answered by
/// `From<RetryRefusal> for AppError` in `error.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryRefusal {
    /// A usage spend sent again would pass its payee's total limit
    /// (`domain::spend::check_total_limit`, checked before the money).
    TotalLimitReached,
    /// The escrow no longer holds the amount.
    InsufficientBalance,
}

impl RetryRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            RetryRefusal::TotalLimitReached => ErrorCode::TotalLimitReached,
            RetryRefusal::InsufficientBalance => ErrorCode::InsufficientEscrowBalance,
        }
    }
}

/// The retry of a failed payment. It does not look at the escrow's status:
/// the payment was authorised when it was first sent, and only the money
/// it needs must still be there.
pub fn retry_payment(
    payment: &PaymentState,
    balances: &EscrowBalances,
) -> Result<RetryOutcome, RetryRefusal> {
    match payment.status {
        PaymentStatus::Pending | PaymentStatus::Sent | PaymentStatus::Settled => {
            Ok(RetryOutcome::Unchanged)
        }
        PaymentStatus::Error => {
            let delta = BalanceDelta::of(payment.kind, payment.amount, PaymentTransition::Pending);
            let balances = balances
                .apply(delta)
                .ok_or(RetryRefusal::InsufficientBalance)?;
            Ok(RetryOutcome::Resend {
                attempts: payment.attempts.saturating_add(1),
                balances,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Money;

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

    /// The whole consumer table of docs/api.md, written once.
    const PSP_MATRIX: [(PaymentStatus, PspEventType, PspOutcome); 12] = {
        use PaymentStatus as P;
        use PspEventType as E;
        use PspOutcome as O;
        [
            (
                P::Pending,
                E::Settled,
                O::Applied(PaymentTransition::Settled),
            ),
            (P::Pending, E::Failed, O::Applied(PaymentTransition::Failed)),
            (P::Pending, E::Other, O::Ignored),
            (P::Sent, E::Settled, O::Applied(PaymentTransition::Settled)),
            (P::Sent, E::Failed, O::Applied(PaymentTransition::Failed)),
            (P::Sent, E::Other, O::Ignored),
            (P::Settled, E::Settled, O::Ignored),
            (P::Settled, E::Failed, O::Conflict),
            (P::Settled, E::Other, O::Ignored),
            (P::Error, E::Settled, O::Conflict),
            (P::Error, E::Failed, O::Ignored),
            (P::Error, E::Other, O::Ignored),
        ]
    };

    #[test]
    fn psp_matrix_covers_every_cell_once() {
        for status in PaymentStatus::ALL {
            for event in [
                PspEventType::Settled,
                PspEventType::Failed,
                PspEventType::Other,
            ] {
                let rows = PSP_MATRIX
                    .iter()
                    .filter(|(s, e, _)| *s == status && *e == event)
                    .count();
                assert_eq!(rows, 1, "{status:?} {event:?}");
            }
        }
    }

    #[test]
    fn psp_events_follow_the_matrix() {
        for (status, event, expected) in PSP_MATRIX {
            let outcome = apply_psp_event(status, event);
            assert_eq!(outcome, expected, "{status:?} + {event:?}");
            assert_eq!(resolve_psp_event(Some(status), event), expected);
            // Only PENDING and SENT payments ever change; terminal states
            // never move.
            assert_eq!(
                matches!(outcome, PspOutcome::Applied(_)),
                matches!(status, PaymentStatus::Pending | PaymentStatus::Sent)
                    && event != PspEventType::Other
            );
            if let PspOutcome::Applied(transition) = outcome {
                assert_ne!(transition.status(), status);
            }
        }
    }

    #[test]
    fn psp_outcomes_record_status_and_alerts() {
        use PspOutcome as O;
        let cases = [
            (
                O::Applied(PaymentTransition::Settled),
                PspEventStatus::Applied,
                None,
            ),
            (
                O::Applied(PaymentTransition::Failed),
                PspEventStatus::Applied,
                Some(AlertType::PaymentFailed),
            ),
            (O::Ignored, PspEventStatus::Ignored, None),
            (
                O::Conflict,
                PspEventStatus::Conflict,
                Some(AlertType::PspEventConflict),
            ),
            (
                O::UnknownReference,
                PspEventStatus::Ignored,
                Some(AlertType::PspUnknownReference),
            ),
        ];
        for (outcome, status, alert) in cases {
            assert_eq!(outcome.event_status(), status, "{outcome:?}");
            assert_eq!(outcome.alert(), alert, "{outcome:?}");
        }
        for event in [
            PspEventType::Settled,
            PspEventType::Failed,
            PspEventType::Other,
        ] {
            assert_eq!(resolve_psp_event(None, event), O::UnknownReference);
        }
    }

    #[test]
    fn psp_event_types_parse_exactly() {
        for text in ["payment.settled", "payment.succeeded", "payment_succeeded"] {
            assert_eq!(PspEventType::parse(text), PspEventType::Settled, "{text}");
        }
        for text in ["payment.failed", "payment_failed"] {
            assert_eq!(PspEventType::parse(text), PspEventType::Failed, "{text}");
        }
        for text in [
            "",
            "payment.created",
            "Payment.Settled",
            "payment_settled",
            " payment.failed",
            "payment.failed ",
            "refund.failed",
            "unknown",
        ] {
            assert_eq!(PspEventType::parse(text), PspEventType::Other, "{text:?}");
        }
    }

    #[test]
    fn balance_effect_of_every_kind_and_transition() {
        use PaymentKind as K;
        use PaymentTransition as T;
        // (kind, transition, available, paid, refunded) for 5.00.
        let table = [
            (K::Payout, T::Pending, -500, 500, 0),
            (K::Payout, T::Sent, 0, 0, 0),
            (K::Payout, T::Settled, 0, 0, 0),
            (K::Payout, T::Failed, 500, -500, 0),
            (K::UsageSpend, T::Pending, -500, 500, 0),
            (K::UsageSpend, T::Sent, 0, 0, 0),
            (K::UsageSpend, T::Settled, 0, 0, 0),
            (K::UsageSpend, T::Failed, 500, -500, 0),
            (K::Refund, T::Pending, -500, 0, 500),
            (K::Refund, T::Sent, 0, 0, 0),
            (K::Refund, T::Settled, 0, 0, 0),
            (K::Refund, T::Failed, 500, 0, -500),
        ];
        for (kind, transition, available, paid, refunded) in table {
            let delta = BalanceDelta::of(kind, amount(500), transition);
            assert_eq!(
                delta,
                BalanceDelta {
                    available,
                    paid,
                    refunded
                },
                "{kind:?} {transition:?}"
            );
            // Money only moves between buckets: funded never changes.
            assert_eq!(delta.available + delta.paid + delta.refunded, 0);
        }
    }

    #[test]
    fn balances_refuse_to_go_negative() {
        let start = balances(1000, 300, 700, 0);
        let out = BalanceDelta::of(PaymentKind::Payout, amount(300), PaymentTransition::Pending);
        assert_eq!(start.apply(out), Some(balances(1000, 0, 1000, 0)));
        let accepted = BalanceDelta::of(PaymentKind::Payout, amount(300), PaymentTransition::Sent);
        assert_eq!(
            accepted,
            BalanceDelta::default(),
            "the PSP's acceptance moves no money"
        );
        let too_much =
            BalanceDelta::of(PaymentKind::Payout, amount(301), PaymentTransition::Pending);
        assert_eq!(start.apply(too_much), None);
        // A failure of more than was paid is impossible, and refused.
        let failed = BalanceDelta::of(PaymentKind::Refund, amount(1), PaymentTransition::Failed);
        assert_eq!(start.apply(failed), None);
    }

    #[test]
    fn transitions_name_their_status_event_audit_and_milestone() {
        use PaymentTransition as T;
        assert_eq!(T::Pending.status(), PaymentStatus::Pending);
        assert_eq!(T::Sent.status(), PaymentStatus::Sent);
        assert_eq!(T::Settled.status(), PaymentStatus::Settled);
        assert_eq!(T::Failed.status(), PaymentStatus::Error);
        assert_eq!(T::Pending.event_kind().as_str(), "PAYMENT_PENDING");
        assert_eq!(T::Sent.event_kind().as_str(), "PAYMENT_SENT");
        assert_eq!(T::Settled.event_kind().as_str(), "PAYMENT_SETTLED");
        assert_eq!(T::Failed.event_kind().as_str(), "PAYMENT_FAILED");
        assert_eq!(T::Sent.audit(PaymentKind::Payout), "PAYOUT_SENT");
        assert_eq!(T::Sent.audit(PaymentKind::Refund), "REFUND_SENT");
        assert_eq!(T::Sent.audit(PaymentKind::UsageSpend), "USAGE_SPEND_SENT");
        assert_eq!(T::Pending.audit(PaymentKind::Payout), "PAYOUT_PENDING");
        assert_eq!(T::Pending.audit(PaymentKind::Refund), "REFUND_PENDING");
        assert_eq!(T::Pending.audit(PaymentKind::UsageSpend), "USAGE_SPEND");
        assert_eq!(T::Settled.audit(PaymentKind::Refund), "PAYMENT_SETTLED");
        assert_eq!(T::Failed.audit(PaymentKind::Payout), "PAYMENT_FAILED");
        assert_eq!(T::Pending.milestone_status(), Some(MilestoneStatus::Paid));
        assert_eq!(T::Sent.milestone_status(), None);
        assert_eq!(T::Settled.milestone_status(), None);
        assert_eq!(
            T::Failed.milestone_status(),
            Some(MilestoneStatus::Approved)
        );
    }

    #[test]
    fn only_the_answered_attempt_still_pending_takes_the_psp_answer() {
        use PaymentStatus as P;
        for status in P::ALL {
            for (attempts, answered) in [(1, 1), (2, 1), (1, 2), (3, 3)] {
                for answer in [PspAnswer::Accepted, PspAnswer::Refused] {
                    let got = apply_psp_answer(status, attempts, answered, answer);
                    let expected = match (status, attempts == answered, answer) {
                        (P::Pending, true, PspAnswer::Accepted) => Some(PaymentTransition::Sent),
                        (P::Pending, true, PspAnswer::Refused) => Some(PaymentTransition::Failed),
                        _ => None,
                    };
                    assert_eq!(got, expected, "{status:?} {attempts}/{answered} {answer:?}");
                }
            }
        }
        assert_eq!(
            psp_answer_alert(PaymentTransition::Failed),
            Some(AlertType::PaymentFailed)
        );
        assert_eq!(psp_answer_alert(PaymentTransition::Sent), None);
    }

    fn payment(kind: PaymentKind, status: PaymentStatus, cents: i64) -> PaymentState {
        PaymentState {
            kind,
            status,
            amount: amount(cents),
            attempts: 1,
        }
    }

    #[test]
    fn retry_of_pending_sent_or_settled_changes_nothing() {
        let held = balances(1000, 0, 1000, 0);
        for status in [
            PaymentStatus::Pending,
            PaymentStatus::Sent,
            PaymentStatus::Settled,
        ] {
            for kind in PaymentKind::ALL {
                assert_eq!(
                    retry_payment(&payment(kind, status, 400), &held),
                    Ok(RetryOutcome::Unchanged)
                );
            }
        }
    }

    #[test]
    fn retry_of_error_debits_again_and_counts_the_attempt() {
        let after_failure = balances(1000, 400, 600, 0);
        assert_eq!(
            retry_payment(
                &payment(PaymentKind::Payout, PaymentStatus::Error, 400),
                &after_failure
            ),
            Ok(RetryOutcome::Resend {
                attempts: 2,
                balances: balances(1000, 0, 1000, 0),
            })
        );
        assert_eq!(
            retry_payment(
                &payment(PaymentKind::Refund, PaymentStatus::Error, 400),
                &after_failure
            ),
            Ok(RetryOutcome::Resend {
                attempts: 2,
                balances: balances(1000, 0, 600, 400),
            })
        );
    }

    #[test]
    fn retry_without_the_money_is_refused() {
        // The remainder was paid elsewhere meanwhile.
        let spent = balances(1000, 399, 601, 0);
        assert_eq!(
            retry_payment(
                &payment(PaymentKind::UsageSpend, PaymentStatus::Error, 400),
                &spent
            ),
            Err(RetryRefusal::InsufficientBalance)
        );
    }

    #[test]
    fn attempts_saturate() {
        let mut p = payment(PaymentKind::Payout, PaymentStatus::Error, 1);
        p.attempts = u32::MAX;
        let outcome = retry_payment(&p, &balances(1, 1, 0, 0)).unwrap();
        assert!(matches!(
            outcome,
            RetryOutcome::Resend {
                attempts: u32::MAX,
                ..
            }
        ));
    }

    #[test]
    fn texts_round_trip_and_match_serde() {
        for kind in PaymentKind::ALL {
            assert_eq!(PaymentKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for status in [
            PspEventStatus::Queued,
            PspEventStatus::Applied,
            PspEventStatus::Ignored,
            PspEventStatus::Conflict,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(PaymentStatus::parse("sent"), None);
        assert!(PaymentStatus::Pending.holds_money());
        assert!(PaymentStatus::Sent.holds_money());
        assert!(PaymentStatus::Settled.holds_money());
        assert!(!PaymentStatus::Error.holds_money());
    }
}
