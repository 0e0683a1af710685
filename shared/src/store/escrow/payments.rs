//! Payments: every payout, refund and usage spend out of an escrow. A
//! payment is never written alone: [`Store::payment_transaction`]
//! (`transition.rs`) builds, for ONE
//! `TransactWriteItems`, the escrow's conditional balance update (status as
//! decided, `amount_available >= amount`, or exactly the amount for a
//! remainder), the payment (PENDING, fresh `psp_ref`), the pointer from its
//! `psp_ref` (for the PSP webhook), the milestone it pays if any, and the
//! audit entries and timeline events. So `funded = available + paid +
//! refunded` holds at every instant, and two racing transitions on one
//! escrow cannot both pay: the second fails its condition and decides again.

use super::{
    records::PaymentRecord,
    transition::{payment_data, with_extra, Trail},
};
use crate::{
    domain::{
        alert::AlertType,
        escrow::{
            milestone::{MilestoneStatus, MustBe},
            payment::{new_psp_ref, Payment, PaymentStatus, PaymentTransition},
            BalanceDelta, Escrow,
        },
        ids::Id,
        spend::UsagePayee,
        time::Timestamp,
    },
    error::AppError,
    store::{
        alerts::{self, NewAlert},
        audit::{entity, Actor},
        items::{key_item, n, s, values, Item},
        keys,
        list::{Filters, Page, PageRequest},
        Store,
    },
};
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};
use serde::Deserialize;

/// A payment read with the parties of its escrow (for read access).
pub struct PaymentRead {
    pub payment: Payment,
    pub parties: [Id; 2],
}

/// An `extra` item of a milestone payout (its index among them) whose failed
/// condition is final, and the error that answers it.
pub type ExtraRefusal = (usize, fn() -> AppError);

impl Store {
    /// The check, for a milestone payout's transaction, that milestone
    /// `idx` of `escrow` is still as the plan read it (`plan_payout`).
    pub(crate) fn milestone_check(&self, escrow: Id, idx: u32, must: MustBe) -> TransactWriteItem {
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::milestone(escrow, idx))))
            .condition_expression(match must {
                MustBe::Paid => "#status = :paid",
                MustBe::Unpaid => "#status <> :paid",
            })
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":paid", s(MilestoneStatus::Paid.as_str()))
            .build()
            .expect("table, key and condition are set");
        TransactWriteItem::builder().condition_check(check).build()
    }

    /// One payment, with the parties of its escrow.
    pub async fn payment(&self, id: Id) -> Result<Option<PaymentRead>, AppError> {
        match self.get::<PaymentRecord>(&keys::payment(id)).await? {
            Some(record) => {
                let parties = record.parties();
                Ok(Some(PaymentRead {
                    payment: record.into_payment()?,
                    parties,
                }))
            }
            None => Ok(None),
        }
    }

    /// Payments of one escrow (or all, for staff), newest first; with a
    /// status, only those (`ERROR` is the failed-payout queue), filtered in
    /// the index.
    pub async fn payments(
        &self,
        escrow: Option<Id>,
        status: Option<PaymentStatus>,
        page: PageRequest,
    ) -> Result<Page<Payment>, AppError> {
        let partitions = match escrow {
            Some(escrow) => vec![(keys::GSI_BY_SENDER, keys::escrow_payments_partition(escrow))],
            None => keys::all_shards(keys::KIND_PAYMENT)
                .into_iter()
                .map(|p| (keys::GSI_BY_KIND, p))
                .collect(),
        };
        let filters: Filters = status
            .map(|status| ("status", s(status.as_str())))
            .into_iter()
            .collect();
        let page = self
            .list::<PaymentRecord>(&partitions, &filters, page)
            .await?;
        page.try_map(PaymentRecord::into_payment)
    }

    /// The payment the PSP knows by `psp_ref` (any of its attempts' refs):
    /// the pointer, then the payment; two consistent reads.
    pub async fn payment_by_psp_ref(&self, psp_ref: &str) -> Result<Option<Payment>, AppError> {
        #[derive(Deserialize)]
        struct Pointer {
            payment_id: Id,
        }
        let Some(pointer) = self.get::<Pointer>(&keys::psp_ref(psp_ref)).await? else {
            return Ok(None);
        };
        match self
            .get::<PaymentRecord>(&keys::payment(pointer.payment_id))
            .await?
        {
            Some(record) => record.into_payment().map(Some),
            None => Err(AppError::internal(format!(
                "PSP reference points at payment {} which is not stored",
                pointer.payment_id
            ))),
        }
    }

    /// The items of a PSP-driven transition of `payment` (SENT, SETTLED or
    /// ERROR: the dispatcher's answer or a webhook event), for one
    /// transaction; item 0 is the payment's update, conditional on the
    /// status it was decided on, under this very `psp_ref` (so this attempt).
    /// A failure also gives the money back to the escrow (`available +=
    /// amount`, conditional on it having been paid out) and puts the
    /// milestone back to APPROVED. `cause` joins the audit and event data.
    pub(crate) async fn psp_payment_items(
        &self,
        payment: &Payment,
        transition: PaymentTransition,
        cause: serde_json::Value,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let to = transition.status();
        // Out of PENDING: out of the stuck-payout sweep's index. SETTLED
        // (final): into the index of the day it settled, for settlement
        // reports.
        let settled = to == PaymentStatus::Settled;
        let update = Update::builder()
            .set_key(Some(key_item(&keys::payment(payment.id))))
            .update_expression(if settled {
                "SET #status = :to, updated_at = :now, gsi2pk = :day, gsi2sk = :at \
                 REMOVE expiry_pk, expiry_sk"
            } else {
                "SET #status = :to, updated_at = :now REMOVE expiry_pk, expiry_sk"
            })
            .condition_expression("#status = :was AND psp_ref = :ref")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values([
                (":to", s(to.as_str())),
                (":now", s(now.to_string())),
                (":was", s(payment.status.as_str())),
                (":ref", s(&payment.psp_ref)),
            ])));
        let update = if settled {
            update
                .expression_attribute_values(":day", s(keys::settled_on_partition(now, payment.id)))
                .expression_attribute_values(":at", s(keys::settled_on_sort_key(now, payment.id)))
        } else {
            update
        };
        let mut items = vec![self.update(update)];
        if transition == PaymentTransition::Failed {
            items.push(self.balance_move(payment, transition, now));
            // A failed spend gives its amount back to the payee's total
            // (not to the day's counter).
            items.extend(self.payee_total_back(payment));
            if let Some(milestone_id) = payment.milestone_id {
                let escrow = self
                    .escrow(payment.escrow_id)
                    .await?
                    .ok_or_else(|| AppError::internal("a payment's escrow is not stored"))?;
                if let (Some(m), Some(back)) = (
                    escrow.milestones.iter().find(|m| m.id == milestone_id),
                    transition.milestone_status(),
                ) {
                    items.push(
                        self.update(
                            Update::builder()
                                .set_key(Some(key_item(&keys::milestone(escrow.id, m.idx))))
                                .update_expression("SET #status = :back, updated_at = :now")
                                .condition_expression("#status = :paid")
                                .expression_attribute_names("#status", "status")
                                .set_expression_attribute_values(Some(values([
                                    (":back", s(back.as_str())),
                                    (":paid", s(MilestoneStatus::Paid.as_str())),
                                    (":now", s(now.to_string())),
                                ]))),
                        ),
                    );
                }
            }
        }
        let data = payment_data(
            payment,
            with_extra(serde_json::json!({ "status": to }), cause),
        );
        let mut trail = Trail::new(payment.escrow_id, &Actor::Psp, now);
        items.push(trail.audit(
            self,
            transition.audit(payment.kind),
            (entity::PAYMENT, payment.id),
            data.clone(),
        )?);
        items.push(trail.event(self, transition.event_kind(), data)?);
        Ok(items)
    }

    /// The escrow's balance update for `transition` of `payment`
    /// (`BalanceDelta`): a debit is conditional on `available`, a credit back
    /// on the bucket it leaves.
    fn balance_move(
        &self,
        payment: &Payment,
        transition: PaymentTransition,
        now: Timestamp,
    ) -> TransactWriteItem {
        let delta = BalanceDelta::of(payment.kind, payment.amount, transition);
        let (bucket, moved) = if delta.refunded != 0 {
            ("refunded_cents", delta.refunded)
        } else {
            ("paid_cents", delta.paid)
        };
        // The bucket that shrinks must hold the amount.
        let condition = if delta.available < 0 {
            "available_cents >= :out".to_string()
        } else {
            format!("{bucket} >= :out")
        };
        let update = Update::builder()
            .set_key(Some(key_item(&keys::escrow(payment.escrow_id))))
            .update_expression(format!(
                "SET available_cents = available_cents + :available, {bucket} = {bucket} + :moved, updated_at = :now"
            ))
            .condition_expression(format!("attribute_exists(pk) AND {condition}"))
            .set_expression_attribute_values(Some(values([
                (":available", n(delta.available)),
                (":moved", n(moved)),
                (":out", n(payment.amount.minor_units())),
                (":now", s(now.to_string())),
            ])));
        self.update(update)
    }

    /// The transaction that sends ERROR `payment` again (`POST
    /// /payments/execute/{id}`, decided by `retry_payment`): the payment
    /// PENDING under a new `psp_ref` at `attempts` (conditional on still
    /// being the ERROR attempt read), the amount out of the escrow's
    /// `available` again, a usage spend's amount back into its `payee`'s
    /// total under the total limit, the new `PSP_REF#` pointer, its
    /// milestone PAID again, the audit entry and `PAYMENT_PENDING`. Answers
    /// the items and the payment as they write it.
    pub(crate) fn resend_items(
        &self,
        payment: Payment,
        escrow: &Escrow,
        payee: Option<&UsagePayee>,
        attempts: u32,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(Vec<TransactWriteItem>, Payment), AppError> {
        let id = payment.id;
        let psp_ref = new_psp_ref();
        let mut items = vec![
            self.update(
                Update::builder()
                    .set_key(Some(key_item(&keys::payment(id))))
                    .update_expression(
                        "SET #status = :pending, psp_ref = :ref, attempts = :attempts, \
                         updated_at = :now, expiry_pk = :stuck_pk, expiry_sk = :stuck_sk",
                    )
                    .condition_expression("#status = :error AND attempts = :was")
                    .expression_attribute_names("#status", "status")
                    .set_expression_attribute_values(Some(values([
                        (":pending", s(PaymentStatus::Pending.as_str())),
                        (":error", s(PaymentStatus::Error.as_str())),
                        (":ref", s(&psp_ref)),
                        (":attempts", n(attempts)),
                        (":was", n(payment.attempts)),
                        (":now", s(now.to_string())),
                        (
                            ":stuck_pk",
                            s(keys::sharded_partition(keys::PENDING_PAYMENTS, id)),
                        ),
                        (":stuck_sk", s(keys::expiry_sort_key(now, id))),
                    ]))),
            ),
            self.balance_move(&payment, PaymentTransition::Pending, now),
        ];
        if let Some(payee) = payee {
            items.push(self.payee_total_again(payee, payment.amount));
        }
        let mut pointer: Item = key_item(&keys::psp_ref(&psp_ref));
        pointer.insert("payment_id".into(), n(id));
        items.push(self.put_new(pointer));
        if let Some(m) = payment
            .milestone_id
            .and_then(|mid| escrow.milestones.iter().find(|m| m.id == mid))
        {
            if m.status != MilestoneStatus::Paid {
                items.push(self.milestone_paid(escrow.id, m, now));
            }
        }
        let pending = Payment {
            psp_ref,
            status: PaymentStatus::Pending,
            attempts,
            updated_at: now,
            ..payment
        };
        let data = payment_data(&pending, serde_json::json!({"attempts": pending.attempts}));
        let mut trail = Trail::new(escrow.id, actor, now);
        let transition = PaymentTransition::Pending;
        items.push(trail.audit(
            self,
            transition.audit(pending.kind),
            (entity::PAYMENT, id),
            data.clone(),
        )?);
        items.push(trail.event(self, transition.event_kind(), data)?);
        Ok((items, pending))
    }

    /// The one `PAYMENT_FAILED` alert of the PSP's refusal of attempt
    /// `attempt` of `payment` (cause `dispatch:{id}:{attempt}`: raised once
    /// however often the answer is recorded).
    pub(crate) async fn dispatch_alert(
        &self,
        payment: &Payment,
        attempt: u32,
        alert_type: AlertType,
        now: Timestamp,
    ) -> Result<TransactWriteItem, AppError> {
        self.alert_put(&NewAlert {
            id: self.next_id(alerts::ID_KIND).await?,
            alert_type,
            cause: format!("dispatch:{}:{attempt}", payment.id),
            message: "The PSP refused a payment; its amount is back in the escrow.".into(),
            actor_user_id: None,
            payload: alert_payload(payment, serde_json::json!({})),
            created_at: now,
        })
    }
}

/// What an alert about one payment says (`PAYMENT_FAILED`, `PAYOUT_STUCK`):
/// `{payment_id, escrow_id, amount, psp_ref}`, and `extra` (an object) on top.
pub(crate) fn alert_payload(payment: &Payment, extra: serde_json::Value) -> serde_json::Value {
    with_extra(
        serde_json::json!({
            "payment_id": payment.id,
            "escrow_id": payment.escrow_id,
            "amount": payment.amount,
            "psp_ref": payment.psp_ref,
        }),
        extra,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        currency::Currency,
        escrow::payment::{Payee, PaymentKind},
        money::Amount,
    };

    fn offline_store() -> Store {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        Store::new(aws_sdk_dynamodb::Client::from_conf(config), "t", 1)
    }

    fn payment(kind: PaymentKind) -> Payment {
        let now = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        Payment {
            id: Id::new(3).unwrap(),
            escrow_id: Id::new(2).unwrap(),
            milestone_id: None,
            kind,
            payee: Payee::User {
                user_id: Id::new(1).unwrap(),
            },
            amount: Amount::from_minor_units(500).unwrap(),
            currency: Currency::from_stored("USD").unwrap(),
            psp_ref: "PSP-1".into(),
            status: PaymentStatus::Sent,
            attempts: 1,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn balance_moves_follow_the_delta_and_guard_the_bucket_that_shrinks() {
        use PaymentKind as K;
        use PaymentTransition as T;
        let store = offline_store();
        let now = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        for (kind, transition, bucket, available, moved, guard) in [
            (
                K::Payout,
                T::Pending,
                "paid_cents",
                "-500",
                "500",
                "available_cents",
            ),
            (
                K::Payout,
                T::Failed,
                "paid_cents",
                "500",
                "-500",
                "paid_cents",
            ),
            (
                K::UsageSpend,
                T::Failed,
                "paid_cents",
                "500",
                "-500",
                "paid_cents",
            ),
            (
                K::Refund,
                T::Pending,
                "refunded_cents",
                "-500",
                "500",
                "available_cents",
            ),
            (
                K::Refund,
                T::Failed,
                "refunded_cents",
                "500",
                "-500",
                "refunded_cents",
            ),
        ] {
            let item = store.balance_move(&payment(kind), transition, now);
            let update = item.update().unwrap();
            assert!(
                update
                    .update_expression()
                    .contains(&format!("{bucket} = {bucket} + :moved")),
                "{kind:?} {transition:?}: {}",
                update.update_expression()
            );
            assert_eq!(
                update.condition_expression(),
                Some(format!("attribute_exists(pk) AND {guard} >= :out").as_str())
            );
            let values = update.expression_attribute_values().unwrap();
            assert_eq!(values[":available"].as_n().unwrap(), available);
            assert_eq!(values[":moved"].as_n().unwrap(), moved);
            assert_eq!(values[":out"].as_n().unwrap(), "500");
            assert_eq!(update.key()["pk"].as_s().unwrap(), "ESCROW#2");
        }
    }
}
