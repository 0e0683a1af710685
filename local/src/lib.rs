//! The routes of every HTTP function in one router, as API Gateway routes
//! them: what `kobatela-local` serves and in-process tests call.

pub mod psp;

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
