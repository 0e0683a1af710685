//! The PSP adapter: asks the PSP to pay one payment, and says what became of
//! the request. The payout dispatcher holds an `Arc<dyn Psp>`; `HttpPsp` is
//! the real one, a JSON HTTP API (`kobatela-local psp-sandbox` implements it).
//!
//! Invariants:
//! - One attempt of one payment is one payout, however often it is sent: the
//!   `Idempotency-Key` is `<payment_id>-<attempt>`, the same on every retry,
//!   and the PSP answers a key it has seen with the answer it recorded.
//! - Only a definitive word from the PSP refuses a payout (`Refused`, the
//!   payment becomes ERROR). Anything we cannot read as a decision (timeout,
//!   lost connection, 5xx, 429, an unreadable 2xx, and our own bad key:
//!   401/403) is `RetryLater`, sent again with the same key.
//! - The API key is never logged, never in an error, never in Debug output.
//! - Money travels as the `Amount`'s two-place string, never a float.
//!
//! # Wire format
//!
//! `POST {base}/v1/payouts` with `Authorization: Bearer <api key>`,
//! `Idempotency-Key: <payment_id>-<attempt>`, `Content-Type: application/json`:
//!
//! ```json
//! {"reference": "PSP-…", "payment_id": "42", "attempt": 1, "amount": "12.34",
//!  "currency": "USD", "payee": {"user_id": 7}}
//! ```
//!
//! (`payee` is `{"user_id": 7}` or `{"payee_ref": "…"}`, as in our `Payment`.)
//!
//! | PSP answers | `PayoutAnswer` |
//! |---|---|
//! | 2xx `{"status":"accepted","payout_id":"…"}` | `Accepted` |
//! | 2xx with any other body | `RetryLater` (the PSP may have paid: ask again) |
//! | 401, 403, 408, 429, 5xx, 1xx, 3xx | `RetryLater` |
//! | other 4xx `{"status":"refused","reason":"ACCOUNT_CLOSED"}` | `Refused` with that reason |
//! | other 4xx with any other body | `Refused` with reason `HTTP_<code>` |
//! | no answer (connect error, timeout, connection lost, body cut short) | `RetryLater` |

use crate::{
    config::Secret,
    domain::{currency::Currency, escrow::payment::Payee, ids::Id, money::Amount},
    secrets,
};
use serde::Serialize;
use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

/// What the dispatcher asks the PSP to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRequest {
    pub payment_id: Id,
    /// The payment's `attempts`: a retried ERROR payment is a new payout.
    pub attempt: u32,
    /// The reference the PSP echoes in its webhook.
    pub psp_ref: String,
    pub amount: Amount,
    pub currency: Currency,
    pub payee: Payee,
}

impl PayoutRequest {
    /// `<payment_id>-<attempt>`: the same on every retry of one attempt, so
    /// the PSP never pays twice.
    pub fn idempotency_key(&self) -> String {
        format!("{}-{}", self.payment_id, self.attempt)
    }
}

/// What became of one request to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutAnswer {
    /// The PSP took the payout (SENT); its webhook settles or fails it later.
    Accepted { psp_payout_id: String },
    /// Definitive: the payment becomes ERROR (money back).
    Refused { reason: String },
    /// No decision: send again later with the same key.
    RetryLater { why: String },
}

/// The future a `Psp` answers with (boxed, so `dyn Psp` works).
pub type PayoutFuture<'a> = Pin<Box<dyn Future<Output = PayoutAnswer> + Send + 'a>>;

/// A payment service provider that pays out.
pub trait Psp: Send + Sync {
    /// Never fails: every outcome, transport errors included, is an answer.
    fn submit_payout<'a>(&'a self, payout: &'a PayoutRequest) -> PayoutFuture<'a>;
}

/// The PSP's base URL (`KOBATELA_PSP_BASE_URL`).
pub const BASE_URL_VAR: &str = "KOBATELA_PSP_BASE_URL";
/// Longest wait for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a whole request, answer body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer body read; a longer one is unreadable.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest refusal reason kept (it is stored with the payment).
const MAX_REASON_CHARS: usize = 200;

/// Where the PSP is and how we authenticate, read once per cold start.
#[derive(Clone)]
pub struct PspConfig {
    pub base_url: reqwest::Url,
    pub api_key: Secret,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for PspConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PspConfig")
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &self.api_key)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl PspConfig {
    /// `base_url` checked: http(s), no credentials or query in it, and
    /// https unless it is a loopback address (the bearer key must not cross
    /// a network in clear).
    pub fn new(base_url: &str, api_key: Secret) -> Result<PspConfig, String> {
        let url = reqwest::Url::parse(base_url.trim())
            .map_err(|e| format!("{BASE_URL_VAR} is not a URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{BASE_URL_VAR} must not hold credentials: the key is {}",
                secrets::PSP_API_KEY.env
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{BASE_URL_VAR} must not have a query or fragment"));
        }
        let host = url.host_str().unwrap_or_default();
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(format!(
                    "{BASE_URL_VAR} must be https (http only on a loopback address)"
                ))
            }
            other => return Err(format!("{BASE_URL_VAR}: unsupported scheme {other}")),
        }
        Ok(PspConfig {
            base_url: url,
            api_key,
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        })
    }

    /// From the environment (`lookup`): the base URL, and the key from its
    /// variable (local runs) or its SSM parameter (through `fetch`).
    pub async fn from_lookup<F, Fut>(
        lookup: impl Fn(&str) -> Option<String>,
        fetch: F,
    ) -> Result<PspConfig, String>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<String, String>>,
    {
        let base = lookup(BASE_URL_VAR)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("{BASE_URL_VAR} is not set: the PSP's base URL is required"))?;
        let key = secrets::resolve(&secrets::PSP_API_KEY, &lookup, fetch).await?;
        PspConfig::new(&base, key)
    }

    /// From the process environment; SSM through the standard AWS configuration.
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<PspConfig, String> {
        PspConfig::from_lookup(
            |v| std::env::var(v).ok(),
            |param| async move { secrets::read_parameter(&secrets::ssm_client(sdk), &param).await },
        )
        .await
    }

    /// `{base}/v1/payouts`, keeping any path prefix of the base.
    fn payouts_url(&self) -> reqwest::Url {
        let mut url = self.base_url.clone();
        let path = format!("{}/v1/payouts", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }
}

/// The PSP over HTTP: one client (connection pool, TLS) per cold start.
#[derive(Clone)]
pub struct HttpPsp {
    config: PspConfig,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpPsp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPsp")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpPsp {
    pub fn new(config: PspConfig) -> Result<HttpPsp, String> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(config.base_url.scheme() == "https")?)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirect would resend the bearer key and the payout elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the PSP client: {e}"))?;
        Ok(HttpPsp { config, client })
    }

    /// `HttpPsp::new` on `PspConfig::from_env`, once per cold start.
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Arc<dyn Psp>, String> {
        Ok(Arc::new(HttpPsp::new(PspConfig::from_env(sdk).await?)?))
    }

    pub fn config(&self) -> &PspConfig {
        &self.config
    }

    /// The request for `payout`: headers and JSON body of the wire format.
    pub fn request(&self, payout: &PayoutRequest) -> Result<reqwest::Request, String> {
        let body = serde_json::to_vec(&PayoutBody::of(payout))
            .map_err(|e| format!("cannot encode the payout: {e}"))?;
        let mut auth = reqwest::header::HeaderValue::try_from(format!(
            "Bearer {}",
            self.config.api_key.expose()
        ))
        // Not the error itself: it could quote the key.
        .map_err(|_| format!("{} is not a valid header value", secrets::PSP_API_KEY.env))?;
        auth.set_sensitive(true);
        self.client
            .post(self.config.payouts_url())
            .header(reqwest::header::AUTHORIZATION, auth)
            .header("idempotency-key", payout.idempotency_key())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .build()
            .map_err(|e| format!("cannot build the payout request: {}", e.without_url()))
    }

    async fn submit(&self, payout: &PayoutRequest) -> PayoutAnswer {
        let request = match self.request(payout) {
            Ok(request) => request,
            Err(why) => return PayoutAnswer::RetryLater { why },
        };
        let mut response = match self.client.execute(request).await {
            Ok(response) => response,
            Err(e) => {
                return PayoutAnswer::RetryLater {
                    why: transport_failure(&e),
                }
            }
        };
        let status = response.status().as_u16();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ANSWER_BYTES => {
                    body.extend_from_slice(&chunk)
                }
                // Too long to be one of our answers: judged as unreadable.
                Ok(Some(_)) => {
                    body.clear();
                    break;
                }
                Ok(None) => break,
                // The answer was cut short: whatever the status said, the
                // PSP's word is not known for sure, and a retry asks again.
                Err(e) => {
                    return PayoutAnswer::RetryLater {
                        why: format!("HTTP {status}, {}", transport_failure(&e)),
                    }
                }
            }
        }
        classify(status, &body)
    }
}

impl Psp for HttpPsp {
    fn submit_payout<'a>(&'a self, payout: &'a PayoutRequest) -> PayoutFuture<'a> {
        Box::pin(self.submit(payout))
    }
}

/// The TLS the AWS SDK's client uses (`crate::app::https_client`): rustls on
/// the ring provider, with the system's roots. reqwest's own rustls features
/// would pick a provider of their own, a second crypto library. The roots
/// are read only for https (the local sandbox is plain http).
///
/// Every reqwest client of a process that links this feature must be given
/// this (`use_preconfigured_tls`): reqwest has no TLS provider of its own
/// here, and would panic building a client without one.
pub fn tls_config(https: bool) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err("no trusted root certificates found for the PSP's https".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Why no answer came, in words that carry no header (so never the key).
fn transport_failure(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_connect() {
        "cannot connect to the PSP".into()
    } else {
        "the connection was lost before a complete answer".into()
    }
}

/// The body of `POST /v1/payouts`.
#[derive(Serialize)]
struct PayoutBody<'a> {
    reference: &'a str,
    /// A string, as every id on this API: no client may round it.
    payment_id: String,
    attempt: u32,
    /// The two-place string (`Amount`'s own form), never a float.
    amount: String,
    currency: &'a str,
    payee: &'a Payee,
}

impl<'a> PayoutBody<'a> {
    fn of(payout: &'a PayoutRequest) -> PayoutBody<'a> {
        PayoutBody {
            reference: &payout.psp_ref,
            payment_id: payout.payment_id.to_string(),
            attempt: payout.attempt,
            amount: payout.amount.to_string(),
            currency: payout.currency.as_str(),
            payee: &payout.payee,
        }
    }
}

/// The PSP's answer (status code, raw body) as a `PayoutAnswer`. Pure, so
/// every row of the table above is tested.
pub fn classify(status: u16, body: &[u8]) -> PayoutAnswer {
    let field = |name: &str| -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let text = value.get(name)?.as_str()?.trim();
        (!text.is_empty()).then(|| text.to_string())
    };
    match status {
        200..=299 => match (field("status").as_deref(), field("payout_id")) {
            (Some("accepted"), Some(psp_payout_id)) => PayoutAnswer::Accepted { psp_payout_id },
            _ => PayoutAnswer::RetryLater {
                why: format!("HTTP {status} with an unreadable answer"),
            },
        },
        // Our key or our pace, not the payment: never fail a customer for it.
        401 | 403 => PayoutAnswer::RetryLater {
            why: format!("HTTP {status}: the PSP refused our credentials"),
        },
        408 | 429 => PayoutAnswer::RetryLater {
            why: format!("HTTP {status}: try again later"),
        },
        400..=499 => {
            let reason = match (field("status").as_deref(), field("reason")) {
                (Some("refused"), Some(reason)) => reason.chars().take(MAX_REASON_CHARS).collect(),
                _ => format!("HTTP_{status}"),
            };
            PayoutAnswer::Refused { reason }
        }
        _ => PayoutAnswer::RetryLater {
            why: format!("HTTP {status}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "psk_test_0123456789abcdef";

    fn payout(payee: Payee) -> PayoutRequest {
        PayoutRequest {
            payment_id: Id::new(42).unwrap(),
            attempt: 1,
            psp_ref: "PSP-abc".into(),
            amount: "12.34".parse().unwrap(),
            currency: Currency::usd(),
            payee,
        }
    }

    fn psp(base: &str) -> HttpPsp {
        HttpPsp::new(PspConfig::new(base, Secret::new(KEY)).unwrap()).unwrap()
    }

    fn retry(answer: &PayoutAnswer) -> bool {
        matches!(answer, PayoutAnswer::RetryLater { .. })
    }

    #[test]
    fn the_key_is_payment_and_attempt() {
        let mut p = payout(Payee::User {
            user_id: Id::new(7).unwrap(),
        });
        assert_eq!(p.idempotency_key(), "42-1");
        p.attempt = 2;
        assert_eq!(p.idempotency_key(), "42-2");
    }

    #[test]
    fn accepted_needs_status_and_payout_id() {
        for status in [200, 201, 202] {
            assert_eq!(
                classify(
                    status,
                    br#"{"status":"accepted","payout_id":"po_1","reference":"R"}"#
                ),
                PayoutAnswer::Accepted {
                    psp_payout_id: "po_1".into()
                }
            );
        }
        // The PSP may have paid: an unreadable 2xx is asked again, never refused.
        for body in [
            &b""[..],
            b"not json",
            b"[]",
            br#"{"status":"accepted"}"#,
            br#"{"status":"accepted","payout_id":""}"#,
            br#"{"status":"accepted","payout_id":7}"#,
            br#"{"status":"refused","reason":"ACCOUNT_CLOSED"}"#,
            br#"{"payout_id":"po_1"}"#,
        ] {
            assert!(
                retry(&classify(200, body)),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn refusals_carry_the_reason_or_the_code() {
        let refused = br#"{"status":"refused","reason":"ACCOUNT_CLOSED"}"#;
        for status in [400, 402, 404, 409, 410, 422, 499] {
            assert_eq!(
                classify(status, refused),
                PayoutAnswer::Refused {
                    reason: "ACCOUNT_CLOSED".into()
                }
            );
            for body in [
                &b""[..],
                b"<html>",
                br#"{"status":"accepted","payout_id":"p"}"#,
            ] {
                assert_eq!(
                    classify(status, body),
                    PayoutAnswer::Refused {
                        reason: format!("HTTP_{status}")
                    }
                );
            }
        }
        let long = format!(r#"{{"status":"refused","reason":"{}"}}"#, "X".repeat(500));
        let PayoutAnswer::Refused { reason } = classify(422, long.as_bytes()) else {
            panic!("a refusal");
        };
        assert_eq!(reason.len(), MAX_REASON_CHARS);
    }

    #[test]
    fn everything_else_is_retried() {
        let refused = br#"{"status":"refused","reason":"ACCOUNT_CLOSED"}"#;
        for status in [
            100, 301, 302, 304, 401, 403, 408, 429, 500, 502, 503, 504, 599, 600,
        ] {
            assert!(retry(&classify(status, refused)), "{status}");
            assert!(retry(&classify(status, b"")), "{status}");
        }
    }

    #[test]
    fn every_status_has_one_answer_of_the_table() {
        for status in 100..=599u16 {
            let answer = classify(status, b"");
            let expected = match status {
                200..=299 | 401 | 403 | 408 | 429 => "retry",
                400..=499 => "refused",
                _ => "retry",
            };
            let got = match answer {
                PayoutAnswer::Accepted { .. } => "accepted",
                PayoutAnswer::Refused { .. } => "refused",
                PayoutAnswer::RetryLater { .. } => "retry",
            };
            assert_eq!(got, expected, "{status}");
        }
    }

    #[test]
    fn the_request_has_the_wire_format() {
        let psp = psp("http://127.0.0.1:3100/");
        let request = psp
            .request(&payout(Payee::User {
                user_id: Id::new(7).unwrap(),
            }))
            .unwrap();
        assert_eq!(request.method(), reqwest::Method::POST);
        assert_eq!(request.url().as_str(), "http://127.0.0.1:3100/v1/payouts");
        let headers = request.headers();
        assert_eq!(headers["authorization"], format!("Bearer {KEY}").as_str());
        assert!(headers["authorization"].is_sensitive());
        assert_eq!(headers["idempotency-key"], "42-1");
        assert_eq!(headers["content-type"], "application/json");
        let body = request.body().and_then(|b| b.as_bytes()).unwrap();
        // Exact text: field order, strings for the id and the amount.
        assert_eq!(
            std::str::from_utf8(body).unwrap(),
            r#"{"reference":"PSP-abc","payment_id":"42","attempt":1,"amount":"12.34","currency":"USD","payee":{"user_id":7}}"#
        );
        let request = psp
            .request(&payout(Payee::Ref {
                payee_ref: "PAYEE-9".into(),
            }))
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(request.body().and_then(|b| b.as_bytes()).unwrap()).unwrap();
        assert_eq!(body["payee"], serde_json::json!({"payee_ref": "PAYEE-9"}));
        // Debug of the request hides the bearer value.
        assert!(!format!("{request:?}").contains(KEY));
    }

    #[test]
    fn a_base_path_prefix_is_kept() {
        let psp = psp("https://psp.example.com/api");
        let request = psp
            .request(&payout(Payee::User {
                user_id: Id::new(7).unwrap(),
            }))
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "https://psp.example.com/api/v1/payouts"
        );
    }

    #[test]
    fn unsafe_base_urls_are_refused() {
        let key = || Secret::new(KEY);
        for bad in [
            "http://psp.example.com",
            "ftp://127.0.0.1",
            "https://user:pw@psp.example.com",
            "https://psp.example.com/?a=1",
            "not a url",
        ] {
            let err = PspConfig::new(bad, key()).unwrap_err();
            assert!(err.contains(BASE_URL_VAR), "{err}");
            assert!(!err.contains(KEY), "{err}");
        }
        for good in [
            "http://127.0.0.1:3100",
            "http://localhost:3100",
            "http://[::1]:3100",
            "https://psp.example.com",
        ] {
            assert!(PspConfig::new(good, key()).is_ok(), "{good}");
        }
    }

    #[tokio::test]
    async fn config_reads_the_key_like_every_secret_and_never_shows_it() {
        let vars = |key: &'static str| {
            move |name: &str| match name {
                BASE_URL_VAR => Some("http://127.0.0.1:3100".to_string()),
                "KOBATELA_PSP_API_KEY" => Some(key.to_string()),
                _ => None,
            }
        };
        let never = |_: String| async { Err::<String, String>("SSM must not be called".into()) };
        let config = PspConfig::from_lookup(vars(KEY), never).await.unwrap();
        assert_eq!(config.api_key.expose(), KEY);
        let shown = format!("{config:?} {:?}", HttpPsp::new(config.clone()).unwrap());
        assert!(shown.contains("127.0.0.1:3100"), "{shown}");
        assert!(!shown.contains(KEY), "{shown}");
        // Too short: refused, and the refusal does not quote it.
        let err = PspConfig::from_lookup(vars("short-key"), never)
            .await
            .unwrap_err();
        assert!(err.contains("KOBATELA_PSP_API_KEY is too short"), "{err}");
        assert!(!err.contains("short-key"), "{err}");
        // On Lambda: the SSM parameter named by KOBATELA_PSP_API_KEY_PARAM.
        let config = PspConfig::from_lookup(
            |name: &str| match name {
                BASE_URL_VAR => Some("https://psp.example.com".to_string()),
                "KOBATELA_PSP_API_KEY_PARAM" => Some("/kobatela/dev/psp-api-key".to_string()),
                _ => None,
            },
            |param| async move {
                assert_eq!(param, "/kobatela/dev/psp-api-key");
                Ok(KEY.to_string())
            },
        )
        .await
        .unwrap();
        assert_eq!(config.api_key.expose(), KEY);
        // No base URL: refused by name.
        let err = PspConfig::from_lookup(|_: &str| None, never)
            .await
            .unwrap_err();
        assert!(err.contains(BASE_URL_VAR), "{err}");
    }

    #[tokio::test]
    async fn a_dyn_psp_is_usable() {
        struct Always;
        impl Psp for Always {
            fn submit_payout<'a>(&'a self, payout: &'a PayoutRequest) -> PayoutFuture<'a> {
                Box::pin(async move {
                    PayoutAnswer::Accepted {
                        psp_payout_id: payout.idempotency_key(),
                    }
                })
            }
        }
        let psp: Arc<dyn Psp> = Arc::new(Always);
        let p = payout(Payee::User {
            user_id: Id::new(7).unwrap(),
        });
        assert_eq!(
            psp.submit_payout(&p).await,
            PayoutAnswer::Accepted {
                psp_payout_id: "42-1".into()
            }
        );
    }
}
