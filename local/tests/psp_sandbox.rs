//! The PSP sandbox driven through the real adapter (`shared::psp::HttpPsp`),
//! its webhook events received by a small server that checks them with the
//! project's own verifier. Every wait is on a channel or on the sandbox's
//! `idle`, bounded by a timeout; nothing sleeps to order events.

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};
use kobatela_local::psp_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;
use shared::{
    config::Secret,
    domain::{
        currency::Currency,
        escrow::payment::Payee,
        ids::Id,
        time::Timestamp,
        webhook::{verify_signature, WebhookSecret, WebhookSecrets},
    },
    psp::{HttpPsp, PayoutAnswer, PayoutRequest, Psp, PspConfig},
};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, sync::mpsc, time::timeout};

const API_KEY: &str = "psk_sandbox_test_0123456789abcdef";
const WEBHOOK_SECRET: &[u8] = b"sandbox-test-webhook-secret-0123456789";
const WAIT: Duration = Duration::from_secs(10);

/// One webhook request as the receiver saw it.
#[derive(Debug)]
struct Arrival {
    /// The project's verifier accepted its signature.
    genuine: bool,
    body: Value,
}

#[derive(Clone)]
struct Receiver {
    secrets: WebhookSecrets,
    arrivals: mpsc::UnboundedSender<Arrival>,
    /// Genuine requests still to be answered 503 (to exercise retries).
    refuse_next: Arc<AtomicUsize>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let genuine = verify_signature(
        header("x-psp-timestamp"),
        header("x-psp-signature"),
        &body,
        &r.secrets,
        Timestamp::now(),
    )
    .is_ok();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = r.arrivals.send(Arrival { genuine, body });
    if !genuine {
        return StatusCode::UNAUTHORIZED;
    }
    let refuse = r
        .refuse_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refuse {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

struct World {
    sandbox: Sandbox,
    base: String,
    psp: HttpPsp,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
    client: reqwest::Client,
}

/// A sandbox on a free port, its events going to a fresh receiver whose
/// first `refuse` genuine deliveries are answered 503.
async fn world(callbacks: bool, refuse: usize) -> World {
    let secret = WebhookSecret::new(WEBHOOK_SECRET.to_vec()).unwrap();
    let (tx, arrivals) = mpsc::unbounded_channel();
    let receiver = Receiver {
        secrets: WebhookSecrets {
            current: secret.clone(),
            previous: None,
        },
        arrivals: tx,
        refuse_next: Arc::new(AtomicUsize::new(refuse)),
    };
    let (listener, receiver_url) = listen().await;
    let app = Router::new()
        .route("/psp/webhook", post(receive))
        .with_state(receiver);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sandbox = Sandbox::new(SandboxConfig {
        callbacks,
        delay: Duration::from_millis(10),
        webhook_url: format!("{receiver_url}/psp/webhook"),
        secret: Some(secret),
        delivery_attempts: 5,
        retry_pause: Duration::from_millis(10),
    })
    .unwrap();
    let (listener, base) = listen().await;
    tokio::spawn(sandbox.clone().serve(listener));
    World {
        sandbox,
        psp: http_psp(&base, Duration::from_secs(5)),
        base,
        arrivals,
        client: reqwest::Client::builder()
            .use_preconfigured_tls(shared::psp::tls_config(false).unwrap())
            .build()
            .unwrap(),
    }
}

fn http_psp(base: &str, request_timeout: Duration) -> HttpPsp {
    let mut config = PspConfig::new(base, Secret::new(API_KEY)).unwrap();
    config.request_timeout = request_timeout;
    HttpPsp::new(config).unwrap()
}

fn payout(payment_id: u64, attempt: u32, psp_ref: &str, amount: &str) -> PayoutRequest {
    PayoutRequest {
        payment_id: Id::new(payment_id).unwrap(),
        attempt,
        psp_ref: psp_ref.into(),
        amount: amount.parse().unwrap(),
        currency: Currency::usd(),
        payee: Payee::User {
            user_id: Id::new(7).unwrap(),
        },
    }
}

/// What a dispatcher does: send, and send again with the same key while the
/// answer is RetryLater (at most 5 times).
async fn until_decided(psp: &dyn Psp, payout: &PayoutRequest) -> Vec<PayoutAnswer> {
    let mut answers = Vec::new();
    for _ in 0..5 {
        let answer = psp.submit_payout(payout).await;
        let done = !matches!(answer, PayoutAnswer::RetryLater { .. });
        answers.push(answer);
        if done {
            break;
        }
    }
    answers
}

fn kind(answer: &PayoutAnswer) -> &'static str {
    match answer {
        PayoutAnswer::Accepted { .. } => "accepted",
        PayoutAnswer::Refused { .. } => "refused",
        PayoutAnswer::RetryLater { .. } => "retry",
    }
}

impl World {
    async fn listing(&self) -> Vec<Value> {
        let body: Value = self
            .client
            .get(format!("{}/sandbox/payouts", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["items"].as_array().unwrap().clone()
    }

    async fn item(&self, key: &str) -> Value {
        let items: Vec<Value> = self
            .listing()
            .await
            .into_iter()
            .filter(|i| i["key"] == key)
            .collect();
        assert_eq!(items.len(), 1, "one payout for {key}: {items:?}");
        items.into_iter().next().unwrap()
    }

    async fn next_arrival(&mut self) -> Arrival {
        timeout(WAIT, self.arrivals.recv())
            .await
            .expect("a webhook event in time")
            .expect("the receiver runs")
    }

    /// Waits until the sandbox has no event left to send, then says that
    /// nothing else reached the receiver.
    async fn assert_no_more_arrivals(&mut self) {
        timeout(WAIT, self.sandbox.idle())
            .await
            .expect("the sandbox settles its events in time");
        if let Ok(extra) = self.arrivals.try_recv() {
            panic!("an unexpected webhook request: {extra:?}");
        }
    }
}

fn accepted_id(answer: &PayoutAnswer) -> String {
    match answer {
        PayoutAnswer::Accepted { psp_payout_id } => psp_payout_id.clone(),
        other => panic!("accepted expected, got {other:?}"),
    }
}

/// Each cents row of the sandbox's table, through the adapter.
#[tokio::test]
async fn each_cents_row_gives_its_answers_one_payout_and_its_event() {
    // (amount, answers seen by a retrying client, requests under the key, event type)
    let rows: [(&str, &[&str], u64, Option<&str>); 5] = [
        ("10.13", &["refused"], 1, None),
        ("10.31", &["accepted"], 1, Some("payment.failed")),
        (
            "10.57",
            &["retry", "retry", "accepted"],
            3,
            Some("payment.settled"),
        ),
        ("10.75", &["retry", "accepted"], 2, Some("payment.settled")),
        ("10.00", &["accepted"], 1, Some("payment.settled")),
    ];
    let mut w = world(true, 0).await;
    for (n, (amount, expected, requests, event)) in rows.into_iter().enumerate() {
        let psp_ref = format!("PSP-row-{n}");
        let p = payout(100 + n as u64, 1, &psp_ref, amount);
        let key = p.idempotency_key();
        let answers = until_decided(&w.psp, &p).await;
        let kinds: Vec<&str> = answers.iter().map(kind).collect();
        assert_eq!(kinds, expected, "{amount}: {answers:?}");
        assert!(!format!("{answers:?}").contains(API_KEY));

        let item = w.item(&key).await;
        assert_eq!(item["requests"], requests, "{amount}: {item}");
        assert_eq!(item["reference"], psp_ref.as_str());
        assert_eq!(item["amount"], amount);
        assert_eq!(item["currency"], "USD");
        match answers.last().unwrap() {
            PayoutAnswer::Refused { reason } => {
                assert_eq!(reason, "ACCOUNT_CLOSED");
                assert_eq!(item["outcome"], "refused");
                assert!(item["payout_id"].is_null());
            }
            last => assert_eq!(item["payout_id"], accepted_id(last).as_str()),
        }

        match event {
            None => assert!(item["callback"].is_null(), "{item}"),
            Some(event_type) => {
                let arrival = w.next_arrival().await;
                assert!(arrival.genuine, "{arrival:?}");
                assert_eq!(arrival.body["type"], event_type);
                assert_eq!(arrival.body["psp_ref"], psp_ref.as_str());
                assert_eq!(arrival.body["payout_id"], item["payout_id"]);
                assert!(arrival.body["id"].as_str().unwrap().starts_with("evt_"));
            }
        }
        w.assert_no_more_arrivals().await;

        // Once decided, the same key gets the same answer, never a payout more.
        let again = w.psp.submit_payout(&p).await;
        assert_eq!(&again, answers.last().unwrap(), "{amount}");
        let item = w.item(&key).await;
        assert_eq!(item["requests"], requests + 1);
        if event.is_some() {
            assert_eq!(item["callback"]["status"], "delivered");
            assert_eq!(item["callback"]["attempts"], 1);
        }
        w.assert_no_more_arrivals().await;
    }
    assert_eq!(w.listing().await.len(), 5, "one payout per key");
}

/// `.41`: the first attempt of a payment fails; the payment retried (a new
/// attempt, so a new key and a new reference) settles.
#[tokio::test]
async fn a_retried_payment_settles_where_its_first_attempt_failed() {
    let mut w = world(true, 0).await;
    for (attempt, psp_ref, event_type, outcome) in [
        (1, "PSP-first", "payment.failed", "failed"),
        (2, "PSP-retry", "payment.settled", "settled"),
    ] {
        let p = payout(41, attempt, psp_ref, "12.41");
        let answers = until_decided(&w.psp, &p).await;
        let kinds: Vec<&str> = answers.iter().map(kind).collect();
        assert_eq!(kinds, ["accepted"], "attempt {attempt}");
        let arrival = w.next_arrival().await;
        assert!(arrival.genuine);
        assert_eq!(arrival.body["type"], event_type, "attempt {attempt}");
        assert_eq!(arrival.body["psp_ref"], psp_ref);
        assert_eq!(w.item(&p.idempotency_key()).await["outcome"], outcome);
        w.assert_no_more_arrivals().await;
    }
}

/// `.75`: the first answer is lost, yet the payout exists: the retry gets
/// the payout id recorded on the first request.
#[tokio::test]
async fn a_lost_answer_is_found_again_under_the_same_key() {
    let mut w = world(true, 0).await;
    let p = payout(7, 1, "PSP-lost", "3.75");
    let first = w.psp.submit_payout(&p).await;
    let PayoutAnswer::RetryLater { why } = &first else {
        panic!("the first answer is lost: {first:?}");
    };
    assert!(why.contains("connection"), "{why}");
    // Already recorded before the retry.
    let item = w.item("7-1").await;
    let recorded = item["payout_id"].as_str().unwrap().to_string();
    assert_eq!(item["requests"], 1);
    let second = w.psp.submit_payout(&p).await;
    assert_eq!(accepted_id(&second), recorded);
    let arrival = w.next_arrival().await;
    assert!(arrival.genuine);
    assert_eq!(arrival.body["payout_id"], recorded.as_str());
    w.assert_no_more_arrivals().await;
}

/// The key is the identity: two keys for one reference are two payouts;
/// the same key with another amount is the recorded answer (the first
/// request fixed what is paid).
#[tokio::test]
async fn the_idempotency_key_is_the_payouts_identity() {
    let mut w = world(true, 0).await;
    let first = accepted_id(
        &w.psp
            .submit_payout(&payout(9, 1, "PSP-same", "20.00"))
            .await,
    );
    let second = accepted_id(
        &w.psp
            .submit_payout(&payout(9, 2, "PSP-same", "20.00"))
            .await,
    );
    assert_ne!(first, second);
    let same_ref: Vec<Value> = w
        .listing()
        .await
        .into_iter()
        .filter(|i| i["reference"] == "PSP-same")
        .collect();
    assert_eq!(same_ref.len(), 2, "{same_ref:?}");
    let mut events = [w.next_arrival().await, w.next_arrival().await];
    events.sort_by_key(|a| a.body["payout_id"].as_str().unwrap_or_default().to_string());
    let mut ids = vec![first.clone(), second];
    ids.sort();
    for (arrival, id) in events.iter().zip(&ids) {
        assert!(arrival.genuine);
        assert_eq!(arrival.body["payout_id"], id.as_str());
    }
    w.assert_no_more_arrivals().await;

    // Same key, other amount (one that would be refused): the recorded answer.
    let replay = w
        .psp
        .submit_payout(&payout(9, 1, "PSP-other", "99.13"))
        .await;
    assert_eq!(accepted_id(&replay), first);
    let item = w.item("9-1").await;
    assert_eq!(item["amount"], "20.00");
    assert_eq!(item["reference"], "PSP-same");
    assert_eq!(item["requests"], 2);
    w.assert_no_more_arrivals().await;
}

/// Callbacks off: every cents row is accepted and nothing is sent.
#[tokio::test]
async fn without_callbacks_everything_is_accepted_silently() {
    let mut w = world(false, 0).await;
    for (n, amount) in ["1.13", "1.31", "1.57", "1.75", "1.00"].iter().enumerate() {
        let p = payout(200 + n as u64, 1, &format!("PSP-quiet-{n}"), amount);
        let answers = until_decided(&w.psp, &p).await;
        assert_eq!(answers.len(), 1, "{amount}: {answers:?}");
        accepted_id(&answers[0]);
        let item = w.item(&p.idempotency_key()).await;
        assert_eq!(item["outcome"], "accepted");
        assert!(item["callback"].is_null());
    }
    w.assert_no_more_arrivals().await;
}

/// A webhook that does not take the event gets it again, same event id,
/// freshly signed, until it does; still one event per payout.
#[tokio::test]
async fn an_event_the_webhook_refuses_is_sent_again() {
    let mut w = world(true, 2).await;
    let id = accepted_id(
        &w.psp
            .submit_payout(&payout(11, 1, "PSP-retry", "5.00"))
            .await,
    );
    let arrivals = [
        w.next_arrival().await,
        w.next_arrival().await,
        w.next_arrival().await,
    ];
    for arrival in &arrivals {
        assert!(arrival.genuine);
        assert_eq!(arrival.body, arrivals[0].body);
        assert_eq!(arrival.body["payout_id"], id.as_str());
    }
    w.assert_no_more_arrivals().await;
    let item = w.item("11-1").await;
    assert_eq!(item["callback"]["attempts"], 3);
    assert_eq!(item["callback"]["status"], "delivered");
}

/// No bearer key: 401, and the request is not counted under its key.
#[tokio::test]
async fn a_request_without_a_key_is_refused_and_not_counted() {
    let w = world(true, 0).await;
    let answer = w
        .client
        .post(format!("{}/v1/payouts", w.base))
        .header("idempotency-key", "1-1")
        .header("content-type", "application/json")
        .body(r#"{"reference":"PSP-x","payment_id":"1","attempt":1,"amount":"1.00","currency":"USD","payee":{"user_id":7}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(w.listing().await.is_empty());
}

#[tokio::test]
async fn nothing_listening_is_retry_later() {
    let (listener, base) = listen().await;
    drop(listener);
    let answer = http_psp(&base, Duration::from_secs(5))
        .submit_payout(&payout(1, 1, "PSP-x", "1.00"))
        .await;
    let PayoutAnswer::RetryLater { why } = answer else {
        panic!("retry expected, got {answer:?}");
    };
    assert!(why.contains("cannot connect"), "{why}");
    assert!(!why.contains(API_KEY));
}

#[tokio::test]
async fn a_psp_that_never_answers_is_retry_later_within_the_timeout() {
    let (listener, base) = listen().await;
    // Accepts connections and holds them, never writing a byte.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let psp = http_psp(&base, Duration::from_millis(300));
    let started = Instant::now();
    let answer = psp.submit_payout(&payout(1, 1, "PSP-x", "1.00")).await;
    let elapsed = started.elapsed();
    let PayoutAnswer::RetryLater { why } = answer else {
        panic!("retry expected, got {answer:?}");
    };
    assert!(why.contains("no answer in time"), "{why}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
}

#[tokio::test]
async fn the_api_key_is_never_shown() {
    let w = world(true, 0).await;
    let shown = format!("{:?} {:?}", w.psp, w.psp.config());
    assert!(!shown.contains(API_KEY), "{shown}");
    assert!(shown.contains(&w.base), "{shown}");
    // Our own rejected key (401/403) is RetryLater, and says so without it.
    let refusing = Router::new().route(
        "/v1/payouts",
        post(|| async { (StatusCode::UNAUTHORIZED, "bad key") }),
    );
    let (listener, base) = listen().await;
    tokio::spawn(async move { axum::serve(listener, refusing).await.unwrap() });
    let answer = http_psp(&base, Duration::from_secs(5))
        .submit_payout(&payout(1, 1, "PSP-x", "1.00"))
        .await;
    let PayoutAnswer::RetryLater { why } = &answer else {
        panic!("retry expected, got {answer:?}");
    };
    assert!(why.contains("401"), "{why}");
    assert!(!format!("{answer:?}").contains(API_KEY));
}

/// The settlement report holds what the sandbox paid and failed, one line
/// per reference, in the format `POST /ledger/settlements` reads: refused
/// payouts are not in it, a reference paid under two keys is one SETTLED
/// line.
#[tokio::test]
async fn the_settlement_report_lists_what_was_paid_or_failed() {
    use shared::domain::settlement::{parse_report, ReportStatus};
    let w = world(true, 0).await;
    for p in [
        payout(1, 1, "PSP-paid", "12.00"),
        payout(2, 1, "PSP-failed", "12.31"),
        payout(3, 1, "PSP-refused", "12.13"),
        payout(4, 1, "PSP-first", "12.41"),
        payout(4, 2, "PSP-retry", "12.41"),
        payout(5, 1, "PSP-twice", "7.31"),
        payout(6, 1, "PSP-twice", "7.00"),
    ] {
        until_decided(&w.psp, &p).await;
    }
    timeout(WAIT, w.sandbox.idle()).await.unwrap();
    let answer = w
        .client
        .get(format!("{}/sandbox/settlements.csv", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/csv; charset=utf-8");
    let report = answer.text().await.unwrap();
    assert!(report.starts_with("psp_ref,amount,currency,status,settled_at\n"));
    let lines = parse_report(report.as_bytes()).unwrap_or_else(|p| panic!("{p}: {report}"));
    let seen: Vec<(&str, String, ReportStatus)> = lines
        .iter()
        .map(|l| (l.psp_ref.as_str(), l.amount.to_string(), l.status))
        .collect();
    use ReportStatus::*;
    assert_eq!(
        seen,
        [
            ("PSP-paid", "12.00".into(), Settled),
            ("PSP-failed", "12.31".into(), Failed),
            ("PSP-first", "12.41".into(), Failed),
            ("PSP-retry", "12.41".into(), Settled),
            ("PSP-twice", "7.00".into(), Settled),
        ]
    );
    assert!(lines.iter().all(|l| l.currency == Currency::usd()));
    assert!(lines.windows(2).all(|p| p[0].settled_at <= p[1].settled_at));
}
