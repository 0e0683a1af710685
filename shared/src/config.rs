//! Settings from the environment, read once per cold start. Secrets are not
//! settings: `crate::secrets` reads them (SSM on Lambda), and only the
//! functions that need one ask for it.

use crate::domain::currency::CurrencyList;
use std::time::Duration;

#[derive(Clone)]
pub struct Config {
    /// The single DynamoDB table (`KOBATELA_TABLE`).
    pub table: String,
    /// Accepted currencies (`KOBATELA_CURRENCIES`, default `USD,EUR`).
    pub currencies: CurrencyList,
    /// How long a container trusts a verified API key before reading it again
    /// (`KOBATELA_KEY_CACHE_SECONDS`, default 30, at most 60: revocation must
    /// take effect everywhere within 60 s).
    pub key_cache_ttl: Duration,
    /// How many ids a container reserves per counter round trip
    /// (`KOBATELA_ID_BLOCK`, default 20).
    pub id_block: u64,
}

/// A secret string whose Debug output does not show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("table", &self.table)
            .field("currencies", &self.currencies)
            .field("key_cache_ttl", &self.key_cache_ttl)
            .field("id_block", &self.id_block)
            .finish()
    }
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as `from_env`, reading variables through `lookup` (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let non_empty = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let table = non_empty("KOBATELA_TABLE")
            .ok_or("KOBATELA_TABLE is not set: the DynamoDB table name is required")?;
        let currencies = match non_empty("KOBATELA_CURRENCIES") {
            Some(list) => {
                CurrencyList::parse(&list).map_err(|e| format!("KOBATELA_CURRENCIES: {e}"))?
            }
            None => CurrencyList::default(),
        };
        let key_cache_seconds = parse_number(non_empty("KOBATELA_KEY_CACHE_SECONDS"), 30, 0..=60)
            .map_err(|e| format!("KOBATELA_KEY_CACHE_SECONDS: {e}"))?;
        let id_block = parse_number(non_empty("KOBATELA_ID_BLOCK"), 20, 1..=1000)
            .map_err(|e| format!("KOBATELA_ID_BLOCK: {e}"))?;
        // Read by `store::keys` wherever it builds a sharded key; checked here
        // so that a bad value refuses the start instead of failing a request.
        parse_number(non_empty("KOBATELA_INDEX_SHARDS"), 8, 1..=64)
            .map_err(|e| format!("KOBATELA_INDEX_SHARDS: {e}"))?;
        Ok(Config {
            table,
            currencies,
            key_cache_ttl: Duration::from_secs(key_cache_seconds),
            id_block,
        })
    }
}

/// Shards of the kind and expiry indexes (`KOBATELA_INDEX_SHARDS`, 1–64,
/// default 8). Stored keys depend on it: a bad value stops the process rather
/// than silently reading the wrong shards.
pub fn index_shards(value: Option<&str>) -> u64 {
    parse_number(value.map(str::to_string), 8, 1..=64)
        .unwrap_or_else(|e| panic!("KOBATELA_INDEX_SHARDS {e}"))
}

fn parse_number(
    value: Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, String> {
    let Some(text) = value else {
        return Ok(default);
    };
    text.parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[("KOBATELA_TABLE", "t")]).unwrap();
        assert_eq!(c.table, "t");
        assert_eq!(c.key_cache_ttl, Duration::from_secs(30));
        assert_eq!(c.id_block, 20);
        assert_eq!(c.currencies, CurrencyList::default());
    }

    #[test]
    fn refuses_to_start_without_a_table() {
        assert!(config(&[("KOBATELA_CURRENCIES", "USD")])
            .unwrap_err()
            .contains("KOBATELA_TABLE"));
    }

    #[test]
    fn key_cache_is_capped_at_a_minute() {
        let base = [("KOBATELA_TABLE", "t")];
        let mut vars = base.to_vec();
        vars.push(("KOBATELA_KEY_CACHE_SECONDS", "61"));
        assert!(config(&vars).is_err());
        vars.pop();
        vars.push(("KOBATELA_KEY_CACHE_SECONDS", "0"));
        assert_eq!(config(&vars).unwrap().key_cache_ttl, Duration::ZERO);
    }

    #[test]
    fn a_bad_shard_count_refuses_the_start() {
        for bad in ["0", "65", "eight"] {
            let err =
                config(&[("KOBATELA_TABLE", "t"), ("KOBATELA_INDEX_SHARDS", bad)]).unwrap_err();
            assert!(err.starts_with("KOBATELA_INDEX_SHARDS"), "{err}");
        }
        assert!(config(&[("KOBATELA_TABLE", "t"), ("KOBATELA_INDEX_SHARDS", "16")]).is_ok());
    }

    #[test]
    fn debug_hides_secrets() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }

    #[test]
    fn currencies_from_env() {
        let c = config(&[("KOBATELA_TABLE", "t"), ("KOBATELA_CURRENCIES", "usd, xof")]).unwrap();
        assert_eq!(c.currencies, CurrencyList::parse("USD,XOF").unwrap());
        assert!(config(&[("KOBATELA_TABLE", "t"), ("KOBATELA_CURRENCIES", "dollars"),]).is_err());
    }
}
