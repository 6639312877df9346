//! The function's settings, read once at init: the ingest core's and the AWS clients'.

use fleetwire::ingest::IngestConfig;
use fleetwire::runtime::aws::SdkSettings;
use fleetwire::runtime::config::{ConfigError, Env};

#[derive(Debug, Clone)]
pub struct TelemetryIngestConfig {
    /// The stream, the dead-letter queue, batch and timestamp limits, retry budgets.
    pub ingest: IngestConfig,
    /// `SDK_*`: the clients' timeouts and retries.
    pub sdk: SdkSettings,
}

impl TelemetryIngestConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(TelemetryIngestConfig {
            ingest: IngestConfig::from_env(env)?,
            sdk: SdkSettings::from_env(env, SdkSettings::default())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwire::ingest::config::Backend;

    #[test]
    fn the_stream_and_the_client_settings_are_read_together() {
        let env = Env::from_pairs([
            ("TELEMETRY_STREAM", "telemetry"),
            ("DEAD_LETTER_QUEUE_URL", "https://sqs/dlq"),
            ("SDK_MAX_ATTEMPTS", "2"),
        ]);
        let config = TelemetryIngestConfig::from_env(&env).unwrap();
        assert!(
            matches!(config.ingest.backend, Backend::Kinesis { ref stream } if stream == "telemetry")
        );
        assert_eq!(config.sdk.max_attempts, 2);
    }

    #[test]
    fn a_bad_client_setting_is_an_init_error_naming_it() {
        let env = Env::from_pairs([
            ("TELEMETRY_STREAM", "telemetry"),
            ("DEAD_LETTER_QUEUE_URL", "https://sqs/dlq"),
            ("SDK_MAX_ATTEMPTS", "many"),
        ]);
        let err = TelemetryIngestConfig::from_env(&env).unwrap_err();
        assert!(err.to_string().contains("SDK_MAX_ATTEMPTS"), "{err}");
    }
}
