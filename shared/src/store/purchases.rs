//! Purchases in the table: the one batched read a purchase decides on, and
//! the items of its ONE transaction: the conditional debit of the mandate
//! (sealed to its parties, ACTIVE, not expired, balance), the purchase and
//! the audit entries. The read-decide-write loop is `ops::purchase`.
//!
//! Round trips in steady state: one batched read and the transaction (the
//! mandate's key comes from the container's hints, ids from a reserved block,
//! API keys from the container cache).

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
use std::collections::HashMap;
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

/// Per container, the keys a purchase needs beyond those its request names:
/// the mandate the parties' guard pointed at, and the merchant's category.
/// A hint only adds keys to the first batched read; every decision is taken
/// from what that consistent read returns, so a stale hint costs the second
/// read that a purchase without hints makes, and nothing else.
#[derive(Default)]
pub(crate) struct PurchaseHints {
    mandates: Mutex<HashMap<MandateParties, Id>>,
    categories: Mutex<HashMap<Id, Id>>,
}

/// The hinted keys of one purchase.
#[derive(Debug, Default, PartialEq)]
struct Hint {
    mandate: Option<Id>,
    category: Option<Id>,
}

/// Entries per map; a full map is emptied (hints are only worth a read).
const MAX_HINTS: usize = 10_000;

impl PurchaseHints {
    fn get(&self, parties: &MandateParties, merchant: Id) -> Hint {
        Hint {
            mandate: hinted(&self.mandates, parties),
            category: hinted(&self.categories, &merchant),
        }
    }

    /// What the last read found: `None` forgets the hint.
    fn remember(
        &self,
        parties: MandateParties,
        mandate: Option<Id>,
        merchant: Id,
        category: Option<Id>,
    ) {
        remember(&self.mandates, parties, mandate);
        remember(&self.categories, merchant, category);
    }
}

fn hinted<K: Eq + Hash>(map: &Mutex<HashMap<K, Id>>, key: &K) -> Option<Id> {
    map.lock().ok()?.get(key).copied()
}

fn remember<K: Eq + Hash>(map: &Mutex<HashMap<K, Id>>, key: K, value: Option<Id>) {
    let Ok(mut map) = map.lock() else { return };
    match value {
        Some(value) => {
            if map.len() >= MAX_HINTS && !map.contains_key(&key) {
                map.clear();
            }
            map.insert(key, value);
        }
        None => {
            map.remove(&key);
        }
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
    /// One batched, consistent read of the idempotency record, the merchant,
    /// the parties' guard and users, the merchant grant, and, from the
    /// container's hints, the mandate and the category grant the last
    /// purchase of these parties needed. A second batch reads what a missing
    /// or wrong hint left out (the first purchase of a container does).
    pub(crate) async fn read_for_purchase(
        &self,
        request: &PurchaseRequest,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<PurchaseReads, AppError> {
        let idempotency_key = scope.storage_key();
        let parties = request.parties();
        let merchant_grant = keys::merchant_allowance(request.beneficiary_id, request.merchant_id);
        let category_grant_key =
            |category: Id| keys::category_allowance(request.beneficiary_id, category);
        let hint = self.purchase_hints.get(&parties, request.merchant_id);
        let mut first = vec![
            idempotency_key.clone(),
            keys::merchant(request.merchant_id),
            keys::active_mandate(&parties),
            merchant_grant.clone(),
            keys::user(request.sender_id),
            keys::user(request.beneficiary_id),
        ];
        first.extend(hint.mandate.map(keys::mandate));
        first.extend(hint.category.map(category_grant_key));
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
        let merchant = take_merchant(&mut found, request.merchant_id)?;
        let guard = take_guard(&mut found, &parties)?;
        let mandate_id = guard.as_ref().map(|g| g.mandate_id);
        let category_id = merchant.as_ref().and_then(|m| m.category_id);
        let category_grant = category_id.map(category_grant_key);

        // What the hints did not name is read now; a hinted key that is not
        // needed (the guard moved to a new mandate) is simply not looked at.
        let missing: Vec<Key> = mandate_id
            .map(keys::mandate)
            .into_iter()
            .chain(category_grant.clone())
            .filter(|key| !first.contains(key))
            .collect();
        if !missing.is_empty() {
            found.extend(self.get_many(&missing).await?);
        }
        self.purchase_hints
            .remember(parties, mandate_id, request.merchant_id, category_id);
        let mandate = match mandate_id {
            Some(id) => take_mandate(&mut found, id)?,
            None => None,
        };
        let grants = UsageGrants {
            merchant: found.contains_key(&merchant_grant),
            category: category_grant.is_some_and(|k| found.contains_key(&k)),
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

    #[test]
    fn hints_remember_what_the_last_read_found_and_forget_on_none() {
        let hints = PurchaseHints::default();
        assert_eq!(hints.get(&parties(1), id(7)), Hint::default());
        hints.remember(parties(1), Some(id(3)), id(7), Some(id(4)));
        assert_eq!(
            hints.get(&parties(1), id(7)),
            Hint {
                mandate: Some(id(3)),
                category: Some(id(4))
            }
        );
        // Another pair of parties, another merchant: nothing hinted.
        assert_eq!(hints.get(&parties(5), id(8)), Hint::default());
        // The mandate was consumed, the merchant lost its category.
        hints.remember(parties(1), None, id(7), None);
        assert_eq!(hints.get(&parties(1), id(7)), Hint::default());
    }

    #[test]
    fn hints_stay_bounded() {
        let hints = PurchaseHints::default();
        for n in 1..=(MAX_HINTS as u64 + 5) {
            hints.remember(parties(n), Some(id(n)), id(n), Some(id(n)));
            assert!(hints.mandates.lock().unwrap().len() <= MAX_HINTS);
            assert!(hints.categories.lock().unwrap().len() <= MAX_HINTS);
        }
        // The newest hint survives the clearing.
        let last = MAX_HINTS as u64 + 5;
        assert_eq!(hints.get(&parties(last), id(last)).mandate, Some(id(last)));
    }
}
