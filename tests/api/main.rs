//! The black-box tests of crate `kobatela-tests`, in one test binary (linking
//! the AWS SDKs once, not once per file), one module per area. Run by
//! `make integration` (`local/integration.sh`) against a fresh emulator and
//! `kobatela-local`; docs/testing.md says what each module checks and how to
//! run one test.

mod access;
mod audit;
mod bad_input;
mod campaign;
mod concurrency;
mod contention;
mod deadlines;
mod escrows;
mod events;
mod expiry;
mod ledger;
mod lists;
mod milestones;
mod money_input;
mod openapi;
mod outbox;
mod payees;
mod policies;
mod proofs;
mod psp;
mod purchases;
mod roundtrips;
mod secrets;
mod settlements;
mod transfers;
mod users;
