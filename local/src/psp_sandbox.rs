//! The PSP sandbox: a local stand-in for the PSP's payout API (the wire
//! format of `shared::psp`), which then reports by signed webhook as the
//! real PSP does. `kobatela-local psp-sandbox` runs it alone; `kobatela-local`
//! also starts it on `KOBATELA_PSP_SANDBOX_ADDR` (default 127.0.0.1:3100,
//! `off` to disable).
//!
//! Invariants:
//! - The `Idempotency-Key` is the payout's identity: one key, at most one
//!   payout and one webhook event, however often it is sent. A key seen
//!   before gets the recorded answer again, even with another body (the
//!   first request under a key fixes what is paid); two keys for one
//!   reference are two payouts.
//! - What happens is chosen by the amount's cents (below), so a test or a
//!   person picks the path by picking the amount.
//! - The webhook event is sent once per payout (retried only when the
//!   webhook does not take it), after `KOBATELA_PSP_SANDBOX_DELAY_MS`,
//!   signed as docs/api.md says (`crate::psp_signing`).
//!
//! | cents | the sandbox |
//! |---|---|
//! | `.13` | refuses at once: 422 `{"status":"refused","reason":"ACCOUNT_CLOSED"}`, no event |
//! | `.31` | accepts, then `payment.failed` |
//! | `.41` | attempt 1 (the request's `attempt`): accepts, then `payment.failed`; a later attempt (a retried payment): accepts, then `payment.settled` |
//! | `.57` | 503 to the first two requests of the key, then accepts, then `payment.settled` |
//! | `.75` | accepts and records, but drops the connection before any byte of the first answer; a retry gets the recorded answer; `payment.settled` |
//! | other | accepts, then `payment.settled` |
//!
//! `KOBATELA_PSP_SANDBOX_CALLBACKS=0`: every payout is accepted, whatever the
//! cents, and no event is sent. The event of an accepted payout is scheduled
//! at acceptance, as a real PSP pays whether or not its answer reached us.
//!
//! A request without `Authorization: Bearer <anything>` gets 401 and is not
//! counted. `GET /sandbox/payouts` lists every payout with the number of
//! requests made under its key; `GET /sandbox/settlements.csv` is the PSP's
//! settlement report of what it paid and failed.

use crate::psp_signing::{local_webhook_secret, sign};
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Extension, Json, Router,
};
use serde_json::{json, Value};
use shared::domain::{money::Amount, settlement::HEADER, time::Timestamp, webhook::WebhookSecret};
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{watch, Notify},
};

/// Where the sandbox listens (`off`: not started).
pub const ADDR_VAR: &str = "KOBATELA_PSP_SANDBOX_ADDR";
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 3100);

/// `KOBATELA_PSP_SANDBOX_ADDR`: `None` when `off`.
pub fn addr_from_env() -> Result<Option<SocketAddr>, String> {
    match std::env::var(ADDR_VAR) {
        Ok(text) if text.trim().eq_ignore_ascii_case("off") => Ok(None),
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{ADDR_VAR}={text} is not HOST:PORT or off")),
        _ => Ok(Some(DEFAULT_ADDR)),
    }
}

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Send webhook events, and pick outcomes by cents (else accept all).
    pub callbacks: bool,
    /// From acceptance to the first webhook attempt.
    pub delay: Duration,
    /// Our `POST /psp/webhook`.
    pub webhook_url: String,
    /// Signs the events; required when `callbacks`.
    pub secret: Option<WebhookSecret>,
    /// Webhook attempts per event before giving up.
    pub delivery_attempts: u32,
    /// Pause after the n-th failed attempt: n × this.
    pub retry_pause: Duration,
}

impl SandboxConfig {
    /// `KOBATELA_PSP_SANDBOX_CALLBACKS` (default 1), `KOBATELA_PSP_SANDBOX_DELAY_MS`
    /// (default 1000), `KOBATELA_PSP_WEBHOOK_URL` (default the local API's
    /// `/psp/webhook` on `KOBATELA_LOCAL_ADDR`), the local webhook secret.
    pub fn from_env() -> Result<SandboxConfig, String> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let callbacks = match var("KOBATELA_PSP_SANDBOX_CALLBACKS").as_deref() {
            None | Some("1") => true,
            Some("0") => false,
            Some(other) => {
                return Err(format!(
                    "KOBATELA_PSP_SANDBOX_CALLBACKS={other}: must be 0 or 1"
                ))
            }
        };
        let delay_ms = match var("KOBATELA_PSP_SANDBOX_DELAY_MS") {
            None => 1000,
            Some(text) => text.parse::<u64>().map_err(|_| {
                format!("KOBATELA_PSP_SANDBOX_DELAY_MS={text}: must be milliseconds")
            })?,
        };
        let webhook_url = var("KOBATELA_PSP_WEBHOOK_URL").unwrap_or_else(|| {
            let api = var("KOBATELA_LOCAL_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());
            format!("http://{api}/psp/webhook")
        });
        let secret = if callbacks {
            Some(local_webhook_secret().map_err(|e| format!("PSP sandbox: {e}"))?)
        } else {
            None
        };
        Ok(SandboxConfig {
            callbacks,
            delay: Duration::from_millis(delay_ms),
            webhook_url,
            secret,
            delivery_attempts: 5,
            retry_pause: Duration::from_millis(500),
        })
    }
}

/// What a payout's cents make the sandbox do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Refuse,
    Fail,
    UnavailableTwice,
    LoseFirstAnswer,
    Settle,
    /// Callbacks off: accepted, nothing else.
    Accept,
}

impl Scenario {
    fn of(amount: Amount, attempt: u64, callbacks: bool) -> Scenario {
        if !callbacks {
            return Scenario::Accept;
        }
        match amount.minor_units() % 100 {
            13 => Scenario::Refuse,
            31 => Scenario::Fail,
            // A payout that fails, then settles once the payment is retried
            // (POST /payments/execute: a new attempt, a new key).
            41 if attempt <= 1 => Scenario::Fail,
            41 => Scenario::Settle,
            57 => Scenario::UnavailableTwice,
            75 => Scenario::LoseFirstAnswer,
            _ => Scenario::Settle,
        }
    }

    fn event_type(self) -> Option<&'static str> {
        match self {
            Scenario::Refuse | Scenario::Accept => None,
            Scenario::Fail => Some("payment.failed"),
            _ => Some("payment.settled"),
        }
    }
}

/// An answer as sent, kept to be sent again under the same key.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Pending,
    Delivered,
    Undeliverable,
}

#[derive(Debug, Clone)]
struct Event {
    event_type: &'static str,
    event_id: String,
    delivery: Delivery,
    attempts: u32,
}

/// Everything known under one Idempotency-Key.
#[derive(Debug)]
struct Payout {
    key: String,
    reference: String,
    amount: Amount,
    currency: String,
    scenario: Scenario,
    payout_id: Option<String>,
    /// Authenticated requests made with this key.
    requests: u32,
    /// The recorded answer; `None` while no decision is made (503s).
    answer: Option<Answer>,
    event: Option<Event>,
    /// When the key was first seen: the settlement report's `settled_at`.
    received_at: Timestamp,
}

impl Payout {
    fn outcome(&self) -> &'static str {
        match (self.scenario, &self.answer) {
            (Scenario::Refuse, _) => "refused",
            (_, None) => "pending",
            (Scenario::Accept, Some(_)) => "accepted",
            (Scenario::Fail, Some(_)) => "failed",
            (_, Some(_)) => "settled",
        }
    }

    fn view(&self) -> Value {
        json!({
            "key": self.key,
            "reference": self.reference,
            "amount": self.amount.to_string(),
            "currency": self.currency,
            "payout_id": self.payout_id,
            "requests": self.requests,
            "outcome": self.outcome(),
            "callback": self.event.as_ref().map(|e| json!({
                "type": e.event_type,
                "event_id": e.event_id,
                "status": match e.delivery {
                    Delivery::Pending => "pending",
                    Delivery::Delivered => "delivered",
                    Delivery::Undeliverable => "undeliverable",
                },
                "attempts": e.attempts,
            })),
        })
    }
}

/// What to do with one request.
enum Reply {
    Send(Answer),
    /// The payout is recorded; close the connection without answering.
    LoseAnswer,
}

#[derive(Default)]
struct Book {
    /// Keys in arrival order, for the listing.
    order: Vec<String>,
    by_key: HashMap<String, Payout>,
}

struct Inner {
    config: SandboxConfig,
    book: Mutex<Book>,
    /// Webhook events not yet delivered or given up.
    in_flight: watch::Sender<usize>,
    client: reqwest::Client,
}

/// The sandbox's state; cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Result<Sandbox, String> {
        if config.callbacks && config.secret.is_none() {
            return Err("PSP sandbox: callbacks need the webhook secret".into());
        }
        let https = config.webhook_url.starts_with("https:");
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(shared::psp::tls_config(https)?)
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("PSP sandbox: cannot build its client: {e}"))?;
        Ok(Sandbox {
            inner: Arc::new(Inner {
                config,
                book: Mutex::new(Book::default()),
                in_flight: watch::Sender::new(0),
                client,
            }),
        })
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/payouts", post(create_payout))
            .route("/sandbox/payouts", get(list_payouts))
            .route("/sandbox/settlements.csv", get(settlement_report))
            .with_state(self.clone())
    }

    /// Serves `listener` forever, each connection on its own task, so that
    /// one can be dropped without an answer (`.75`).
    pub async fn serve(self, listener: TcpListener) {
        let app = self.router();
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, app.clone()));
                }
                Err(e) => {
                    // Out of descriptors, usually: let some close first.
                    tracing::warn!(error = %e, "PSP sandbox: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Resolves once no webhook event is waiting or being delivered: after
    /// it, every event the answers so far imply has been sent or given up.
    pub async fn idle(&self) {
        let mut pending = self.inner.in_flight.subscribe();
        let _ = pending.wait_for(|n| *n == 0).await;
    }

    /// `GET /sandbox/payouts`'s body.
    pub fn payouts(&self) -> Value {
        let book = self.inner.book.lock().expect("sandbox book");
        let items: Vec<Value> = book
            .order
            .iter()
            .filter_map(|key| book.by_key.get(key))
            .map(Payout::view)
            .collect();
        json!({ "items": items })
    }

    /// `GET /sandbox/settlements.csv`'s body: what the sandbox paid or
    /// failed, as the PSP's settlement report (`POST /ledger/settlements`
    /// of docs/api.md), one line per reference in arrival order; a
    /// reference paid under two keys is one SETTLED line.
    pub fn settlement_report(&self) -> String {
        let book = self.inner.book.lock().expect("sandbox book");
        let mut lines: Vec<&Payout> = Vec::new();
        for payout in book.order.iter().filter_map(|key| book.by_key.get(key)) {
            if !matches!(payout.outcome(), "settled" | "failed") {
                continue;
            }
            match lines.iter_mut().find(|p| p.reference == payout.reference) {
                Some(seen) if seen.outcome() == "failed" => *seen = payout,
                Some(_) => {}
                None => lines.push(payout),
            }
        }
        let mut report = csv::Writer::from_writer(Vec::new());
        let rows = std::iter::once(HEADER.map(String::from)).chain(lines.iter().map(|p| {
            [
                p.reference.clone(),
                p.amount.to_string(),
                p.currency.clone(),
                p.outcome().to_ascii_uppercase(),
                p.received_at.to_string(),
            ]
        }));
        for row in rows {
            report.write_record(&row).expect("CSV into memory");
        }
        String::from_utf8(report.into_inner().expect("CSV into memory")).expect("CSV of text")
    }

    fn decide(&self, key: &str, body: &[u8]) -> Reply {
        let mut book = self.inner.book.lock().expect("sandbox book");
        if book.by_key.contains_key(key) {
            let payout = book.by_key.get_mut(key).expect("checked above");
            payout.requests += 1;
            if let Some(answer) = &payout.answer {
                return Reply::Send(answer.clone());
            }
        } else {
            let Some((reference, amount, currency, attempt)) = read_order(body) else {
                // Not recorded: nothing was decided under this key.
                return Reply::Send(refusal(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST"));
            };
            book.order.push(key.to_string());
            book.by_key.insert(
                key.to_string(),
                Payout {
                    key: key.to_string(),
                    reference,
                    amount,
                    currency,
                    scenario: Scenario::of(amount, attempt, self.inner.config.callbacks),
                    payout_id: None,
                    requests: 1,
                    answer: None,
                    event: None,
                    received_at: Timestamp::now(),
                },
            );
        }
        let payout = book.by_key.get_mut(key).expect("recorded above");
        let answer = match payout.scenario {
            Scenario::Refuse => refusal(StatusCode::UNPROCESSABLE_ENTITY, "ACCOUNT_CLOSED"),
            Scenario::UnavailableTwice if payout.requests <= 2 => {
                return Reply::Send(Answer {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    body: json!({"status": "unavailable"}),
                });
            }
            _ => {
                let payout_id = format!("po_{}", uuid::Uuid::new_v4().simple());
                payout.payout_id = Some(payout_id.clone());
                if let Some(event_type) = payout.scenario.event_type() {
                    let event_id = format!("evt_{}", uuid::Uuid::new_v4().simple());
                    payout.event = Some(Event {
                        event_type,
                        event_id: event_id.clone(),
                        delivery: Delivery::Pending,
                        attempts: 0,
                    });
                    let body = json!({
                        "id": event_id,
                        "type": event_type,
                        "psp_ref": payout.reference,
                        "payout_id": payout_id,
                    })
                    .to_string();
                    // Counted before the answer leaves, so `idle` after an
                    // answer always waits for its event.
                    self.inner.in_flight.send_modify(|n| *n += 1);
                    tokio::spawn(deliver(self.clone(), key.to_string(), body));
                }
                Answer {
                    status: StatusCode::CREATED,
                    body: json!({
                        "status": "accepted",
                        "payout_id": payout_id,
                        "reference": payout.reference,
                    }),
                }
            }
        };
        payout.answer = Some(answer.clone());
        if payout.scenario == Scenario::LoseFirstAnswer && payout.requests == 1 {
            Reply::LoseAnswer
        } else {
            Reply::Send(answer)
        }
    }

    fn delivery_attempt(&self, key: &str, delivered: bool, last: bool) {
        let mut book = self.inner.book.lock().expect("sandbox book");
        if let Some(event) = book.by_key.get_mut(key).and_then(|p| p.event.as_mut()) {
            event.attempts += 1;
            if delivered {
                event.delivery = Delivery::Delivered;
            } else if last {
                event.delivery = Delivery::Undeliverable;
            }
        }
    }
}

fn refusal(status: StatusCode, reason: &str) -> Answer {
    Answer {
        status,
        body: json!({"status": "refused", "reason": reason}),
    }
}

/// reference, amount, currency and attempt (1 if absent) of a payout
/// request, if well formed.
fn read_order(body: &[u8]) -> Option<(String, Amount, String, u64)> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let reference = body.get("reference")?.as_str()?.trim();
    let amount = Amount::from_json(body.get("amount")?).ok()?;
    let currency = body.get("currency")?.as_str()?;
    let attempt = match body.get("attempt") {
        None => 1,
        Some(attempt) => attempt.as_u64().filter(|a| *a >= 1)?,
    };
    let currency_ok = currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase());
    (!reference.is_empty() && currency_ok)
        .then(|| (reference.to_string(), amount, currency.into(), attempt))
}

/// Lets a handler drop its own connection.
#[derive(Clone)]
struct Connection(Arc<Notify>);

async fn serve_connection(stream: TcpStream, app: Router) {
    let connection = Connection(Arc::new(Notify::new()));
    let service =
        hyper_util::service::TowerToHyperService::new(app.layer(Extension(connection.clone())));
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "PSP sandbox: connection ended");
            }
        }
        // Dropping `conn` closes the socket before any byte of the answer.
        () = connection.0.notified() => {}
    }
}

async fn create_payout(
    State(sandbox): State<Sandbox>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|key| !key.trim().is_empty());
    if !bearer {
        let body = json!({"status": "error", "error": "UNAUTHORIZED"});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    let Some(key) = key else {
        return refusal(StatusCode::BAD_REQUEST, "IDEMPOTENCY_KEY_REQUIRED").into_response();
    };
    match sandbox.decide(key, &body) {
        Reply::Send(answer) => answer.into_response(),
        Reply::LoseAnswer => {
            connection.0.notify_one();
            // The connection task drops this handler with the connection.
            std::future::pending().await
        }
    }
}

async fn list_payouts(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(sandbox.payouts())
}

async fn settlement_report(State(sandbox): State<Sandbox>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        sandbox.settlement_report(),
    )
        .into_response()
}

/// Keeps `in_flight` right however the delivery task ends.
struct InFlight(Sandbox);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inner.in_flight.send_modify(|n| *n -= 1);
    }
}

/// Sends one event to the webhook after the delay, signed afresh on each
/// attempt (the timestamp must be recent), until it answers 2xx.
async fn deliver(sandbox: Sandbox, key: String, body: String) {
    let _in_flight = InFlight(sandbox.clone());
    let config = &sandbox.inner.config;
    let Some(secret) = &config.secret else {
        return;
    };
    tokio::time::sleep(config.delay).await;
    for attempt in 1..=config.delivery_attempts {
        let signed = sign(secret, body.as_bytes());
        let result = sandbox
            .inner
            .client
            .post(&config.webhook_url)
            .header("content-type", "application/json")
            .header("x-psp-timestamp", signed.timestamp)
            .header("x-psp-signature", signed.signature)
            .body(body.clone())
            .send()
            .await;
        let delivered = match result {
            Ok(answer) if answer.status().is_success() => true,
            Ok(answer) => {
                tracing::warn!(%key, status = %answer.status(), attempt, "PSP sandbox: webhook refused the event");
                false
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, attempt, "PSP sandbox: webhook unreachable");
                false
            }
        };
        let last = attempt == config.delivery_attempts;
        sandbox.delivery_attempt(&key, delivered, last);
        if delivered || last {
            return;
        }
        tokio::time::sleep(config.retry_pause * attempt).await;
    }
}
