//! Backoff for retrying the failed part of a batch call (PutRecords, SendMessageBatch).
//! The SDK retries whole calls; entries that fail inside a successful call are ours.

use std::time::Duration;

use crate::config::{ConfigError, Env};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls per entry, the first one included.
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Reads `{prefix}_MAX_ATTEMPTS`, `{prefix}_BASE_BACKOFF_MS` and `{prefix}_MAX_BACKOFF_MS`.
    pub fn from_env(env: &Env, prefix: &str, defaults: RetryPolicy) -> Result<Self, ConfigError> {
        let ms = Duration::from_millis;
        Ok(RetryPolicy {
            max_attempts: env.number_in(
                &format!("{prefix}_MAX_ATTEMPTS"),
                defaults.max_attempts,
                1,
                20,
            )?,
            base_backoff: env.millis_in(
                &format!("{prefix}_BASE_BACKOFF_MS"),
                defaults.base_backoff,
                ms(1),
                ms(10_000),
            )?,
            max_backoff: env.millis_in(
                &format!("{prefix}_MAX_BACKOFF_MS"),
                defaults.max_backoff,
                ms(1),
                ms(60_000),
            )?,
        })
    }

    /// "Full jitter" backoff before retry number `retry` (1 for the first retry): a random
    /// wait in `[0, min(max, base * 2^(retry-1))]`, which spreads retries of many callers.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(16);
        let cap = self
            .base_backoff
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=cap_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_the_exponential_cap() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(35),
        };
        for _ in 0..200 {
            assert!(policy.backoff(1) <= Duration::from_millis(10));
            assert!(policy.backoff(2) <= Duration::from_millis(20));
            assert!(policy.backoff(3) <= Duration::from_millis(35));
            assert!(policy.backoff(30) <= Duration::from_millis(35));
        }
    }

    #[test]
    fn policy_reads_prefixed_variables() {
        let env = Env::from_pairs([
            ("STREAM_MAX_ATTEMPTS", "6"),
            ("STREAM_BASE_BACKOFF_MS", "20"),
        ]);
        let policy = RetryPolicy::from_env(&env, "STREAM", RetryPolicy::default()).unwrap();
        assert_eq!(policy.max_attempts, 6);
        assert_eq!(policy.base_backoff, Duration::from_millis(20));
        assert_eq!(policy.max_backoff, RetryPolicy::default().max_backoff);
    }
}
