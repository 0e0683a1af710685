//! Restricted transfers (`/allowlist`, `/certified`, `/transactions`): a
//! sender may send to a receiver it allowlisted, or to any certified
//! receiver. A refusal raises one `UNAUTHORIZED_TRANSFER_ATTEMPT` alert; the
//! store makes "one" hold under retries and concurrent duplicates.

use super::{
    alert::AlertType, currency::Currency, error::ErrorCode, ids::Id, money::Amount, time::Timestamp,
};
use serde::Serialize;

/// A certification level (`POST /certified`), accepted in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CertificationLevel {
    Basic,
    Gold,
}

impl CertificationLevel {
    pub fn parse(text: &str) -> Option<CertificationLevel> {
        match text.to_ascii_uppercase().as_str() {
            "BASIC" => Some(CertificationLevel::Basic),
            "GOLD" => Some(CertificationLevel::Gold),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CertificationLevel::Basic => "BASIC",
            CertificationLevel::Gold => "GOLD",
        }
    }

    pub fn from_json(value: &serde_json::Value) -> Result<CertificationLevel, &'static str> {
        value
            .as_str()
            .and_then(CertificationLevel::parse)
            .ok_or("must be BASIC or GOLD")
    }
}

/// Two different users: an allowlist entry or a transfer. The same user on
/// both sides is refused at parse time (422), as the contract says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counterparties {
    pub from: Id,
    pub to: Id,
}

impl Counterparties {
    pub fn new(from: Id, to: Id) -> Option<Counterparties> {
        (from != to).then_some(Counterparties { from, to })
    }
}

/// A transfer as the caller asks for it, already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRequest {
    pub parties: Counterparties,
    pub amount: Amount,
    pub currency: Currency,
}

impl TransferRequest {
    pub fn sender_id(&self) -> Id {
        self.parties.from
    }

    pub fn receiver_id(&self) -> Id {
        self.parties.to
    }

    /// The transaction an authorised request records.
    pub fn record(&self, id: Id, now: Timestamp) -> Transfer {
        Transfer {
            id,
            sender_id: self.sender_id(),
            receiver_id: self.receiver_id(),
            amount: self.amount,
            currency: self.currency,
            status: TransferStatus::Completed,
            created_at: now,
            updated_at: now,
        }
    }

    /// The request in canonical form, for idempotency fingerprints.
    pub fn canonical(&self) -> serde_json::Value {
        serde_json::json!({
            "sender_id": self.sender_id(),
            "receiver_id": self.receiver_id(),
            "amount": self.amount,
            "currency": self.currency,
        })
    }
}

/// What the store found that may authorise a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransferGrants {
    /// The sender allowlisted the receiver (directional).
    pub allowlisted: bool,
    /// The receiver holds a certification, of any level.
    pub receiver_certified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TransferStatus {
    Completed,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Transfer {
    pub id: Id,
    pub sender_id: Id,
    pub receiver_id: Id,
    pub amount: Amount,
    pub currency: Currency,
    pub status: TransferStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Transfer {
    pub fn parties(&self) -> [Id; 2] {
        [self.sender_id, self.receiver_id]
    }
}

/// The refusal of a transfer, and the alert it raises.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRefusal {
    pub sender_id: Id,
    pub attempted_receiver_id: Id,
    pub amount: Amount,
}

impl TransferRefusal {
    pub const MESSAGE: &'static str = "Receiver is not allowlisted or certified.";
    pub const ALERT: AlertType = AlertType::UnauthorizedTransferAttempt;

    pub fn code(&self) -> ErrorCode {
        ErrorCode::UnauthorizedTransfer
    }

    /// The alert's payload (docs/api.md, Alerts).
    pub fn alert_payload(&self) -> serde_json::Value {
        serde_json::json!({
            "sender_id": self.sender_id,
            "attempted_receiver_id": self.attempted_receiver_id,
            "amount": self.amount,
        })
    }
}

/// Decides a transfer: allowed iff the sender allowlisted the receiver or the
/// receiver is certified.
pub fn authorize_transfer(
    request: &TransferRequest,
    grants: TransferGrants,
) -> Result<(), TransferRefusal> {
    if grants.allowlisted || grants.receiver_certified {
        return Ok(());
    }
    Err(TransferRefusal {
        sender_id: request.sender_id(),
        attempted_receiver_id: request.receiver_id(),
        amount: request.amount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Id {
        Id::new(n).unwrap()
    }

    fn request() -> TransferRequest {
        TransferRequest {
            parties: Counterparties::new(id(1), id(2)).unwrap(),
            amount: Amount::from_minor_units(10_045).unwrap(),
            currency: Currency::usd(),
        }
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-27T10:00:00Z").unwrap()
    }

    #[test]
    fn levels_parse_in_any_case_and_nothing_else() {
        for (text, level) in [
            ("BASIC", CertificationLevel::Basic),
            ("basic", CertificationLevel::Basic),
            ("Gold", CertificationLevel::Gold),
            ("gOLD", CertificationLevel::Gold),
        ] {
            assert_eq!(CertificationLevel::parse(text), Some(level), "{text}");
            assert_eq!(CertificationLevel::parse(level.as_str()), Some(level));
        }
        for bad in ["", "SILVER", " GOLD", "GOLD ", "BASIC1"] {
            assert_eq!(CertificationLevel::parse(bad), None, "{bad:?}");
        }
        assert!(CertificationLevel::from_json(&serde_json::json!(1)).is_err());
        assert_eq!(
            serde_json::to_value(CertificationLevel::Gold).unwrap(),
            serde_json::json!("GOLD")
        );
    }

    #[test]
    fn a_user_is_never_its_own_counterparty() {
        assert_eq!(Counterparties::new(id(3), id(3)), None);
        assert_eq!(
            Counterparties::new(id(3), id(4)),
            Some(Counterparties {
                from: id(3),
                to: id(4)
            })
        );
    }

    #[test]
    fn every_combination_of_grants() {
        for (allowlisted, receiver_certified, allowed) in [
            (false, false, false),
            (true, false, true),
            (false, true, true),
            (true, true, true),
        ] {
            let grants = TransferGrants {
                allowlisted,
                receiver_certified,
            };
            let decision = authorize_transfer(&request(), grants);
            assert_eq!(decision.is_ok(), allowed, "{grants:?}");
        }
    }

    #[test]
    fn an_allowed_transfer_records_the_request() {
        let transfer = request().record(id(9), now());
        assert_eq!(
            serde_json::to_value(&transfer).unwrap(),
            serde_json::json!({
                "id": 9, "sender_id": 1, "receiver_id": 2, "amount": "100.45",
                "currency": "USD", "status": "COMPLETED",
                "created_at": "2026-11-27T10:00:00.000000Z",
                "updated_at": "2026-11-27T10:00:00.000000Z",
            })
        );
    }

    #[test]
    fn a_refusal_names_the_attempt() {
        let refusal = authorize_transfer(&request(), TransferGrants::default()).unwrap_err();
        assert_eq!(refusal.code(), ErrorCode::UnauthorizedTransfer);
        assert_eq!(refusal.code().status(), 403);
        assert_eq!(
            refusal.alert_payload(),
            serde_json::json!({"sender_id": 1, "attempted_receiver_id": 2, "amount": "100.45"})
        );
    }

    #[test]
    fn the_canonical_request_ignores_how_the_amount_was_written() {
        let with = |amount: serde_json::Value| TransferRequest {
            amount: Amount::from_json(&amount).unwrap(),
            ..request()
        };
        let canonical = request().canonical();
        assert_eq!(with(serde_json::json!(100.45)).canonical(), canonical);
        assert_eq!(with(serde_json::json!("100.45")).canonical(), canonical);
        assert_ne!(with(serde_json::json!("100.46")).canonical(), canonical);
    }
}
