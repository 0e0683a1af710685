//! Usage mandates: their items (the mandate, its one-ACTIVE guard, its
//! expiry), reads and lists. The use cases (creation, expiry by the
//! schedule and `/mandates/cleanup`) are `ops::mandate`; a purchase that
//! notices an expired mandate adds its expiry items to its own transaction.

use super::{
    audit::{action, entity, Actor, AuditEntry},
    items::{n, s, to_item, values},
    keys::{self, Key},
    list::{Listed, Page, PageRequest, PartyList},
    read::take,
    users::take_user,
    Store,
};
use crate::{
    domain::{
        currency::Currency,
        error::ErrorCode,
        ids::Id,
        mandate::{Mandate, MandateParties, MandateStatus, MandateTerms},
        money::Money,
        time::Timestamp,
        user::first_inactive,
    },
    error::AppError,
};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

/// A mandate as stored. Money is integer cents so that DynamoDB's conditions
/// and arithmetic on it are exact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MandateRecord {
    pk: String,
    sk: String,
    id: Id,
    sender_id: Id,
    beneficiary_id: Id,
    balance_cents: i64,
    spent_cents: i64,
    currency: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    allowed_category_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    allowed_merchant_id: Option<Id>,
    expires_at: Timestamp,
    status: MandateStatus,
    created_at: Timestamp,
    updated_at: Timestamp,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
    gsi3pk: String,
    gsi3sk: String,
    /// Present only while ACTIVE: the sparse expiry index.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expiry_pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expiry_sk: Option<String>,
}

impl MandateRecord {
    fn new(m: &Mandate) -> MandateRecord {
        let key = keys::mandate(m.id);
        let active = m.status == MandateStatus::Active;
        MandateRecord {
            pk: key.pk,
            sk: key.sk,
            id: m.id,
            sender_id: m.sender_id,
            beneficiary_id: m.beneficiary_id,
            balance_cents: m.balance.minor_units(),
            spent_cents: m.spent.minor_units(),
            currency: m.currency.to_string(),
            allowed_category_id: m.allowed_category_id,
            allowed_merchant_id: m.allowed_merchant_id,
            expires_at: m.expires_at,
            status: m.status,
            created_at: m.created_at,
            updated_at: m.updated_at,
            gsi1pk: keys::sender_partition(m.sender_id),
            gsi1sk: keys::id_sort_key(m.id),
            gsi2pk: keys::beneficiary_partition(m.beneficiary_id),
            gsi2sk: keys::id_sort_key(m.id),
            gsi3pk: keys::sharded_partition(keys::KIND_MANDATE, m.id),
            gsi3sk: keys::id_sort_key(m.id),
            expiry_pk: active.then(|| keys::sharded_partition(keys::ACTIVE_MANDATES, m.id)),
            expiry_sk: active.then(|| keys::expiry_sort_key(m.expires_at, m.id)),
        }
    }
}

impl TryFrom<MandateRecord> for Mandate {
    type Error = AppError;
    fn try_from(r: MandateRecord) -> Result<Mandate, AppError> {
        let corrupt =
            |what: &str| AppError::internal(format!("mandate {}: stored {what} is invalid", r.id));
        Ok(Mandate {
            id: r.id,
            sender_id: r.sender_id,
            beneficiary_id: r.beneficiary_id,
            balance: Money::from_minor_units(r.balance_cents).map_err(|_| corrupt("balance"))?,
            spent: Money::from_minor_units(r.spent_cents).map_err(|_| corrupt("spent"))?,
            currency: Currency::from_stored(&r.currency).ok_or_else(|| corrupt("currency"))?,
            allowed_category_id: r.allowed_category_id,
            allowed_merchant_id: r.allowed_merchant_id,
            expires_at: r.expires_at,
            status: r.status,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl Listed for MandateRecord {
    fn id(&self) -> Id {
        self.id
    }
}

/// The one-ACTIVE guard: points at the ACTIVE mandate of a triple.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ActiveGuardRecord {
    pk: String,
    sk: String,
    pub(crate) mandate_id: Id,
}

/// The attribute of the guard that names its mandate.
pub(crate) const GUARD_OWNER: &str = "mandate_id";

/// Which mandates `GET /mandates` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MandateFilter {
    pub sender_id: Option<Id>,
    pub beneficiary_id: Option<Id>,
    pub status: Option<MandateStatus>,
    /// For a `user` key: only mandates this user is a party to.
    pub party: Option<Id>,
}

impl Store {
    /// The transaction of a new mandate: the mandate, its one-ACTIVE guard
    /// (item 1, put only if free) and the `MANDATE_CREATED` audit entry.
    pub(crate) fn mandate_items(
        &self,
        mandate: &Mandate,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let guard_key = keys::active_mandate(&mandate.parties());
        let guard = ActiveGuardRecord {
            pk: guard_key.pk,
            sk: guard_key.sk,
            mandate_id: mandate.id,
        };
        let audit = AuditEntry::new(
            actor,
            action::MANDATE_CREATED,
            entity::MANDATE,
            mandate.id,
            serde_json::json!({
                "sender_id": mandate.sender_id,
                "beneficiary_id": mandate.beneficiary_id,
                "total_amount": mandate.balance,
                "currency": mandate.currency,
                "allowed_category_id": mandate.allowed_category_id,
                "allowed_merchant_id": mandate.allowed_merchant_id,
                "expires_at": mandate.expires_at,
            }),
            now,
        );
        Ok(vec![
            self.put_new(to_item(&MandateRecord::new(mandate))?),
            self.put_new(to_item(&guard)?),
            self.audit(&audit)?,
        ])
    }

    /// The one-ACTIVE guard of `parties`, if held.
    pub(crate) async fn active_guard(
        &self,
        parties: &MandateParties,
    ) -> Result<Option<ActiveGuardRecord>, AppError> {
        self.get::<ActiveGuardRecord>(&keys::active_mandate(parties))
            .await
    }

    /// Sender, beneficiary, and the restricting merchant or category exist;
    /// both users are active.
    pub(crate) async fn check_mandate_references(
        &self,
        terms: &MandateTerms,
    ) -> Result<(), AppError> {
        let sender = keys::user(terms.sender_id);
        let beneficiary = keys::user(terms.beneficiary_id);
        let merchant = terms.allowed_merchant_id.map(keys::merchant);
        let category = terms.allowed_category_id.map(keys::category);
        let mut wanted = vec![sender.clone(), beneficiary.clone()];
        wanted.extend(merchant.clone());
        wanted.extend(category.clone());
        let mut found = self.get_many(&wanted).await?;
        let Some(sender) = take_user(&mut found, terms.sender_id)? else {
            return Err(AppError::new(
                ErrorCode::UserNotFound,
                "Sender user does not exist.",
            ));
        };
        let Some(beneficiary) = take_user(&mut found, terms.beneficiary_id)? else {
            return Err(AppError::new(
                ErrorCode::UserNotFound,
                "Beneficiary user does not exist.",
            ));
        };
        if let Some(inactive) = first_inactive([&sender, &beneficiary]) {
            return Err(AppError::user_inactive(inactive));
        }
        let missing = |key: &Option<Key>| key.as_ref().is_some_and(|k| !found.contains_key(k));
        if missing(&merchant) {
            return Err(AppError::new(
                ErrorCode::MerchantNotFound,
                "Merchant not found.",
            ));
        }
        if missing(&category) {
            return Err(AppError::new(
                ErrorCode::CategoryNotFound,
                "Spend category not found.",
            ));
        }
        Ok(())
    }

    pub async fn mandate(&self, id: Id) -> Result<Option<Mandate>, AppError> {
        self.get::<MandateRecord>(&keys::mandate(id))
            .await?
            .map(Mandate::try_from)
            .transpose()
    }

    /// Mandates matching `filter`, newest first.
    pub async fn mandates(
        &self,
        filter: &MandateFilter,
        page: PageRequest,
    ) -> Result<Page<Mandate>, AppError> {
        let parties = PartyList {
            first: filter.sender_id,
            second: filter.beneficiary_id,
            party: filter.party,
            first_partition: keys::sender_partition,
            second_partition: keys::beneficiary_partition,
            kind: keys::KIND_MANDATE,
            status: filter.status.map(|s| s.as_str()),
        };
        let page = self.list_between::<MandateRecord>(&parties, page).await?;
        page.try_map(Mandate::try_from)
    }

    /// The transaction items that expire `mandate`: EXPIRED if still ACTIVE and
    /// due, guard freed, audit entry written.
    pub(crate) fn expiry_items(
        &self,
        mandate: &Mandate,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let update = Update::builder()
            .set_key(Some(super::items::key_item(&keys::mandate(mandate.id))))
            .update_expression(
                "SET #status = :expired, updated_at = :now REMOVE expiry_pk, expiry_sk",
            )
            // The balance as read: the audit entry records what the mandate
            // really had, or the expiry fails and is decided again.
            .condition_expression(
                "#status = :active AND expires_at <= :now AND balance_cents = :balance",
            )
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values([
                (":expired", s(MandateStatus::Expired.as_str())),
                (":active", s(MandateStatus::Active.as_str())),
                (":now", s(now.to_string())),
                (":balance", n(mandate.balance.minor_units())),
            ])));
        let audit = AuditEntry::new(
            actor,
            action::MANDATE_EXPIRED,
            entity::MANDATE,
            mandate.id,
            serde_json::json!({"expires_at": mandate.expires_at, "balance": mandate.balance}),
            now,
        );
        Ok(vec![
            self.update(update),
            self.delete_guard(
                &keys::active_mandate(&mandate.parties()),
                GUARD_OWNER,
                mandate.id.get(),
            ),
            self.audit(&audit)?,
        ])
    }
}

/// Reads the guard of `parties` out of a batch read.
pub(crate) fn take_guard(
    found: &mut std::collections::HashMap<Key, super::items::Item>,
    parties: &MandateParties,
) -> Result<Option<ActiveGuardRecord>, AppError> {
    take(found, &keys::active_mandate(parties))
}

/// Reads a mandate out of a batch read.
pub(crate) fn take_mandate(
    found: &mut std::collections::HashMap<Key, super::items::Item>,
    id: Id,
) -> Result<Option<Mandate>, AppError> {
    take::<MandateRecord>(found, &keys::mandate(id))?
        .map(Mandate::try_from)
        .transpose()
}
