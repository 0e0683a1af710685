//! Milestones: an escrow's payout schedule, proved one after the other.
//!
//! A milestone is WAITING for a proof, PENDING_REVIEW while a proof awaits a
//! decision (a rejection puts it back to WAITING), PAID once its payout is
//! sent, and APPROVED when that payout failed at the PSP and awaits a retry.
//! (The original left a rejected milestone REJECTED for ever, so the next
//! one became current and the rejected work was never paid.)

use super::status::EscrowStatus;
use crate::domain::error::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Why a milestone does not take a proof (or an upload) now. Answered by
/// `From<ProofTargetRefusal> for AppError` in `error.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofTargetRefusal {
    /// The escrow has no milestone of that idx (or is unknown).
    MilestoneNotFound,
    /// The escrow is not FUNDED or RELEASABLE.
    EscrowInvalidState,
    /// Every milestone is paid.
    NoOpenMilestone,
    /// Not the current milestone: proofs go in order.
    NotCurrent,
    /// The current milestone, but not WAITING for a proof.
    NotWaiting,
}

impl ProofTargetRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            ProofTargetRefusal::MilestoneNotFound => ErrorCode::MilestoneNotFound,
            ProofTargetRefusal::EscrowInvalidState => ErrorCode::EscrowInvalidState,
            ProofTargetRefusal::NoOpenMilestone => ErrorCode::NoOpenMilestone,
            ProofTargetRefusal::NotCurrent => ErrorCode::SequenceError,
            ProofTargetRefusal::NotWaiting => ErrorCode::MilestoneNotWaiting,
        }
    }
}

/// May a proof be submitted (or an upload prepared) for milestone `idx`?
/// The contract's order: unknown milestone, escrow state, none left open,
/// not the current one, current but not WAITING.
pub fn check_proof_target(
    escrow: EscrowStatus,
    milestones: &[MilestoneSlot],
    idx: u32,
) -> Result<(), ProofTargetRefusal> {
    let target = milestones
        .iter()
        .find(|m| m.idx == idx)
        .ok_or(ProofTargetRefusal::MilestoneNotFound)?;
    if !escrow.is_active() {
        return Err(ProofTargetRefusal::EscrowInvalidState);
    }
    let current = current_milestone(milestones).ok_or(ProofTargetRefusal::NoOpenMilestone)?;
    if current.idx != target.idx {
        return Err(ProofTargetRefusal::NotCurrent);
    }
    if target.status != MilestoneStatus::Waiting {
        return Err(ProofTargetRefusal::NotWaiting);
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

/// What another milestone must still be when a payout commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MustBe {
    Paid,
    Unpaid,
}

/// A milestone payout as decided on a read: whether it closes the escrow,
/// and what each other milestone must still be at the commit, by idx (a
/// map, so a transaction never names one milestone twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutPlan {
    pub last: bool,
    pub checks: BTreeMap<u32, MustBe>,
}

/// Why milestone `idx` cannot be paid now. Answered by
/// `From<PayoutRefusal> for AppError` in `error.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutRefusal {
    /// The escrow has no milestone of that idx.
    MilestoneNotFound,
    /// It is PAID already.
    AlreadyPaid,
    /// An earlier milestone is not PAID (its payout failed at the PSP).
    EarlierUnpaid,
}

impl PayoutRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            PayoutRefusal::MilestoneNotFound => ErrorCode::MilestoneNotFound,
            PayoutRefusal::AlreadyPaid => ErrorCode::MilestoneNotWaiting,
            PayoutRefusal::EarlierUnpaid => ErrorCode::EarlierMilestoneUnpaid,
        }
    }
}

/// Paying milestone `idx`: unknown → `MILESTONE_NOT_FOUND`; already PAID →
/// `MILESTONE_NOT_WAITING`; an earlier one not PAID (its payout failed at
/// the PSP and awaits a retry) → `EARLIER_MILESTONE_UNPAID`: milestones are
/// paid in order, at the commit too. The checks: every earlier milestone
/// PAID; if this one is the last, every other PAID; else the first later
/// one still unpaid, so that of two racing payouts the later sees it is
/// the last.
pub fn plan_payout(milestones: &[MilestoneSlot], idx: u32) -> Result<PayoutPlan, PayoutRefusal> {
    let target = milestones
        .iter()
        .find(|m| m.idx == idx)
        .ok_or(PayoutRefusal::MilestoneNotFound)?;
    if target.status == MilestoneStatus::Paid {
        return Err(PayoutRefusal::AlreadyPaid);
    }
    let mut others: Vec<&MilestoneSlot> = milestones.iter().filter(|m| m.idx != idx).collect();
    others.sort_by_key(|m| m.idx);
    if others
        .iter()
        .any(|m| m.idx < idx && m.status != MilestoneStatus::Paid)
    {
        return Err(PayoutRefusal::EarlierUnpaid);
    }
    let last = pays_last_milestone(milestones, idx);
    let mut checks: BTreeMap<u32, MustBe> = others
        .iter()
        .filter(|m| m.idx < idx)
        .map(|m| (m.idx, MustBe::Paid))
        .collect();
    let later = others.iter().filter(|m| m.idx > idx);
    if last {
        checks.extend(later.map(|m| (m.idx, MustBe::Paid)));
    } else if let Some(unpaid) = later
        .into_iter()
        .find(|m| m.status != MilestoneStatus::Paid)
    {
        checks.insert(unpaid.idx, MustBe::Unpaid);
    }
    Ok(PayoutPlan { last, checks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(statuses: &[MilestoneStatus]) -> Vec<MilestoneSlot> {
        statuses
            .iter()
            .enumerate()
            .map(|(i, &status)| MilestoneSlot {
                idx: i as u32 + 1,
                status,
            })
            .collect()
    }

    #[test]
    fn the_current_milestone_is_the_lowest_unpaid() {
        use MilestoneStatus as M;
        assert_eq!(current_milestone(&[]), None);
        assert_eq!(current_milestone(&slots(&[M::Paid, M::Paid])), None);
        assert_eq!(
            current_milestone(&slots(&[M::Paid, M::Approved, M::Waiting])).map(|m| m.idx),
            Some(2)
        );
        // Order of the slice does not matter, only idx.
        let mut reversed = slots(&[M::Waiting, M::Waiting, M::Waiting]);
        reversed.reverse();
        assert_eq!(current_milestone(&reversed).map(|m| m.idx), Some(1));
    }

    #[test]
    fn proof_targets_follow_the_contract_order() {
        use EscrowStatus as S;
        use MilestoneStatus as M;
        type Case<'a> = (S, &'a [M], u32, Result<(), ProofTargetRefusal>);
        let cases: [Case; 14] = [
            (S::Funded, &[M::Waiting, M::Waiting], 1, Ok(())),
            (S::Releasable, &[M::Paid, M::Waiting], 2, Ok(())),
            (
                S::Funded,
                &[M::Waiting],
                2,
                Err(ProofTargetRefusal::MilestoneNotFound),
            ),
            (
                S::Funded,
                &[M::Waiting],
                0,
                Err(ProofTargetRefusal::MilestoneNotFound),
            ),
            (
                S::Funded,
                &[],
                1,
                Err(ProofTargetRefusal::MilestoneNotFound),
            ),
            // Unknown milestone wins over the escrow's state.
            (
                S::Draft,
                &[M::Waiting],
                3,
                Err(ProofTargetRefusal::MilestoneNotFound),
            ),
            (
                S::Draft,
                &[M::Waiting],
                1,
                Err(ProofTargetRefusal::EscrowInvalidState),
            ),
            (
                S::Released,
                &[M::Paid],
                1,
                Err(ProofTargetRefusal::EscrowInvalidState),
            ),
            (
                S::Refunded,
                &[M::Waiting],
                1,
                Err(ProofTargetRefusal::EscrowInvalidState),
            ),
            (
                S::Cancelled,
                &[M::Waiting],
                1,
                Err(ProofTargetRefusal::EscrowInvalidState),
            ),
            (
                S::Funded,
                &[M::Paid, M::Paid],
                1,
                Err(ProofTargetRefusal::NoOpenMilestone),
            ),
            (
                S::Funded,
                &[M::Waiting, M::Waiting],
                2,
                Err(ProofTargetRefusal::NotCurrent),
            ),
            // A paid milestone is not current either.
            (
                S::Funded,
                &[M::Paid, M::Waiting],
                1,
                Err(ProofTargetRefusal::NotCurrent),
            ),
            (
                S::Funded,
                &[M::PendingReview, M::Waiting],
                1,
                Err(ProofTargetRefusal::NotWaiting),
            ),
        ];
        for (escrow, statuses, idx, expected) in cases {
            assert_eq!(
                check_proof_target(escrow, &slots(statuses), idx),
                expected,
                "{escrow:?} {statuses:?} {idx}"
            );
        }
        // A failed payout puts the milestone back to APPROVED: it waits
        // for a retry, not for another proof.
        assert_eq!(
            check_proof_target(S::Funded, &slots(&[M::Approved, M::Waiting]), 1),
            Err(ProofTargetRefusal::NotWaiting)
        );
    }

    #[test]
    fn the_last_milestone_is_the_one_all_others_are_paid_before() {
        use MilestoneStatus as M;
        let ms = slots(&[M::Paid, M::PendingReview, M::Waiting]);
        assert!(!pays_last_milestone(&ms, 2));
        assert!(!pays_last_milestone(&ms, 4));
        let ms = slots(&[M::Paid, M::Paid, M::PendingReview]);
        assert!(pays_last_milestone(&ms, 3));
        assert!(pays_last_milestone(&slots(&[M::Waiting]), 1));
        assert!(!pays_last_milestone(&[], 1));
    }

    #[test]
    fn statuses_round_trip() {
        for status in MilestoneStatus::ALL {
            assert_eq!(MilestoneStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(MilestoneStatus::parse("waiting"), None);
    }
}
