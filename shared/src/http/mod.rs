//! axum glue: the JSON body and field reader, the error shape, the request id,
//! and the app wrapper that every function (and the local server) puts around
//! its routes.

pub mod body;
pub mod extract;
pub mod request_id;

use crate::{
    domain::error::ErrorCode,
    error::AppError,
    store::{catalogue::AllowOutcome, idempotency::StoredResponse},
};
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Router,
};
use serde::Serialize;

/// How long a client should wait before retrying a 503 `SERVICE_BUSY`.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Wraps a function's routes: JSON 404 and 405, and an `x-request-id` on
/// every response. Routers are merged before this is applied once.
pub fn app(routes: Router) -> Router {
    routes
        .fallback(|| async { AppError::new(ErrorCode::NotFound, "No such route.") })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                ErrorCode::MethodNotAllowed,
                "Method not allowed on this route.",
            )
        })
        .layer(axum::middleware::from_fn(request_id::middleware))
}

/// Runs a function's routes on Lambda: state from the environment (the
/// function refuses to start, with the reason, if a setting is missing).
pub async fn run_on_lambda(
    routes: fn(crate::SharedState) -> Router,
) -> Result<(), lambda_http::Error> {
    let state = crate::AppState::for_lambda().await?;
    lambda_http::run(app(routes(state))).await
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => raw_json(status, bytes),
        Err(e) => AppError::internal(e).into_response(),
    }
}

/// `{"status": "…"}`: the answer of a write whose outcome is all there is
/// to say (a certification created or updated).
pub fn outcome(status: StatusCode, text: &'static str) -> Response {
    json(status, &serde_json::json!({ "status": text }))
}

/// An allowance (`/spend/allow`, `/allowlist`): 201 `added`, or 200
/// `exists` when it was already there.
pub fn allowance(outcome: AllowOutcome) -> Response {
    match outcome {
        AllowOutcome::Added => self::outcome(StatusCode::CREATED, "added"),
        AllowOutcome::AlreadyAllowed => self::outcome(StatusCode::OK, "exists"),
    }
}

fn raw_json(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A stored response, replayed byte for byte.
pub fn stored(response: StoredResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    raw_json(status, response.body.into_bytes())
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json(status, &self.body());
        if self.is_busy() {
            crate::metrics::count(crate::metrics::SERVICE_BUSY, 1, &[]);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
