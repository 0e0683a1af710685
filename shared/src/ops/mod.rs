//! Use cases: each reads, decides with `domain`, and writes through `store`.

pub mod ledger;
pub mod settlement;
