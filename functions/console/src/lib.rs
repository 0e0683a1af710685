//! `GET /console` and `GET /console/{*path}`: the support console, a static
//! page (HTML, ES modules, CSS; no build step) embedded in the binary. The
//! files hold no data and need no key: every data call the page makes goes to
//! the API, same origin, with the staff key the person typed in (kept in
//! `sessionStorage`). So this function reads no table, bucket or secret, and
//! opens no CORS.
//!
//! Every answer carries a strict Content-Security-Policy (`policy`), and
//! `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer`. Names are not content-hashed, so every file
//! is `Cache-Control: no-cache` with an `ETag`: a browser asks again each
//! time and gets a bodiless 304 while the build is the same.

mod assets;
mod policy;

pub use assets::{content_type, Asset, ASSETS};
pub use policy::{proof_origin, Policy};

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use sha2::{Digest, Sha256};
use shared::{domain::error::ErrorCode, error::AppError};
use std::sync::{Arc, OnceLock};

pub fn router(policy: Policy) -> Router {
    let csp = HeaderValue::from_str(policy.content_security_policy())
        .expect("policy::proof_origin lets only header-safe bytes through");
    Router::new()
        .route("/console", get(page))
        .route("/console/{*path}", get(file))
        .layer(axum::middleware::map_response_with_state(
            Arc::new(csp),
            secure,
        ))
}

async fn page(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match assets::find(&path) {
        Some((index, _)) => serve(index, &headers),
        None => AppError::new(ErrorCode::NotFound, "No such file in the console.").into_response(),
    }
}

/// The quoted SHA-256 (first 128 bits) of each file, computed once.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    &TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.bytes)[..16])))
            .collect()
    })[index]
}

fn serve(index: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let tag = etag(index);
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = (StatusCode::OK, asset.bytes).into_response();
        let kind = content_type(asset.path).expect("a unit test checks every asset's type");
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(tag).expect("hex in quotes"),
    );
    response
}

/// The security headers, on every answer of the console (its 404s too).
async fn secure(State(csp): State<Arc<HeaderValue>>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, (*csp).clone());
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests;
