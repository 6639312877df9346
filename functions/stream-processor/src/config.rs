//! The function's settings, read once at init.

use std::time::Duration;

use fleetwire::domain::processing::AnomalyRules;
use fleetwire::runtime::aws::SdkSettings;
use fleetwire::runtime::config::{ConfigError, Env};

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// `STATE_TABLE`, `SUMMARIES_TABLE`, `PROCESSED_RECORDS_TABLE`: the newest reading per
    /// device, the hourly summaries and the seen-marks of processed records.
    pub state_table: String,
    pub summaries_table: String,
    pub processed_records_table: String,
    /// `ALERT_TOPIC_ARN`: where anomalies are published.
    pub alert_topic_arn: String,
    /// `DEAD_LETTER_QUEUE_URL`: where records that cannot be decoded go.
    pub dead_letter_queue_url: String,
    /// `ANOMALY_Z_THRESHOLD` (default 3.0) and `ANOMALY_MIN_SAMPLES` (default 30).
    pub rules: AnomalyRules,
    /// `REMEMBER_RECORDS_DAYS` (default 8, 1 to 400): how long a seen-mark is kept, longer
    /// than any replay of the stream (its retention is at most 7 days by default here).
    pub remember: Duration,
    /// `SDK_*`: the clients' timeouts and retries.
    pub sdk: SdkSettings,
}

impl ProcessorConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(ProcessorConfig {
            state_table: env.required("STATE_TABLE", "the device State table")?,
            summaries_table: env.required("SUMMARIES_TABLE", "the hourly Summaries table")?,
            processed_records_table: env.required(
                "PROCESSED_RECORDS_TABLE",
                "the table of processed record ids",
            )?,
            alert_topic_arn: env.required("ALERT_TOPIC_ARN", "the SNS alert topic")?,
            dead_letter_queue_url: env.required(
                "DEAD_LETTER_QUEUE_URL",
                "the SQS queue for undecodable records",
            )?,
            rules: AnomalyRules {
                z_threshold: env.parse_or("ANOMALY_Z_THRESHOLD", 3.0)?,
                min_samples: env.number_in("ANOMALY_MIN_SAMPLES", 30, 2, 1_000_000)?,
                ..AnomalyRules::default()
            },
            remember: Duration::from_secs(
                86_400 * env.number_in("REMEMBER_RECORDS_DAYS", 8, 1, 400)?,
            ),
            sdk: SdkSettings::from_env(env, SdkSettings::default())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> Env {
        let mut pairs = vec![
            ("STATE_TABLE", "state"),
            ("SUMMARIES_TABLE", "summaries"),
            ("PROCESSED_RECORDS_TABLE", "processed"),
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
            (
                "DEAD_LETTER_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
            ),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults_apply_when_only_the_resources_are_named() {
        let config = ProcessorConfig::from_env(&env(&[])).unwrap();
        assert_eq!(config.rules.z_threshold, 3.0);
        assert_eq!(config.rules.min_samples, 30);
        assert_eq!(config.remember, Duration::from_secs(8 * 86_400));
    }

    #[test]
    fn the_anomaly_rules_and_the_memory_can_be_tuned() {
        let config = ProcessorConfig::from_env(&env(&[
            ("ANOMALY_Z_THRESHOLD", "2.5"),
            ("ANOMALY_MIN_SAMPLES", "10"),
            ("REMEMBER_RECORDS_DAYS", "30"),
        ]))
        .unwrap();
        assert_eq!(
            (config.rules.z_threshold, config.rules.min_samples),
            (2.5, 10)
        );
        assert_eq!(config.remember, Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn settings_out_of_range_are_init_errors_naming_them() {
        for (name, value) in [
            ("ANOMALY_MIN_SAMPLES", "1"),
            ("REMEMBER_RECORDS_DAYS", "0"),
            ("ANOMALY_Z_THRESHOLD", "high"),
        ] {
            let err = ProcessorConfig::from_env(&env(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
