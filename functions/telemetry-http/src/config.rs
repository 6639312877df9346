//! The HTTPS entry point's settings, read once at init (the ingest core's are
//! [`fleetwire::ingest::IngestConfig`]'s).

use std::time::Duration;

use fleetwire::domain::idempotency::IdempotencySettings;
use fleetwire::domain::rate_limit::RateLimit;
use fleetwire::runtime::config::{ConfigError, Env};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `IDEMPOTENCY_TABLE`: claims and answers of `Idempotency-Key` requests.
    pub idempotency_table: String,
    /// Each caller's own budget, when `CALLER_RATE_LIMIT` is above 0.
    pub caller_rates: Option<CallerRates>,
    pub http: HttpSettings,
}

/// Per-caller rate limiting: where the counts live and the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerRates {
    /// `CALLER_RATE_TABLE`: the counts, one row per caller and window (TTL `expires_at`).
    pub table: String,
    /// `CALLER_RATE_LIMIT` requests per second on average (0, the default, turns the
    /// limit off) and `CALLER_BURST` at once (default twice the rate).
    pub limit: RateLimit,
}

impl CallerRates {
    fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let per_second: u32 =
            env.number_in("CALLER_RATE_LIMIT", 0, 0, RateLimit::MAX_PER_SECOND)?;
        if per_second == 0 {
            return Ok(None);
        }
        let burst: u32 = env.number_in("CALLER_BURST", per_second * 2, 1, 100_000)?;
        let table = env.required(
            "CALLER_RATE_TABLE",
            "the DynamoDB table of per-caller request counts, needed when CALLER_RATE_LIMIT is above 0",
        )?;
        let limit = RateLimit::new(per_second, burst).map_err(|reason| ConfigError::Invalid {
            name: "CALLER_RATE_LIMIT".into(),
            value: per_second.to_string(),
            reason,
        })?;
        Ok(Some(CallerRates { table, limit }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// `MAX_BODY_BYTES` (default 1 MiB): a larger body is answered `413`.
    pub max_body_bytes: usize,
    /// `RETRY_AFTER_SECONDS` (default 5): the `Retry-After` of a `503` or `409`.
    pub retry_after_seconds: u64,
    /// `DEVICES_CLAIM` (default `fleetwire:devices`): the token claim listing the devices
    /// its holder may write for.
    pub devices_claim: String,
    /// `IDEMPOTENCY_TTL_SECONDS` (default 86400): how long an answer is replayed.
    pub idempotency: IdempotencySettings,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_body_bytes: 1024 * 1024,
            retry_after_seconds: 5,
            devices_claim: "fleetwire:devices".into(),
            idempotency: IdempotencySettings::default(),
        }
    }
}

impl HttpConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = HttpSettings::default();
        Ok(HttpConfig {
            idempotency_table: env.required(
                "IDEMPOTENCY_TABLE",
                "the DynamoDB table of Idempotency-Key answers",
            )?,
            caller_rates: CallerRates::from_env(env)?,
            http: HttpSettings {
                // Lambda takes at most 6 MB per synchronous request.
                max_body_bytes: env.number_in(
                    "MAX_BODY_BYTES",
                    defaults.max_body_bytes,
                    1024,
                    6_000_000,
                )?,
                retry_after_seconds: env.number_in(
                    "RETRY_AFTER_SECONDS",
                    defaults.retry_after_seconds,
                    1,
                    3600,
                )?,
                devices_claim: env
                    .optional("DEVICES_CLAIM")
                    .unwrap_or(defaults.devices_claim),
                idempotency: IdempotencySettings {
                    ttl: Duration::from_secs(env.number_in(
                        "IDEMPOTENCY_TTL_SECONDS",
                        86_400,
                        60,
                        30 * 86_400,
                    )?),
                    ..IdempotencySettings::default()
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_required_table() {
        let config = HttpConfig::from_env(&Env::from_pairs([("IDEMPOTENCY_TABLE", "t")])).unwrap();
        assert_eq!(config.http, HttpSettings::default());
        let missing = HttpConfig::from_env(&Env::from_pairs::<&str, &str>([])).unwrap_err();
        assert!(missing.to_string().contains("IDEMPOTENCY_TABLE"));
        let bad = HttpConfig::from_env(&Env::from_pairs([
            ("IDEMPOTENCY_TABLE", "t"),
            ("MAX_BODY_BYTES", "10"),
        ]))
        .unwrap_err();
        assert!(bad.to_string().contains("MAX_BODY_BYTES"));
    }

    #[test]
    fn the_caller_rate_limit_is_off_by_default_and_needs_its_table() {
        let off = HttpConfig::from_env(&Env::from_pairs([("IDEMPOTENCY_TABLE", "t")])).unwrap();
        assert_eq!(off.caller_rates, None);
        let on = HttpConfig::from_env(&Env::from_pairs([
            ("IDEMPOTENCY_TABLE", "t"),
            ("CALLER_RATE_LIMIT", "20"),
            ("CALLER_RATE_TABLE", "rates"),
        ]))
        .unwrap()
        .caller_rates
        .unwrap();
        assert_eq!(on.table, "rates");
        assert_eq!((on.limit.per_second(), on.limit.burst()), (20, 40));
        let burst = HttpConfig::from_env(&Env::from_pairs([
            ("IDEMPOTENCY_TABLE", "t"),
            ("CALLER_RATE_LIMIT", "20"),
            ("CALLER_BURST", "5"),
            ("CALLER_RATE_TABLE", "rates"),
        ]))
        .unwrap();
        assert_eq!(burst.caller_rates.unwrap().limit.burst(), 5);
        let no_table = HttpConfig::from_env(&Env::from_pairs([
            ("IDEMPOTENCY_TABLE", "t"),
            ("CALLER_RATE_LIMIT", "20"),
        ]))
        .unwrap_err();
        assert!(no_table.to_string().contains("CALLER_RATE_TABLE"));
        let too_fast = HttpConfig::from_env(&Env::from_pairs([
            ("IDEMPOTENCY_TABLE", "t"),
            ("CALLER_RATE_LIMIT", "20000"),
            ("CALLER_RATE_TABLE", "rates"),
        ]))
        .unwrap_err();
        assert!(too_fast.to_string().contains("CALLER_RATE_LIMIT"));
    }
}
