//! The ingest function's settings, read once at init.

use std::time::Duration;

use crate::domain::telemetry::TimestampLimits;
use crate::runtime::config::{ConfigError, Env};
use crate::runtime::retry::RetryPolicy;

/// Where accepted records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `STREAM_BACKEND=kinesis` (default), `TELEMETRY_STREAM` names the stream.
    Kinesis { stream: String },
    /// `STREAM_BACKEND=msk` (or `kafka`): `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`,
    /// `KAFKA_SECURITY` = `msk-iam` (TLS + SASL/IAM, default) or `plaintext` (local broker).
    Kafka {
        bootstrap_servers: Vec<String>,
        topic: String,
        security: KafkaSecurity,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaSecurity {
    MskIam,
    Plaintext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    pub backend: Backend,
    /// `DEAD_LETTER_QUEUE_URL`.
    pub dead_letter_queue_url: String,
    /// `MAX_BATCH_RECORDS` (default 1000): a larger batch is rejected whole.
    pub max_batch: usize,
    /// `MAX_FUTURE_SKEW_SECONDS` (default 300) and `MAX_AGE_SECONDS` (default 604800).
    pub limits: TimestampLimits,
    /// `SINK_MAX_ATTEMPTS`, `SINK_BASE_BACKOFF_MS`, `SINK_MAX_BACKOFF_MS`, `SINK_BUDGET_MS`.
    pub sink_retry: RetryPolicy,
    /// `DLQ_MAX_ATTEMPTS`, ... for the dead-letter queue.
    pub dead_letter_retry: RetryPolicy,
}

impl IngestConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let backend = match env
            .optional("STREAM_BACKEND")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("kinesis") => Backend::Kinesis {
                stream: env.required("TELEMETRY_STREAM", "the Kinesis stream for telemetry")?,
            },
            Some("msk" | "kafka") => {
                let servers = env.required(
                    "KAFKA_BOOTSTRAP_SERVERS",
                    "comma-separated host:port of the brokers",
                )?;
                let security = match env.optional("KAFKA_SECURITY").as_deref() {
                    None | Some("msk-iam") => KafkaSecurity::MskIam,
                    Some("plaintext") => KafkaSecurity::Plaintext,
                    Some(other) => {
                        return Err(ConfigError::Invalid {
                            name: "KAFKA_SECURITY".into(),
                            value: other.into(),
                            reason: "expected msk-iam or plaintext".into(),
                        });
                    }
                };
                Backend::Kafka {
                    bootstrap_servers: servers
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                    topic: env.required("KAFKA_TOPIC", "the Kafka topic for telemetry")?,
                    security,
                }
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "STREAM_BACKEND".into(),
                    value: other.into(),
                    reason: "expected kinesis or msk".into(),
                });
            }
        };
        let sink_defaults = RetryPolicy {
            max_attempts: 6,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            budget: Duration::from_secs(10),
        };
        Ok(IngestConfig {
            backend,
            dead_letter_queue_url: env.required(
                "DEAD_LETTER_QUEUE_URL",
                "the SQS queue for rejected records",
            )?,
            max_batch: env.number_in("MAX_BATCH_RECORDS", 1000, 1, 100_000)?,
            limits: TimestampLimits {
                max_future_skew: Duration::from_secs(env.number_in(
                    "MAX_FUTURE_SKEW_SECONDS",
                    300,
                    0,
                    86_400,
                )?),
                max_age: Duration::from_secs(env.number_in(
                    "MAX_AGE_SECONDS",
                    604_800,
                    60,
                    31_536_000,
                )?),
            },
            sink_retry: RetryPolicy::from_env(env, "SINK", sink_defaults)?,
            dead_letter_retry: RetryPolicy::from_env(env, "DLQ", RetryPolicy::default())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinesis_is_the_default_backend() {
        let env = Env::from_pairs([("TELEMETRY_STREAM", "s"), ("DEAD_LETTER_QUEUE_URL", "q")]);
        let config = IngestConfig::from_env(&env).unwrap();
        assert_eq!(config.backend, Backend::Kinesis { stream: "s".into() });
        assert_eq!(config.max_batch, 1000);
        assert_eq!(config.limits, TimestampLimits::default());
    }

    #[test]
    fn msk_backend_reads_brokers_topic_and_security() {
        let env = Env::from_pairs([
            ("STREAM_BACKEND", "msk"),
            ("KAFKA_BOOTSTRAP_SERVERS", "b-1:9098, b-2:9098"),
            ("KAFKA_TOPIC", "telemetry"),
            ("DEAD_LETTER_QUEUE_URL", "q"),
        ]);
        let config = IngestConfig::from_env(&env).unwrap();
        assert_eq!(
            config.backend,
            Backend::Kafka {
                bootstrap_servers: vec!["b-1:9098".into(), "b-2:9098".into()],
                topic: "telemetry".into(),
                security: KafkaSecurity::MskIam
            }
        );
    }

    #[test]
    fn unknown_backend_and_missing_queue_are_named() {
        let env = Env::from_pairs([("STREAM_BACKEND", "pigeon"), ("DEAD_LETTER_QUEUE_URL", "q")]);
        assert!(
            IngestConfig::from_env(&env)
                .unwrap_err()
                .to_string()
                .contains("STREAM_BACKEND")
        );
        let env = Env::from_pairs([("TELEMETRY_STREAM", "s")]);
        assert!(
            IngestConfig::from_env(&env)
                .unwrap_err()
                .to_string()
                .contains("DEAD_LETTER_QUEUE_URL")
        );
    }
}
