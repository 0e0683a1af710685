//! The PSP side of the local stack: the webhook's state (secrets from the
//! environment, the queue found by name in the emulator), and the consumer
//! loop that stands in for the Lambda SQS event source: receive (long
//! polling), hand the batch to `psp_events::handle` as an `SqsEvent`, delete
//! the messages it did not report as failures (those come back after the
//! visibility timeout, and go to the dead-letter queue after 5 receives).

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use psp_webhook::{Webhook, WebhookState};
use shared::{
    queue::{Queue, QUEUE_URL_VAR},
    secrets,
    store::Store,
};
use std::{collections::HashSet, time::Duration};

/// The queue's local name (`local/bootstrap.py`).
pub const LOCAL_QUEUE: &str = "kobatela-psp-events";

/// The local queue: `KOBATELA_PSP_QUEUE_URL`, else the bootstrap's queue.
pub async fn local_queue(sdk: &aws_config::SdkConfig) -> Result<Queue, String> {
    let client = Queue::new_client(sdk);
    let url = match std::env::var(QUEUE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => Queue::url_of(&client, LOCAL_QUEUE).await?,
    };
    Ok(Queue::new(client, &url))
}

/// The webhook of the local stack, on `store`'s table; refuses to start
/// without `KOBATELA_PSP_WEBHOOK_SECRET`.
pub async fn local_webhook(store: Store, queue: Queue) -> Result<WebhookState, String> {
    let sdk = shared::app::sdk_config().await;
    let current = secrets::from_env(&secrets::PSP_WEBHOOK_SECRET, &sdk).await?;
    let previous = secrets::optional_from_env(&secrets::PSP_WEBHOOK_SECRET_PREVIOUS, &sdk).await?;
    Ok(Webhook::new(
        store,
        queue,
        psp_webhook::webhook_secrets(&current, previous.as_ref()),
    ))
}

/// One receive of up to 10 messages (waiting up to `wait_seconds` for the
/// first), handled by the consumer's own `handle`. Answers how many were
/// received and how many of them failed (left on the queue).
pub async fn poll_once(
    queue: &Queue,
    store: &Store,
    wait_seconds: i32,
) -> Result<(usize, usize), String> {
    let messages = queue.receive(10, wait_seconds).await?;
    if messages.is_empty() {
        return Ok((0, 0));
    }
    let mut event = SqsEvent::default();
    for m in &messages {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.receipt_handle = m.receipt_handle.clone();
        record.body = m.body.clone();
        record.event_source = Some("aws:sqs".into());
        if let Some(attributes) = &m.attributes {
            for (k, v) in attributes {
                record.attributes.insert(k.as_str().to_string(), v.clone());
            }
        }
        event.records.push(record);
    }
    let response = psp_events::handle(store, event).await;
    let failed: HashSet<String> = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    for m in &messages {
        let id = m.message_id.clone().unwrap_or_default();
        if failed.contains(&id) {
            continue;
        }
        if let Some(receipt) = &m.receipt_handle {
            queue.delete(receipt).await?;
        }
    }
    Ok((messages.len(), failed.len()))
}

/// `kobatela-local`'s consumer: long polls forever; an SQS error is logged
/// and retried a second later.
pub async fn consume_forever(queue: Queue, store: Store) {
    loop {
        match poll_once(&queue, &store, 10).await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "PSP queue consumer: retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
