//! Where an escrow is: its status, the bottom of the escrow's folder (it
//! imports nothing of the domain). What may move it from one status to
//! another is `decide`, in the folder's `mod.rs`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
