//! The PSP events consumer's use case: a recorded webhook event applied
//! once. Read the event, the payment its `psp_ref` points at;
//! `resolve_psp_event` decides; ONE transaction writes the payment's change
//! (and, for a failure, the money back, the milestone APPROVED, a spend's
//! total given back), the audit entry and timeline event, the event's own
//! status (conditional on not processed yet) and its alert. A payment that
//! changed meanwhile is decided again; contention is retried with backoff,
//! then `SERVICE_BUSY` (nothing changed: SQS delivers the message again).

use crate::{
    domain::{
        escrow::payment::{
            resolve_psp_event, PaymentStatus, PspEventStatus, PspEventType, PspOutcome,
        },
        time::Timestamp,
    },
    error::AppError,
    store::{
        alerts::{self, NewAlert},
        keys,
        transact::TransactError,
        Store,
    },
};

/// What the consumer did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// Processed now, with this status.
    Done(PspEventStatus),
    /// Processed before (a redelivery, or the same event sent twice).
    AlreadyProcessed,
    /// No such event recorded (nothing to apply).
    NotRecorded,
}

/// Applies event `event_id` once, per `resolve_psp_event`, in ONE
/// transaction (payment, escrow, milestone, audit, timeline, event status,
/// alert).
pub async fn consume(store: &Store, event_id: &str) -> Result<Consumed, AppError> {
    store
        .until_settled("PSP event", AppError::busy, || pass(store, event_id))
        .await
}

async fn pass(store: &Store, event_id: &str) -> Result<Option<Consumed>, AppError> {
    let Some(event) = store.psp_event_record(event_id).await? else {
        return Ok(Some(Consumed::NotRecorded));
    };
    if event.processed() {
        return Ok(Some(Consumed::AlreadyProcessed));
    }
    let kind = event
        .event_type
        .as_deref()
        .map_or(PspEventType::Other, PspEventType::parse);
    let payment = match &event.psp_ref {
        Some(psp_ref) => store.payment_by_psp_ref(psp_ref).await?,
        None => None,
    };
    // An older attempt of a retried payment (its psp_ref is not the
    // current one) ended in ERROR: that is the state the event speaks to.
    let attempt = payment.as_ref().map(|p| {
        if Some(&p.psp_ref) == event.psp_ref.as_ref() {
            p.status
        } else {
            PaymentStatus::Error
        }
    });
    let outcome = match (&event.psp_ref, attempt) {
        // No reference at all: nothing to apply it to, nothing to alert.
        (None, _) => PspOutcome::Ignored,
        (Some(_), attempt) => resolve_psp_event(attempt, kind),
    };
    let now = Timestamp::now();
    let mut items = Vec::new();
    let applied = matches!(outcome, PspOutcome::Applied(_));
    if let (PspOutcome::Applied(transition), Some(p)) = (outcome, &payment) {
        let cause = serde_json::json!({ "event_id": event_id });
        items = store.psp_payment_items(p, transition, cause, now).await?;
    }
    let event_index = items.len();
    items.push(store.event_processed(
        &keys::psp_event(event_id),
        &outcome,
        payment.as_ref().map(|p| p.id),
        now,
    ));
    let alert_index = items.len();
    if let Some(alert_type) = outcome.alert() {
        let payload = match outcome {
            PspOutcome::Conflict => serde_json::json!({
                "event_id": event.event_id, "type": event.event_type, "psp_ref": event.psp_ref,
                "payment_id": payment.as_ref().map(|p| p.id),
                "payment_status": attempt,
            }),
            PspOutcome::UnknownReference => serde_json::json!({
                "event_id": event.event_id, "type": event.event_type, "psp_ref": event.psp_ref,
            }),
            _ => serde_json::json!({
                "payment_id": payment.as_ref().map(|p| p.id),
                "escrow_id": payment.as_ref().map(|p| p.escrow_id),
                "amount": payment.as_ref().map(|p| p.amount),
                "psp_ref": event.psp_ref,
            }),
        };
        let message = match outcome {
            PspOutcome::Conflict => {
                "A PSP event contradicts the payment's final state; nothing was changed."
            }
            PspOutcome::UnknownReference => "A PSP event names a reference no payment has.",
            _ => "The PSP failed a payment; its amount is back in the escrow.",
        };
        items.push(store.alert_put(&NewAlert {
            id: store.next_id(alerts::ID_KIND).await?,
            alert_type,
            cause: format!("psp-event:{event_id}"),
            message: message.into(),
            actor_user_id: None,
            payload,
            created_at: now,
        })?);
    }
    match store.transact(items).await {
        Ok(()) => Ok(Some(Consumed::Done(outcome.event_status()))),
        // Processed meanwhile (a concurrent delivery): nothing to do.
        Err(e) if e.failed_condition(event_index) || e.failed_condition(alert_index) => {
            Ok(Some(Consumed::AlreadyProcessed))
        }
        // The payment (or its escrow) changed under us: decide again.
        Err(e) if e.is_busy() || (applied && matches!(e, TransactError::Cancelled(_))) => Ok(None),
        Err(e) => Err(e.unexpected()),
    }
}
