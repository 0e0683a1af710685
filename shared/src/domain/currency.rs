//! ISO 4217-shaped currency codes, restricted to the list the deployment is
//! configured to accept.

use std::fmt;

use serde::{Serialize, Serializer};

/// Three upper-case ASCII letters, e.g. `USD`. Only [`Currency::parse`] (with
/// the accepted list) and [`Currency::from_stored`] build one, so a value of
/// this type is always well formed.
///
/// There is deliberately no `Deserialize`: request input must go through
/// [`Currency::parse`] so the accepted list is always checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollar, the default currency.
    pub const fn usd() -> Currency {
        Currency(*b"USD")
    }

    /// Euro.
    pub const fn eur() -> Currency {
        Currency(*b"EUR")
    }

    /// Reads a currency from a request. Lower case is normalised to upper
    /// case; surrounding whitespace is refused rather than trimmed, as codes
    /// are machine-written and a stray space points at a client bug.
    pub fn parse(input: &str, accepted: &CurrencyList) -> Result<Currency, CurrencyError> {
        let currency = Self::from_letters(input).ok_or(CurrencyError::Malformed)?;
        if accepted.contains(&currency) {
            Ok(currency)
        } else {
            Err(CurrencyError::NotAccepted(accepted.clone()))
        }
    }

    /// Reads back a code this service stored: it was validated on the way in,
    /// so only the shape is checked, not the (possibly since changed) list.
    pub fn from_stored(stored: &str) -> Option<Currency> {
        let bytes: [u8; 3] = stored.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_uppercase)
            .then_some(Currency(bytes))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a Currency holds only ASCII letters")
    }

    /// Exactly three ASCII letters, upper-cased.
    fn from_letters(input: &str) -> Option<Currency> {
        let bytes: [u8; 3] = input.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_alphabetic)
            .then(|| Currency(bytes.map(|byte| byte.to_ascii_uppercase())))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Why a currency was refused. Display follows a field name
/// ("currency must be one of USD, EUR").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrencyError {
    /// Not exactly three ASCII letters.
    Malformed,
    /// Well formed but not configured; carries the list to tell the caller.
    NotAccepted(CurrencyList),
}

impl fmt::Display for CurrencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("must be a 3-letter ISO 4217 currency code, e.g. USD"),
            Self::NotAccepted(accepted) => write!(f, "must be one of {accepted}"),
        }
    }
}

impl std::error::Error for CurrencyError {}

/// The currencies this deployment accepts, in configured order, never empty
/// and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyList(Vec<Currency>);

impl CurrencyList {
    /// Parses a comma-separated configuration value such as `USD,EUR,XOF`.
    /// Entries are trimmed and upper-cased; duplicates are dropped. An empty
    /// list or entry is refused so that a typo in the configuration fails at
    /// start-up instead of refusing every request.
    pub fn parse(value: &str) -> Result<CurrencyList, String> {
        let mut currencies = Vec::new();
        for entry in value.split(',') {
            let entry = entry.trim();
            let currency = Currency::from_letters(entry).ok_or_else(|| {
                format!("invalid currency {entry:?}: expected 3-letter codes such as \"USD,EUR\"")
            })?;
            if !currencies.contains(&currency) {
                currencies.push(currency);
            }
        }
        Ok(CurrencyList(currencies))
    }

    pub fn contains(&self, currency: &Currency) -> bool {
        self.0.contains(currency)
    }

    pub fn as_slice(&self) -> &[Currency] {
        &self.0
    }
}

/// USD and EUR.
impl Default for CurrencyList {
    fn default() -> CurrencyList {
        CurrencyList(vec![Currency::usd(), Currency::eur()])
    }
}

/// `USD, EUR`, as shown to callers in error messages.
impl fmt::Display for CurrencyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, currency) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            f.write_str(currency.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(value: &str) -> CurrencyList {
        CurrencyList::parse(value).unwrap()
    }

    #[test]
    fn default_list_is_usd_and_eur() {
        let default = CurrencyList::default();
        assert_eq!(default.as_slice(), [Currency::usd(), Currency::eur()]);
        assert_eq!(default.to_string(), "USD, EUR");
        assert!(default.contains(&Currency::usd()));
        assert!(default.contains(&Currency::eur()));
    }

    #[test]
    fn parse_accepts_and_normalises() {
        let accepted = CurrencyList::default();
        assert_eq!(Currency::parse("USD", &accepted), Ok(Currency::usd()));
        assert_eq!(Currency::parse("usd", &accepted), Ok(Currency::usd()));
        assert_eq!(Currency::parse("eUr", &accepted), Ok(Currency::eur()));
        assert_eq!(Currency::parse("eur", &accepted).unwrap().as_str(), "EUR");
    }

    #[test]
    fn parse_refuses_malformed() {
        let accepted = CurrencyList::default();
        for input in [
            "", "US", "USDD", " USD", "USD ", " usd ", "U SD", "US1", "123", "US-", "ÉUR", "€",
            "usd\n",
        ] {
            assert_eq!(
                Currency::parse(input, &accepted),
                Err(CurrencyError::Malformed),
                "{input:?}"
            );
        }
    }

    #[test]
    fn parse_refuses_codes_not_configured() {
        let accepted = CurrencyList::default();
        let error = Currency::parse("GBP", &accepted).unwrap_err();
        assert_eq!(error, CurrencyError::NotAccepted(accepted.clone()));
        assert_eq!(error.to_string(), "must be one of USD, EUR");
        assert_eq!(
            Currency::parse("xof", &list("XOF")).unwrap().to_string(),
            "XOF"
        );
        assert_eq!(
            Currency::parse("USD", &list("XOF"))
                .unwrap_err()
                .to_string(),
            "must be one of XOF"
        );
        assert_eq!(
            CurrencyError::Malformed.to_string(),
            "must be a 3-letter ISO 4217 currency code, e.g. USD"
        );
    }

    #[test]
    fn list_parse() {
        let parsed = list("USD,EUR,XOF");
        assert_eq!(parsed.to_string(), "USD, EUR, XOF");
        assert_eq!(
            list(" usd , eur ").as_slice(),
            [Currency::usd(), Currency::eur()]
        );
        assert_eq!(list("EUR").as_slice(), [Currency::eur()]);
        assert_eq!(list("USD,usd,EUR").to_string(), "USD, EUR");
        assert!(parsed.contains(&Currency::from_stored("XOF").unwrap()));
        assert!(!parsed.contains(&Currency::from_stored("GBP").unwrap()));
    }

    #[test]
    fn list_parse_refusals() {
        for value in [
            "", " ", ",", "USD,", ",USD", "USD,,EUR", "USD;EUR", "US", "USDX", "U$D", "12A",
        ] {
            assert!(CurrencyList::parse(value).is_err(), "{value:?}");
        }
        assert!(CurrencyList::parse("USD,EURO")
            .unwrap_err()
            .contains("\"EURO\""));
    }

    #[test]
    fn from_stored_checks_shape_only() {
        assert_eq!(Currency::from_stored("USD"), Some(Currency::usd()));
        assert_eq!(Currency::from_stored("GBP").unwrap().as_str(), "GBP");
        for stored in ["usd", "Usd", "US", "USDD", "", " US", "U1D", "ÉU"] {
            assert_eq!(Currency::from_stored(stored), None, "{stored:?}");
        }
    }

    #[test]
    fn display_and_serialize() {
        assert_eq!(Currency::usd().to_string(), "USD");
        assert_eq!(Currency::eur().as_str(), "EUR");
        assert_eq!(
            serde_json::to_value(Currency::usd()).unwrap(),
            serde_json::json!("USD")
        );
    }
}
