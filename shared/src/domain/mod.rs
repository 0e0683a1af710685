//! Pure business rules: no I/O, no AWS types. Every rule is unit-tested here.

pub mod access;
pub mod catalogue;
pub mod currency;
pub mod error;
pub mod exif;
pub mod geo;
pub mod ids;
pub mod mandate;
pub mod money;
pub mod proof;
pub mod purchase;
pub mod time;
pub mod unique;
pub mod user;
