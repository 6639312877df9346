//! The HTTPS entry point's settings, read once at init (the ingest core's are
//! [`telemetry_ingest::IngestConfig`]'s).

use std::time::Duration;

use fleetwire::config::{ConfigError, Env};
use fleetwire::idempotency::IdempotencySettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `IDEMPOTENCY_TABLE`: claims and answers of `Idempotency-Key` requests.
    pub idempotency_table: String,
    pub http: HttpSettings,
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
}
