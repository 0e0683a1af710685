//! The routes of every HTTP function in one router, as API Gateway routes
//! them: what `kobatela-local` serves and in-process tests call.

pub mod dispatch;
pub mod domain_events;
pub mod psp;
pub mod psp_sandbox;
pub mod psp_signing;
pub mod stream;

use axum::Router;
use shared::SharedState;

pub fn routes(state: &SharedState) -> Router {
    health::router()
        .merge(users::router(state.clone()))
        .merge(apikeys::router(state.clone()))
        .merge(mandates::router(state.clone()))
        .merge(spend::router(state.clone()))
        .merge(escrows::router(state.clone()))
        .merge(payments::router(state.clone()))
        .merge(transactions::router(state.clone()))
        .merge(alerts::router(state.clone()))
}

/// Every route, the proofs function's included (it alone needs the bucket).
pub fn all_routes(state: &SharedState, blob: &shared::blob::Blob) -> Router {
    routes(state)
        .merge(proofs::router(proofs::ProofsState {
            app: state.clone(),
            blob: blob.clone(),
        }))
        .merge(ledger::router(ledger::LedgerState {
            app: state.clone(),
            blob: blob.clone(),
        }))
}

/// The console (`GET /console`), its CSP naming the origin of `blob`'s
/// presigned URLs. An error says which setting is missing.
pub fn console_routes(blob: &shared::blob::Blob) -> Result<Router, String> {
    let policy = console::Policy::from_lookup(|name| match name {
        shared::blob::BUCKET_VARIABLE => Some(blob.bucket().to_string()),
        other => std::env::var(other).ok(),
    })?;
    Ok(console::router(policy))
}

/// The proof bucket of the local stack: `KOBATELA_PROOF_BUCKET`, or the one
/// `local/bootstrap.py` creates.
pub async fn local_blob() -> shared::blob::Blob {
    let sdk = shared::app::sdk_config().await;
    shared::blob::Blob::from_lookup(&sdk, |name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| Some(LOCAL_PROOF_BUCKET.to_string()))
    })
    .expect("a bucket name is always given")
}

/// The bucket `local/bootstrap.py` creates.
pub const LOCAL_PROOF_BUCKET: &str = "kobatela-proofs-local";
