//! Entity ids: positive integers allocated by the service.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A positive integer id. Zero and negatives are unrepresentable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Id(u64);

/// Largest id accepted from a client: ids must survive a JSON double exactly.
pub const MAX_ID: u64 = (1 << 53) - 1;

impl Id {
    pub fn new(value: u64) -> Option<Id> {
        (1..=MAX_ID).contains(&value).then_some(Id(value))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// Reads an id from a JSON value: a positive integer (not a float, string or bool).
    pub fn from_json(value: &serde_json::Value) -> Result<Id, &'static str> {
        value
            .as_u64()
            .and_then(Id::new)
            .ok_or("must be a positive integer id")
    }

    /// Reads an id from a path segment or query value.
    pub fn parse(text: &str) -> Result<Id, &'static str> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be a positive integer id");
        }
        text.parse::<u64>()
            .ok()
            .and_then(Id::new)
            .ok_or("must be a positive integer id")
    }
}

impl TryFrom<u64> for Id {
    type Error = String;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Id::new(value).ok_or_else(|| format!("{value} is not a valid id"))
    }
}

impl From<Id> for u64 {
    fn from(id: Id) -> u64 {
        id.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_positive_integers_only() {
        assert_eq!(Id::from_json(&json!(7)).unwrap().get(), 7);
        assert_eq!(Id::from_json(&json!(MAX_ID)).unwrap().get(), MAX_ID);
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!(1.0),
            json!("7"),
            json!(true),
            json!(null),
            json!(MAX_ID + 1),
        ] {
            assert!(Id::from_json(&bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn parses_path_segments() {
        assert_eq!(Id::parse("42").unwrap().get(), 42);
        for bad in [
            "",
            "0",
            "-3",
            "4.2",
            "abc",
            " 4",
            "+4",
            "99999999999999999999",
        ] {
            assert!(Id::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn serde_refuses_zero() {
        assert!(serde_json::from_str::<Id>("0").is_err());
        assert_eq!(serde_json::to_string(&Id::new(3).unwrap()).unwrap(), "3");
    }
}
