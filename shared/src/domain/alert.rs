//! Alert types (`GET /alerts?type=`). Each is raised once per cause; the
//! store guards that, the domain only says which one a decision raises.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertType {
    UnauthorizedTransferAttempt,
    EscrowDeadlineMissed,
    PspEventConflict,
    PspUnknownReference,
    PaymentFailed,
    /// A payment PENDING for longer than the dispatcher should ever take.
    PayoutStuck,
    /// A stored balance that its records do not add up to (the ledger check).
    LedgerMismatch,
    /// The PSP's settlement report and our payments disagree.
    SettlementMismatch,
}

impl AlertType {
    pub const ALL: [AlertType; 8] = [
        AlertType::UnauthorizedTransferAttempt,
        AlertType::EscrowDeadlineMissed,
        AlertType::PspEventConflict,
        AlertType::PspUnknownReference,
        AlertType::PaymentFailed,
        AlertType::PayoutStuck,
        AlertType::LedgerMismatch,
        AlertType::SettlementMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertType::UnauthorizedTransferAttempt => "UNAUTHORIZED_TRANSFER_ATTEMPT",
            AlertType::EscrowDeadlineMissed => "ESCROW_DEADLINE_MISSED",
            AlertType::PspEventConflict => "PSP_EVENT_CONFLICT",
            AlertType::PspUnknownReference => "PSP_UNKNOWN_REFERENCE",
            AlertType::PaymentFailed => "PAYMENT_FAILED",
            AlertType::PayoutStuck => "PAYOUT_STUCK",
            AlertType::LedgerMismatch => "LEDGER_MISMATCH",
            AlertType::SettlementMismatch => "SETTLEMENT_MISMATCH",
        }
    }

    /// For the `type` filter of `GET /alerts`.
    pub fn parse(text: &str) -> Option<AlertType> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_matches_serde() {
        for alert in AlertType::ALL {
            assert_eq!(AlertType::parse(alert.as_str()), Some(alert));
            assert_eq!(
                serde_json::to_value(alert).unwrap(),
                serde_json::json!(alert.as_str())
            );
        }
        assert_eq!(AlertType::parse("payment_failed"), None);
    }
}
