//! Per-caller rate limits for the HTTP entry points.
//!
//! API Gateway's HTTP APIs throttle a stage or a route for all callers together, so one
//! runaway gateway can spend the whole stage's budget and every other caller gets `429`.
//! Here each caller has a budget of its own: at most `burst` requests in a window of
//! `burst / per_second` seconds, counted in DynamoDB so that every concurrent instance of
//! the function shares the count.
//!
//! The windows are fixed: one starts at every multiple of its length since the epoch.
//! Over time a caller gets `per_second`; at a window's edge it can send `burst` at the end
//! of one window and `burst` at the start of the next.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;

use crate::runtime::error::StoreError;

/// A caller's budget: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    per_second: u32,
    burst: u32,
}

impl RateLimit {
    /// At most this many requests per second per caller.
    pub const MAX_PER_SECOND: u32 = 10_000;

    /// A budget of `per_second` (1 to 10,000) with a burst of `burst` (at least 1), or why
    /// not.
    pub fn new(per_second: u32, burst: u32) -> Result<Self, String> {
        if !(1..=Self::MAX_PER_SECOND).contains(&per_second) {
            return Err(format!(
                "a rate limit must be 1 to {} requests per second, got {per_second}",
                Self::MAX_PER_SECOND
            ));
        }
        if burst == 0 {
            return Err("a burst must be at least 1 request".into());
        }
        Ok(RateLimit { per_second, burst })
    }

    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The window a count covers: `burst / per_second` seconds, at least a millisecond.
    pub fn window(&self) -> Duration {
        let millis = u64::from(self.burst) * 1000 / u64::from(self.per_second);
        Duration::from_millis(millis.max(1))
    }
}

/// What the limiter decided about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Over the budget; the caller's next window starts after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

impl Admission {
    /// `Retry-After` in whole seconds, rounded up and at least 1 (HTTP has no fractions).
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Admission::Admitted => None,
            Admission::Limited { retry_after } => {
                Some(retry_after.as_millis().div_ceil(1000).max(1) as u64)
            }
        }
    }
}

/// Where the counts live (a DynamoDB table with a TTL on `expires_at`).
pub trait RateCounter: Send + Sync {
    /// Counts one request against `key` unless `limit` are counted already; `true` when it
    /// was counted. The count may be forgotten after `expires_at`.
    fn try_take(
        &self,
        key: &str,
        limit: u32,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// How long after its window ends a count is kept (the TTL deletes it some time later).
const KEEP_AFTER_WINDOW: Duration = Duration::from_secs(60);

/// Admits each caller's requests within its [`RateLimit`].
pub struct CallerRateLimiter<C> {
    counter: C,
    limit: RateLimit,
}

impl<C: RateCounter> CallerRateLimiter<C> {
    pub fn new(counter: C, limit: RateLimit) -> Self {
        CallerRateLimiter { counter, limit }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Where the counts live (for tests and diagnostics).
    pub fn counter(&self) -> &C {
        &self.counter
    }

    /// Counts a request of `caller` at `now` if its budget allows, one conditional write.
    pub async fn admit(&self, caller: &str, now: OffsetDateTime) -> Result<Admission, StoreError> {
        let window = self.limit.window().as_millis() as i128;
        let now_ms = now.unix_timestamp_nanos() / 1_000_000;
        let index = now_ms.div_euclid(window);
        let ends_ms = (index + 1) * window;
        // The window's length is in the key, so a changed limit never reads an old count.
        let key = format!("{caller}#{window}#{index}");
        let expires_at = now + Duration::from_millis((ends_ms - now_ms) as u64) + KEEP_AFTER_WINDOW;
        if self
            .counter
            .try_take(&key, self.limit.burst, expires_at)
            .await?
        {
            Ok(Admission::Admitted)
        } else {
            Ok(Admission::Limited {
                retry_after: Duration::from_millis((ends_ms - now_ms) as u64),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Behaviour, InMemoryRateCounter};
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-01 10:00:00 UTC);

    fn limiter(per_second: u32, burst: u32) -> CallerRateLimiter<InMemoryRateCounter> {
        CallerRateLimiter::new(
            InMemoryRateCounter::default(),
            RateLimit::new(per_second, burst).unwrap(),
        )
    }

    #[test]
    fn limits_are_checked_and_give_their_window() {
        assert!(RateLimit::new(0, 10).is_err());
        assert!(RateLimit::new(10_001, 10).is_err());
        assert!(RateLimit::new(10, 0).is_err());
        assert_eq!(
            RateLimit::new(10, 20).unwrap().window(),
            Duration::from_secs(2)
        );
        assert_eq!(
            RateLimit::new(100, 50).unwrap().window(),
            Duration::from_millis(500)
        );
        assert_eq!(
            RateLimit::new(10_000, 1).unwrap().window(),
            Duration::from_millis(1)
        );
    }

    #[tokio::test]
    async fn a_caller_gets_its_burst_in_a_window_then_waits_for_the_next() {
        let limiter = limiter(5, 10); // windows of 2 s
        let at = T0 + Duration::from_millis(500);
        for n in 0..10 {
            assert_eq!(
                limiter.admit("gw-1", at).await.unwrap(),
                Admission::Admitted,
                "request {n}"
            );
        }
        let limited = limiter
            .admit("gw-1", at + Duration::from_millis(700))
            .await
            .unwrap();
        assert_eq!(
            limited,
            Admission::Limited {
                retry_after: Duration::from_millis(800)
            }
        );
        assert_eq!(limited.retry_after_seconds(), Some(1));
        // The next window has a budget again.
        assert_eq!(
            limiter
                .admit("gw-1", T0 + Duration::from_secs(2))
                .await
                .unwrap(),
            Admission::Admitted
        );
    }

    #[tokio::test]
    async fn callers_do_not_share_a_budget() {
        let limiter = limiter(1, 1);
        assert_eq!(
            limiter.admit("gw-1", T0).await.unwrap(),
            Admission::Admitted
        );
        assert!(matches!(
            limiter.admit("gw-1", T0).await.unwrap(),
            Admission::Limited { .. }
        ));
        assert_eq!(
            limiter.admit("gw-2", T0).await.unwrap(),
            Admission::Admitted
        );
    }

    #[tokio::test]
    async fn a_refused_request_is_not_counted_and_counts_expire_after_their_window() {
        let counter = InMemoryRateCounter::default();
        let limiter = CallerRateLimiter::new(counter, RateLimit::new(2, 2).unwrap());
        for _ in 0..5 {
            limiter.admit("gw-1", T0).await.unwrap();
        }
        let counts = limiter.counter.counts();
        assert_eq!(counts.len(), 1);
        let (key, count, expires_at) = &counts[0];
        assert_eq!(key, &format!("gw-1#1000#{}", T0.unix_timestamp()));
        assert_eq!(*count, 2);
        assert_eq!(*expires_at, T0 + Duration::from_secs(61));
    }

    #[tokio::test]
    async fn a_store_failure_is_reported_not_guessed() {
        let limiter = limiter(1, 1);
        limiter
            .counter
            .set_behaviour(Behaviour::Failing(StoreError::Unavailable {
                call: "DynamoDB.UpdateItem".into(),
                message: "connection refused".into(),
            }));
        assert!(limiter.admit("gw-1", T0).await.is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let limited = |ms| Admission::Limited {
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(limited(1).retry_after_seconds(), Some(1));
        assert_eq!(limited(1000).retry_after_seconds(), Some(1));
        assert_eq!(limited(1001).retry_after_seconds(), Some(2));
        assert_eq!(limited(0).retry_after_seconds(), Some(1));
        assert_eq!(Admission::Admitted.retry_after_seconds(), None);
    }
}
