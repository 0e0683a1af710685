//! Usage mandates: a sender funds a balance that one beneficiary may spend,
//! in one currency, before a date, optionally only at one merchant or category.
//!
//! States: ACTIVE → CONSUMED (a purchase brings the balance to exactly zero)
//! | EXPIRED (past `expires_at`). Both are terminal.

use super::{
    currency::Currency,
    error::ErrorCode,
    ids::Id,
    money::{Amount, Money},
    time::Timestamp,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum MandateStatus {
    Active,
    Consumed,
    Expired,
}

impl MandateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MandateStatus::Active => "ACTIVE",
            MandateStatus::Consumed => "CONSUMED",
            MandateStatus::Expired => "EXPIRED",
        }
    }

    pub fn parse(text: &str) -> Option<MandateStatus> {
        match text {
            "ACTIVE" => Some(MandateStatus::Active),
            "CONSUMED" => Some(MandateStatus::Consumed),
            "EXPIRED" => Some(MandateStatus::Expired),
            _ => None,
        }
    }
}

/// Who a mandate binds: at most one ACTIVE mandate exists per such triple, and
/// a purchase may only spend the mandate of exactly its triple (risk R1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MandateParties {
    pub sender_id: Id,
    pub beneficiary_id: Id,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Mandate {
    pub id: Id,
    pub sender_id: Id,
    pub beneficiary_id: Id,
    /// The remaining balance; `total_amount` on the wire, as in the original API.
    #[serde(rename = "total_amount")]
    pub balance: Money,
    /// The sum of all purchases made with this mandate.
    #[serde(rename = "total_spent")]
    pub spent: Money,
    pub currency: Currency,
    pub allowed_category_id: Option<Id>,
    pub allowed_merchant_id: Option<Id>,
    pub expires_at: Timestamp,
    pub status: MandateStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a sender asks for when funding a mandate.
#[derive(Debug, Clone, PartialEq)]
pub struct MandateTerms {
    pub sender_id: Id,
    pub beneficiary_id: Id,
    pub total_amount: Amount,
    pub currency: Currency,
    pub allowed_category_id: Option<Id>,
    pub allowed_merchant_id: Option<Id>,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MandateRefusal {
    /// A sender cannot fund a mandate for themself.
    SelfFunded,
    ExpiresInPast,
}

impl MandateRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            MandateRefusal::SelfFunded => ErrorCode::ValidationError,
            MandateRefusal::ExpiresInPast => ErrorCode::MandateExpiresInPast,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            MandateRefusal::SelfFunded => "beneficiary_id must differ from sender_id",
            MandateRefusal::ExpiresInPast => "Expiration date must be in the future.",
        }
    }

    /// The request field at fault.
    pub fn field(self) -> &'static str {
        match self {
            MandateRefusal::SelfFunded => "beneficiary_id",
            MandateRefusal::ExpiresInPast => "expires_at",
        }
    }
}

impl MandateTerms {
    pub fn parties(&self) -> MandateParties {
        MandateParties {
            sender_id: self.sender_id,
            beneficiary_id: self.beneficiary_id,
            currency: self.currency,
        }
    }
}

/// The rules on the terms alone. The existence of the users and catalogue
/// entries, and the one-ACTIVE rule, are the store's to check.
pub fn check_terms(terms: &MandateTerms, now: Timestamp) -> Result<(), MandateRefusal> {
    if terms.sender_id == terms.beneficiary_id {
        return Err(MandateRefusal::SelfFunded);
    }
    if terms.expires_at <= now {
        return Err(MandateRefusal::ExpiresInPast);
    }
    Ok(())
}

/// Opens a mandate from its terms: ACTIVE, nothing spent.
pub fn open_mandate(
    id: Id,
    terms: MandateTerms,
    now: Timestamp,
) -> Result<Mandate, MandateRefusal> {
    check_terms(&terms, now)?;
    Ok(Mandate {
        id,
        sender_id: terms.sender_id,
        beneficiary_id: terms.beneficiary_id,
        balance: terms.total_amount.money(),
        spent: Money::ZERO,
        currency: terms.currency,
        allowed_category_id: terms.allowed_category_id,
        allowed_merchant_id: terms.allowed_merchant_id,
        expires_at: terms.expires_at,
        status: MandateStatus::Active,
        created_at: now,
        updated_at: now,
    })
}

impl Mandate {
    pub fn parties(&self) -> MandateParties {
        MandateParties {
            sender_id: self.sender_id,
            beneficiary_id: self.beneficiary_id,
            currency: self.currency,
        }
    }

    /// A user may see a mandate only if they fund it or spend it.
    pub fn is_party(&self, user_id: Id) -> bool {
        self.sender_id == user_id || self.beneficiary_id == user_id
    }

    /// An ACTIVE mandate whose date has come: the sweep (and a purchase that
    /// notices it) moves it to EXPIRED.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.status == MandateStatus::Active && self.expires_at <= now
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::currency::{Currency, CurrencyList};

    pub fn id(n: u64) -> Id {
        Id::new(n).unwrap()
    }

    pub fn usd() -> Currency {
        Currency::parse("USD", &CurrencyList::default()).unwrap()
    }

    pub fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    pub fn terms(total: &str) -> MandateTerms {
        MandateTerms {
            sender_id: id(1),
            beneficiary_id: id(2),
            total_amount: total.parse().unwrap(),
            currency: usd(),
            allowed_category_id: None,
            allowed_merchant_id: None,
            expires_at: at("2030-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn opens_active_with_full_balance_and_nothing_spent() {
        let now = at("2029-01-01T00:00:00Z");
        let mandate = open_mandate(id(9), terms("100.00"), now).unwrap();
        assert_eq!(mandate.status, MandateStatus::Active);
        assert_eq!(mandate.balance.to_string(), "100.00");
        assert_eq!(mandate.spent, Money::ZERO);
        assert_eq!(mandate.created_at, now);
        assert_eq!(mandate.updated_at, now);
        assert_eq!(mandate.parties(), terms("1").parties());
    }

    #[test]
    fn refuses_self_funding() {
        let mut t = terms("10");
        t.beneficiary_id = t.sender_id;
        let refusal = open_mandate(id(1), t, at("2029-01-01T00:00:00Z")).unwrap_err();
        assert_eq!(refusal, MandateRefusal::SelfFunded);
        assert_eq!(refusal.code(), ErrorCode::ValidationError);
        assert_eq!(refusal.field(), "beneficiary_id");
    }

    #[test]
    fn refuses_expiry_now_or_past() {
        for now in ["2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z"] {
            let refusal = open_mandate(id(1), terms("10"), at(now)).unwrap_err();
            assert_eq!(refusal, MandateRefusal::ExpiresInPast);
            assert_eq!(refusal.code(), ErrorCode::MandateExpiresInPast);
        }
        assert!(open_mandate(id(1), terms("10"), at("2029-12-31T23:59:59.999999Z")).is_ok());
    }

    #[test]
    fn overdue_only_when_active_and_past_expiry() {
        let mut mandate = open_mandate(id(1), terms("10"), at("2029-01-01T00:00:00Z")).unwrap();
        assert!(!mandate.is_overdue(at("2029-12-31T23:59:59Z")));
        assert!(mandate.is_overdue(at("2030-01-01T00:00:00Z")));
        mandate.status = MandateStatus::Consumed;
        assert!(!mandate.is_overdue(at("2031-01-01T00:00:00Z")));
        mandate.status = MandateStatus::Expired;
        assert!(!mandate.is_overdue(at("2031-01-01T00:00:00Z")));
    }

    #[test]
    fn parties_are_sender_and_beneficiary_only() {
        let mandate = open_mandate(id(1), terms("10"), at("2029-01-01T00:00:00Z")).unwrap();
        assert!(mandate.is_party(id(1)));
        assert!(mandate.is_party(id(2)));
        assert!(!mandate.is_party(id(3)));
    }

    #[test]
    fn status_text_round_trips() {
        for status in [
            MandateStatus::Active,
            MandateStatus::Consumed,
            MandateStatus::Expired,
        ] {
            assert_eq!(MandateStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(MandateStatus::parse("active"), None);
    }

    #[test]
    fn wire_names_keep_the_original_meaning() {
        let mandate = open_mandate(id(1), terms("10"), at("2029-01-01T00:00:00Z")).unwrap();
        let json = serde_json::to_value(&mandate).unwrap();
        assert_eq!(json["total_amount"], "10.00");
        assert_eq!(json["total_spent"], "0.00");
        assert_eq!(json["status"], "ACTIVE");
        assert_eq!(json["expires_at"], "2030-01-01T00:00:00.000000Z");
        assert!(json["allowed_category_id"].is_null());
    }
}
