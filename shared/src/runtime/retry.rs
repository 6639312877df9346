//! Backoff for retrying the failed part of a batch call (PutRecords, SendMessageBatch).
//! The SDK retries whole calls; entries that fail inside a successful call are ours.

use std::time::Duration;

use crate::runtime::config::{ConfigError, Env};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls per entry, the first one included.
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Time for all attempts together; no retry starts that would end past it.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            budget: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Reads `{prefix}_MAX_ATTEMPTS`, `{prefix}_BASE_BACKOFF_MS`, `{prefix}_MAX_BACKOFF_MS`
    /// and `{prefix}_BUDGET_MS`.
    pub fn from_env(env: &Env, prefix: &str, defaults: RetryPolicy) -> Result<Self, ConfigError> {
        let ms = Duration::from_millis;
        let var = |suffix: &str| format!("{prefix}_{suffix}");
        Ok(RetryPolicy {
            max_attempts: env.number_in(&var("MAX_ATTEMPTS"), defaults.max_attempts, 1, 20)?,
            base_backoff: env.millis_in(
                &var("BASE_BACKOFF_MS"),
                defaults.base_backoff,
                ms(1),
                ms(10_000),
            )?,
            max_backoff: env.millis_in(
                &var("MAX_BACKOFF_MS"),
                defaults.max_backoff,
                ms(1),
                ms(60_000),
            )?,
            budget: env.millis_in(&var("BUDGET_MS"), defaults.budget, ms(10), ms(900_000))?,
        })
    }

    /// The wait before retry number `retry` (1 for the first retry), or `None` when the
    /// attempts are used up or the retry would not fit in the budget (`elapsed` is the time
    /// spent so far).
    pub fn next_wait(&self, retry: u32, elapsed: Duration) -> Option<Duration> {
        if retry >= self.max_attempts {
            return None;
        }
        let wait = self.backoff(retry);
        (elapsed + wait < self.budget).then_some(wait)
    }

    /// "Full jitter" backoff before retry number `retry`: a random wait in
    /// `[0, min(max, base * 2^(retry-1))]`, which spreads the retries of many callers.
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

    fn policy(max_attempts: u32, base_ms: u64, max_ms: u64, budget_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_backoff: Duration::from_millis(base_ms),
            max_backoff: Duration::from_millis(max_ms),
            budget: Duration::from_millis(budget_ms),
        }
    }

    #[test]
    fn backoff_stays_under_the_exponential_cap() {
        let policy = policy(5, 10, 35, 1_000);
        for _ in 0..200 {
            assert!(policy.backoff(1) <= Duration::from_millis(10));
            assert!(policy.backoff(2) <= Duration::from_millis(20));
            assert!(policy.backoff(3) <= Duration::from_millis(35));
            assert!(policy.backoff(30) <= Duration::from_millis(35));
        }
    }

    #[test]
    fn no_retry_past_the_attempts_or_the_budget() {
        let policy = policy(3, 10, 10, 100);
        assert!(policy.next_wait(1, Duration::ZERO).is_some());
        assert!(policy.next_wait(2, Duration::from_millis(50)).is_some());
        assert_eq!(
            policy.next_wait(3, Duration::ZERO),
            None,
            "three attempts made"
        );
        assert_eq!(
            policy.next_wait(1, Duration::from_millis(100)),
            None,
            "budget spent"
        );
    }

    #[test]
    fn policy_reads_prefixed_variables() {
        let env = Env::from_pairs([
            ("STREAM_MAX_ATTEMPTS", "6"),
            ("STREAM_BASE_BACKOFF_MS", "20"),
            ("STREAM_BUDGET_MS", "900"),
        ]);
        let policy = RetryPolicy::from_env(&env, "STREAM", RetryPolicy::default()).unwrap();
        assert_eq!(policy.max_attempts, 6);
        assert_eq!(policy.base_backoff, Duration::from_millis(20));
        assert_eq!(policy.budget, Duration::from_millis(900));
        assert_eq!(policy.max_backoff, RetryPolicy::default().max_backoff);
    }
}
