//! The stand-in for the Lambda DynamoDB Streams event source: the table's
//! stream is the outbox that payout dispatch and domain events read (issue
//! 14), and locally nothing else delivers it.
//!
//! Like Lambda with `ReportBatchItemFailures`: records are handed over in
//! order, in batches of at most [`BATCH_SIZE`], as the `aws_lambda_events`
//! DynamoDB `Event` Lambda would deliver (the same `eventID`, images and
//! sequence numbers); a batch whose handler fails is delivered again whole,
//! and one that reports failed records is delivered again from the first of
//! them. So a record is handed over at least once, never skipped, and may be
//! handed over again: handlers must be idempotent, as on AWS.

use aws_lambda_events::{
    dynamodb::{Event, EventRecord, StreamRecord, StreamViewType},
    streams::DynamoDbEventResponse,
};
use aws_sdk_dynamodbstreams::{
    types::{Record, ShardIteratorType},
    Client,
};
use std::{collections::HashMap, future::Future, time::Duration};

/// Records per delivery at most (the SAM `BatchSize` the template will use).
pub const BATCH_SIZE: usize = 100;

/// Where a new reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Every record the stream still holds (tests).
    Oldest,
    /// Only what is written from now on (`make dev` after a restart: what
    /// was written before was handled by the previous run, or is stale).
    Latest,
}

/// One table's stream, read shard by shard.
pub struct StreamSource {
    client: Client,
    stream_arn: String,
    region: String,
    shards: Vec<Shard>,
}

struct Shard {
    iterator: Option<String>,
    /// Records read but not yet handled: the next delivery starts here.
    pending: Vec<EventRecord>,
}

impl StreamSource {
    /// Opens the latest stream of `table` (the table must have one).
    pub async fn open(
        config: &aws_config::SdkConfig,
        dynamodb: &aws_sdk_dynamodb::Client,
        table: &str,
        start: StartAt,
    ) -> Result<StreamSource, String> {
        let described = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| format!("reading table {table}: {e}"))?;
        let stream_arn = described
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| format!("table {table} has no stream"))?;
        let client = Client::new(config);
        let description = client
            .describe_stream()
            .stream_arn(&stream_arn)
            .send()
            .await
            .map_err(|e| format!("reading the stream of {table}: {e}"))?
            .stream_description
            .ok_or("the stream has no description")?;
        let kind = match start {
            StartAt::Oldest => ShardIteratorType::TrimHorizon,
            StartAt::Latest => ShardIteratorType::Latest,
        };
        let mut shards = Vec::new();
        for shard in description.shards.unwrap_or_default() {
            let Some(id) = shard.shard_id else { continue };
            let iterator = client
                .get_shard_iterator()
                .stream_arn(&stream_arn)
                .shard_id(id)
                .shard_iterator_type(kind.clone())
                .send()
                .await
                .map_err(|e| format!("opening a shard of {table}'s stream: {e}"))?
                .shard_iterator;
            shards.push(Shard {
                iterator,
                pending: Vec::new(),
            });
        }
        let region = config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        Ok(StreamSource {
            client,
            stream_arn,
            region,
            shards,
        })
    }

    /// One delivery per shard that has records: reads what is new, hands at
    /// most [`BATCH_SIZE`] records to `handler`, and keeps what it must see
    /// again. Answers how many records were handled for good.
    pub async fn deliver<F, Fut>(&mut self, handler: &F) -> Result<usize, String>
    where
        F: Fn(Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, String>>,
    {
        let mut handled = 0;
        for shard in &mut self.shards {
            if shard.pending.len() < BATCH_SIZE {
                if let Some(iterator) = shard.iterator.take() {
                    let page = self
                        .client
                        .get_records()
                        .shard_iterator(iterator)
                        .send()
                        .await
                        .map_err(|e| format!("reading the stream: {e}"))?;
                    shard.iterator = page.next_shard_iterator;
                    for record in page.records.unwrap_or_default() {
                        shard
                            .pending
                            .push(lambda_record(record, &self.stream_arn, &self.region));
                    }
                }
            }
            if shard.pending.is_empty() {
                continue;
            }
            let size = shard.pending.len().min(BATCH_SIZE);
            let mut event = Event::default();
            event.records = shard.pending[..size].to_vec();
            let done = match handler(event).await {
                Ok(response) => first_failed(&shard.pending[..size], &response).unwrap_or(size),
                Err(e) => {
                    tracing::warn!(error = %e, "stream batch failed: delivered again");
                    0
                }
            };
            shard.pending.drain(..done);
            handled += done;
        }
        Ok(handled)
    }

    /// Delivers until a read finds nothing new and nothing is left to
    /// deliver again, at most `rounds` deliveries: what a test runs where
    /// Lambda would poll. Answers the records handled for good.
    pub async fn deliver_all<F, Fut>(&mut self, handler: &F, rounds: usize) -> Result<usize, String>
    where
        F: Fn(Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, String>>,
    {
        let mut handled = 0;
        for _ in 0..rounds {
            let n = self.deliver(handler).await?;
            handled += n;
            if n == 0 && self.shards.iter().all(|s| s.pending.is_empty()) {
                return Ok(handled);
            }
        }
        Err(format!(
            "records still undelivered after {rounds} deliveries"
        ))
    }

    /// Delivers forever, every `idle` when there is nothing new (and after a
    /// batch that failed, so a failing handler is not spun).
    pub async fn deliver_forever<F, Fut>(mut self, idle: Duration, handler: F)
    where
        F: Fn(Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, String>>,
    {
        loop {
            match self.deliver(&handler).await {
                Ok(n) if n > 0 && self.shards.iter().all(|s| s.pending.is_empty()) => {}
                Ok(_) => tokio::time::sleep(idle).await,
                Err(e) => {
                    tracing::warn!(error = %e, "stream read failed");
                    tokio::time::sleep(idle).await;
                }
            }
        }
    }
}

/// The position of the first record the handler reported failed.
fn first_failed(batch: &[EventRecord], response: &DynamoDbEventResponse) -> Option<usize> {
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.as_deref())
        .collect();
    batch.iter().position(|r| {
        r.change
            .sequence_number
            .as_deref()
            .is_some_and(|seq| failed.contains(&seq))
    })
}

/// A stream record as Lambda hands it to a function.
fn lambda_record(record: Record, stream_arn: &str, region: &str) -> EventRecord {
    let image = |item: Option<HashMap<String, _>>| -> serde_dynamo::Item {
        item.map(serde_dynamo::Item::from).unwrap_or_default()
    };
    let mut change = StreamRecord::default();
    if let Some(data) = record.dynamodb {
        change.keys = image(data.keys);
        change.new_image = image(data.new_image);
        change.old_image = image(data.old_image);
        change.sequence_number = data.sequence_number;
        change.size_bytes = data.size_bytes.unwrap_or_default();
        change.stream_view_type = Some(StreamViewType::NewAndOldImages);
        if let Some(at) = data.approximate_creation_date_time {
            change.approximate_creation_date_time =
                chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default();
        }
    }
    let mut out = EventRecord::default();
    out.aws_region = region.to_string();
    out.change = change;
    out.event_id = record.event_id.unwrap_or_default();
    out.event_name = record
        .event_name
        .map(|n| n.as_str().to_string())
        .unwrap_or_default();
    out.event_source = Some("aws:dynamodb".into());
    out.event_version = record.event_version;
    out.event_source_arn = Some(stream_arn.to_string());
    out
}
