//! The table's stream as the outbox (issue 14).
//! - What `kobatela-local`'s stand-in for the Lambda event source delivers:
//!   every committed write once, in order, as Lambda's DynamoDB event (both
//!   images); a cancelled transaction nothing; a batch that reports a failed
//!   record again from that record, one that fails whole again whole.
//! - Payout dispatch through it: every payment is written PENDING in its
//!   money transaction and asked of the PSP (the sandbox, over HTTP) once
//!   per attempt, whatever the PSP answers, loses or repeats, and whatever
//!   DynamoDB does to the dispatcher's write.

use aws_lambda_events::{dynamodb::Event, streams::DynamoDbEventResponse};
use kobatela_local::{
    psp_sandbox::{Sandbox, SandboxConfig},
    stream::{StartAt, StreamSource},
};
use kobatela_tests::{
    faults::{Fault, Faults, Wire},
    psp_secret, unique, EscrowSetup, InProcess, Table,
};
use payout_dispatch::Dispatcher;
use serde_json::{json, Value};
use shared::{
    config::Secret,
    domain::webhook::WebhookSecret,
    psp::{HttpPsp, PspConfig},
};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

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
    let put = |pk: &str, condition: Option<&str>| {
        use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
        let put = Put::builder()
            .table_name(&api.table)
            .item("pk", AttributeValue::S(pk.into()))
            .item("sk", AttributeValue::S("T".into()))
            .set_condition_expression(condition.map(str::to_string))
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    };
    let cancelled = api
        .state
        .store
        .client()
        .transact_write_items()
        .transact_items(put("OUTBOX#3", None))
        .transact_items(put("OUTBOX#1", Some("attribute_not_exists(pk)")))
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

// ---------------------------------------------------------------------------
// Payout dispatch: the dispatcher on the stream, the PSP sandbox over HTTP,
// its webhook events back over HTTP to the API, the consumer applying them.

/// An in-process API served on loopback, a PSP sandbox beside it whose
/// events go to that API's webhook, and the dispatcher reading the API's
/// table stream and asking the sandbox.
struct PayoutLoop {
    api: InProcess,
    sandbox: Sandbox,
    stream: StreamSource,
    dispatcher: Dispatcher,
}

impl PayoutLoop {
    async fn start(prefix: &str, callbacks: bool) -> PayoutLoop {
        let api = InProcess::new(prefix).await;
        PayoutLoop::around(api, callbacks).await
    }

    async fn around(api: InProcess, callbacks: bool) -> PayoutLoop {
        let addr = api.serve_on_loopback().await;
        let sandbox = Sandbox::new(SandboxConfig {
            callbacks,
            delay: Duration::ZERO,
            webhook_url: format!("http://{addr}/psp/webhook"),
            secret: WebhookSecret::new(psp_secret()),
            delivery_attempts: 5,
            retry_pause: Duration::from_millis(50),
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let psp_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(sandbox.clone().serve(listener));
        let psp = HttpPsp::new(
            PspConfig::new(&psp_url, Secret::new("kob_test_psp_key_0123456789")).unwrap(),
        )
        .unwrap();
        let dispatcher = Dispatcher::new(api.state.store.clone(), Arc::new(psp));
        let stream = source(&api).await;
        PayoutLoop {
            api,
            sandbox,
            stream,
            dispatcher,
        }
    }

    /// The dispatcher over every record written so far, as Lambda would
    /// deliver them (again after a failure), until none is left.
    async fn dispatch(&mut self) {
        let dispatcher = self.dispatcher.clone();
        let handler = move |event: Event| {
            let dispatcher = dispatcher.clone();
            async move { Ok::<_, String>(dispatcher.handle(event).await) }
        };
        self.stream
            .deliver_all(&handler, 20)
            .await
            .expect("the dispatcher takes every record");
    }

    /// Waits for the sandbox's webhook events to be delivered, then applies
    /// them (the consumer): `(received, failed)`.
    async fn psp_events(&self) -> (usize, usize) {
        tokio::time::timeout(Duration::from_secs(20), self.sandbox.idle())
            .await
            .expect("the sandbox delivers its events");
        self.api.consume_psp().await
    }

    /// The sandbox's record of the payout requested under `key`.
    fn payout(&self, key: &str) -> Value {
        let all = self.sandbox.payouts();
        let mine: Vec<&Value> = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["key"] == key)
            .collect();
        assert_eq!(mine.len(), 1, "one payout per key: {all}");
        mine[0].clone()
    }

    fn payouts(&self) -> usize {
        self.sandbox.payouts()["items"].as_array().unwrap().len()
    }

    async fn payment(&self, id: u64) -> Value {
        self.api
            .get(&format!("/payments/{id}"))
            .await
            .expect(200)
            .body
    }
}

/// The one payment of `escrow`.
async fn only_payment(api: &InProcess, escrow: u64) -> Value {
    let page = api
        .get(&format!("/payments?escrow_id={escrow}"))
        .await
        .expect(200)
        .body;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    items[0].clone()
}

/// `PAYMENT_FAILED` alerts about `payment`.
async fn failed_alerts(api: &InProcess, payment: u64) -> usize {
    let alerts = api.alerts("PAYMENT_FAILED").await;
    alerts
        .iter()
        .filter(|a| a["payload"]["payment_id"] == payment)
        .count()
}

/// Each row of the sandbox's table, end to end: the client approves an
/// escrow of `X.cc`; its payout is PENDING in that transaction; the
/// dispatcher asks the sandbox (again after a 503 or a lost answer, with the
/// same key); the sandbox's webhook event comes back over HTTP and is
/// applied. One payout per key, every time, and the money adds up at each
/// step.
#[tokio::test]
async fn each_sandbox_outcome_settles_or_fails_the_payout_once() {
    let mut l = PayoutLoop::start("payout-rows", true).await;
    let table = Table::named(&l.api.table).await;
    // (amount, status after dispatch, final status, requests, alerts)
    let rows = [
        ("10.00", "SENT", "SETTLED", 1, 0),
        ("10.13", "ERROR", "ERROR", 1, 1),
        ("10.31", "SENT", "ERROR", 1, 1),
        ("10.57", "SENT", "SETTLED", 3, 0),
        ("10.75", "SENT", "SETTLED", 2, 0),
    ];
    for (amount, dispatched, last, requests, alerts) in rows {
        let payout = l.api.payout(amount).await;
        let cents = |f: &kobatela_tests::EscrowFootprint| (f.available, f.paid);
        let total: i64 = amount.replace('.', "").parse().unwrap();
        let created = table.escrow_footprint(payout.escrow).await;
        assert_eq!(cents(&created), (0, total), "{amount}: paid when PENDING");
        assert_eq!(l.payment(payout.payment).await["status"], "PENDING");

        l.dispatch().await;
        let after = l.payment(payout.payment).await;
        assert_eq!(after["status"], dispatched, "{amount}: {after}");
        let key = format!("{}-1", payout.payment);
        let recorded = l.payout(&key);
        assert_eq!(recorded["requests"], requests, "{amount}: {recorded}");
        assert_eq!(recorded["reference"], payout.psp_ref.as_str());
        assert_eq!(recorded["amount"], amount);

        let (received, failed) = l.psp_events().await;
        assert_eq!(failed, 0, "{amount}");
        assert_eq!(
            received,
            usize::from(amount != "10.13"),
            "{amount}: one event"
        );
        let end = l.payment(payout.payment).await;
        assert_eq!(end["status"], last, "{amount}: {end}");
        assert_eq!(end["attempts"], 1);
        let f = table.escrow_footprint(payout.escrow).await;
        let expected = if last == "ERROR" {
            (total, 0)
        } else {
            (0, total)
        };
        assert_eq!(cents(&f), expected, "{amount}: {f:?}");
        assert_eq!(
            failed_alerts(&l.api, payout.payment).await,
            alerts,
            "{amount}"
        );
        // The same records again (a redelivery): nothing is asked twice.
        let mut again = source(&l.api).await;
        let dispatcher = l.dispatcher.clone();
        let handler = move |event: Event| {
            let dispatcher = dispatcher.clone();
            async move { Ok::<_, String>(dispatcher.handle(event).await) }
        };
        again.deliver_all(&handler, 50).await.unwrap();
        assert_eq!(
            l.payout(&key)["requests"],
            requests,
            "{amount}: asked again"
        );
        assert_eq!(l.payment(payout.payment).await, end);
    }
    assert_eq!(l.payouts(), rows.len());
}

/// The money transaction of every path that pays writes its payment
/// PENDING (no PSP call inside it); the dispatcher then sends each, once.
#[tokio::test]
async fn every_payment_is_written_pending_then_dispatched_once() {
    let mut l = PayoutLoop::start("payout-paths", false).await;
    let api = &l.api;
    let table = Table::named(&api.table).await;
    let mut payments = Vec::new();
    // Approval (PAYOUT), rejection (REFUND), a milestone (the proofs hook).
    for action in ["client-approve", "client-reject"] {
        let e = EscrowSetup::new(api, "12.00").await;
        api.deposit(e.escrow, &unique("d"), "12.00")
            .await
            .expect(200);
        api.escrow_action(e.escrow, action).await.expect(200);
        payments.push((e.escrow, only_payment(api, e.escrow).await));
    }
    let m = EscrowSetup::with(
        api,
        json!({"amount_total": "9.00", "milestones": [
            {"label": "a", "amount": "9.00", "proof_type": "PHOTO"}]}),
    )
    .await;
    api.deposit(m.escrow, &unique("d"), "9.00")
        .await
        .expect(200);
    api.pay_milestone(m.escrow, 1).await;
    payments.push((m.escrow, only_payment(api, m.escrow).await));
    // A usage spend.
    let s = EscrowSetup::new(api, "20.00").await;
    api.deposit(s.escrow, &unique("d"), "20.00")
        .await
        .expect(200);
    api.post(
        "/spend/allowed",
        json!({"escrow_id": s.escrow, "payee_ref": "school-1", "label": "School"}),
    )
    .await
    .expect(201);
    api.call(
        "POST",
        "/spend",
        &[("idempotency-key", &unique("s"))],
        Some(json!({"escrow_id": s.escrow, "payee_ref": "school-1", "amount": "5.00"})),
    )
    .await
    .expect(200);
    payments.push((s.escrow, only_payment(api, s.escrow).await));

    for (escrow, p) in &payments {
        assert_eq!(p["status"], "PENDING", "{p}");
        let id = p["id"].as_u64().unwrap();
        let actions = table.audit_actions("PAYMENT", id).await;
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(
            ["PAYOUT_PENDING", "REFUND_PENDING", "USAGE_SPEND"].contains(&actions[0].as_str()),
            "{actions:?}"
        );
        // escrow_footprint asserts funded = available + paid + refunded.
        table.escrow_footprint(*escrow).await;
    }
    assert_eq!(l.payouts(), 0, "nothing is asked inside a request");

    l.dispatch().await;
    for (escrow, p) in &payments {
        let id = p["id"].as_u64().unwrap();
        let now = l.payment(id).await;
        assert_eq!(now["status"], "SENT", "{now}");
        let sent = table.audit_actions("PAYMENT", id).await;
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent[1].ends_with("_SENT"), "{sent:?}");
        let f = table.escrow_footprint(*escrow).await;
        let amount: i64 = p["amount"]
            .as_str()
            .unwrap()
            .replace('.', "")
            .parse()
            .unwrap();
        assert_eq!(f.paid + f.refunded, amount, "{f:?}");
        assert_eq!(l.payout(&format!("{id}-1"))["requests"], 1);
    }
    assert_eq!(l.payouts(), payments.len());
}

/// A failed payout retried (`POST /payments/execute/{id}`) is a new attempt:
/// PENDING again, dispatched under a new key, paid once.
#[tokio::test]
async fn a_retried_payment_is_a_new_attempt_with_its_own_key() {
    let mut l = PayoutLoop::start("payout-retry", true).await;
    let payout = l.api.payout("30.13").await;
    l.dispatch().await;
    assert_eq!(l.payment(payout.payment).await["status"], "ERROR");
    let retried = l
        .api
        .post(&format!("/payments/execute/{}", payout.payment), json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(retried["status"], "PENDING", "{retried}");
    assert_eq!(retried["attempts"], 2);
    l.dispatch().await;
    // The sandbox refuses .13 again: a second payout key, a second refusal,
    // a second alert (its own cause), the money back again.
    assert_eq!(l.payout(&format!("{}-2", payout.payment))["requests"], 1);
    assert_eq!(l.payment(payout.payment).await["status"], "ERROR");
    assert_eq!(failed_alerts(&l.api, payout.payment).await, 2);
    assert_eq!(l.payouts(), 2);
}

/// The PSP's webhook overtakes the dispatcher: its event arrives while the
/// payment is still PENDING (the PSP paid, our record of its answer is not
/// written yet). It is applied; the dispatcher's answer then changes
/// nothing; the escrow is paid once.
#[tokio::test]
async fn a_webhook_that_overtakes_the_dispatcher_applies_once() {
    let mut l = PayoutLoop::start("payout-overtaken", false).await;
    let table = Table::named(&l.api.table).await;
    let payout = l.api.payout("15.00").await;
    let event = unique("evt-early");
    let body = kobatela_tests::psp_body(&event, "payment.settled", &payout.psp_ref);
    let headers = kobatela_tests::psp_headers(&body);
    l.api
        .psp_webhook(&kobatela_tests::header_refs(&headers), &body)
        .await
        .expect(200);
    assert_eq!(l.api.consume_psp().await, (1, 0));
    assert_eq!(l.payment(payout.payment).await["status"], "SETTLED");

    l.dispatch().await;
    // The dispatcher read SETTLED: the PSP was not asked.
    assert_eq!(l.payouts(), 0);
    assert_eq!(l.payment(payout.payment).await["status"], "SETTLED");
    let f = table.escrow_footprint(payout.escrow).await;
    assert_eq!((f.available, f.paid, f.payments), (0, 1500, 1));
    assert_eq!(
        table.audit_actions("PAYMENT", payout.payment).await,
        ["PAYOUT_PENDING", "PAYMENT_SETTLED"]
    );
}

/// What DynamoDB does to the dispatcher's write and the emulator never
/// does: the transaction cancelled for contention or throttling (through
/// every retry), and the write landing with its answer lost. The record is
/// delivered again; the PSP is asked again with the same key and answers
/// what it recorded: one payout, the payment SENT once.
#[tokio::test]
async fn the_dispatchers_write_survives_contention_throttling_and_a_lost_answer() {
    let faults = Faults::start().await;
    let wire = Wire::default();
    let api = InProcess::with_client(
        "payout-faults",
        wire.dynamodb_client(Some(&faults)).await,
        &[],
    )
    .await;
    let mut l = PayoutLoop::around(api, false).await;
    let table = Table::named(&l.api.table).await;
    let cancellations = Fault::ALL
        .into_iter()
        .filter(|f| matches!(f, Fault::Cancelled(_) | Fault::CancelledAt(..)));
    for fault in cancellations {
        let payout = l.api.payout("8.00").await;
        let key = format!("{}-1", payout.payment);
        faults.inject_touching(fault, &format!("PAYMENT#{}", payout.payment));
        let dispatcher = l.dispatcher.clone();
        let handler = move |event: Event| {
            let dispatcher = dispatcher.clone();
            async move { Ok::<_, String>(dispatcher.handle(event).await) }
        };
        // One delivery: the PSP is asked, its answer cannot be written.
        l.stream.deliver(&handler).await.unwrap();
        assert!(faults.take_injected() > 0, "{fault:?}");
        assert_eq!(
            l.payment(payout.payment).await["status"],
            "PENDING",
            "{fault:?}"
        );
        assert_eq!(l.payout(&key)["requests"], 1, "{fault:?}");
        faults.clear();
        // Delivered again: asked again under the same key, recorded once.
        l.dispatch().await;
        assert_eq!(
            l.payment(payout.payment).await["status"],
            "SENT",
            "{fault:?}"
        );
        let recorded = l.payout(&key);
        assert_eq!(recorded["requests"], 2, "{fault:?}: {recorded}");
        assert_eq!(
            table.audit_actions("PAYMENT", payout.payment).await,
            ["PAYOUT_PENDING", "PAYOUT_SENT"],
            "{fault:?}"
        );
    }

    // The write lands, its answer is lost: the SDK sends it again (the same
    // client request token), and the payment is SENT once.
    let payout = l.api.payout("9.00").await;
    wire.lose_answers("TransactWriteItems", 1);
    l.dispatch().await;
    assert_eq!(wire.lost(), 1);
    assert_eq!(l.payment(payout.payment).await["status"], "SENT");
    assert_eq!(l.payout(&format!("{}-1", payout.payment))["requests"], 1);
    assert_eq!(
        table.audit_actions("PAYMENT", payout.payment).await,
        ["PAYOUT_PENDING", "PAYOUT_SENT"]
    );
    let f = table.escrow_footprint(payout.escrow).await;
    assert_eq!((f.available, f.paid), (0, 900));
}

/// A payment left PENDING (nothing asks the PSP: the sandbox is down)
/// longer than the threshold raises one `PAYOUT_STUCK` alert, on the first
/// sweep only; one not yet that old, or that moved on, raises none. The
/// sweep alerts; it does not decide the payment.
#[tokio::test]
async fn a_payout_left_pending_raises_one_stuck_alert() {
    let api = InProcess::new("payout-stuck").await;
    let table = Table::named(&api.table).await;
    let stuck = api.payout("11.00").await;
    let fresh = api.payout("12.00").await;
    let moved = api.payout("13.00").await;
    table.backdate_pending_payment(stuck.payment).await;
    table.backdate_pending_payment(moved.payment).await;
    let body = kobatela_tests::psp_body(&unique("evt"), "payment.settled", &moved.psp_ref);
    let headers = kobatela_tests::psp_headers(&body);
    api.psp_webhook(&kobatela_tests::header_refs(&headers), &body)
        .await
        .expect(200);
    assert_eq!(api.consume_psp().await, (1, 0));

    let sweep = || async {
        mandate_expiry::handle(&api.state.store, scheduled_event())
            .await
            .expect("a sweep run succeeds")
    };
    let run = sweep().await;
    assert_eq!(run["payouts_stuck"], 1, "{run}");
    let alerts = api.alerts("PAYOUT_STUCK").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let payload = &alerts[0]["payload"];
    assert_eq!(payload["payment_id"], stuck.payment);
    assert_eq!(payload["escrow_id"], stuck.escrow);
    assert_eq!(payload["amount"], "11.00");
    assert_eq!(payload["psp_ref"], stuck.psp_ref.as_str());
    assert!(payload["pending_since"].as_str().is_some(), "{payload}");

    let again = sweep().await;
    assert_eq!(again["payouts_stuck"], 0, "{again}");
    assert_eq!(api.alerts("PAYOUT_STUCK").await.len(), 1);
    for (payment, status) in [
        (stuck.payment, "PENDING"),
        (fresh.payment, "PENDING"),
        (moved.payment, "SETTLED"),
    ] {
        let p = api
            .get(&format!("/payments/{payment}"))
            .await
            .expect(200)
            .body;
        assert_eq!(p["status"], status, "{p}");
    }
}

fn scheduled_event() -> aws_lambda_events::eventbridge::EventBridgeEvent {
    serde_json::from_value(json!({
        "version": "0", "id": unique("run"), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "1", "time": "2030-01-01T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}
    }))
    .unwrap()
}

// ---- Domain events (issue 14, item 5): the stream → domain-events → bus.

/// A fresh bus with a rule sending every `kobatela` event to a fresh queue:
/// a subscriber, as another team would set one up.
struct Subscriber {
    bus: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Subscriber {
    async fn new(name: &str) -> Subscriber {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let events = aws_sdk_eventbridge::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let bus = format!("{name}-bus");
        events.create_event_bus().name(&bus).send().await.unwrap();
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{name}-subscriber"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        events
            .put_rule()
            .name(format!("{name}-all"))
            .event_bus_name(&bus)
            .event_pattern(json!({"source": [domain_events::SOURCE]}).to_string())
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule(format!("{name}-all"))
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Subscriber {
            bus,
            sqs,
            queue_url,
        }
    }

    /// Every EventBridge event the queue holds, until `expected` are read or
    /// a bounded wait ends (delivery is asynchronous on AWS).
    async fn receive(&self, expected: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut out = Vec::new();
        while out.len() < expected && std::time::Instant::now() < deadline {
            let page = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for message in page.messages.unwrap_or_default() {
                out.push(serde_json::from_str(message.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        out
    }
}

/// Runs `domain_events::handle` over the whole stream from its oldest
/// record, as the Lambda event source would; answers the records handled.
async fn publish_stream(api: &InProcess, bus: &str) -> usize {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let publisher =
        domain_events::Publisher::new(domain_events::Publisher::new_client(&config), bus);
    let mut stream = source(api).await;
    let handler = |event: Event| {
        let publisher = publisher.clone();
        async move {
            let response = domain_events::handle(&publisher, event).await;
            assert!(
                response.batch_item_failures.is_empty(),
                "every record is published: {:?}",
                response.batch_item_failures
            );
            Ok::<_, String>(response)
        }
    };
    let mut handled = 0;
    loop {
        let n = stream.deliver(&handler).await.unwrap();
        if n == 0 {
            return handled;
        }
        handled += n;
    }
}

/// The events of one type.
fn of_type<'a>(events: &'a [serde_json::Value], t: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

#[tokio::test]
async fn business_flows_publish_their_domain_events_once_per_change() {
    use kobatela_tests::{unique, EscrowSetup, MandateSetup};
    let api = InProcess::new("domain-events").await;
    let table = Table::named(&api.table).await;
    let subscriber = Subscriber::new(&api.table).await;

    // An escrow funded, released to the provider, its payout settled.
    let payout = api.payout("100.00").await;
    let body = kobatela_tests::psp_body(&unique("evt"), "payment.settled", &payout.psp_ref);
    let headers = kobatela_tests::psp_headers(&body);
    api.psp_webhook(&kobatela_tests::header_refs(&headers), &body)
        .await
        .expect(200);
    assert_eq!(api.consume_psp().await, (1, 0));
    // Milestones: the first paid, its payout failed by the PSP.
    let (milestones, failed) = api.failed_first_milestone("30.00", "10.00", "20.00").await;
    // An escrow refunded to its client.
    let refunded = EscrowSetup::new(&api, "40.00").await;
    api.deposit(refunded.escrow, &unique("d"), "40.00")
        .await
        .expect(200);
    api.escrow_action(refunded.escrow, "client-reject")
        .await
        .expect(200);
    // The dispatcher, with a PSP that accepts: the refund (still PENDING)
    // becomes SENT; the payout settled and the milestone's failed payout
    // have moved on and are not asked again.
    let refund = only_payment(&api, refunded.escrow).await;
    let dispatcher = Dispatcher::new(
        api.state.store.clone(),
        Arc::new(kobatela_tests::AcceptingPsp),
    );
    let handler = move |event: Event| {
        let dispatcher = dispatcher.clone();
        async move { Ok::<_, String>(dispatcher.handle(event).await) }
    };
    source(&api).await.deliver_all(&handler, 50).await.unwrap();
    // An escrow that misses its deadline (the sweep alerts it).
    let late = EscrowSetup::new(&api, "5.00").await;
    api.deposit(late.escrow, &unique("d"), "5.00")
        .await
        .expect(200);
    table.backdate_escrow(late.escrow).await;
    // A mandate spent to zero, another expired.
    let spent = MandateSetup::new(&api, "25.50").await;
    let purchase = api
        .purchase(&unique("p"), spent.purchase("25.50"))
        .await
        .expect(201);
    let expired = MandateSetup::new(&api, "9.99").await;
    table.backdate_mandate(expired.mandate).await;
    let swept = mandate_expiry::sweep(&api.state.store, shared::domain::time::Timestamp::now())
        .await
        .unwrap();
    println!("sweep: {swept}");
    // A restricted transfer.
    let sender = kobatela_tests::create_user(&api, "sender").await;
    let receiver = kobatela_tests::create_user(&api, "receiver").await;
    api.post(
        "/allowlist",
        json!({"owner_id": sender, "recipient_id": receiver}),
    )
    .await
    .expect(201);
    api.post("/certified", json!({"user_id": sender, "level": "basic"}))
        .await
        .expect(201);
    let transfer = api
        .call(
            "POST",
            "/transactions",
            &[("idempotency-key", &unique("t"))],
            Some(json!({"sender_id": sender, "receiver_id": receiver, "amount": "0.07"})),
        )
        .await
        .expect(201);
    // Proofs: one approved (its milestone paid, the escrow closed), one
    // rejected; old clients' bodies, which always go to review.
    let mut proofs = Vec::new();
    for decision in ["approved", "rejected"] {
        let e = EscrowSetup::with(
            &api,
            json!({"amount_total": "7.00", "milestones": [
                {"label": "papers", "amount": "7.00", "proof_type": "DOC"}]}),
        )
        .await;
        api.deposit(e.escrow, &unique("d"), "7.00")
            .await
            .expect(200);
        let proof = api
            .post(
                "/proofs",
                json!({"escrow_id": e.escrow, "milestone_idx": 1, "type": "DOC",
                       "storage_url": "https://files.example.com/papers.pdf",
                       "sha256": format!("{:0>64}", e.escrow)}),
            )
            .await
            .expect(201)
            .body;
        let id = proof["id"].as_u64().unwrap();
        api.post(
            &format!("/proofs/{id}/decision"),
            json!({ "decision": decision }),
        )
        .await
        .expect(200);
        proofs.push((e.escrow, id, decision));
    }

    let handled = publish_stream(&api, &subscriber.bus).await;
    assert!(handled > 20, "{handled} records");
    let messages = subscriber.receive(usize::MAX).await;
    for m in &messages {
        assert_eq!(m["source"], "kobatela");
        assert_eq!(m["detail-type"], m["detail"]["type"]);
    }
    let events: Vec<serde_json::Value> = messages.iter().map(|m| m["detail"].clone()).collect();
    let schema = kobatela_tests::event_schema::load();
    for event in &events {
        let problems = kobatela_tests::event_schema::problems(&schema, event);
        assert!(problems.is_empty(), "{event}: {problems:?}");
    }
    let s = |n: u64| n.to_string();

    // Every event once: ids are distinct within one delivery.
    let ids: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "duplicate ids: {events:?}");

    let funded = of_type(&events, "escrow.funded");
    let escrows: Vec<&str> = funded
        .iter()
        .map(|e| e["data"]["escrow_id"].as_str().unwrap())
        .collect();
    for escrow in [
        payout.escrow,
        milestones.escrow,
        refunded.escrow,
        late.escrow,
    ] {
        assert!(
            escrows.contains(&s(escrow).as_str()),
            "{escrow} funded: {escrows:?}"
        );
    }
    assert_eq!(funded.len(), 4 + proofs.len(), "{funded:?}");
    let released = of_type(&events, "escrow.released");
    // The payout's escrow, and the one whose only milestone was approved.
    assert_eq!(released.len(), 2, "{released:?}");
    let of_escrow = |list: &[&serde_json::Value], escrow: u64| -> serde_json::Value {
        let mine: Vec<&&serde_json::Value> = list
            .iter()
            .filter(|e| e["data"]["escrow_id"] == s(escrow))
            .collect();
        assert_eq!(mine.len(), 1, "escrow {escrow}: {list:?}");
        mine[0]["data"].clone()
    };
    let release = of_escrow(&released, payout.escrow);
    assert_eq!(release["amount_paid"], "100.00");
    assert_eq!(release["amount_available"], "0.00");
    assert_eq!(of_escrow(&released, proofs[0].0)["amount_paid"], "7.00");
    let refunds = of_type(&events, "escrow.refunded");
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["data"]["escrow_id"], s(refunded.escrow));
    assert_eq!(refunds[0]["data"]["amount_refunded"], "40.00");
    let missed = of_type(&events, "escrow.deadline_missed");
    assert_eq!(missed.len(), 1, "{swept}");
    assert_eq!(missed[0]["data"], json!({"escrow_id": s(late.escrow)}));

    let paid = of_type(&events, "milestone.paid");
    assert_eq!(paid.len(), 2, "{paid:?}");
    assert_eq!(of_escrow(&paid, proofs[0].0)["amount"], "7.00");
    let first = of_escrow(&paid, milestones.escrow);
    assert_eq!(first["idx"], 1);
    assert_eq!(first["amount"], "10.00");

    // Payouts: the release's (settled), the milestone's (failed), the refund.
    let payments = |t: &str| -> Vec<String> {
        of_type(&events, t)
            .iter()
            .map(|e| e["data"]["payment_id"].as_str().unwrap().to_string())
            .collect()
    };
    // Proofs: each submitted, then decided.
    for (t, expected) in [
        ("proof.submitted", vec![proofs[0].1, proofs[1].1]),
        ("proof.approved", vec![proofs[0].1]),
        ("proof.rejected", vec![proofs[1].1]),
    ] {
        let mut got: Vec<String> = of_type(&events, t)
            .iter()
            .map(|e| e["data"]["proof_id"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        let mut expected: Vec<String> = expected.into_iter().map(s).collect();
        expected.sort();
        assert_eq!(got, expected, "{t}");
    }

    let pending = payments("payment.pending");
    // The release, the milestone, the refund and the approved proof's.
    assert_eq!(pending.len(), 4, "{pending:?}");
    assert!(pending.contains(&s(payout.payment)));
    assert!(pending.contains(&failed.id.to_string()));
    assert_eq!(payments("payment.settled"), [s(payout.payment)]);
    assert_eq!(payments("payment.failed"), [failed.id.to_string()]);
    let settled = &of_type(&events, "payment.settled")[0]["data"];
    assert_eq!(settled["amount"], "100.00");
    assert_eq!(settled["kind"], "PAYOUT");
    assert_eq!(settled["psp_ref"], payout.psp_ref.as_str());
    assert_eq!(
        payments("payment.sent"),
        [refund["id"].as_u64().unwrap().to_string()]
    );

    let created = of_type(&events, "mandate.created");
    assert_eq!(created.len(), 2);
    let consumed = of_type(&events, "mandate.consumed");
    assert_eq!(consumed.len(), 1);
    assert_eq!(consumed[0]["data"]["mandate_id"], s(spent.mandate));
    assert_eq!(consumed[0]["data"]["total_amount"], "0.00");
    assert_eq!(consumed[0]["data"]["total_spent"], "25.50");
    let expiries = of_type(&events, "mandate.expired");
    assert_eq!(expiries.len(), 1, "{swept}");
    assert_eq!(expiries[0]["data"]["mandate_id"], s(expired.mandate));
    assert_eq!(expiries[0]["data"]["total_amount"], "9.99");
    let purchases = of_type(&events, "purchase.completed");
    assert_eq!(purchases.len(), 1);
    assert_eq!(purchases[0]["data"]["purchase_id"], s(purchase.id()));
    assert_eq!(purchases[0]["data"]["mandate_id"], s(spent.mandate));
    assert_eq!(purchases[0]["data"]["merchant_id"], s(spent.merchant));
    assert_eq!(purchases[0]["data"]["amount"], "25.50");
    let transfers = of_type(&events, "transfer.created");
    assert_eq!(transfers.len(), 1);
    assert_eq!(
        transfers[0]["data"],
        json!({"transfer_id": s(transfer.id()), "sender_id": s(sender),
               "receiver_id": s(receiver), "amount": "0.07", "currency": "USD"})
    );

    // The same records delivered again (a second reader from the oldest, as
    // after a retried batch): the same events, the same ids.
    assert_eq!(publish_stream(&api, &subscriber.bus).await, handled);
    let again: Vec<serde_json::Value> = subscriber
        .receive(events.len())
        .await
        .iter()
        .map(|m| m["detail"].clone())
        .collect();
    let key = |e: &serde_json::Value| e.to_string();
    let mut first: Vec<String> = events.iter().map(key).collect();
    let mut second: Vec<String> = again.iter().map(key).collect();
    first.sort();
    second.sort();
    assert_eq!(first, second, "a redelivery publishes the same events");
}

#[test]
fn the_event_schema_names_every_fact_and_refuses_what_is_not_one() {
    use shared::store::facts::FactType;
    let schema = kobatela_tests::event_schema::load();
    let listed: Vec<&str> = schema["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(listed, FactType::ALL.map(FactType::as_str));
    let good = json!({
        "id": "0123456789abcdef0123456789abcdef", "type": "transfer.created", "version": 1,
        "occurred_at": "2030-01-01T00:00:00.000000Z",
        "data": {"transfer_id": "1", "sender_id": "2", "receiver_id": "3",
                 "amount": "0.07", "currency": "USD"}
    });
    let problems = |e: &serde_json::Value| kobatela_tests::event_schema::problems(&schema, e);
    assert_eq!(problems(&good), Vec::<String>::new());
    for (path, bad) in [
        ("/data/amount", json!(0.07)),
        ("/data/amount", json!("0.7")),
        ("/data/transfer_id", json!(1)),
        ("/version", json!(2)),
        ("/type", json!("transfer.deleted")),
        ("/occurred_at", json!("yesterday")),
        ("/id", json!("not-hex")),
        ("/data/extra", json!("x")),
    ] {
        let mut event = good.clone();
        let (parent, name) = path.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut event
        } else {
            event.pointer_mut(parent).unwrap()
        };
        target[name] = bad;
        assert!(!problems(&event).is_empty(), "{path}: {event}");
    }
    let mut missing = good.clone();
    missing["data"].as_object_mut().unwrap().remove("currency");
    assert!(!problems(&missing).is_empty());
}

/// The stuck-payout sweep's write under what real DynamoDB does: refused
/// reads, cancelled transactions, throttling. Through every retry the run
/// skips the payment and writes nothing (no alert, the payment PENDING,
/// its index entry kept); the next run raises the one alert.
#[tokio::test]
async fn a_stuck_payout_that_cannot_be_written_is_skipped_then_alerted_once() {
    let faults = Faults::start().await;
    let api = InProcess::with_client("payout-stuck-faults", faults.client().await, &[]).await;
    let table = Table::named(&api.table).await;
    let sweep = || async {
        mandate_expiry::handle(&api.state.store, scheduled_event())
            .await
            .expect("a sweep run succeeds")
    };
    for fault in Fault::ALL {
        let stuck = api.payout("6.00").await;
        table.backdate_pending_payment(stuck.payment).await;
        let alerts_before = api.alerts("PAYOUT_STUCK").await.len();
        faults.inject_touching(fault, &format!("PAYMENT#{}", stuck.payment));
        let run = sweep().await;
        faults.clear();
        assert!(faults.take_injected() > 0, "{fault:?}");
        assert_eq!(
            (run["payouts_stuck"].clone(), run["payouts_skipped"].clone()),
            (json!(0), json!(1)),
            "{fault:?}: {run}"
        );
        assert_eq!(
            api.alerts("PAYOUT_STUCK").await.len(),
            alerts_before,
            "{fault:?}"
        );
        assert_eq!(
            table
                .deadline_entries(shared::store::keys::PENDING_PAYMENTS)
                .await,
            1,
            "{fault:?}: the entry is kept"
        );
        let again = sweep().await;
        assert_eq!(again["payouts_stuck"], 1, "{fault:?}: {again}");
        assert_eq!(api.alerts("PAYOUT_STUCK").await.len(), alerts_before + 1);
        let p = api
            .get(&format!("/payments/{}", stuck.payment))
            .await
            .expect(200)
            .body;
        assert_eq!(p["status"], "PENDING", "{fault:?}");
    }
}
