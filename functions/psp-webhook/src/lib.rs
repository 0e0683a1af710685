//! `POST /psp/webhook`: the PSP's signed event, recorded once by event id
//! and put on the PSP events queue; `psp-events` applies it.
//!
//! No API key and no pepper: the HMAC signature (current or previous
//! secret) is the authentication. Order: size (413), signature (401, nothing
//! stored), a JSON object (400), headers that disagree with the signed body
//! (401 `header-mismatch`), then record → send → mark QUEUED. A failed
//! record or send answers 503 `SERVICE_BUSY` with `Retry-After`, so the PSP
//! retries; a retry of an event still RECEIVED sends it again (the consumer
//! applies each event id once), one already QUEUED or processed answers
//! `duplicate`.

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::Response,
    Router,
};
use shared::{
    config::{Config, Secret},
    domain::{
        error::ErrorCode,
        time::Timestamp,
        webhook::{identify_event, verify_signature, WebhookSecret, WebhookSecrets},
    },
    error::AppError,
    http::json,
    queue::{Queue, QUEUE_URL_VAR},
    secrets,
    store::{
        psp_events::{QueuedEvent, Recorded},
        Store,
    },
};
use std::sync::Arc;

/// Largest accepted body (docs/api.md: over 256 KiB → 413).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Longest event id, `psp_ref` or type kept: a PSP's identifiers are short;
/// anything longer is refused (422) rather than stored.
pub const MAX_FIELD_CHARS: usize = 200;

/// What the webhook needs, built once per cold start: the store, the queue
/// and the secrets. No API key authenticator.
pub struct Webhook {
    pub store: Store,
    pub queue: Queue,
    pub secrets: WebhookSecrets,
}

pub type WebhookState = Arc<Webhook>;

/// The secrets as the signature check takes them.
pub fn webhook_secrets(current: &Secret, previous: Option<&Secret>) -> WebhookSecrets {
    let secret = |s: &Secret| {
        WebhookSecret::new(s.expose().as_bytes().to_vec()).expect("secrets are never empty")
    };
    WebhookSecrets {
        current: secret(current),
        previous: previous.map(secret),
    }
}

impl Webhook {
    pub fn new(store: Store, queue: Queue, secrets: WebhookSecrets) -> WebhookState {
        Arc::new(Webhook {
            store,
            queue,
            secrets,
        })
    }

    /// From the environment: settings, the queue URL
    /// (`KOBATELA_PSP_QUEUE_URL`), the current secret (refuses to start
    /// without it) and the previous one if set; SSM on Lambda.
    pub async fn from_env() -> Result<WebhookState, String> {
        let config = Config::from_env()?;
        let url = std::env::var(QUEUE_URL_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                format!("{QUEUE_URL_VAR} is not set: the PSP events queue is required")
            })?;
        let sdk = shared::app::sdk_config().await;
        let current = secrets::from_env(&secrets::PSP_WEBHOOK_SECRET, &sdk).await?;
        let previous =
            secrets::optional_from_env(&secrets::PSP_WEBHOOK_SECRET_PREVIOUS, &sdk).await?;
        Ok(Webhook::new(
            Store::new(Store::new_client(&sdk), &config.table, config.id_block),
            Queue::new(Queue::new_client(&sdk), url.trim()),
            webhook_secrets(&current, previous.as_ref()),
        ))
    }
}

pub fn router(state: WebhookState) -> Router {
    shared::api_doc::router(routes(), state)
}

fn too_large() -> AppError {
    AppError::new(
        ErrorCode::PayloadTooLarge,
        "The request body is larger than 256 KiB.",
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let raw = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    verify_signature(
        header(&headers, "x-psp-timestamp"),
        header(&headers, "x-psp-signature"),
        &raw,
        &state.secrets,
        Timestamp::now(),
    )
    .map_err(|refusal| {
        tracing::warn!(reason = refusal.as_str(), "PSP webhook refused");
        AppError::new(refusal.code(), refusal.message())
    })?;
    let object = match serde_json::from_slice::<serde_json::Value>(&raw) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => {
            return Err(AppError::new(
                ErrorCode::InvalidJson,
                "The request body must be a JSON object.",
            ))
        }
    };
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let identity = identify_event(text("x-psp-event-id"), text("x-psp-ref"), &object, &raw)
        .map_err(|refusal| {
            tracing::warn!(reason = refusal.as_str(), "PSP webhook refused");
            AppError::new(refusal.code(), refusal.message())
        })?;
    for (field, value) in [
        ("event_id", Some(&identity.event_id)),
        ("psp_ref", identity.psp_ref.as_ref()),
        ("type", identity.event_type.as_ref()),
    ] {
        if value.is_some_and(|v| v.chars().count() > MAX_FIELD_CHARS) {
            return Err(AppError::field(field, "must be at most 200 characters"));
        }
    }
    let status = match state
        .store
        .record_psp_event(&identity, Timestamp::now())
        .await?
    {
        Recorded::Duplicate => "duplicate",
        Recorded::New | Recorded::NotQueued => {
            let message = serde_json::to_string(&QueuedEvent {
                event_id: identity.event_id.clone(),
            })
            .map_err(AppError::internal)?;
            state.queue.send(message).await?;
            // On the queue: a failure to say so only means a PSP retry will
            // send it again, which the consumer absorbs.
            if let Err(e) = state.store.mark_psp_event_queued(&identity.event_id).await {
                tracing::warn!(error = %e, "PSP event queued but not marked QUEUED");
            }
            "queued"
        }
    };
    tracing::info!(event_id = %identity.event_id, status, "PSP event received");
    Ok(json(
        StatusCode::OK,
        &Receipt {
            ok: "true",
            event_id: identity.event_id,
            status,
        },
    ))
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// The event as the PSP sends it: any JSON object; these fields are read.
// Documentation only: the body is checked over its raw signed bytes, then
// read by `shared::domain::webhook::identify_event`, not by a field reader.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PspEvent {
    /// The event id (or `event_id`): a string or an integer.
    #[schema(schema_with = string_or_integer)]
    id: Option<String>,
    /// `payment.settled`, `payment.failed`, … (or `event`).
    #[schema(rename = "type")]
    kind: Option<String>,
    /// The payment's reference (or `payment_reference`).
    psp_ref: Option<String>,
}

/// PSPs send event ids as strings or integers; both are read.
fn string_or_integer() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Integer))
            .build(),
    )
    .into()
}

/// The webhook's answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Receipt {
    /// `"true"`.
    ok: &'static str,
    event_id: String,
    /// `queued` (recorded and queued now) or `duplicate` (known already).
    status: &'static str,
}

/// This function's route, its handler and its API document entry: signed
/// by the PSP, no API key.
pub fn routes() -> Vec<shared::api_doc::Route<WebhookState>> {
    use shared::api_doc::{string_schema, Route};
    let hex = string_schema(Some("^[0-9a-f]{64}(,[0-9a-f]{64})*$"), None);
    vec![Route::post("/psp/webhook", "A PSP event (HMAC-SHA256 signed)", receive)
        .public()
        .header(
            "X-PSP-Timestamp",
            true,
            "Unix seconds (digits only), within 300 s of the server's clock.",
            string_schema(Some("^[0-9]{1,20}$"), None),
        )
        .header(
            "X-PSP-Signature",
            true,
            "Lower-case hex HMAC-SHA256 of `timestamp.body` under the webhook secret; several comma-separated.",
            hex,
        )
        .header(
            "X-PSP-Event-Id",
            false,
            "Not signed: if sent, it must equal the body's `id` (else `event_id`), or the request is 401 `header-mismatch`; without one in the body it is ignored. The event id is the body's, else the SHA-256 of the body.",
            string_schema(None, Some((1, 200))),
        )
        .header(
            "X-PSP-Ref",
            false,
            "Not signed: if sent, it must equal the body's `psp_ref` (else `payment_reference`), or the request is 401 `header-mismatch`; without one in the body it is ignored.",
            string_schema(None, Some((1, 200))),
        )
        .body::<PspEvent>()
        .answer::<Receipt>(200, "Recorded once and queued.")
        .errors(&[ErrorCode::InvalidSignature, ErrorCode::ServiceBusy])]
}
