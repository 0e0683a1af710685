//! Contention and throttling. DynamoDB answers "not now" in two ways: a
//! transaction cancelled because another one holds an item
//! (`TransactionConflict`) or because the table is over its throughput (a
//! throttling cancellation reason), and whole calls refused for throughput
//! (`ThrottlingException`, `ProvisionedThroughputExceededException`,
//! `RequestLimitExceeded`). Every one of them means "nothing was written,
//! try again": they become `SERVICE_BUSY`, which [`Store::retry_busy`]
//! retries with bounded, jittered backoff and finally answers as 503 with
//! `Retry-After`. The SDK's own retry layer (configured in
//! [`sdk_retry_config`]) retries each call a little first.

use super::Store;
use crate::error::{AppError, AppResult};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_smithy_types::retry::RetryConfig;
use rand::RngExt;
use std::{future::Future, time::Duration};

/// Error codes of whole calls that mean "throughput exceeded or contended".
const BUSY_ERRORS: [&str; 5] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Cancellation reasons of one transaction item that mean the same.
const BUSY_REASONS: [&str; 4] = [
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

/// True for an error code of a whole call that means "try again later".
pub fn is_busy_error(code: Option<&str>) -> bool {
    code.is_some_and(|code| BUSY_ERRORS.contains(&code))
}

/// True for a transaction cancellation reason that means "try again later".
pub fn is_busy_reason(code: &str) -> bool {
    BUSY_REASONS.contains(&code)
}

/// A failed SDK call as the store reports it: `SERVICE_BUSY` when DynamoDB
/// was contended or throttled (nothing was written), else an internal error
/// (logged, never shown).
pub fn aws_error<E: ProvideErrorMetadata + std::error::Error>(error: E) -> AppError {
    if is_busy_error(error.code()) {
        tracing::warn!(code = error.code().unwrap_or("-"), "DynamoDB busy");
        return AppError::busy();
    }
    AppError::internal(DisplayErrorContext(error))
}

/// The SDK's retries of one call, before ours: a few quick attempts. The
/// SDK's default waits a second before its first retry, too long for a
/// request that a client is waiting for; our backoff takes over after.
pub fn sdk_retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(20))
        .with_max_backoff(Duration::from_millis(200))
}

impl Store {
    /// Runs `attempt` again while it answers `SERVICE_BUSY`, with bounded,
    /// jittered backoff; then answers `SERVICE_BUSY` for good. Every write
    /// path runs in it: a busy attempt wrote nothing, so trying again is safe.
    pub async fn retry_busy<T, F, Fut>(&self, what: &'static str, mut attempt: F) -> AppResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        self.until_settled(what, AppError::busy, || {
            let attempt = attempt();
            async move { attempt.await.map(Some) }
        })
        .await
    }

    /// Runs one read-decide-write `pass` until it settles: `Some` is the
    /// answer; `None` (what it decided on changed before it wrote) and
    /// `SERVICE_BUSY` run it again from a fresh read, with bounded, jittered
    /// backoff; then `busy()` answers. A pass that did not settle wrote
    /// nothing: its transaction was refused whole.
    pub async fn until_settled<T, F, Fut>(
        &self,
        what: &'static str,
        busy: impl Fn() -> AppError,
        mut pass: F,
    ) -> AppResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = AppResult<Option<T>>>,
    {
        let mut backoff = Backoff::new(Backoff::ATTEMPTS);
        loop {
            match pass().await {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                Err(e) if e.is_busy() => {}
                Err(e) => return Err(e),
            }
            if !backoff.wait().await {
                tracing::warn!(what, attempts = backoff.attempts(), "gave up: busy");
                return Err(busy());
            }
        }
    }
}

/// Bounded exponential backoff with full jitter, for lost races.
pub struct Backoff {
    attempt: u32,
    max_attempts: u32,
}

impl Backoff {
    /// Enough attempts that a write which fits (a purchase within the
    /// balance) is not refused because of contention, bounded so that a
    /// request always ends (about 2 s of waiting at most).
    pub const ATTEMPTS: u32 = 12;

    pub fn new(max_attempts: u32) -> Backoff {
        Backoff {
            attempt: 0,
            max_attempts,
        }
    }

    /// Waits before the next attempt; false once the attempts are used up.
    pub async fn wait(&mut self) -> bool {
        self.attempt += 1;
        if self.attempt >= self.max_attempts {
            return false;
        }
        crate::metrics::count(crate::metrics::CONTENTION_RETRIES, 1, &[]);
        let cap_ms = (5u64 << self.attempt.min(7)).min(400);
        let delay = rand::rng().random_range(0..=cap_ms);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        true
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_is_bounded() {
        let mut backoff = Backoff::new(4);
        assert!(backoff.wait().await);
        assert!(backoff.wait().await);
        assert!(backoff.wait().await);
        assert!(!backoff.wait().await);
        assert_eq!(backoff.attempts(), 4);
    }

    #[test]
    fn busy_codes() {
        for code in BUSY_ERRORS {
            assert!(is_busy_error(Some(code)));
        }
        for code in [
            None,
            Some("ValidationException"),
            Some("ResourceNotFoundException"),
        ] {
            assert!(!is_busy_error(code), "{code:?}");
        }
        for code in BUSY_REASONS {
            assert!(is_busy_reason(code));
        }
        for code in ["None", "ConditionalCheckFailed", "ValidationError"] {
            assert!(!is_busy_reason(code), "{code}");
        }
    }

    fn offline_store() -> Store {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        Store::new(aws_sdk_dynamodb::Client::from_conf(config), "t", 1)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_busy_attempts_then_gives_up() {
        let store = offline_store();
        let calls = std::cell::Cell::new(0);
        let recovered = store
            .retry_busy("test", || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err(AppError::busy())
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(recovered, Ok(3));

        calls.set(0);
        let exhausted: AppResult<()> = store
            .retry_busy("test", || {
                calls.set(calls.get() + 1);
                async { Err(AppError::busy()) }
            })
            .await;
        assert!(exhausted.unwrap_err().is_busy());
        assert_eq!(calls.get(), Backoff::ATTEMPTS);

        calls.set(0);
        let refused: AppResult<()> = store
            .retry_busy("test", || {
                calls.set(calls.get() + 1);
                async { Err(AppError::forbidden()) }
            })
            .await;
        assert_eq!(refused.unwrap_err().status(), 403);
        assert_eq!(calls.get(), 1, "only busy answers are retried");
    }

    #[test]
    fn sdk_retries_are_few_and_quick() {
        let config = sdk_retry_config();
        assert_eq!(config.max_attempts(), 3);
        assert!(config.initial_backoff() <= Duration::from_millis(50));
    }
}
