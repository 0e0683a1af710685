//! The SQS adapter (cargo feature `queue`): the PSP webhook sends each
//! recorded event to the PSP events queue; `kobatela-local` reads that queue
//! the way the Lambda event source does. Other functions do not link it.
//!
//! A failed send is `SERVICE_BUSY` (503 with `Retry-After`): the event is
//! recorded but not known to be queued, so the PSP's retry sends it again.

use crate::error::AppError;
use aws_sdk_sqs::{error::DisplayErrorContext, types::Message, Client};
use std::sync::Arc;

/// Where the webhook sends events: `KOBATELA_PSP_QUEUE_URL`.
pub const QUEUE_URL_VAR: &str = "KOBATELA_PSP_QUEUE_URL";

/// One queue and its client, built once per container.
#[derive(Clone)]
pub struct Queue {
    client: Client,
    url: Arc<str>,
}

impl Queue {
    pub fn new(client: Client, url: &str) -> Queue {
        Queue {
            client,
            url: Arc::from(url),
        }
    }

    /// The SQS client settings every user of the queue has (tests add their
    /// interceptors to the same): the store's quick retries on top of `sdk`.
    pub fn client_config(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::config::Builder {
        aws_sdk_sqs::config::Builder::from(sdk)
            .retry_config(crate::store::retry::sdk_retry_config())
    }

    pub fn new_client(sdk: &aws_config::SdkConfig) -> Client {
        Client::from_conf(Queue::client_config(sdk).build())
    }

    /// The queue named `name` (for local runs, where its URL depends on the
    /// emulator's port).
    pub async fn url_of(client: &Client, name: &str) -> Result<String, String> {
        client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| format!("queue {name}: {}", DisplayErrorContext(e)))?
            .queue_url
            .ok_or_else(|| format!("queue {name} has no URL"))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends one message; any failure is `SERVICE_BUSY` (logged, never shown).
    pub async fn send(&self, body: String) -> Result<(), AppError> {
        self.client
            .send_message()
            .queue_url(self.url.as_ref())
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::warn!(error = %DisplayErrorContext(e), "SQS send failed");
                AppError::busy()
            })
    }

    /// Up to `max` messages, waiting up to `wait_seconds` for the first
    /// (long polling), with their receive counts.
    pub async fn receive(&self, max: i32, wait_seconds: i32) -> Result<Vec<Message>, String> {
        let output = self
            .client
            .receive_message()
            .queue_url(self.url.as_ref())
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .map_err(|e| format!("SQS receive failed: {}", DisplayErrorContext(e)))?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Deletes a handled message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), String> {
        self.client
            .delete_message()
            .queue_url(self.url.as_ref())
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("SQS delete failed: {}", DisplayErrorContext(e)))
    }
}
