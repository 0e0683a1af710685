//! Domain events out (issue 14): the table's stream (DynamoDB event source,
//! `ReportBatchItemFailures`) in, one EventBridge event per business fact
//! out, on the custom bus `KOBATELA_EVENT_BUS`. What a change means is
//! decided by `shared::store::facts::facts_of`; this crate only publishes.
//!
//! Invariants:
//! - At least once: a record counts as handled only when every event of it
//!   was accepted by PutEvents (no `FailedEntryCount`, no entry error).
//!   Otherwise the first such record's sequence number is reported and
//!   nothing after it is published in this invocation: Lambda delivers the
//!   shard again from that record (bisecting, then the on-failure queue).
//! - Duplicates are possible (a retried batch republishes what preceded the
//!   failure) and harmless: an event's `id` depends only on the change, so a
//!   subscriber deduplicates on it.
//! - In stream order: events are put in record order, at most 10 per call.
//! - A record whose image cannot be read as its kind of item is reported,
//!   never skipped: it ends in the on-failure queue, visible.
//! - No table access: the function's role has none.

use aws_lambda_events::{
    dynamodb::{Event, EventRecord},
    streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse},
};
use aws_sdk_eventbridge::{
    error::DisplayErrorContext, primitives::DateTime, types::PutEventsRequestEntry, Client,
};
use serde_json::Value;
use shared::{
    domain::time::Timestamp,
    store::facts::{facts_of, Fact, FactError},
};
use std::{future::Future, sync::Arc};

/// The bus the events go to (`kobatela-<env>`).
pub const BUS_VAR: &str = "KOBATELA_EVENT_BUS";
/// Every event's `Source`: what subscribers' rules match on.
pub const SOURCE: &str = "kobatela";
/// PutEvents takes at most 10 entries a call.
pub const MAX_ENTRIES: usize = 10;

/// One event to put.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub detail_type: &'static str,
    /// The envelope, as JSON text.
    pub detail: String,
    pub time: Timestamp,
}

impl Entry {
    pub fn of(fact: &Fact) -> Entry {
        Entry {
            detail_type: fact.fact_type.as_str(),
            detail: fact.envelope().to_string(),
            time: fact.occurred_at,
        }
    }
}

/// Where entries go: EventBridge, or a test's stand-in.
pub trait PutEvents {
    /// Puts at most [`MAX_ENTRIES`]; answers, per entry in order, `None`
    /// when accepted or the reason it was not. `Err`: the call failed whole.
    fn put(
        &self,
        entries: &[Entry],
    ) -> impl Future<Output = Result<Vec<Option<String>>, String>> + Send;
}

/// The EventBridge client and the bus, built once per cold start.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    bus: Arc<str>,
}

impl Publisher {
    pub fn new(client: Client, bus: &str) -> Publisher {
        Publisher {
            client,
            bus: Arc::from(bus),
        }
    }

    /// The client with the store's quick retries (a throttled call is
    /// retried by the SDK before the batch is reported failed).
    pub fn new_client(sdk: &aws_config::SdkConfig) -> Client {
        Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(sdk)
                .retry_config(shared::store::retry::sdk_retry_config())
                .build(),
        )
    }

    /// The bus from `KOBATELA_EVENT_BUS`, refused when unset.
    pub fn bus_from_env() -> Result<String, String> {
        match std::env::var(BUS_VAR) {
            Ok(bus) if !bus.trim().is_empty() => Ok(bus.trim().to_string()),
            _ => Err(format!(
                "{BUS_VAR} is not set: the event bus name is required"
            )),
        }
    }

    /// A Lambda function's start: logging, then the publisher, or the logged
    /// reason it refuses to start.
    pub async fn for_lambda() -> Result<Publisher, String> {
        shared::telemetry::init();
        let bus = Publisher::bus_from_env().map_err(shared::app::refuse)?;
        let sdk = shared::app::sdk_config().await;
        Ok(Publisher::new(Publisher::new_client(&sdk), &bus))
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }
}

impl PutEvents for Publisher {
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Option<String>>, String> {
        let mut request = self.client.put_events();
        for entry in entries {
            let time = DateTime::from_secs_and_nanos(
                entry.time.unix_seconds(),
                entry.time.datetime().timestamp_subsec_nanos(),
            );
            request = request.entries(
                PutEventsRequestEntry::builder()
                    .source(SOURCE)
                    .detail_type(entry.detail_type)
                    .detail(&entry.detail)
                    .event_bus_name(self.bus.as_ref())
                    .time(time)
                    .build(),
            );
        }
        let output = request
            .send()
            .await
            .map_err(|e| format!("PutEvents: {}", DisplayErrorContext(e)))?;
        let answers = output.entries.unwrap_or_default();
        if answers.len() != entries.len() {
            // Entries answer in request order; without one each, no entry
            // is known to be accepted.
            return Err(format!(
                "PutEvents answered {} entries for {}",
                answers.len(),
                entries.len()
            ));
        }
        let failed = output.failed_entry_count;
        let results: Vec<Option<String>> = answers
            .into_iter()
            .map(|a| {
                a.error_code
                    .map(|code| format!("{code}: {}", a.error_message.unwrap_or_default()))
            })
            .collect();
        let counted = results.iter().filter(|r| r.is_some()).count();
        if usize::try_from(failed).unwrap_or(usize::MAX) != counted {
            return Err(format!(
                "PutEvents counted {failed} failed entries, named {counted}"
            ));
        }
        Ok(results)
    }
}

/// The facts of one stream record.
pub fn facts_of_record(record: &EventRecord) -> Result<Vec<Fact>, FactError> {
    let image = |item: &serde_dynamo::Item| -> Result<Value, FactError> {
        serde_dynamo::from_item(item.clone())
            .map_err(|e| FactError(format!("an image that is not JSON: {e}")))
    };
    facts_of(
        &record.event_name,
        &image(&record.change.old_image)?,
        &image(&record.change.new_image)?,
        Timestamp::from_datetime(record.change.approximate_creation_date_time),
    )
}

/// One batch of stream records: publishes their events in order and reports
/// the first record not fully published (see the module header).
pub async fn handle<P: PutEvents>(publisher: &P, event: Event) -> DynamoDbEventResponse {
    // (record position, event) in stream order, up to the first record
    // that cannot be read.
    let mut pending: Vec<(usize, Entry)> = Vec::new();
    let mut failed_at: Option<usize> = None;
    for (position, record) in event.records.iter().enumerate() {
        match facts_of_record(record) {
            Ok(facts) => pending.extend(facts.iter().map(|f| (position, Entry::of(f)))),
            Err(e) => {
                tracing::error!(
                    event_id = %record.event_id,
                    error = %e,
                    "a stream record that cannot be read: reported"
                );
                failed_at = Some(position);
                break;
            }
        }
    }
    let mut published = 0usize;
    for chunk in pending.chunks(MAX_ENTRIES) {
        let entries: Vec<Entry> = chunk.iter().map(|(_, e)| e.clone()).collect();
        let first_rejected = match publisher.put(&entries).await {
            Ok(results) => {
                let rejected = results.iter().position(Option::is_some);
                if let Some(i) = rejected {
                    tracing::warn!(
                        reason = results[i].as_deref().unwrap_or_default(),
                        "an event was not accepted: its record is reported"
                    );
                }
                rejected
            }
            Err(e) => {
                tracing::warn!(error = %e, "PutEvents failed: the records are reported");
                Some(0)
            }
        };
        if let Some(i) = first_rejected {
            let position = chunk[i].0;
            failed_at = Some(failed_at.map_or(position, |f| f.min(position)));
            break;
        }
        published += entries.len();
    }
    tracing::info!(
        records = event.records.len(),
        published,
        failed = failed_at.is_some(),
        "stream batch handled"
    );
    let mut response = DynamoDbEventResponse::default();
    if let Some(position) = failed_at {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = event.records[position].change.sequence_number.clone();
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    /// Records every call; rejects the entries (by detail type and call
    /// number) it is told to.
    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<Vec<Entry>>>,
        reject: Option<(usize, &'static str)>,
        fail_call: Option<usize>,
    }

    impl PutEvents for Fake {
        async fn put(&self, entries: &[Entry]) -> Result<Vec<Option<String>>, String> {
            assert!(entries.len() <= MAX_ENTRIES);
            let mut calls = self.calls.lock().unwrap();
            let n = calls.len();
            calls.push(entries.to_vec());
            if self.fail_call == Some(n) {
                return Err("throttled".into());
            }
            Ok(entries
                .iter()
                .map(|e| match self.reject {
                    Some((call, t)) if call == n && e.detail_type == t => {
                        Some("InternalFailure".into())
                    }
                    _ => None,
                })
                .collect())
        }
    }

    fn record(seq: u64, event: &str, old: Value, new: Value) -> EventRecord {
        let item = |v: Value| -> serde_dynamo::Item {
            if v.is_null() {
                serde_dynamo::Item::default()
            } else {
                serde_dynamo::to_item(v).unwrap()
            }
        };
        let mut r = EventRecord::default();
        r.event_name = event.into();
        r.event_id = format!("e{seq}");
        r.change.sequence_number = Some(format!("{seq:021}"));
        r.change.old_image = item(old);
        r.change.new_image = item(new);
        r
    }

    fn transfer(id: u64) -> Value {
        json!({"pk": format!("TRANSACTION#{id}"), "sk": "TRANSACTION", "id": id,
               "sender_id": 1, "beneficiary_id": 2, "amount_cents": 100 * id,
               "currency": "USD", "created_at": "2030-01-01T00:00:00.000000Z",
               "updated_at": "2030-01-01T00:00:00.000000Z"})
    }

    fn payment(status: &str) -> Value {
        json!({"pk": "PAYMENT#9", "sk": "PAYMENT", "id": 9, "escrow_id": 3,
               "kind": "REFUND", "payee_user_id": 1, "amount_cents": 250, "currency": "USD",
               "psp_ref": "PSP-9", "status": status, "attempts": 1, "client_id": 1,
               "provider_id": 2, "created_at": "2030-01-01T00:00:00.000000Z",
               "updated_at": "2030-01-01T00:00:01.000000Z"})
    }

    fn batch(records: Vec<EventRecord>) -> Event {
        let mut event = Event::default();
        event.records = records;
        event
    }

    fn failed(response: &DynamoDbEventResponse) -> Vec<String> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap_or_default())
            .collect()
    }

    fn details(fake: &Fake) -> Vec<Value> {
        fake.calls
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|e| serde_json::from_str(&e.detail).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn publishes_every_fact_in_order_ten_per_call() {
        let fake = Fake::default();
        let mut records: Vec<EventRecord> = (1..=12)
            .map(|i| record(i, "INSERT", Value::Null, transfer(i)))
            .collect();
        // Unrelated writes in between publish nothing.
        records.insert(
            3,
            record(
                100,
                "INSERT",
                Value::Null,
                json!({"pk": "AUDIT#X#1", "sk": "s"}),
            ),
        );
        let response = handle(&fake, batch(records)).await;
        assert!(failed(&response).is_empty());
        let calls = fake.calls.lock().unwrap().clone();
        assert_eq!(
            calls.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 2],
            "at most 10 entries a call"
        );
        let details = details(&fake);
        let ids: Vec<&str> = details
            .iter()
            .map(|d| d["data"]["transfer_id"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (1..=12).map(|i| i.to_string()).collect();
        assert_eq!(ids, expected);
        assert_eq!(details[2]["data"]["amount"], "3.00");
        assert_eq!(details[0]["type"], "transfer.created");
        assert_eq!(details[0]["version"], 1);
        assert_eq!(calls[0][0].detail_type, "transfer.created");
    }

    #[tokio::test]
    async fn a_rejected_entry_reports_its_record_and_stops_there() {
        let fake = Fake {
            reject: Some((0, "payment.settled")),
            ..Fake::default()
        };
        let records = vec![
            record(1, "INSERT", Value::Null, transfer(1)),
            record(2, "MODIFY", payment("SENT"), payment("SETTLED")),
            record(3, "INSERT", Value::Null, transfer(3)),
        ];
        let response = handle(&fake, batch(records)).await;
        assert_eq!(failed(&response), [format!("{:021}", 2)]);
        assert_eq!(fake.calls.lock().unwrap().len(), 1, "nothing after it");
    }

    #[tokio::test]
    async fn a_failed_call_reports_the_first_record_of_its_entries() {
        let fake = Fake {
            fail_call: Some(1),
            ..Fake::default()
        };
        let records: Vec<EventRecord> = (1..=25)
            .map(|i| record(i, "INSERT", Value::Null, transfer(i)))
            .collect();
        let response = handle(&fake, batch(records)).await;
        // The first call (records 1–10) went through; the second failed.
        assert_eq!(failed(&response), [format!("{:021}", 11)]);
        assert_eq!(fake.calls.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn one_record_two_events_are_reported_together() {
        // A payment inserted SENT: payment.pending and payment.sent. The
        // second entry rejected: the record is reported.
        let fake = Fake {
            reject: Some((0, "payment.sent")),
            ..Fake::default()
        };
        let records = vec![record(7, "INSERT", Value::Null, payment("SENT"))];
        let response = handle(&fake, batch(records)).await;
        assert_eq!(failed(&response), [format!("{:021}", 7)]);
        let types: Vec<String> = details(&fake)
            .iter()
            .map(|d| d["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types, ["payment.pending", "payment.sent"]);
    }

    #[tokio::test]
    async fn an_unreadable_fact_item_is_reported_not_skipped() {
        let fake = Fake::default();
        let mut broken = transfer(2);
        broken["amount_cents"] = json!("lots");
        let records = vec![
            record(1, "INSERT", Value::Null, transfer(1)),
            record(2, "INSERT", Value::Null, broken),
            record(3, "INSERT", Value::Null, transfer(3)),
        ];
        let response = handle(&fake, batch(records)).await;
        assert_eq!(failed(&response), [format!("{:021}", 2)]);
        // What came before it is published; nothing after it.
        let details = details(&fake);
        assert_eq!(details.len(), 1);
        assert_eq!(details[0]["data"]["transfer_id"], "1");
    }

    #[tokio::test]
    async fn a_batch_without_facts_makes_no_call() {
        let fake = Fake::default();
        let records = vec![
            record(1, "REMOVE", transfer(1), Value::Null),
            record(2, "MODIFY", payment("SENT"), payment("SENT")),
        ];
        let response = handle(&fake, batch(records)).await;
        assert!(failed(&response).is_empty());
        assert!(fake.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_redelivered_record_gives_the_same_events() {
        let first = Fake::default();
        let again = Fake::default();
        let change = || record(5, "MODIFY", payment("SENT"), payment("ERROR"));
        handle(&first, batch(vec![change()])).await;
        // Another delivery: another eventID, the same change.
        let mut redelivered = change();
        redelivered.event_id = "other".into();
        handle(&again, batch(vec![redelivered])).await;
        assert_eq!(details(&first), details(&again));
        assert_eq!(details(&first)[0]["type"], "payment.failed");
    }
}
