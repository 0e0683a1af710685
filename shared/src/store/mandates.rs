//! Usage mandates: creation under the one-ACTIVE guard, reads, lists, and
//! expiry (the schedule, `/mandates/cleanup`, and a purchase that notices).

use super::{
    audit::{action, entity, Actor, AuditEntry},
    ids,
    items::{n, s, to_item, values},
    keys::{self, Key},
    list::{Filters, Listed, Page, PageRequest},
    read::take,
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
    },
    error::AppError,
};
use aws_sdk_dynamodb::{
    error::DisplayErrorContext,
    types::{TransactWriteItem, Update},
};
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
    pub async fn create_mandate(
        &self,
        terms: MandateTerms,
        actor: &Actor,
    ) -> Result<Mandate, AppError> {
        check_terms(&terms, Timestamp::now())?;
        self.check_mandate_references(&terms).await?;

        let id = self.next_id(ids::MANDATE).await?;
        for attempt in 0..2 {
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
                Ok(()) => return Ok(mandate),
                // The guard is taken. If by an overdue mandate, expire it
                // (once) and try again; otherwise this is a conflict.
                Err(e) if e.failed_condition(1) => {
                    if attempt == 0 && self.expire_if_overdue(&guard_key, actor).await? {
                        continue;
                    }
                    break;
                }
                Err(e) => return Err(e.unexpected()),
            }
        }
        Err(AppError::new(
            ErrorCode::MandateConflict,
            "An ACTIVE mandate already exists for this sender, beneficiary and currency.",
        ))
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
        let found = self.get_many(&wanted).await?;
        let missing = |key: &Option<Key>| key.as_ref().is_some_and(|k| !found.contains_key(k));
        if !found.contains_key(&sender) {
            return Err(AppError::new(
                ErrorCode::UserNotFound,
                "Sender user does not exist.",
            ));
        }
        if !found.contains_key(&beneficiary) {
            return Err(AppError::new(
                ErrorCode::UserNotFound,
                "Beneficiary user does not exist.",
            ));
        }
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

    /// Expires the mandate behind `guard_key` if it is overdue; true if it did.
    async fn expire_if_overdue(&self, guard_key: &Key, actor: &Actor) -> Result<bool, AppError> {
        let Some(guard) = self.get::<ActiveGuardRecord>(guard_key).await? else {
            return Ok(false);
        };
        let now = Timestamp::now();
        match self.mandate(guard.mandate_id).await? {
            Some(mandate) if mandate.is_overdue(now) => {
                self.expire(&mandate, actor, now, Vec::new()).await
            }
            _ => Ok(false),
        }
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
        let empty = Page {
            items: Vec::new(),
            next_cursor: None,
        };
        let mut filters: Filters = Vec::new();
        if let Some(status) = filter.status {
            filters.push(("status", s(status.as_str())));
        }
        // A `user` caller sees only mandates it is a party to: a counterparty
        // filter names the other side, so the caller fills the empty one.
        let (mut sender, mut beneficiary) = (filter.sender_id, filter.beneficiary_id);
        if let Some(party) = filter.party {
            match (sender, beneficiary) {
                (Some(s), Some(b)) if party != s && party != b => return Ok(empty),
                (Some(s), None) if party != s => beneficiary = Some(party),
                (None, Some(b)) if party != b => sender = Some(party),
                _ => {}
            }
        }
        // Pick the narrowest partition(s); the other conditions become filters.
        let partitions = match (sender, beneficiary, filter.party) {
            (Some(sender), beneficiary, _) => {
                if let Some(b) = beneficiary {
                    filters.push(("beneficiary_id", n(b)));
                }
                vec![(keys::GSI_BY_SENDER, keys::sender_partition(sender))]
            }
            (None, Some(beneficiary), _) => vec![(
                keys::GSI_BY_BENEFICIARY,
                keys::beneficiary_partition(beneficiary),
            )],
            (None, None, Some(party)) => vec![
                (keys::GSI_BY_SENDER, keys::sender_partition(party)),
                (keys::GSI_BY_BENEFICIARY, keys::beneficiary_partition(party)),
            ],
            (None, None, None) => keys::all_shards(keys::KIND_MANDATE)
                .into_iter()
                .map(|p| (keys::GSI_BY_KIND, p))
                .collect(),
        };
        let page = self
            .list::<MandateRecord>(&partitions, &filters, page)
            .await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(Mandate::try_from)
                .collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
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
            .condition_expression("#status = :active AND expires_at <= :now")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values([
                (":expired", s(MandateStatus::Expired.as_str())),
                (":active", s(MandateStatus::Active.as_str())),
                (":now", s(now.to_string())),
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

    /// Expires one mandate (with `extra` items in the same transaction). False
    /// if it was no longer ACTIVE and due: someone else got there first.
    pub(crate) async fn expire(
        &self,
        mandate: &Mandate,
        actor: &Actor,
        now: Timestamp,
        extra: Vec<TransactWriteItem>,
    ) -> Result<bool, AppError> {
        let mut items = self.expiry_items(mandate, actor, now)?;
        items.extend(extra);
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if e.failed_condition(0) => Ok(false),
            Err(e) => Err(e.unexpected()),
        }
    }

    /// Expires every ACTIVE mandate whose date has passed (risk R5): reads
    /// every shard of the sparse, keys-only index page by page and the page's
    /// mandates in one batch; each expiry is conditional, so overlapping runs
    /// and repeated runs expire each mandate exactly once.
    pub async fn expire_overdue(&self, now: Timestamp, actor: &Actor) -> Result<u32, AppError> {
        let mut expired = 0;
        for shard in keys::all_shards(keys::ACTIVE_MANDATES) {
            let mut start = None;
            loop {
                let output = self
                    .client
                    .query()
                    .table_name(self.table())
                    .index_name(keys::GSI_ACTIVE_BY_EXPIRY.name)
                    .key_condition_expression("#pk = :pk AND #sk <= :due")
                    .expression_attribute_names("#pk", keys::GSI_ACTIVE_BY_EXPIRY.pk)
                    .expression_attribute_names("#sk", keys::GSI_ACTIVE_BY_EXPIRY.sk)
                    .set_expression_attribute_values(Some(values([
                        (":pk", s(&shard)),
                        // '~' sorts after the '#id' suffix of every key due at `now`.
                        (":due", s(format!("{now}#~"))),
                    ])))
                    // One batch read (at most 100 keys) per page.
                    .limit(100)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| AppError::internal(DisplayErrorContext(e)))?;
                let due: Vec<Key> = output
                    .items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(super::items::key_of)
                    .collect();
                let mut found = self.get_many(&due).await?;
                for key in &due {
                    let Some(record) = take::<MandateRecord>(&mut found, key)? else {
                        continue;
                    };
                    let mandate = Mandate::try_from(record)?;
                    if mandate.is_overdue(now)
                        && self.expire(&mandate, actor, now, Vec::new()).await?
                    {
                        expired += 1;
                    }
                }
                start = output.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(expired)
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
