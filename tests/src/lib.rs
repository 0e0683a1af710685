//! Helpers for the black-box tests of tests/api/, by concern:
//! - [`client`]: [`Api`], the HTTP client of the running `kobatela-local`
//!   (one API key), the [`Reply`] it reads whole, and [`env`];
//! - [`fixtures`]: users, keys, mandates, escrows and payouts made through
//!   the API as a client would, and [`unique`] names;
//! - [`table`]: [`Table`], direct reads (and the writes the API refuses) of
//!   the emulator's table, to check the stored state;
//! - [`psp`]: the PSP's side of the webhook (secrets, signatures, bodies) and
//!   [`AcceptingPsp`];
//! - [`in_process`]: [`InProcess`], the whole API in the test's process on a
//!   table of its own;
//! - [`faults`] (fault injection), [`photos`], [`event_schema`].
//!
//! Everything of the first five is re-exported here, so tests write
//! `use kobatela_tests::{Api, Table, …}`.
//!
//! Environment (set by `local/integration.sh`): `KOBATELA_BASE_URL`,
//! `KOBATELA_ADMIN_KEY`, `KOBATELA_TABLE`, `KOBATELA_API_KEY_PEPPER`,
//! `AWS_ENDPOINT_URL` and the dummy AWS credentials.

pub mod client;
pub mod event_schema;
pub mod faults;
pub mod fixtures;
pub mod in_process;
pub mod photos;
pub mod psp;
pub mod table;

pub use client::*;
pub use fixtures::*;
pub use in_process::*;
pub use psp::*;
pub use table::*;
