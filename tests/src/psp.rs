//! The PSP's side of the webhook: its secrets, signatures, bodies and
//! headers, sending an event and waiting until it is processed; and
//! [`AcceptingPsp`], a PSP in-process for the payout dispatcher.

use crate::{env, Api, Reply};
use reqwest::Method;
use serde_json::{json, Value};

/// The PSP webhook secret the running service and in-process APIs trust.
pub fn psp_secret() -> String {
    env("KOBATELA_PSP_WEBHOOK_SECRET")
}

/// The previous secret, still accepted (rotation), if the run sets one.
pub fn psp_previous_secret() -> Option<String> {
    std::env::var("KOBATELA_PSP_WEBHOOK_SECRET_PREVIOUS")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// The PSP's signature of `timestamp.body` under `secret`, computed here
/// independently of the service's code: lower-case hex HMAC-SHA256.
pub fn psp_sign(secret: &str, timestamp: &str, body: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Now, in unix seconds, as the PSP writes `X-PSP-Timestamp`.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A PSP event body: `{"id", "type", "psp_ref"}`.
pub fn psp_body(event_id: &str, kind: &str, psp_ref: &str) -> String {
    json!({"id": event_id, "type": kind, "psp_ref": psp_ref}).to_string()
}

/// The headers of a correctly signed webhook (current secret, now).
pub fn psp_headers(body: &str) -> Vec<(String, String)> {
    let ts = unix_now().to_string();
    let sig = psp_sign(&psp_secret(), &ts, body);
    vec![
        ("x-psp-timestamp".to_string(), ts),
        ("x-psp-signature".to_string(), sig),
    ]
}

/// Borrowed form of headers, for `send`.
pub fn header_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A correctly signed PSP event `kind` for `psp_ref`, sent as the PSP does.
pub async fn send_psp_event(event_id: &str, kind: &str, psp_ref: &str) -> Reply {
    let body = psp_body(event_id, kind, psp_ref);
    let headers = psp_headers(&body);
    Api::anonymous()
        .psp_webhook(&header_refs(&headers), &body)
        .await
}

/// `GET /psp/events/{id}` until the local consumer has processed the event
/// (bounded: 30 s), as a client would wait for it.
pub async fn psp_processed(admin: &Api, event_id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reply = admin
            .get(&format!("/psp/events/{event_id}"))
            .await
            .expect(200);
        if reply.body["status"] != "QUEUED" {
            return reply.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "event {event_id} not processed within 30 s: {}",
            reply.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl Api {
    /// `POST /psp/webhook` as the PSP sends it (no API key).
    pub async fn psp_webhook(&self, headers: &[(&str, &str)], body: &str) -> Reply {
        Api::anonymous()
            .send(
                Method::POST,
                "/psp/webhook",
                headers,
                Some(body.to_string()),
            )
            .await
    }
}

/// A PSP that accepts every payout, in-process: for tests of what the
/// payout dispatcher writes, without the sandbox's HTTP.
pub struct AcceptingPsp;

impl shared::psp::Psp for AcceptingPsp {
    fn submit_payout<'a>(
        &'a self,
        payout: &'a shared::psp::PayoutRequest,
    ) -> shared::psp::PayoutFuture<'a> {
        Box::pin(async move {
            shared::psp::PayoutAnswer::Accepted {
                psp_payout_id: format!("po_{}", payout.idempotency_key()),
            }
        })
    }
}
