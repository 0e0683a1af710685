//! Purchases in the table: the one batched read a purchase decides on, and
//! the items of its ONE transaction: the conditional debit of the mandate
//! (sealed to its parties, ACTIVE, not expired, balance), the purchase and
//! the audit entries. The read-decide-write loop is `ops::purchase`.
//!
//! Round trips in steady state: one batched read and the transaction (the
//! mandate's key, the merchant and its grants come from the container's
//! `PurchaseMemory`, ids from a reserved block, API keys from the container
//! cache).

use super::{
    audit::{action, entity, Actor, AuditEntry},
    catalogue::take_merchant,
    idempotency::{IdempotencyRecord, Scope},
    items::{key_item, n, s, to_item, values},
    keys::{self, Key},
    mandates::{take_guard, take_mandate, GUARD_OWNER},
    users::take_user,
    Store,
};
use crate::{
    domain::{
        catalogue::{Merchant, UsageGrants},
        currency::Currency,
        ids::Id,
        mandate::{Mandate, MandateParties, MandateStatus},
        money::Amount,
        purchase::{Debit, Purchase, PurchaseRequest, PurchaseStatus},
        time::Timestamp,
        user::first_inactive,
    },
    error::AppError,
};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PurchaseRecord {
    pk: String,
    sk: String,
    id: Id,
    sender_id: Id,
    beneficiary_id: Id,
    merchant_id: Id,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    category_id: Option<Id>,
    mandate_id: Id,
    amount_cents: i64,
    currency: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl PurchaseRecord {
    fn new(p: &Purchase) -> PurchaseRecord {
        let key = keys::purchase(p.id);
        PurchaseRecord {
            pk: key.pk,
            sk: key.sk,
            id: p.id,
            sender_id: p.sender_id,
            beneficiary_id: p.beneficiary_id,
            merchant_id: p.merchant_id,
            category_id: p.category_id,
            mandate_id: p.mandate_id,
            amount_cents: p.amount.minor_units(),
            currency: p.currency.to_string(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl TryFrom<PurchaseRecord> for Purchase {
    type Error = AppError;
    fn try_from(r: PurchaseRecord) -> Result<Purchase, AppError> {
        let corrupt =
            |what: &str| AppError::internal(format!("purchase {}: stored {what} is invalid", r.id));
        Ok(Purchase {
            id: r.id,
            sender_id: r.sender_id,
            beneficiary_id: r.beneficiary_id,
            merchant_id: r.merchant_id,
            category_id: r.category_id,
            mandate_id: r.mandate_id,
            amount: Amount::from_minor_units(r.amount_cents).map_err(|_| corrupt("amount"))?,
            currency: Currency::from_stored(&r.currency).ok_or_else(|| corrupt("currency"))?,
            status: PurchaseStatus::Completed,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Per container, what earlier purchases read that a later one need not read
/// again, and where to look for the rest:
/// - merchants: only ever created (`POST /spend/merchants`; never updated or
///   deleted), so the one read stays true;
/// - grants found: only ever added (`POST /spend/allow`; nothing revokes
///   one), so a grant once found is still there. One not found is read again;
/// - the mandate the parties' guard last named: a hint only, read again by
///   every purchase with the guard (its status and balance change).
///
/// Users, the guard, the mandate and the idempotency record, which change,
/// are read by every purchase in one consistent batch; every decision is
/// taken on that batch and what can never have changed since. A wrong hint
/// costs a second read, and nothing else.
#[derive(Default)]
pub(crate) struct PurchaseMemory {
    mandates: Mutex<HashMap<MandateParties, Id>>,
    merchants: Mutex<HashMap<Id, Merchant>>,
    /// Keys of grants found.
    grants: Mutex<HashSet<Key>>,
}

/// Entries per map; a full map is emptied (memory only saves reads).
const MAX_REMEMBERED: usize = 10_000;

impl PurchaseMemory {
    fn mandate(&self, parties: &MandateParties) -> Option<Id> {
        self.mandates.lock().ok()?.get(parties).copied()
    }

    fn merchant(&self, id: Id) -> Option<Merchant> {
        self.merchants.lock().ok()?.get(&id).cloned()
    }

    fn granted(&self, grant: &Key) -> bool {
        self.grants.lock().is_ok_and(|g| g.contains(grant))
    }

    /// The mandate the guard names now; `None` forgets the hint.
    fn remember_mandate(&self, parties: MandateParties, mandate: Option<Id>) {
        let Ok(mut mandates) = self.mandates.lock() else {
            return;
        };
        match mandate {
            Some(id) => {
                bounded(&mut mandates, &parties);
                mandates.insert(parties, id);
            }
            None => {
                mandates.remove(&parties);
            }
        }
    }

    fn remember_merchant(&self, merchant: &Merchant) {
        if let Ok(mut merchants) = self.merchants.lock() {
            bounded(&mut merchants, &merchant.id);
            merchants.insert(merchant.id, merchant.clone());
        }
    }

    fn remember_grant(&self, grant: Key) {
        if let Ok(mut grants) = self.grants.lock() {
            if grants.len() >= MAX_REMEMBERED {
                grants.clear();
            }
            grants.insert(grant);
        }
    }
}

/// Remembers the grants of `grants` that a read found.
fn remember_grants<'k, V>(
    memory: &PurchaseMemory,
    found: &HashMap<Key, V>,
    grants: impl IntoIterator<Item = Option<&'k Key>>,
) {
    for grant in grants.into_iter().flatten() {
        if found.contains_key(grant) {
            memory.remember_grant(grant.clone());
        }
    }
}

/// Empties a full map before `key` is added.
fn bounded<K: Eq + Hash, V>(map: &mut HashMap<K, V>, key: &K) {
    if map.len() >= MAX_REMEMBERED && !map.contains_key(key) {
        map.clear();
    }
}

/// What one batched read for a purchase found.
pub(crate) enum PurchaseReads {
    /// The key was used before: answer what was stored.
    Replay(IdempotencyRecord),
    /// What `authorize_purchase` decides on, as one consistent read saw it.
    Found {
        merchant: Option<Merchant>,
        mandate: Option<Mandate>,
        grants: UsageGrants,
    },
}

impl Store {
    /// One batched, consistent read of the idempotency record, the users,
    /// the parties' guard and, from the container's [`PurchaseMemory`], the
    /// mandate it last named; the merchant and the grants only when memory
    /// does not hold them. A second batch reads what memory could not name
    /// (the first purchase of a container does).
    pub(crate) async fn read_for_purchase(
        &self,
        request: &PurchaseRequest,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<PurchaseReads, AppError> {
        let memory = &self.purchase_memory;
        let idempotency_key = scope.storage_key();
        let parties = request.parties();
        let remembered_merchant = memory.merchant(request.merchant_id);
        let merchant_grant = keys::merchant_allowance(request.beneficiary_id, request.merchant_id);
        let category_grant_of = |merchant: &Merchant| {
            merchant
                .category_id
                .map(|category| keys::category_allowance(request.beneficiary_id, category))
        };
        // The grants still to read: none once one is remembered or the
        // merchant is certified (the rule then needs none).
        let grants_to_read = |merchant: Option<&Merchant>| -> Vec<Key> {
            let category_grant = merchant.and_then(category_grant_of);
            let settled = memory.granted(&merchant_grant)
                || category_grant.as_ref().is_some_and(|k| memory.granted(k))
                || merchant.is_some_and(|m| m.is_certified);
            if settled {
                return Vec::new();
            }
            std::iter::once(merchant_grant.clone())
                .chain(category_grant)
                .collect()
        };
        let mut first = vec![
            idempotency_key.clone(),
            keys::active_mandate(&parties),
            keys::user(request.sender_id),
            keys::user(request.beneficiary_id),
        ];
        first.extend(memory.mandate(&parties).map(keys::mandate));
        if remembered_merchant.is_none() {
            first.push(keys::merchant(request.merchant_id));
        }
        first.extend(grants_to_read(remembered_merchant.as_ref()));
        let mut found = self.get_many(&first).await?;
        if let Some(item) = found.remove(&idempotency_key) {
            if let Some(record) = IdempotencyRecord::from_live_item(item, now)? {
                return Ok(PurchaseReads::Replay(record));
            }
        }
        // An inactive party: refused, and not remembered under the key, so
        // that the same request works again once the user is reactivated.
        let sender = take_user(&mut found, request.sender_id)?;
        let beneficiary = take_user(&mut found, request.beneficiary_id)?;
        if let Some(inactive) = first_inactive(sender.iter().chain(beneficiary.iter())) {
            return Err(AppError::user_inactive(inactive));
        }
        let merchant = match remembered_merchant {
            Some(merchant) => Some(merchant),
            None => take_merchant(&mut found, request.merchant_id)?,
        };
        let guard = take_guard(&mut found, &parties)?;
        let mandate_id = guard.as_ref().map(|g| g.mandate_id);
        let category_grant = merchant.as_ref().and_then(category_grant_of);
        let is_granted = |found: &HashMap<Key, _>, grant: &Key| {
            found.contains_key(grant) || memory.granted(grant)
        };
        remember_grants(
            memory,
            &found,
            [Some(&merchant_grant), category_grant.as_ref()],
        );

        // What memory did not name is read now; a hinted mandate that is not
        // needed (the guard moved to a new one) is simply not looked at.
        let missing: Vec<Key> = mandate_id
            .map(keys::mandate)
            .into_iter()
            .chain(grants_to_read(merchant.as_ref()))
            .filter(|key| !first.contains(key))
            .collect();
        if !missing.is_empty() {
            found.extend(self.get_many(&missing).await?);
            remember_grants(memory, &found, [category_grant.as_ref()]);
        }
        memory.remember_mandate(parties, mandate_id);
        if let Some(merchant) = &merchant {
            memory.remember_merchant(merchant);
        }
        let grants = UsageGrants {
            merchant: is_granted(&found, &merchant_grant),
            category: category_grant
                .as_ref()
                .is_some_and(|grant| is_granted(&found, grant)),
        };
        let mandate = match mandate_id {
            Some(id) => take_mandate(&mut found, id)?,
            None => None,
        };
        Ok(PurchaseReads::Found {
            merchant,
            mandate,
            grants,
        })
    }

    /// The conditional debit. Concurrent debits commute (`balance - amount`),
    /// and the condition keeps the balance from going below zero: a debit that
    /// leaves money needs `balance > amount`, one that consumes needs
    /// `balance = amount` and moves the mandate to CONSUMED.
    pub(crate) fn debit(
        &self,
        mandate: &Mandate,
        debit: &Debit,
        now: Timestamp,
    ) -> TransactWriteItem {
        let (set_status, balance_condition) = if debit.consumes {
            (
                ", #status = :consumed REMOVE expiry_pk, expiry_sk",
                "balance_cents = :amount",
            )
        } else {
            ("", "balance_cents > :amount")
        };
        let update = Update::builder()
            .set_key(Some(key_item(&keys::mandate(mandate.id))))
            .update_expression(format!(
                "SET balance_cents = balance_cents - :amount, spent_cents = spent_cents + :amount, updated_at = :now{set_status}"
            ))
            .condition_expression(format!(
                "#status = :active AND sender_id = :sender AND beneficiary_id = :beneficiary \
                 AND currency = :currency AND expires_at > :now AND {balance_condition}"
            ))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values([
                (":amount", n(debit.amount.minor_units())),
                (":now", s(now.to_string())),
                (":active", s(MandateStatus::Active.as_str())),
                (":sender", n(mandate.sender_id)),
                (":beneficiary", n(mandate.beneficiary_id)),
                (":currency", s(mandate.currency.to_string())),
            ])));
        let update = if debit.consumes {
            update.expression_attribute_values(":consumed", s(MandateStatus::Consumed.as_str()))
        } else {
            update
        };
        self.update(update)
    }

    /// The new purchase's item.
    pub(crate) fn purchase_put(&self, purchase: &Purchase) -> Result<TransactWriteItem, AppError> {
        Ok(self.put_new(to_item(&PurchaseRecord::new(purchase))?))
    }

    /// The audit entries of a debit, and the freed guard when it consumes.
    pub(crate) fn debit_audit(
        &self,
        mandate: &Mandate,
        purchase: &Purchase,
        debit: &Debit,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let debited = AuditEntry::new(
            actor,
            action::MANDATE_DEBITED,
            entity::MANDATE,
            mandate.id,
            serde_json::json!({
                "purchase_id": purchase.id,
                "amount": purchase.amount,
                "currency": purchase.currency,
                "merchant_id": purchase.merchant_id,
                "beneficiary_id": purchase.beneficiary_id,
            }),
            now,
        );
        let mut items = vec![self.audit(&debited)?];
        if debit.consumes {
            let consumed = AuditEntry::new(
                actor,
                action::MANDATE_CONSUMED,
                entity::MANDATE,
                mandate.id,
                serde_json::json!({"purchase_id": purchase.id}),
                now,
            );
            items.push(self.delete_guard(
                &keys::active_mandate(&mandate.parties()),
                GUARD_OWNER,
                mandate.id.get(),
            ));
            items.push(self.audit_nth(&consumed, 1)?);
        }
        Ok(items)
    }

    pub async fn purchase_by_id(&self, id: Id) -> Result<Option<Purchase>, AppError> {
        self.get::<PurchaseRecord>(&keys::purchase(id))
            .await?
            .map(Purchase::try_from)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parties(sender: u64) -> MandateParties {
        MandateParties {
            sender_id: Id::new(sender).unwrap(),
            beneficiary_id: Id::new(2).unwrap(),
            currency: Currency::usd(),
        }
    }

    fn id(n: u64) -> Id {
        Id::new(n).unwrap()
    }

    fn merchant(n: u64) -> Merchant {
        Merchant {
            id: id(n),
            name: format!("merchant {n}"),
            category_id: Some(id(4)),
            is_certified: false,
            created_at: Timestamp::parse("2029-01-01T00:00:00Z").unwrap(),
            updated_at: Timestamp::parse("2029-01-01T00:00:00Z").unwrap(),
        }
    }

    #[test]
    fn memory_holds_what_reads_found_and_forgets_a_mandate_on_none() {
        let memory = PurchaseMemory::default();
        assert_eq!(memory.mandate(&parties(1)), None);
        assert!(memory.merchant(id(7)).is_none());
        let grant = keys::merchant_allowance(id(2), id(7));
        assert!(!memory.granted(&grant));

        memory.remember_mandate(parties(1), Some(id(3)));
        memory.remember_merchant(&merchant(7));
        memory.remember_grant(grant.clone());
        assert_eq!(memory.mandate(&parties(1)), Some(id(3)));
        assert_eq!(
            memory.merchant(id(7)).map(|m| m.name),
            Some("merchant 7".into())
        );
        assert!(memory.granted(&grant));
        // Other parties, merchant and grant: nothing remembered.
        assert_eq!(memory.mandate(&parties(5)), None);
        assert!(memory.merchant(id(8)).is_none());
        assert!(!memory.granted(&keys::merchant_allowance(id(2), id(8))));
        // The mandate was consumed and the guard freed.
        memory.remember_mandate(parties(1), None);
        assert_eq!(memory.mandate(&parties(1)), None);
    }

    #[test]
    fn memory_stays_bounded() {
        let memory = PurchaseMemory::default();
        for n in 1..=(MAX_REMEMBERED as u64 + 5) {
            memory.remember_mandate(parties(n), Some(id(n)));
            memory.remember_merchant(&merchant(n));
            memory.remember_grant(keys::merchant_allowance(id(2), id(n)));
            assert!(memory.mandates.lock().unwrap().len() <= MAX_REMEMBERED);
            assert!(memory.merchants.lock().unwrap().len() <= MAX_REMEMBERED);
            assert!(memory.grants.lock().unwrap().len() <= MAX_REMEMBERED);
        }
        // The newest entries survive the clearing.
        let last = MAX_REMEMBERED as u64 + 5;
        assert_eq!(memory.mandate(&parties(last)), Some(id(last)));
        assert!(memory.merchant(id(last)).is_some());
        assert!(memory.granted(&keys::merchant_allowance(id(2), id(last))));
    }
}
