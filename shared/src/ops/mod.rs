//! Use cases: each operation that changes money or an aggregate, whole, in
//! one function: read → permit → decide → build the items → transact → on a
//! lost race or contention, again from a fresh read (bounded; then 503
//! `SERVICE_BUSY`, nothing written). The floor between the handlers and the
//! store: the store keeps the reads, the item builders and `transact`; the
//! domain decides; a handler parses, calls one of these, answers.
//!
//! Round trips and write units are the store's, unchanged: an operation
//! makes the same reads and the same one transaction it always made.

pub mod deadlines;
pub mod escrow;
pub mod purchase;
