//! The transaction of one escrow transition, shared by every way an escrow
//! changes (a deposit, an action, a milestone payout, a retry, a usage
//! spend): the escrow's conditional update ([`BalanceGuard`]), THE money
//! movement out of an escrow ([`Store::payment_transaction`]), the audit
//! entries and timeline events of a [`Trail`], and the refusals as
//! answered. `escrows.rs` and `payments.rs` both build on it and neither
//! imports the other.

use super::records::{EventRecord, PaymentRecord};
use crate::{
    domain::{
        error::ErrorCode,
        escrow::{
            deadline_duty,
            milestone::MilestoneStatus,
            payment::{new_psp_ref, Payee, Payment, PaymentKind, PaymentStatus},
            Escrow, EscrowAudit, EscrowBalances, EscrowEventKind, EscrowStatus, EscrowTransition,
            Milestone, PaymentOrder,
        },
        ids::Id,
        money::Amount,
        time::Timestamp,
    },
    error::AppError,
    store::{
        audit::{entity, Actor, AuditEntry},
        ids,
        items::{key_item, n, s, to_item, values, Item},
        keys, Store,
    },
};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

/// Free text a caller attaches to a transition (`note`, `proof_url`): kept
/// in the timeline event.
pub type Remarks = serde_json::Map<String, serde_json::Value>;

pub fn not_found() -> AppError {
    AppError::new(ErrorCode::EscrowNotFound, "Escrow not found.")
}

/// One state change being written: its audit entries and timeline events,
/// numbered in the order they happen within the transaction.
pub(crate) struct Trail<'a> {
    pub escrow: Id,
    pub actor: &'a Actor,
    pub now: Timestamp,
    next: u8,
}

impl<'a> Trail<'a> {
    pub fn new(escrow: Id, actor: &'a Actor, now: Timestamp) -> Trail<'a> {
        Trail {
            escrow,
            actor,
            now,
            next: 0,
        }
    }

    /// Entries of this trail sort after the first `n` of another one
    /// written in the same transaction (a proof's after its payout's).
    pub fn after(mut self, n: u8) -> Trail<'a> {
        self.next = n;
        self
    }

    fn order(&mut self) -> u8 {
        self.next += 1;
        self.next
    }

    pub fn audit(
        &mut self,
        store: &Store,
        action: &'static str,
        on: (&'static str, Id),
        data: serde_json::Value,
    ) -> Result<TransactWriteItem, AppError> {
        let entry = AuditEntry::new(self.actor, action, on.0, on.1, data, self.now);
        let order = self.order();
        store.audit_nth(&entry, order)
    }

    pub fn event(
        &mut self,
        store: &Store,
        kind: EscrowEventKind,
        data: serde_json::Value,
    ) -> Result<TransactWriteItem, AppError> {
        let unique = format!("{:02}#{}", self.order(), uuid::Uuid::new_v4().simple());
        let key = keys::escrow_event(self.escrow, self.now, &unique);
        let record = EventRecord {
            pk: key.pk,
            sk: key.sk,
            escrow_id: self.escrow,
            kind: kind.as_str().to_string(),
            at: self.now,
            actor: self.actor.to_string(),
            data: data.to_string(),
        };
        Ok(store.put_new(to_item(&record)?))
    }
}

/// How the escrow update of a transition guards the balances it was decided on.
pub(crate) enum BalanceGuard {
    /// A deposit of `amount`: what is funded leaves room for it (and, when
    /// it funds the escrow, exactly fills it).
    Deposit { amount: Amount, funds: bool },
    /// A payment of `amount` out of `available`: at least that much is
    /// available, or (`exact`) exactly that much, as for a remainder.
    Payment { order: PaymentMove, exact: bool },
    /// The whole remainder, which is zero: nothing is available.
    NothingAvailable,
    /// No money moves.
    None,
}

/// The balance attributes a payment moves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PaymentMove {
    pub amount: Amount,
    /// `paid_cents` (payouts, spends) or `refunded_cents` (refunds).
    pub into: &'static str,
}

/// Who a payment of `kind` out of `escrow` goes to, for payouts and refunds.
pub fn payee_of(escrow: &Escrow, kind: PaymentKind) -> Result<Payee, AppError> {
    match kind {
        PaymentKind::Payout => Ok(Payee::User {
            user_id: escrow.provider_id,
        }),
        PaymentKind::Refund => Ok(Payee::User {
            user_id: escrow.client_id,
        }),
        PaymentKind::UsageSpend => Err(AppError::internal("a usage spend names its payee")),
    }
}

impl Store {
    /// The escrow's conditional update for `transition`, decided on `escrow`:
    /// status as read, balances as `guard` says; closes the deadline index
    /// entry when the escrow leaves the open states.
    pub(crate) fn escrow_update(
        &self,
        escrow: &Escrow,
        transition: &EscrowTransition,
        guard: &BalanceGuard,
        now: Timestamp,
    ) -> TransactWriteItem {
        let mut set = vec!["updated_at = :now".to_string()];
        let mut condition = vec!["#status = :from".to_string()];
        let mut vals = values([
            (":from", s(escrow.status.as_str())),
            (":now", s(now.to_string())),
        ]);
        // Only a real change of status: the list indexes project it, so a
        // deposit or payout that keeps the status writes no index entry.
        let mut remove = "";
        if transition.status != escrow.status {
            set.push("#status = :to".into());
            vals.insert(":to".into(), s(transition.status.as_str()));
            // The deadline index follows the status: a new status is never
            // an alerted FUNDED one (alerts are raised while FUNDED).
            match deadline_duty(transition.status, false) {
                Some(duty) => {
                    set.push("expiry_pk = :expiry_pk, expiry_sk = :expiry_sk".into());
                    let pk = keys::sharded_partition(keys::deadline_kind(duty), escrow.id);
                    vals.insert(":expiry_pk".into(), s(pk));
                    let sk = keys::expiry_sort_key(escrow.deadline_at, escrow.id);
                    vals.insert(":expiry_sk".into(), s(sk));
                }
                None => remove = " REMOVE expiry_pk, expiry_sk",
            }
        }
        match guard {
            BalanceGuard::Deposit { amount, funds } => {
                let limit = escrow.amount_total.minor_units() - amount.minor_units();
                set.push("funded_cents = funded_cents + :amount".into());
                set.push("available_cents = available_cents + :amount".into());
                condition.push(if *funds {
                    "funded_cents = :limit".into()
                } else {
                    "funded_cents < :limit".into()
                });
                vals.insert(":amount".into(), n(amount.minor_units()));
                vals.insert(":limit".into(), n(limit));
            }
            BalanceGuard::Payment { order, exact } => {
                set.push("available_cents = available_cents - :amount".into());
                set.push(format!("{0} = {0} + :amount", order.into));
                condition.push(if *exact {
                    "available_cents = :amount".into()
                } else {
                    "available_cents >= :amount".into()
                });
                vals.insert(":amount".into(), n(order.amount.minor_units()));
            }
            BalanceGuard::NothingAvailable => {
                condition.push("available_cents = :zero".into());
                vals.insert(":zero".into(), n(0));
            }
            BalanceGuard::None => {}
        }
        let expression = format!("SET {}{remove}", set.join(", "));
        let update = Update::builder()
            .set_key(Some(key_item(&keys::escrow(escrow.id))))
            .update_expression(expression)
            .condition_expression(condition.join(" AND "))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(vals));
        self.update(update)
    }

    /// A transition that moves no money out: the escrow update (first), its
    /// audit entries and events.
    pub(crate) fn plain_items(
        &self,
        escrow: &Escrow,
        transition: &EscrowTransition,
        remarks: &Remarks,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let guard = if transition.status.is_open() {
            BalanceGuard::None
        } else {
            // Closing with nothing to pay: nothing may be available.
            BalanceGuard::NothingAvailable
        };
        let mut items = vec![self.escrow_update(escrow, transition, &guard, now)];
        let data = transition_data(escrow, transition, remarks);
        let mut trail = Trail::new(escrow.id, actor, now);
        for audit in &transition.audit {
            items.push(trail.audit(
                self,
                audit.as_str(),
                (entity::ESCROW, escrow.id),
                data.clone(),
            )?);
        }
        for kind in &transition.events {
            items.push(trail.event(self, *kind, data.clone())?);
        }
        Ok(items)
    }

    /// THE money movement out of an escrow, as transaction items; item 0 is
    /// the escrow's update, whose failed condition means "decided on a stale
    /// read: decide again". `milestone`: the milestone this payout pays
    /// (PAID in the same transaction). The caller allocates nothing: the
    /// payment id is allocated here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn payment_transaction(
        &self,
        escrow: &Escrow,
        transition: &EscrowTransition,
        order: PaymentOrder,
        payee: Payee,
        milestone: Option<&Milestone>,
        remarks: &Remarks,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(Vec<TransactWriteItem>, Payment), AppError> {
        let id = self.next_id(ids::PAYMENT).await?;
        let payment = Payment {
            id,
            escrow_id: escrow.id,
            milestone_id: milestone.map(|m| m.id),
            kind: order.kind,
            payee,
            amount: order.amount,
            currency: escrow.currency,
            psp_ref: new_psp_ref(),
            status: PaymentStatus::Pending,
            attempts: 1,
            created_at: now,
            updated_at: now,
        };
        let into = match order.kind {
            PaymentKind::Refund => "refunded_cents",
            PaymentKind::Payout | PaymentKind::UsageSpend => "paid_cents",
        };
        let guard = BalanceGuard::Payment {
            order: PaymentMove {
                amount: order.amount,
                into,
            },
            // A remainder (approve, reject, deadline) is all that is available.
            exact: milestone.is_none() && order.kind != PaymentKind::UsageSpend,
        };
        let mut items = vec![
            self.escrow_update(escrow, transition, &guard, now),
            self.put_new(to_item(&PaymentRecord::new(&payment, escrow))?),
        ];
        let mut pointer: Item = key_item(&keys::psp_ref(&payment.psp_ref));
        pointer.insert("payment_id".into(), n(id));
        items.push(self.put_new(pointer));
        if let Some(m) = milestone {
            items.push(self.milestone_paid(escrow.id, m, now));
        }
        let escrow_data = transition_data(escrow, transition, remarks);
        let payment_data = payment_data(&payment, serde_json::json!({}));
        let mut trail = Trail::new(escrow.id, actor, now);
        for audit in &transition.audit {
            let item = match audit {
                EscrowAudit::PayoutPending
                | EscrowAudit::RefundPending
                | EscrowAudit::UsageSpend => trail.audit(
                    self,
                    audit.as_str(),
                    (entity::PAYMENT, payment.id),
                    payment_data.clone(),
                )?,
                _ => trail.audit(
                    self,
                    audit.as_str(),
                    (entity::ESCROW, escrow.id),
                    escrow_data.clone(),
                )?,
            };
            items.push(item);
        }
        for kind in &transition.events {
            let data = match kind {
                EscrowEventKind::PaymentPending => payment_data.clone(),
                _ => escrow_data.clone(),
            };
            items.push(trail.event(self, *kind, data)?);
        }
        Ok((items, payment))
    }

    /// Takes the escrow out of the deadline index, if it still has the
    /// status it was read with (a change of status sets its own entry).
    pub(crate) fn leave_deadline_index(&self, id: Id, status: EscrowStatus) -> TransactWriteItem {
        self.update(
            Update::builder()
                .set_key(Some(key_item(&keys::escrow(id))))
                .update_expression("REMOVE expiry_pk, expiry_sk")
                .condition_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str())),
        )
    }

    /// The milestone's update when its payout is sent: PAID, from a status
    /// that may be paid (WAITING after an auto-approved proof,
    /// PENDING_REVIEW after an approval, APPROVED on a retry).
    pub(crate) fn milestone_paid(
        &self,
        escrow: Id,
        milestone: &Milestone,
        now: Timestamp,
    ) -> TransactWriteItem {
        let update = Update::builder()
            .set_key(Some(key_item(&keys::milestone(escrow, milestone.idx))))
            .update_expression("SET #status = :paid, updated_at = :now")
            .condition_expression("#status = :was")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values([
                (":paid", s(MilestoneStatus::Paid.as_str())),
                (":was", s(milestone.status.as_str())),
                (":now", s(now.to_string())),
            ])));
        self.update(update)
    }
}

/// The escrow after `transition`, as the transaction writes it.
pub(crate) fn applied(escrow: &Escrow, transition: &EscrowTransition, now: Timestamp) -> Escrow {
    let EscrowBalances {
        funded,
        available,
        paid,
        refunded,
    } = transition.balances;
    Escrow {
        status: transition.status,
        amount_funded: funded,
        amount_available: available,
        amount_paid: paid,
        amount_refunded: refunded,
        updated_at: now,
        ..escrow.clone()
    }
}

/// What the audit entries and events of a transition record.
pub(crate) fn transition_data(
    escrow: &Escrow,
    transition: &EscrowTransition,
    remarks: &Remarks,
) -> serde_json::Value {
    let mut data = serde_json::json!({
        "from": escrow.status,
        "to": transition.status,
    });
    if let Some(object) = data.as_object_mut() {
        for (k, v) in remarks {
            object.insert(k.clone(), v.clone());
        }
    }
    data
}

/// What the audit entry and the timeline event of a payment say: the payment,
/// and `extra` (an object) on top.
pub(super) fn payment_data(payment: &Payment, extra: serde_json::Value) -> serde_json::Value {
    with_extra(
        serde_json::json!({
            "payment_id": payment.id,
            "escrow_id": payment.escrow_id,
            "milestone_id": payment.milestone_id,
            "kind": payment.kind,
            "payee": payment.payee,
            "amount": payment.amount,
            "currency": payment.currency,
            "psp_ref": payment.psp_ref,
        }),
        extra,
    )
}

/// `base` (an object) with the fields of `extra` (an object) on top.
pub(super) fn with_extra(
    mut base: serde_json::Value,
    extra: serde_json::Value,
) -> serde_json::Value {
    if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}
