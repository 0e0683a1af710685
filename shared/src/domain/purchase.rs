//! Purchases: a beneficiary spends a mandate at a merchant. `authorize_purchase`
//! runs the contract's six checks in order; the store then applies the debit
//! atomically with the same conditions (risk R2).

use super::{
    catalogue::{Merchant, UsageGrants},
    currency::Currency,
    error::ErrorCode,
    ids::Id,
    mandate::{Mandate, MandateParties, MandateStatus},
    money::{Amount, Money},
    time::Timestamp,
};
use serde::Serialize;

/// A purchase as the caller asks for it, already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseRequest {
    /// The funder whose mandate pays.
    pub sender_id: Id,
    /// Who spends; defaults to `sender_id` for the original clients.
    pub beneficiary_id: Id,
    pub merchant_id: Id,
    pub amount: Amount,
    pub currency: Currency,
    /// Optional; if given it must be the merchant's own category.
    pub category_id: Option<Id>,
}

impl PurchaseRequest {
    /// The request in canonical form, for idempotency fingerprints: two
    /// bodies that parse to the same purchase give the same value.
    pub fn canonical(&self) -> serde_json::Value {
        serde_json::json!({
            "sender_id": self.sender_id,
            "beneficiary_id": self.beneficiary_id,
            "merchant_id": self.merchant_id,
            "amount": self.amount,
            "currency": self.currency,
            "category_id": self.category_id,
        })
    }

    /// The only mandate this purchase may spend (risk R1).
    pub fn parties(&self) -> MandateParties {
        MandateParties {
            sender_id: self.sender_id,
            beneficiary_id: self.beneficiary_id,
            currency: self.currency,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PurchaseStatus {
    Completed,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Purchase {
    pub id: Id,
    pub sender_id: Id,
    pub beneficiary_id: Id,
    pub merchant_id: Id,
    pub category_id: Option<Id>,
    pub mandate_id: Id,
    pub amount: Amount,
    pub currency: Currency,
    pub status: PurchaseStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Purchase {
    pub fn is_party(&self, user_id: Id) -> bool {
        self.sender_id == user_id || self.beneficiary_id == user_id
    }
}

/// An authorised debit, with what the store must re-check when it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Debit {
    pub mandate_id: Id,
    pub amount: Amount,
    /// The merchant's category, recorded on the purchase.
    pub category_id: Option<Id>,
    /// The debit takes the balance to exactly zero: the mandate becomes CONSUMED.
    pub consumes: bool,
}

impl Debit {
    /// Builds the purchase this debit pays for.
    pub fn purchase(&self, id: Id, request: &PurchaseRequest, now: Timestamp) -> Purchase {
        Purchase {
            id,
            sender_id: request.sender_id,
            beneficiary_id: request.beneficiary_id,
            merchant_id: request.merchant_id,
            category_id: self.category_id,
            mandate_id: self.mandate_id,
            amount: self.amount,
            currency: request.currency,
            status: PurchaseStatus::Completed,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Why a purchase is refused. None of them changes any state, except
/// `MandateExpired`, after which the mandate is EXPIRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseRefusal {
    MerchantNotFound,
    CategoryMismatch,
    MandateRequired,
    MandateExpired { mandate_id: Id },
    MerchantForbidden,
    CategoryForbidden,
    BalanceExceeded,
    UnauthorizedUsage,
}

impl PurchaseRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            PurchaseRefusal::MerchantNotFound => ErrorCode::MerchantNotFound,
            PurchaseRefusal::CategoryMismatch => ErrorCode::CategoryMismatch,
            PurchaseRefusal::MandateRequired => ErrorCode::MandateRequired,
            PurchaseRefusal::MandateExpired { .. } => ErrorCode::MandateExpired,
            PurchaseRefusal::MerchantForbidden => ErrorCode::MandateMerchantForbidden,
            PurchaseRefusal::CategoryForbidden => ErrorCode::MandateCategoryForbidden,
            PurchaseRefusal::BalanceExceeded => ErrorCode::MandateBalanceExceeded,
            PurchaseRefusal::UnauthorizedUsage => ErrorCode::UnauthorizedUsage,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            PurchaseRefusal::MerchantNotFound => "Merchant not found.",
            PurchaseRefusal::CategoryMismatch => {
                "category_id must be the merchant's own category (or be left out)."
            }
            PurchaseRefusal::MandateRequired => {
                "No active usage mandate for this sender, beneficiary and currency."
            }
            PurchaseRefusal::MandateExpired { .. } => "Usage mandate has expired.",
            PurchaseRefusal::MerchantForbidden => "Merchant not allowed for this mandate.",
            PurchaseRefusal::CategoryForbidden => "Category not allowed for this mandate.",
            PurchaseRefusal::BalanceExceeded => "Mandate balance exceeded.",
            PurchaseRefusal::UnauthorizedUsage => {
                "Beneficiary is not authorized to spend at this merchant."
            }
        }
    }
}

/// The six ordered checks of the contract. `merchant` is the catalogue entry of
/// `request.merchant_id` (None if unknown); `mandate` the ACTIVE mandate the
/// store found for the request's parties, if any; `grants` the beneficiary's
/// allowances for that merchant and its category.
pub fn authorize_purchase(
    request: &PurchaseRequest,
    merchant: Option<&Merchant>,
    mandate: Option<&Mandate>,
    grants: UsageGrants,
    now: Timestamp,
) -> Result<Debit, PurchaseRefusal> {
    // 1. The merchant exists, and its category is the only one that counts.
    let merchant = merchant
        .filter(|m| m.id == request.merchant_id)
        .ok_or(PurchaseRefusal::MerchantNotFound)?;
    if request
        .category_id
        .is_some_and(|given| Some(given) != merchant.category_id)
    {
        return Err(PurchaseRefusal::CategoryMismatch);
    }

    // 2. An ACTIVE mandate of exactly this sender, beneficiary and currency.
    let mandate = mandate
        .filter(|m| m.status == MandateStatus::Active && m.parties() == request.parties())
        .ok_or(PurchaseRefusal::MandateRequired)?;

    // 3. Not past its date.
    if mandate.is_overdue(now) {
        return Err(PurchaseRefusal::MandateExpired {
            mandate_id: mandate.id,
        });
    }

    // 4. The mandate's own restrictions.
    if mandate
        .allowed_merchant_id
        .is_some_and(|allowed| allowed != merchant.id)
    {
        return Err(PurchaseRefusal::MerchantForbidden);
    }
    if mandate
        .allowed_category_id
        .is_some_and(|allowed| Some(allowed) != merchant.category_id)
    {
        return Err(PurchaseRefusal::CategoryForbidden);
    }

    // 5. The balance covers the amount.
    let balance_after: Money = mandate
        .balance
        .checked_sub(request.amount)
        .ok_or(PurchaseRefusal::BalanceExceeded)?;

    // 6. The beneficiary may spend at this merchant.
    let category_granted = grants.category && merchant.category_id.is_some();
    if !(grants.merchant || category_granted || merchant.is_certified) {
        return Err(PurchaseRefusal::UnauthorizedUsage);
    }

    Ok(Debit {
        mandate_id: mandate.id,
        amount: request.amount,
        category_id: merchant.category_id,
        consumes: balance_after.is_zero(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::currency::{Currency, CurrencyList};
    use crate::domain::mandate::{
        open_mandate,
        tests::{at, id, terms, usd},
    };
    use proptest::prelude::*;

    const NOW: &str = "2029-06-01T12:00:00Z";

    fn merchant(category: Option<u64>, certified: bool) -> Merchant {
        Merchant {
            id: id(50),
            name: "Pharmacie du Fleuve".into(),
            category_id: category.map(id),
            is_certified: certified,
            created_at: at(NOW),
            updated_at: at(NOW),
        }
    }

    fn mandate(balance: &str) -> Mandate {
        open_mandate(id(7), terms(balance), at("2029-01-01T00:00:00Z")).unwrap()
    }

    fn request(amount: &str) -> PurchaseRequest {
        PurchaseRequest {
            sender_id: id(1),
            beneficiary_id: id(2),
            merchant_id: id(50),
            amount: amount.parse().unwrap(),
            currency: usd(),
            category_id: None,
        }
    }

    #[test]
    fn canonical_form_ignores_how_a_request_was_written() {
        let base = request("10").canonical();
        assert_eq!(request("10.00").canonical(), base);
        assert_eq!(request("1e1").canonical(), base);
        assert_eq!(base["amount"], "10.00");
        assert_eq!(base["currency"], "USD");
        assert_ne!(request("10.01").canonical(), base);
        let mut other = request("10");
        other.merchant_id = id(51);
        assert_ne!(other.canonical(), base);
        let mut other = request("10");
        other.beneficiary_id = id(3);
        assert_ne!(other.canonical(), base);
        let mut other = request("10");
        other.category_id = Some(id(7));
        assert_ne!(other.canonical(), base);
    }

    const GRANTED: UsageGrants = UsageGrants {
        merchant: true,
        category: false,
    };

    fn decide(
        request: &PurchaseRequest,
        merchant: Option<&Merchant>,
        mandate: Option<&Mandate>,
        grants: UsageGrants,
    ) -> Result<Debit, PurchaseRefusal> {
        authorize_purchase(request, merchant, mandate, grants, at(NOW))
    }

    #[test]
    fn authorises_a_purchase_within_balance() {
        let debit = decide(
            &request("40.00"),
            Some(&merchant(Some(3), false)),
            Some(&mandate("100")),
            GRANTED,
        )
        .unwrap();
        assert_eq!(debit.mandate_id, id(7));
        assert_eq!(debit.amount.to_string(), "40.00");
        assert_eq!(debit.category_id, Some(id(3)));
        assert!(!debit.consumes);
        let purchase = debit.purchase(id(11), &request("40.00"), at(NOW));
        assert_eq!(purchase.mandate_id, id(7));
        assert_eq!(purchase.category_id, Some(id(3)));
        assert!(purchase.is_party(id(1)) && purchase.is_party(id(2)) && !purchase.is_party(id(3)));
    }

    #[test]
    fn exact_balance_consumes() {
        let debit = decide(
            &request("100"),
            Some(&merchant(None, false)),
            Some(&mandate("100")),
            GRANTED,
        )
        .unwrap();
        assert!(debit.consumes);
    }

    #[test]
    fn check_1_unknown_merchant() {
        let refusal = decide(&request("1"), None, Some(&mandate("100")), GRANTED).unwrap_err();
        assert_eq!(refusal, PurchaseRefusal::MerchantNotFound);
        assert_eq!(refusal.code(), ErrorCode::MerchantNotFound);
        // A merchant record for another id is not this merchant.
        let mut other = merchant(None, true);
        other.id = id(51);
        assert_eq!(
            decide(&request("1"), Some(&other), Some(&mandate("100")), GRANTED).unwrap_err(),
            PurchaseRefusal::MerchantNotFound
        );
    }

    #[test]
    fn check_1_category_must_be_the_merchants() {
        let mut req = request("1");
        req.category_id = Some(id(4));
        for m in [merchant(Some(3), false), merchant(None, false)] {
            let refusal = decide(&req, Some(&m), Some(&mandate("100")), GRANTED).unwrap_err();
            assert_eq!(refusal, PurchaseRefusal::CategoryMismatch);
            assert_eq!(refusal.code().status(), 422);
        }
        req.category_id = Some(id(3));
        assert!(decide(
            &req,
            Some(&merchant(Some(3), false)),
            Some(&mandate("100")),
            GRANTED
        )
        .is_ok());
    }

    #[test]
    fn check_1_comes_before_mandate_checks() {
        let mut req = request("1");
        req.category_id = Some(id(4));
        assert_eq!(
            decide(&req, Some(&merchant(Some(3), false)), None, GRANTED).unwrap_err(),
            PurchaseRefusal::CategoryMismatch
        );
        assert_eq!(
            decide(&request("1"), None, None, GRANTED).unwrap_err(),
            PurchaseRefusal::MerchantNotFound
        );
    }

    #[test]
    fn check_2_requires_the_exact_parties_r1() {
        let m = merchant(None, true);
        assert_eq!(
            decide(&request("1"), Some(&m), None, GRANTED).unwrap_err(),
            PurchaseRefusal::MandateRequired
        );
        // Funded by another sender: never spent (risk R1).
        let mut other_sender = request("1");
        other_sender.sender_id = id(3);
        assert_eq!(
            decide(&other_sender, Some(&m), Some(&mandate("100")), GRANTED).unwrap_err(),
            PurchaseRefusal::MandateRequired
        );
        // The original body shape names only the beneficiary as sender_id.
        let mut old_shape = request("1");
        old_shape.sender_id = id(2);
        assert_eq!(
            decide(&old_shape, Some(&m), Some(&mandate("100")), GRANTED).unwrap_err(),
            PurchaseRefusal::MandateRequired
        );
        let mut other_beneficiary = request("1");
        other_beneficiary.beneficiary_id = id(9);
        assert_eq!(
            decide(&other_beneficiary, Some(&m), Some(&mandate("100")), GRANTED).unwrap_err(),
            PurchaseRefusal::MandateRequired
        );
        let mut other_currency = request("1");
        other_currency.currency = Currency::parse("EUR", &CurrencyList::default()).unwrap();
        assert_eq!(
            decide(&other_currency, Some(&m), Some(&mandate("100")), GRANTED).unwrap_err(),
            PurchaseRefusal::MandateRequired
        );
    }

    #[test]
    fn check_2_ignores_mandates_that_are_no_longer_active() {
        for status in [MandateStatus::Consumed, MandateStatus::Expired] {
            let mut spent = mandate("100");
            spent.status = status;
            assert_eq!(
                decide(
                    &request("1"),
                    Some(&merchant(None, true)),
                    Some(&spent),
                    GRANTED
                )
                .unwrap_err(),
                PurchaseRefusal::MandateRequired
            );
        }
    }

    #[test]
    fn check_3_expired_at_or_after_the_date() {
        let mut due = mandate("100");
        due.expires_at = at(NOW);
        let refusal = decide(
            &request("1"),
            Some(&merchant(None, true)),
            Some(&due),
            GRANTED,
        )
        .unwrap_err();
        assert_eq!(
            refusal,
            PurchaseRefusal::MandateExpired { mandate_id: id(7) }
        );
        assert_eq!(refusal.code(), ErrorCode::MandateExpired);
        due.expires_at = at("2029-06-01T12:00:00.000001Z");
        assert!(decide(
            &request("1"),
            Some(&merchant(None, true)),
            Some(&due),
            GRANTED
        )
        .is_ok());
    }

    #[test]
    fn check_3_comes_before_restrictions_and_balance() {
        let mut due = mandate("1");
        due.expires_at = at("2029-01-02T00:00:00Z");
        due.allowed_merchant_id = Some(id(99));
        assert!(matches!(
            decide(
                &request("5"),
                Some(&merchant(None, false)),
                Some(&due),
                UsageGrants::default()
            ),
            Err(PurchaseRefusal::MandateExpired { .. })
        ));
    }

    #[test]
    fn check_4_merchant_restriction() {
        let mut restricted = mandate("100");
        restricted.allowed_merchant_id = Some(id(99));
        let refusal = decide(
            &request("1"),
            Some(&merchant(None, true)),
            Some(&restricted),
            GRANTED,
        )
        .unwrap_err();
        assert_eq!(refusal, PurchaseRefusal::MerchantForbidden);
        restricted.allowed_merchant_id = Some(id(50));
        assert!(decide(
            &request("1"),
            Some(&merchant(None, true)),
            Some(&restricted),
            GRANTED
        )
        .is_ok());
    }

    #[test]
    fn check_4_category_restriction_uses_the_merchants_category() {
        let mut restricted = mandate("100");
        restricted.allowed_category_id = Some(id(3));
        for m in [merchant(Some(4), true), merchant(None, true)] {
            assert_eq!(
                decide(&request("1"), Some(&m), Some(&restricted), GRANTED).unwrap_err(),
                PurchaseRefusal::CategoryForbidden
            );
        }
        assert!(decide(
            &request("1"),
            Some(&merchant(Some(3), true)),
            Some(&restricted),
            GRANTED
        )
        .is_ok());
    }

    #[test]
    fn check_4_merchant_before_category() {
        let mut restricted = mandate("100");
        restricted.allowed_merchant_id = Some(id(99));
        restricted.allowed_category_id = Some(id(98));
        assert_eq!(
            decide(
                &request("1"),
                Some(&merchant(Some(3), true)),
                Some(&restricted),
                GRANTED
            )
            .unwrap_err(),
            PurchaseRefusal::MerchantForbidden
        );
    }

    #[test]
    fn check_5_balance() {
        let refusal = decide(
            &request("100.01"),
            Some(&merchant(None, true)),
            Some(&mandate("100")),
            GRANTED,
        )
        .unwrap_err();
        assert_eq!(refusal, PurchaseRefusal::BalanceExceeded);
        assert_eq!(refusal.code(), ErrorCode::MandateBalanceExceeded);
    }

    #[test]
    fn check_5_comes_before_usage() {
        assert_eq!(
            decide(
                &request("101"),
                Some(&merchant(None, false)),
                Some(&mandate("100")),
                UsageGrants::default()
            )
            .unwrap_err(),
            PurchaseRefusal::BalanceExceeded
        );
    }

    #[test]
    fn check_6_usage_grants() {
        let none = UsageGrants::default();
        let by_category = UsageGrants {
            merchant: false,
            category: true,
        };
        let uncertified = merchant(Some(3), false);
        let m = mandate("100");
        assert_eq!(
            decide(&request("1"), Some(&uncertified), Some(&m), none).unwrap_err(),
            PurchaseRefusal::UnauthorizedUsage
        );
        assert!(decide(&request("1"), Some(&uncertified), Some(&m), GRANTED).is_ok());
        assert!(decide(&request("1"), Some(&uncertified), Some(&m), by_category).is_ok());
        assert!(decide(&request("1"), Some(&merchant(None, true)), Some(&m), none).is_ok());
        // A category grant means nothing for a merchant without a category.
        assert_eq!(
            decide(
                &request("1"),
                Some(&merchant(None, false)),
                Some(&m),
                by_category
            )
            .unwrap_err(),
            PurchaseRefusal::UnauthorizedUsage
        );
    }

    #[test]
    fn every_refusal_has_a_403_or_4xx_code_and_a_message() {
        for refusal in [
            PurchaseRefusal::MerchantNotFound,
            PurchaseRefusal::CategoryMismatch,
            PurchaseRefusal::MandateRequired,
            PurchaseRefusal::MandateExpired { mandate_id: id(1) },
            PurchaseRefusal::MerchantForbidden,
            PurchaseRefusal::CategoryForbidden,
            PurchaseRefusal::BalanceExceeded,
            PurchaseRefusal::UnauthorizedUsage,
        ] {
            assert!((400..500).contains(&refusal.code().status()));
            assert!(!refusal.message().is_empty());
        }
    }

    /// Applies each authorised debit to the mandate, as the store does.
    fn apply(mandate: &mut Mandate, debit: &Debit) {
        mandate.balance = mandate.balance.checked_sub(debit.amount).unwrap();
        mandate.spent = mandate.spent.checked_add(debit.amount).unwrap();
        if debit.consumes {
            mandate.status = MandateStatus::Consumed;
        }
    }

    proptest! {
        /// A sequence of authorised debits never exceeds the mandate: the
        /// balance stays ≥ 0, spent + balance is the funded total, and the
        /// mandate is CONSUMED exactly when the balance reaches zero.
        #[test]
        fn authorised_debits_never_exceed_the_mandate(
            total_cents in 1i64..=1_000_000,
            amounts in proptest::collection::vec(1i64..=300_000, 0..40),
        ) {
            let total = Amount::from_minor_units(total_cents).unwrap();
            let mut m = mandate(&total.to_string());
            let mut authorised_cents = 0i64;
            for cents in amounts {
                let mut req = request("1");
                req.amount = Amount::from_minor_units(cents).unwrap();
                match decide(&req, Some(&merchant(None, true)), Some(&m), GRANTED) {
                    Ok(debit) => {
                        apply(&mut m, &debit);
                        authorised_cents += cents;
                    }
                    Err(refusal) => prop_assert!(matches!(
                        refusal,
                        PurchaseRefusal::BalanceExceeded | PurchaseRefusal::MandateRequired
                    )),
                }
                prop_assert!(authorised_cents <= total_cents);
                prop_assert_eq!(m.balance.minor_units() + m.spent.minor_units(), total_cents);
                prop_assert_eq!(m.spent.minor_units(), authorised_cents);
                prop_assert_eq!(m.status == MandateStatus::Consumed, m.balance.is_zero());
            }
        }
    }
}
