//! Usage mandates: creation under the one-ACTIVE guard, reads, lists, and
//! expiry (the schedule, `/mandates/cleanup`, and a purchase that notices).

use super::{
    audit::{action, entity, Actor, AuditEntry},
    deadlines::SweepBudget,
    ids,
    items::{n, s, to_item, values},
    keys::{self, Key},
    list::{Listed, Page, PageRequest, PartyList},
    read::take,
    retry::Backoff,
    users::take_user,
    Store,
};
use crate::{
    domain::{
        currency::Currency,
        error::ErrorCode,
        ids::Id,
        mandate::{
            check_terms, open_mandate, Mandate, MandateParties, MandateStatus, MandateTerms,
        },
        money::Money,
        time::Timestamp,
        user::first_inactive,
    },
    error::AppError,
};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use std::time::Instant;

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
    pub async fn create_mandate(
        &self,
        terms: MandateTerms,
        actor: &Actor,
    ) -> Result<Mandate, AppError> {
        check_terms(&terms, Timestamp::now())?;
        self.retry_busy("check mandate references", || {
            self.check_mandate_references(&terms)
        })
        .await?;
        let id = self
            .retry_busy("allocate mandate id", || self.next_id(ids::MANDATE))
            .await?;
        let mut backoff = Backoff::new(Backoff::ATTEMPTS);
        loop {
            match self.try_create_mandate(id, &terms, actor).await {
                Ok(Some(mandate)) => return Ok(mandate),
                // The guard was freed meanwhile, or we were busy: again.
                Ok(None) => {}
                Err(e) if e.is_busy() => {}
                Err(e) => return Err(e),
            }
            if !backoff.wait().await {
                tracing::warn!(mandate = %id, "mandate creation gave up: busy");
                return Err(AppError::busy());
            }
        }
    }

    /// One attempt at writing the mandate under its one-ACTIVE guard.
    /// `None`: the guard was held by a mandate that is no longer ACTIVE (it
    /// expired just now, by us or by the sweep): try again. Only a live
    /// ACTIVE mandate is a 409.
    async fn try_create_mandate(
        &self,
        id: Id,
        terms: &MandateTerms,
        actor: &Actor,
    ) -> Result<Option<Mandate>, AppError> {
        let now = Timestamp::now();
        let mandate = open_mandate(id, terms.clone(), now)?;
        let guard_key = keys::active_mandate(&mandate.parties());
        let guard = ActiveGuardRecord {
            pk: guard_key.pk.clone(),
            sk: guard_key.sk.clone(),
            mandate_id: id,
        };
        let audit = AuditEntry::new(
            actor,
            action::MANDATE_CREATED,
            entity::MANDATE,
            id,
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
        let items = vec![
            self.put_new(to_item(&MandateRecord::new(&mandate))?),
            self.put_new(to_item(&guard)?),
            self.audit(&audit)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(Some(mandate)),
            Err(e) if e.failed_condition(1) => {
                if self.guard_is_live(&guard_key, actor).await? {
                    Err(AppError::new(
                        ErrorCode::MandateConflict,
                        "An ACTIVE mandate already exists for this sender, beneficiary and currency.",
                    ))
                } else {
                    Ok(None)
                }
            }
            Err(e) => Err(e.unexpected()),
        }
    }

    /// Whether the guard at `guard_key` belongs to a live ACTIVE mandate. An
    /// overdue one is expired here (or was, by someone else): not live.
    async fn guard_is_live(&self, guard_key: &Key, actor: &Actor) -> Result<bool, AppError> {
        let Some(guard) = self.get::<ActiveGuardRecord>(guard_key).await? else {
            return Ok(false);
        };
        let now = Timestamp::now();
        match self.mandate(guard.mandate_id).await? {
            Some(mandate) if mandate.is_overdue(now) => {
                self.expire(mandate.id, actor, now).await?;
                Ok(false)
            }
            Some(mandate) => Ok(mandate.status == MandateStatus::Active),
            None => Ok(false),
        }
    }

    /// Sender, beneficiary, and the restricting merchant or category exist.
    async fn check_mandate_references(&self, terms: &MandateTerms) -> Result<(), AppError> {
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

    /// Expires mandate `id` if it is ACTIVE and due at `now`, from a
    /// consistent read (the index it was found in may be stale); false if it
    /// was not (any more). A change under us (a debit, another sweep) or a
    /// busy answer reads it again, bounded; then `SERVICE_BUSY`.
    pub(crate) async fn expire(
        &self,
        id: Id,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        let mut backoff = Backoff::new(Backoff::ATTEMPTS);
        loop {
            let outcome = match self.mandate(id).await {
                Ok(Some(mandate)) if mandate.is_overdue(now) => {
                    match self
                        .transact(self.expiry_items(&mandate, actor, now)?)
                        .await
                    {
                        Ok(()) => return Ok(true),
                        Err(e) if e.failed_condition(0) || e.is_busy() => Ok(()),
                        Err(e) => Err(e.unexpected()),
                    }
                }
                Ok(_) => return Ok(false),
                Err(e) => Err(e),
            };
            match outcome {
                Err(e) if !e.is_busy() => return Err(e),
                _ if !backoff.wait().await => return Err(AppError::busy()),
                _ => {}
            }
        }
    }

    /// Expires the ACTIVE mandates whose date has passed (risk R5), as many
    /// as `budget` allows (see `deadlines.rs`): reads the shards of the
    /// sparse, keys-only index page by page; each expiry
    /// reads its mandate consistently and is conditional, so overlapping runs
    /// and repeated runs expire each mandate exactly once. A mandate that
    /// cannot be expired this time (busy, or an unreadable index entry) is
    /// logged and skipped: the next run tries again, and the others go on.
    pub async fn expire_overdue(
        &self,
        now: Timestamp,
        actor: &Actor,
        budget: &SweepBudget,
    ) -> Result<Sweep, AppError> {
        let due = self
            .due(keys::ACTIVE_MANDATES, keys::mandate, now, budget.entries)
            .await?;
        let mut sweep = Sweep {
            expired: 0,
            skipped: due.unreadable,
            more: due.more,
        };
        for id in due.ids {
            if Instant::now() >= budget.until {
                sweep.more = true;
                break;
            }
            // The time of this write, not of the run's start: a mandate
            // created (and due) after the run began must not get an expiry
            // entry dated before its creation. Later than `now`, so still due.
            match self.expire(id, actor, Timestamp::now().max(now)).await {
                Ok(true) => sweep.expired += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(mandate = %id, error = %e, "could not expire this run: skipped");
                    sweep.skipped += 1;
                }
            }
        }
        Ok(sweep)
    }
}

/// What one expiry sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    pub expired: u32,
    /// Mandates left for the next run (busy, or unreadable in the index).
    pub skipped: u32,
    /// The budget ended the run: more may be due (the next run takes them).
    pub more: bool,
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
