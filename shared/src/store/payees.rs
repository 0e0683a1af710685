//! Usage payees of an escrow (`/spend/allowed`) and the spends that pay them
//! (`POST /spend`): their items, reads and item builders; the use cases
//! are `ops::spend`.
//!
//! A payee is one item keyed by (escrow, payee ref), listed through `gsi1`
//! (`ESCROW_PAYEES#{escrow}`, by id). A spend follows the purchase: one
//! pass reads the idempotency record, the payee and the escrow;
//! `domain::spend::authorize_spend` decides; one transaction writes the
//! idempotency record, the escrow's conditional debit and the USAGE_SPEND
//! payment (the payout code path, `Store::payment_transaction`), and the
//! payee's counters under conditions that keep every limit, so concurrent
//! spends never pass a limit or the balance. The counters only grow by
//! commutative updates: racing spends on one payee do not fail each other
//! unless a limit is really at stake.

use super::{
    audit::{entity, Actor, AuditEntry},
    idempotency::{IdempotencyRecord, Scope},
    items::{from_item, key_item, n, s, to_item, values},
    keys,
    list::{Listed, Page, PageRequest},
    Store,
};
use crate::{
    domain::{
        escrow::{
            payment::{Payee, Payment},
            Escrow,
        },
        ids::Id,
        money::{Amount, Money},
        spend::{PayeeView, SpendDecision, SpendRequest, UsagePayee},
        time::Timestamp,
    },
    error::AppError,
};
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

/// Audit action of a new payee (entity `escrow`).
pub const PAYEE_ALLOWED: &str = "USAGE_PAYEE_ALLOWED";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PayeeRecord {
    pk: String,
    sk: String,
    id: Id,
    escrow_id: Id,
    payee_ref: String,
    label: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    daily_limit_cents: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    total_limit_cents: Option<i64>,
    spent_today_cents: i64,
    spent_day: String,
    spent_total_cents: i64,
    created_at: Timestamp,
    gsi1pk: String,
    gsi1sk: String,
}

impl PayeeRecord {
    fn new(p: &UsagePayee) -> PayeeRecord {
        let key = keys::payee(p.escrow_id, &p.payee_ref);
        PayeeRecord {
            pk: key.pk,
            sk: key.sk,
            id: p.id,
            escrow_id: p.escrow_id,
            payee_ref: p.payee_ref.clone(),
            label: p.label.clone(),
            daily_limit_cents: p.daily_limit.map(|a| a.minor_units()),
            total_limit_cents: p.total_limit.map(|a| a.minor_units()),
            spent_today_cents: p.spent_today.minor_units(),
            spent_day: p.spent_day.clone(),
            spent_total_cents: p.spent_total.minor_units(),
            created_at: p.created_at,
            gsi1pk: keys::escrow_payees_partition(p.escrow_id),
            gsi1sk: keys::id_sort_key(p.id),
        }
    }

    fn into_payee(self) -> Result<UsagePayee, AppError> {
        let corrupt =
            |what: &str| AppError::internal(format!("payee {}: stored {what} is invalid", self.id));
        let amount = |cents: Option<i64>, what: &str| {
            cents
                .map(|c| Amount::from_minor_units(c).map_err(|_| corrupt(what)))
                .transpose()
        };
        let money =
            |cents: i64, what: &str| Money::from_minor_units(cents).map_err(|_| corrupt(what));
        Ok(UsagePayee {
            id: self.id,
            escrow_id: self.escrow_id,
            daily_limit: amount(self.daily_limit_cents, "daily limit")?,
            total_limit: amount(self.total_limit_cents, "total limit")?,
            spent_today: money(self.spent_today_cents, "spent today")?,
            spent_total: money(self.spent_total_cents, "spent total")?,
            payee_ref: self.payee_ref,
            label: self.label,
            spent_day: self.spent_day,
            created_at: self.created_at,
        })
    }
}

impl Listed for PayeeRecord {
    fn id(&self) -> Id {
        self.id
    }
}

/// A payee to allow, as the client asks for it (already parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct NewPayee {
    pub payee_ref: String,
    pub label: String,
    pub daily_limit: Option<Amount>,
    pub total_limit: Option<Amount>,
}

/// The answer of `POST /spend`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SpendView {
    pub payment_id: Id,
    pub escrow_id: Id,
    pub payee_ref: String,
    pub amount: Amount,
    pub status: crate::domain::escrow::payment::PaymentStatus,
    pub psp_ref: String,
}

/// What a spend's one batched read found: the idempotency record in
/// force, or the escrow and the payee it names.
/// (One value per pass, taken apart at once: not worth a box.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum SpendReads {
    Replay(IdempotencyRecord),
    Found {
        escrow: Option<Escrow>,
        payee: Option<UsagePayee>,
    },
}

impl Store {
    /// The transaction of a new payee of `escrow`: the payee, put if the
    /// pair (escrow, payee ref) is new (item 0); a check that the escrow
    /// still has the status it was read with (item 1); the audit entry.
    pub(crate) fn payee_items(
        &self,
        payee: &UsagePayee,
        escrow: &Escrow,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let still_open = ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::escrow(escrow.id))))
            .condition_expression("#status = :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(escrow.status.as_str()))
            .build()
            .map_err(AppError::internal)?;
        let audit = AuditEntry::new(
            actor,
            PAYEE_ALLOWED,
            entity::ESCROW,
            escrow.id,
            serde_json::json!({
                "payee_id": payee.id,
                "payee_ref": payee.payee_ref,
                "label": payee.label,
                "daily_limit": payee.daily_limit,
                "total_limit": payee.total_limit,
            }),
            now,
        );
        Ok(vec![
            self.put_new(to_item(&PayeeRecord::new(payee))?),
            TransactWriteItem::builder()
                .condition_check(still_open)
                .build(),
            self.audit(&audit)?,
        ])
    }

    /// One page of an escrow's payees, newest first.
    pub async fn payees(&self, escrow: Id, page: PageRequest) -> Result<Page<PayeeView>, AppError> {
        let partition = keys::escrow_payees_partition(escrow);
        let page = self
            .list::<PayeeRecord>(&[(keys::GSI_BY_SENDER, partition)], &Vec::new(), page)
            .await?;
        let now = self.clock().now();
        page.try_map(|r| r.into_payee().map(|p| p.view_at(now)))
    }

    /// A spend's one batched read (with the escrow's own query beside it):
    /// the idempotency record of `scope`, the payee `request` names and the
    /// escrow. A record still in force at `now` is all that counts.
    pub(crate) async fn read_for_spend(
        &self,
        request: &SpendRequest,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<SpendReads, AppError> {
        let record_key = scope.storage_key();
        let payee_key = keys::payee(request.escrow_id, &request.payee_ref);
        let wanted = [record_key.clone(), payee_key.clone()];
        let (mut found, escrow) =
            tokio::try_join!(self.get_many(&wanted), self.escrow(request.escrow_id),)?;
        if let Some(item) = found.remove(&record_key) {
            if let Some(record) = IdempotencyRecord::from_live_item(item, now)? {
                return Ok(SpendReads::Replay(record));
            }
        }
        let payee = found
            .remove(&payee_key)
            .map(|item| from_item::<PayeeRecord>(item)?.into_payee())
            .transpose()?;
        Ok(SpendReads::Found { escrow, payee })
    }

    /// The payee a USAGE_SPEND payment paid, as stored now; `None` for
    /// payouts and refunds.
    pub(crate) async fn payee_of_spend(
        &self,
        payment: &Payment,
    ) -> Result<Option<UsagePayee>, AppError> {
        let Payee::Ref { payee_ref } = &payment.payee else {
            return Ok(None);
        };
        let record: PayeeRecord = self
            .get(&keys::payee(payment.escrow_id, payee_ref))
            .await?
            .ok_or_else(|| {
                AppError::internal(format!("payment {}: payee not stored", payment.id))
            })?;
        record.into_payee().map(Some)
    }

    /// A failed USAGE_SPEND gives its amount back to its payee's total (not
    /// to the day's counter, which keeps what was tried today). Nothing for
    /// other payments.
    pub(crate) fn payee_total_back(&self, payment: &Payment) -> Option<TransactWriteItem> {
        let Payee::Ref { payee_ref } = &payment.payee else {
            return None;
        };
        let amount = payment.amount.minor_units();
        Some(
            self.update(
                Update::builder()
                    .set_key(Some(key_item(&keys::payee(payment.escrow_id, payee_ref))))
                    .update_expression("SET spent_total_cents = spent_total_cents - :amount")
                    .condition_expression("spent_total_cents >= :amount")
                    .expression_attribute_values(":amount", n(amount)),
            ),
        )
    }

    /// A failed spend sent again takes its amount out of the payee's total
    /// again, under a spend's own total-limit condition (decided on the
    /// read by `check_total_limit`), so a retry never passes the limit that
    /// a new spend made since the failure has filled.
    pub(crate) fn payee_total_again(
        &self,
        payee: &UsagePayee,
        amount: Amount,
    ) -> TransactWriteItem {
        let a = amount.minor_units();
        let update = Update::builder()
            .set_key(Some(key_item(&keys::payee(
                payee.escrow_id,
                &payee.payee_ref,
            ))))
            .update_expression("SET spent_total_cents = spent_total_cents + :amount")
            .expression_attribute_values(":amount", n(a));
        let update = match payee.total_limit {
            Some(limit) => update
                .condition_expression("spent_total_cents <= :total_room")
                .expression_attribute_values(":total_room", n(limit.minor_units() - a)),
            None => update.condition_expression("attribute_exists(pk)"),
        };
        self.update(update)
    }

    /// The payee's counters after a spend of `amount`, conditional on what
    /// keeps its limits: commutative within a day, and the first spend of a
    /// new day restarts the daily counter (only if nobody did it first).
    pub(crate) fn payee_debit(
        &self,
        payee: &UsagePayee,
        decision: &SpendDecision,
        amount: Amount,
    ) -> TransactWriteItem {
        let a = amount.minor_units();
        let mut vals = values([(":amount", n(a)), (":day", s(&decision.day))]);
        let (set, mut condition) = if decision.new_day {
            vals.insert(":read_day".into(), s(&payee.spent_day));
            (
                "SET spent_day = :day, spent_today_cents = :amount, \
                 spent_total_cents = spent_total_cents + :amount",
                vec!["spent_day = :read_day".to_string()],
            )
        } else {
            let mut condition = vec!["spent_day = :day".to_string()];
            if let Some(limit) = payee.daily_limit {
                condition.push("spent_today_cents <= :daily_room".into());
                vals.insert(":daily_room".into(), n(limit.minor_units() - a));
            }
            (
                "SET spent_today_cents = spent_today_cents + :amount, \
                 spent_total_cents = spent_total_cents + :amount",
                condition,
            )
        };
        if let Some(limit) = payee.total_limit {
            condition.push("spent_total_cents <= :total_room".into());
            vals.insert(":total_room".into(), n(limit.minor_units() - a));
        }
        self.update(
            Update::builder()
                .set_key(Some(key_item(&keys::payee(
                    payee.escrow_id,
                    &payee.payee_ref,
                ))))
                .update_expression(set)
                .condition_expression(condition.join(" AND "))
                .set_expression_attribute_values(Some(vals)),
        )
    }
}
