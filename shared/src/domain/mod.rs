//! Pure business rules: no I/O, no AWS types. Every rule is unit-tested here.

pub mod access;
pub mod alert;
pub mod catalogue;
pub mod currency;
pub mod error;
pub mod escrow;
pub mod exif;
pub mod geo;
pub mod ids;
pub mod ledger;
#[cfg(test)]
mod ledger_props;
pub mod mandate;
pub mod money;
pub mod proof;
pub mod proof_review;
pub mod purchase;
pub mod settlement;
pub mod spend;
pub mod time;
pub mod transfer;
pub mod unique;
pub mod upload;
pub mod user;
pub mod webhook;
