//! Kobatela's shared crate: the domain rules (`domain`, pure) and the adapters
//! every function uses (`store` for DynamoDB, `auth`, `http`, `config`,
//! `secrets`, `telemetry`). Function crates stay thin: parse, call the domain, persist,
//! answer.

pub mod api_doc;
pub mod app;
pub mod auth;
#[cfg(feature = "blob")]
pub mod blob;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod ops;
#[cfg(feature = "psp")]
pub mod psp;
#[cfg(feature = "queue")]
pub mod queue;
pub mod secrets;
pub mod store;
pub mod telemetry;

pub use app::{AppState, SharedState};
