//! The PSP events consumer (SQS trigger, partial batch failures): each
//! message names one recorded webhook event, applied once through
//! `ops::psp_event::consume` (one transaction per event). A message that
//! cannot be handled now (contention through every retry, an AWS failure, a
//! body that is not ours) is reported in `batchItemFailures`, having changed
//! nothing; SQS delivers it again, up to 5 receives, then the dead-letter
//! queue (alarmed). A redelivered message finds its event processed and
//! changes nothing.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use shared::{
    error::AppError,
    ops::psp_event::Consumed,
    store::{psp_events::QueuedEvent, Store},
};

/// Needs the store only: no pepper, no webhook secret, no SQS client (the
/// Lambda service reads and deletes the messages).
pub async fn handle(store: &Store, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        match consume(store, record.body.as_deref()).await {
            Ok(outcome) => tracing::info!(%message_id, ?outcome, "PSP event message handled"),
            Err(e) => {
                tracing::warn!(%message_id, error = %e, "PSP event message failed: SQS retries it");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}

/// One message: `{"event_id": …}`.
pub async fn consume(store: &Store, body: Option<&str>) -> Result<Consumed, AppError> {
    let queued: QueuedEvent = body
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(|| AppError::internal("a PSP events message that is not ours"))?;
    let outcome = Box::pin(shared::ops::psp_event::consume(store, &queued.event_id)).await?;
    if outcome == Consumed::NotRecorded {
        tracing::warn!(event_id = %queued.event_id, "a queued PSP event that is not recorded: nothing to apply");
    }
    Ok(outcome)
}
