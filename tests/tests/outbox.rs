//! The table's stream as the outbox (issue 14): what `kobatela-local`'s
//! stand-in for the Lambda event source delivers. Every committed write is
//! delivered once, in order, as Lambda's DynamoDB event (both images); a
//! cancelled transaction delivers nothing; a batch that reports a failed
//! record is delivered again from that record, and one that fails whole is
//! delivered again whole.

use aws_lambda_events::{dynamodb::Event, streams::DynamoDbEventResponse};
use kobatela_local::stream::{StartAt, StreamSource};
use kobatela_tests::{InProcess, Table};
use serde_json::json;
use std::sync::{Arc, Mutex};

/// What a handler saw, batch by batch: (event name, pk, new `status`).
type Seen = Arc<Mutex<Vec<Vec<(String, String, Option<String>)>>>>;

fn summary(event: &Event) -> Vec<(String, String, Option<String>)> {
    event
        .records
        .iter()
        .map(|r| {
            let text = |item: &serde_dynamo::Item, name: &str| {
                let value: serde_json::Value = serde_dynamo::from_item(item.clone()).unwrap();
                value[name].as_str().map(str::to_string)
            };
            (
                r.event_name.clone(),
                text(&r.change.keys, "pk").unwrap(),
                text(&r.change.new_image, "status"),
            )
        })
        .collect()
}

async fn source(api: &InProcess) -> StreamSource {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    StreamSource::open(
        &config,
        api.state.store.client(),
        &api.table,
        StartAt::Oldest,
    )
    .await
    .expect("the table has a stream")
}

#[tokio::test]
async fn the_stream_delivers_each_committed_write_in_order_and_again_after_a_failure() {
    let api = InProcess::new("outbox").await;
    let table = Table::named(&api.table).await;
    let mut stream = source(&api).await;
    // What the table holds already (the admin key, its audit entry, …).
    let noop = |_: Event| async { Ok::<_, String>(DynamoDbEventResponse::default()) };
    while stream.deliver(&noop).await.unwrap() > 0 {}

    for (pk, status) in [("OUTBOX#1", "PENDING"), ("OUTBOX#2", "PENDING")] {
        table
            .put(json!({"pk": pk, "sk": "T", "status": status}))
            .await;
    }
    // A cancelled transaction: its first write is undone and must not be
    // published (the emulator is patched for this; see moto_server.py).
    let cancelled = api
        .state
        .store
        .client()
        .transact_write_items()
        .transact_items(
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .put(
                    aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&api.table)
                        .item(
                            "pk",
                            aws_sdk_dynamodb::types::AttributeValue::S("OUTBOX#3".into()),
                        )
                        .item("sk", aws_sdk_dynamodb::types::AttributeValue::S("T".into()))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .put(
                    aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&api.table)
                        .item(
                            "pk",
                            aws_sdk_dynamodb::types::AttributeValue::S("OUTBOX#1".into()),
                        )
                        .item("sk", aws_sdk_dynamodb::types::AttributeValue::S("T".into()))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await;
    assert!(cancelled.is_err(), "the second put's condition fails");
    table
        .put(json!({"pk": "OUTBOX#1", "sk": "T", "status": "SENT"}))
        .await;

    // First delivery: the handler fails the second record.
    let seen: Seen = Arc::default();
    let failing_second = {
        let seen = seen.clone();
        move |event: Event| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(summary(&event));
                let mut response = DynamoDbEventResponse::default();
                let mut failure = aws_lambda_events::streams::DynamoDbBatchItemFailure::default();
                failure.item_identifier = event.records[1].change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                Ok::<_, String>(response)
            }
        }
    };
    assert_eq!(stream.deliver(&failing_second).await.unwrap(), 1);
    // Then a handler that fails whole: nothing is handled, nothing lost.
    let failing_all = |_: Event| async { Err::<DynamoDbEventResponse, _>("down".to_string()) };
    assert_eq!(stream.deliver(&failing_all).await.unwrap(), 0);
    // Then one that takes everything.
    let taking = {
        let seen = seen.clone();
        move |event: Event| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(summary(&event));
                Ok::<_, String>(DynamoDbEventResponse::default())
            }
        }
    };
    assert_eq!(stream.deliver(&taking).await.unwrap(), 2);
    assert_eq!(stream.deliver(&taking).await.unwrap(), 0, "nothing more");

    let pending = Some("PENDING".to_string());
    let first = (
        "INSERT".to_string(),
        "OUTBOX#1".to_string(),
        pending.clone(),
    );
    let second = ("INSERT".to_string(), "OUTBOX#2".to_string(), pending);
    let third = (
        "MODIFY".to_string(),
        "OUTBOX#1".to_string(),
        Some("SENT".to_string()),
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            vec![first, second.clone(), third.clone()],
            vec![second, third],
        ]
    );
}

#[tokio::test]
async fn a_modify_record_carries_both_images() {
    let api = InProcess::new("outbox-images").await;
    let table = Table::named(&api.table).await;
    let mut stream = source(&api).await;
    let noop = |_: Event| async { Ok::<_, String>(DynamoDbEventResponse::default()) };
    while stream.deliver(&noop).await.unwrap() > 0 {}
    table
        .put(json!({"pk": "OUTBOX#9", "sk": "T", "status": "PENDING"}))
        .await;
    table
        .put(json!({"pk": "OUTBOX#9", "sk": "T", "status": "SENT"}))
        .await;
    let records: Arc<Mutex<Vec<aws_lambda_events::dynamodb::EventRecord>>> = Arc::default();
    let keep = {
        let records = records.clone();
        move |event: Event| {
            let records = records.clone();
            async move {
                records.lock().unwrap().extend(event.records);
                Ok::<_, String>(DynamoDbEventResponse::default())
            }
        }
    };
    assert_eq!(stream.deliver(&keep).await.unwrap(), 2);
    let records = records.lock().unwrap().clone();
    let modify = &records[1];
    assert_eq!(modify.event_name, "MODIFY");
    let old: serde_json::Value = serde_dynamo::from_item(modify.change.old_image.clone()).unwrap();
    let new: serde_json::Value = serde_dynamo::from_item(modify.change.new_image.clone()).unwrap();
    assert_eq!(old["status"], "PENDING");
    assert_eq!(new["status"], "SENT");
    assert_ne!(records[0].event_id, modify.event_id);
    assert!(modify.change.sequence_number > records[0].change.sequence_number);
    assert!(modify
        .event_source_arn
        .as_deref()
        .is_some_and(|arn| arn.contains(&api.table)));
}
