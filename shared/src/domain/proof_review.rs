//! A submitted proof as stored and answered (`Proof` of docs/api.md), and the
//! decision rule of `POST /proofs/{id}/decision`. Pure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{error::ErrorCode, ids::Id, time::Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProofStatus {
    Pending,
    Approved,
    Rejected,
}

impl ProofStatus {
    pub const ALL: [ProofStatus; 3] = [
        ProofStatus::Pending,
        ProofStatus::Approved,
        ProofStatus::Rejected,
    ];

    pub fn parse(text: &str) -> Option<ProofStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProofStatus::Pending => "PENDING",
            ProofStatus::Approved => "APPROVED",
            ProofStatus::Rejected => "REJECTED",
        }
    }
}

/// `Proof` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Proof {
    pub id: Id,
    pub escrow_id: Id,
    pub milestone_id: Id,
    pub milestone_idx: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub storage_url: String,
    pub sha256: String,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// `{taken_at, gps_lat, gps_lng, distance_m}` (a `proof::PhotoEvidence`) or null.
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
    pub status: ProofStatus,
    pub review_reason: Option<String>,
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a reviewer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    /// `approved` or `rejected`, any case.
    pub fn parse(text: &str) -> Option<Decision> {
        if text.eq_ignore_ascii_case("approved") {
            Some(Decision::Approve)
        } else if text.eq_ignore_ascii_case("rejected") {
            Some(Decision::Reject)
        } else {
            None
        }
    }
}

/// What a decision does to a proof in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// PENDING: the decision is applied (approve pays the milestone).
    Apply,
    /// The same decision again: 200, nothing changes.
    Unchanged,
}

/// Why a decision on a proof is refused: it was decided the other way
/// already. Answered (code, message) by `From<DecisionRefusal> for AppError`
/// in `error.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionRefusal {
    /// Rejecting an APPROVED proof.
    AlreadyApproved,
    /// Approving a REJECTED proof.
    AlreadyRejected,
}

impl DecisionRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            DecisionRefusal::AlreadyApproved => ErrorCode::ProofAlreadyApproved,
            DecisionRefusal::AlreadyRejected => ErrorCode::ProofAlreadyRejected,
        }
    }
}

/// Same decision again → unchanged; the other one → 409.
pub fn decide_proof(
    status: ProofStatus,
    decision: Decision,
) -> Result<DecisionOutcome, DecisionRefusal> {
    match (status, decision) {
        (ProofStatus::Pending, _) => Ok(DecisionOutcome::Apply),
        (ProofStatus::Approved, Decision::Approve) | (ProofStatus::Rejected, Decision::Reject) => {
            Ok(DecisionOutcome::Unchanged)
        }
        (ProofStatus::Approved, Decision::Reject) => Err(DecisionRefusal::AlreadyApproved),
        (ProofStatus::Rejected, Decision::Approve) => Err(DecisionRefusal::AlreadyRejected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_from_their_wire_names_only() {
        for status in ProofStatus::ALL {
            assert_eq!(ProofStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(ProofStatus::parse("pending"), None);
        assert_eq!(ProofStatus::parse(""), None);
    }

    #[test]
    fn decisions_parse_in_any_case() {
        for text in ["approved", "APPROVED", "Approved"] {
            assert_eq!(Decision::parse(text), Some(Decision::Approve));
        }
        for text in ["rejected", "REJECTED", "rEjEcTeD"] {
            assert_eq!(Decision::parse(text), Some(Decision::Reject));
        }
        for text in ["approve", "reject", "", " approved"] {
            assert_eq!(Decision::parse(text), None, "{text}");
        }
    }

    #[test]
    fn the_same_decision_is_unchanged_the_other_is_refused() {
        use Decision::*;
        use ProofStatus::*;
        assert_eq!(decide_proof(Pending, Approve), Ok(DecisionOutcome::Apply));
        assert_eq!(decide_proof(Pending, Reject), Ok(DecisionOutcome::Apply));
        assert_eq!(
            decide_proof(Approved, Approve),
            Ok(DecisionOutcome::Unchanged)
        );
        assert_eq!(
            decide_proof(Rejected, Reject),
            Ok(DecisionOutcome::Unchanged)
        );
        assert_eq!(
            decide_proof(Approved, Reject),
            Err(DecisionRefusal::AlreadyApproved)
        );
        assert_eq!(
            decide_proof(Rejected, Approve),
            Err(DecisionRefusal::AlreadyRejected)
        );
    }
}
