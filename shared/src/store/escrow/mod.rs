//! Escrows and their payments in the table: one folder, its files a DAG
//! (docs/architecture.md). `records` (the stored items) at the bottom;
//! `transition` (the transaction of one escrow transition: the escrow's
//! conditional update, the money movement out of it, the trail of audit
//! entries and timeline events) above it; `escrows` (creation, reads,
//! lists, the items of deposits and actions) and `payments` (payment reads,
//! the items of a milestone payout's checks, a retry, the PSP's answers) on
//! top, each built on `transition`, neither importing the other. The use
//! cases that send these items are `ops::{escrow, payout}`. This file
//! re-exports what the functions name.

pub mod escrows;
pub mod payments;
pub(crate) mod records;
pub mod transition;

pub use escrows::{EscrowEvent, EscrowFilter, NewEscrow};
pub use payments::PaymentRead;
pub use transition::{not_found, Remarks};
