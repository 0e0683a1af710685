//! The API document from every function's routes: `make openapi` writes it
//! to `openapi.json`, which the health function serves as committed; the
//! test below fails when the committed file is not what the code declares.

use shared::api_doc::{self, Route};
use std::path::PathBuf;

/// Every route of every function, in one list. A new function crate adds
/// its `routes()` here (and a dependency in Cargo.toml).
pub fn all_routes() -> Vec<Route<()>> {
    [
        health::routes(),
        entries(users::routes()),
        entries(apikeys::routes()),
        entries(mandates::routes()),
        entries(spend::routes()),
        entries(escrows::routes()),
        entries(proofs::routes()),
        entries(payments::routes()),
        entries(transactions::routes()),
        entries(alerts::routes()),
        entries(psp_webhook::routes()),
        entries(ledger::routes()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The routes' document entries (functions' routers hold different states).
fn entries<S: Clone + Send + Sync + 'static>(routes: Vec<Route<S>>) -> Vec<Route<()>> {
    routes.into_iter().map(Route::entry).collect()
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document() -> String {
    api_doc::to_json(&api_doc::document(all_routes()))
}

/// `openapi.json` at the repo root.
pub fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_document_is_current() {
        let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
        assert!(
            committed == document(),
            "openapi.json is not what the code declares: run `make openapi` and commit it"
        );
    }
}
