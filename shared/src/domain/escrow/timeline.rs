//! The kinds of an escrow's timeline: what happened to it, in the words of
//! `GET /escrows/{id}/events`. Bottom of the escrow's folder (payments and
//! the escrow's own transitions both write these).

use serde::Serialize;

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
    /// A payment's money left the escrow; the PSP has not accepted it yet.
    PaymentPending,
    /// The PSP accepted a payment (the payout dispatcher).
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
            EscrowEventKind::PaymentPending => "PAYMENT_PENDING",
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
