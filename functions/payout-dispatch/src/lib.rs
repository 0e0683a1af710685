//! The payout dispatcher: the table's stream is the outbox. A payment is
//! written PENDING in the transaction that takes its money out of the
//! escrow; this function, fed by the stream (filtered to payment items that
//! became PENDING, partial batch failures), asks the PSP to pay it.
//!
//! Invariants:
//! - Nothing outside DynamoDB is called inside a money transaction: the PSP
//!   is called here, after the payment is committed.
//! - A payout is never requested twice: every request for one attempt of one
//!   payment carries `Idempotency-Key: {payment id}-{attempt}`, so a retry
//!   (after a timeout, a 429 or 5xx, or an answer lost after the PSP paid)
//!   gets the PSP's recorded answer, not a second payout.
//! - The PSP is asked only while the payment, read consistently, is still
//!   PENDING at that attempt (a redelivered record of a payment the PSP's
//!   webhook already settled asks nothing).
//! - The answer is recorded by `ops::payout::record_psp_answer`, conditional on
//!   PENDING at that attempt: accepted → SENT; refused → ERROR, its money
//!   back, one `PAYMENT_FAILED` alert. A webhook that got there first wins.
//! - "Retry later" and any failure to record report the record failed, and
//!   every later record of the batch with it (Lambda resumes from the lowest
//!   one, in order): nothing is skipped, and a record handled again is
//!   harmless.

use aws_lambda_events::{
    dynamodb::{Event, EventRecord},
    streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse},
};
use serde::Deserialize;
use shared::{
    domain::{
        escrow::payment::{PaymentStatus, PaymentTransition, PspAnswer},
        ids::Id,
    },
    ops::payout::AnswerRecorded,
    psp::{HttpPsp, PayoutAnswer, PayoutRequest, Psp},
    store::Store,
};
use std::sync::Arc;

/// The store and the PSP, built once per cold start.
#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    psp: Arc<dyn Psp>,
}

/// What one record led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    /// Not a payment that became PENDING (the stream filter's job on AWS).
    NotAPayout,
    /// Read again, the payment was no longer PENDING at that attempt: the
    /// PSP was not asked.
    AlreadyMoved,
    /// The PSP answered and its answer was recorded (or found moot).
    Recorded(AnswerRecorded),
}

impl Dispatcher {
    pub fn new(store: Store, psp: Arc<dyn Psp>) -> Dispatcher {
        Dispatcher { store, psp }
    }

    /// The table, and the PSP from `KOBATELA_PSP_BASE_URL` and its API key
    /// (an SSM SecureString, read once).
    pub async fn for_lambda() -> Result<Dispatcher, String> {
        let store = shared::app::store_for_lambda().await?;
        let psp = HttpPsp::from_env(&shared::app::sdk_config().await)
            .await
            .map_err(shared::app::refuse)?;
        Ok(Dispatcher::new(store, psp))
    }

    /// One stream batch, in order; see the invariants above.
    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        let mut failed = false;
        for record in &event.records {
            if !failed {
                match self.dispatch(record).await {
                    // What the stream filter drops on AWS: not worth a line.
                    Ok(Dispatched::NotAPayout) => {}
                    Ok(done) => {
                        tracing::info!(event_id = %record.event_id, ?done, "payout record handled")
                    }
                    Err(why) => {
                        tracing::warn!(event_id = %record.event_id, %why, "payout record failed: delivered again");
                        failed = true;
                    }
                }
            }
            if failed {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// One record: `Err` when it must be delivered again.
    pub async fn dispatch(&self, record: &EventRecord) -> Result<Dispatched, String> {
        let Some((id, attempt)) = became_pending(record) else {
            return Ok(Dispatched::NotAPayout);
        };
        let Some(payment) = self
            .store
            .payment(id)
            .await
            .map_err(|e| format!("reading payment {id}: {e}"))?
        else {
            // Payments are never deleted: a record of one the table does not
            // hold (another table's event, replayed by hand) asks nothing.
            tracing::warn!(payment = %id, "a stream record of a payment that is not stored");
            return Ok(Dispatched::AlreadyMoved);
        };
        let payment = payment.payment;
        if payment.status != PaymentStatus::Pending || payment.attempts != attempt {
            return Ok(Dispatched::AlreadyMoved);
        }
        let request = PayoutRequest {
            payment_id: payment.id,
            attempt,
            psp_ref: payment.psp_ref.clone(),
            amount: payment.amount,
            currency: payment.currency,
            payee: payment.payee.clone(),
        };
        let (answer, detail) = match self.psp.submit_payout(&request).await {
            PayoutAnswer::Accepted { psp_payout_id } => (
                PspAnswer::Accepted,
                serde_json::json!({ "payout_id": psp_payout_id }),
            ),
            PayoutAnswer::Refused { reason } => {
                (PspAnswer::Refused, serde_json::json!({ "reason": reason }))
            }
            PayoutAnswer::RetryLater { why } => {
                return Err(format!("the PSP gave no answer for payment {id}: {why}"))
            }
        };
        let recorded =
            shared::ops::payout::record_psp_answer(&self.store, id, attempt, answer, detail)
                .await
                .map_err(|e| format!("recording the PSP's answer for payment {id}: {e}"))?;
        if recorded == AnswerRecorded::Applied(PaymentTransition::Failed) {
            tracing::warn!(payment = %id, "the PSP refused a payout: ERROR, money back");
        }
        Ok(Dispatched::Recorded(recorded))
    }
}

/// The payment and attempt of a record in which a payment item became
/// PENDING: inserted PENDING, or PENDING again at a new attempt (a retry).
pub fn became_pending(record: &EventRecord) -> Option<(Id, u32)> {
    #[derive(Deserialize)]
    struct Image {
        pk: String,
        sk: String,
        id: Id,
        status: PaymentStatus,
        attempts: u32,
    }
    let image = |item: &serde_dynamo::Item| -> Option<Image> {
        if item.is_empty() {
            return None;
        }
        serde_dynamo::from_item(item.clone()).ok()
    };
    let new = image(&record.change.new_image)?;
    let key = shared::store::keys::payment(new.id);
    if new.pk != key.pk || new.sk != key.sk || new.status != PaymentStatus::Pending {
        return None;
    }
    match image(&record.change.old_image) {
        Some(old) if old.status == PaymentStatus::Pending && old.attempts == new.attempts => None,
        _ => Some((new.id, new.attempts)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A stream image: strings as S, numbers as N (as DynamoDB sends them;
    /// `serde_json`'s exact numbers do not serialize as plain numbers).
    fn image(value: serde_json::Value) -> serde_dynamo::Item {
        let object = value.as_object().unwrap();
        let attributes: std::collections::HashMap<String, serde_dynamo::AttributeValue> = object
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => serde_dynamo::AttributeValue::S(s.clone()),
                    other => serde_dynamo::AttributeValue::N(other.to_string()),
                };
                (k.clone(), v)
            })
            .collect();
        attributes.into()
    }

    fn record(old: Option<serde_json::Value>, new: Option<serde_json::Value>) -> EventRecord {
        let item = |v: Option<serde_json::Value>| v.map(image).unwrap_or_default();
        let mut r = EventRecord::default();
        r.change.old_image = item(old);
        r.change.new_image = item(new);
        r
    }

    fn payment(status: &str, attempts: u32) -> serde_json::Value {
        json!({"pk": "PAYMENT#7", "sk": "PAYMENT", "id": 7, "status": status, "attempts": attempts})
    }

    #[test]
    fn only_a_payment_that_became_pending_is_dispatched() {
        let id = Id::new(7).unwrap();
        // Created PENDING; retried (ERROR → PENDING, attempt 2).
        assert_eq!(
            became_pending(&record(None, Some(payment("PENDING", 1)))),
            Some((id, 1))
        );
        assert_eq!(
            became_pending(&record(
                Some(payment("ERROR", 1)),
                Some(payment("PENDING", 2))
            )),
            Some((id, 2))
        );
        // Already PENDING at that attempt (another attribute changed), or
        // no longer PENDING, or removed: nothing to ask.
        for (old, new) in [
            (Some(payment("PENDING", 1)), Some(payment("PENDING", 1))),
            (Some(payment("PENDING", 1)), Some(payment("SENT", 1))),
            (Some(payment("SENT", 1)), Some(payment("SETTLED", 1))),
            (Some(payment("PENDING", 1)), Some(payment("ERROR", 1))),
            (Some(payment("PENDING", 1)), None),
        ] {
            assert_eq!(
                became_pending(&record(old.clone(), new.clone())),
                None,
                "{old:?} → {new:?}"
            );
        }
        // Not a payment item: the PSP reference pointer, an audit entry, a
        // payment-shaped item under another key.
        for other in [
            json!({"pk": "PSP_REF#PSP-1", "sk": "PSP_REF", "payment_id": 7}),
            json!({"pk": "AUDIT#PAYMENT#7", "sk": "x", "id": 7, "status": "PENDING", "attempts": 1}),
            json!({"pk": "PAYMENT#8", "sk": "PAYMENT", "id": 7, "status": "PENDING", "attempts": 1}),
        ] {
            assert_eq!(
                became_pending(&record(None, Some(other.clone()))),
                None,
                "{other}"
            );
        }
    }
}
