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
pub mod ledger;
pub mod mandate;
pub mod payout;
pub mod proof;
pub mod psp_event;
pub mod purchase;
pub mod settlement;
pub mod spend;
pub mod transfer;

use crate::{domain::access::Principal, store::audit::Actor};

/// Who asks for an operation: a caller of the API, whose right is checked on
/// what the operation reads, or the system (the schedule; a test's harness),
/// as an actor that may act on anything.
#[derive(Clone, Copy)]
pub enum Asker<'a> {
    Caller(&'a Principal),
    System(&'a Actor),
}

impl Asker<'_> {
    /// Who the audit entries name.
    pub fn actor(self) -> Actor {
        match self {
            Asker::Caller(caller) => Actor::from(caller),
            Asker::System(actor) => actor.clone(),
        }
    }
}
