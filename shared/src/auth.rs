//! API keys: generation, HMAC under the server pepper, and per-request
//! authentication with a short per-container cache (revocation takes effect
//! within the cache TTL, at most 60 s).

use crate::{
    config::Secret,
    domain::{
        access::{ApiKey, Principal},
        error::ErrorCode,
        time::Timestamp,
    },
    error::AppError,
    store::Store,
};
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Every generated key starts with this, so leaked keys are easy to scan for.
pub const KEY_PREFIX: &str = "kob_";
/// How much of a key is shown in lists.
const VISIBLE_PREFIX_LEN: usize = 12;
/// Cached keys at most; beyond that the cache starts over.
const CACHE_CAPACITY: usize = 10_000;
/// How long an unknown key is remembered as unknown: a flood of bad keys
/// costs one table read per key and container, not one per request. Safe
/// because issued keys are random 256-bit secrets (no one creates a key whose
/// secret was tried before); the admin key of `KOBATELA_ADMIN_KEY` exists
/// before serving starts.
const UNKNOWN_TTL: Duration = Duration::from_secs(10);
/// Unknown keys remembered at most; beyond that that cache starts over.
const UNKNOWN_CAPACITY: usize = 10_000;

pub struct Authenticator {
    pepper: Secret,
    ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    /// Hashes of keys the table did not have, and when that was read.
    unknown: Mutex<HashMap<String, Instant>>,
}

/// A verified key, and whether its user (for a `user` key) was active, as
/// read at `at`: deactivation, like revocation, reaches every container
/// within the cache TTL.
#[derive(Clone)]
struct Cached {
    key: ApiKey,
    user_active: bool,
    at: Instant,
}

/// A new random key: 256 bits, hex, with the `kob_` prefix.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// The part of a key that may be shown again: 12 characters, and never more
/// than a quarter of a (short, chosen) secret.
pub fn visible_prefix(secret: &str) -> String {
    let shown = VISIBLE_PREFIX_LEN.min(secret.chars().count() / 4);
    secret.chars().take(shown).collect()
}

fn unauthorized(message: &str) -> AppError {
    AppError::new(ErrorCode::Unauthorized, message)
}

impl Authenticator {
    pub fn new(pepper: Secret, ttl: Duration) -> Authenticator {
        Authenticator {
            pepper,
            ttl,
            cache: Mutex::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
        }
    }

    /// HMAC-SHA256 of a key under the pepper, hex: what the table stores.
    pub fn hash(&self, secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.pepper.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The caller behind an `Authorization: Bearer <key>` header.
    pub async fn authenticate(
        &self,
        store: &Store,
        header: Option<&str>,
    ) -> Result<Principal, AppError> {
        let secret = bearer_token(header)
            .ok_or_else(|| unauthorized("Missing or invalid Authorization header."))?;
        let hash = self.hash(secret);
        let now = Timestamp::now();
        let (key, user_active) = match self.cached(&hash) {
            Some(cached) => (cached.key, cached.user_active),
            // Boxed: the store's calls make a future of kilobytes that every
            // request would carry, and copy, though most find the cache.
            None => Box::pin(self.load(store, hash)).await?,
        };
        if !key.is_usable(now) {
            return Err(unauthorized("Invalid API key."));
        }
        match key.user_id {
            Some(user) if !user_active => Err(AppError::user_inactive(user)),
            _ => Ok(key.principal()),
        }
    }

    /// A key the cache does not hold, read from the table (with whether its
    /// user is active) and remembered; an unknown key is remembered too.
    async fn load(&self, store: &Store, hash: String) -> Result<(ApiKey, bool), AppError> {
        if self.known_unknown(&hash) {
            return Err(unauthorized("Invalid API key."));
        }
        let Some(key) = store
            .retry_busy("read API key", || store.api_key_by_hash(&hash))
            .await?
        else {
            self.remember_unknown(hash);
            return Err(unauthorized("Invalid API key."));
        };
        let user_active = match key.user_id {
            Some(user) => store
                .retry_busy("read key's user", || store.user(user))
                .await?
                .is_some_and(|u| u.is_active),
            None => true,
        };
        self.remember(hash, key.clone(), user_active);
        Ok((key, user_active))
    }

    fn cached(&self, hash: &str) -> Option<Cached> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .get(hash)
            .filter(|cached| cached.at.elapsed() < self.ttl)
            .cloned()
    }

    fn remember(&self, hash: String, key: ApiKey, user_active: bool) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(
            hash,
            Cached {
                key,
                user_active,
                at: Instant::now(),
            },
        );
    }

    /// Drops every cached key of `user` (after (de)activating it here).
    pub fn forget_user(&self, user: crate::domain::ids::Id) {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|_, cached| cached.key.user_id != Some(user));
    }

    fn known_unknown(&self, hash: &str) -> bool {
        let ttl = self.ttl.min(UNKNOWN_TTL);
        self.unknown
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(hash)
            .is_some_and(|at| at.elapsed() < ttl)
    }

    fn remember_unknown(&self, hash: String) {
        if self.ttl.min(UNKNOWN_TTL).is_zero() {
            return;
        }
        let mut unknown = self
            .unknown
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if unknown.len() >= UNKNOWN_CAPACITY {
            unknown.clear();
        }
        unknown.insert(hash, Instant::now());
    }

    /// Drops a key from this container's cache (after revoking it here).
    pub fn forget(&self, hash: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(hash);
    }
}

/// The token of a `Bearer` header (scheme case-insensitive, outer spaces trimmed).
fn bearer_token(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        Authenticator::new(Secret::new("p".repeat(32)), Duration::from_secs(30))
    }

    #[test]
    fn secrets_are_random_256_bit_hex() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 64);
        assert!(a[KEY_PREFIX.len()..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(visible_prefix(&a), a[..12]);
        assert_eq!(visible_prefix("kob_test_0123456"), "kob_");
    }

    #[test]
    fn hash_depends_on_pepper_and_hides_the_secret() {
        let secret = "kob_example";
        let ours = authenticator().hash(secret);
        let other = Authenticator::new(Secret::new("q".repeat(32)), Duration::ZERO).hash(secret);
        assert_eq!(ours, authenticator().hash(secret));
        assert_ne!(ours, other);
        assert_eq!(ours.len(), 64);
        assert!(!ours.contains(secret));
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer   abc  ")), Some("abc"));
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer   "),
            Some("Basic abc"),
            Some("abc"),
        ] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
    }
}
