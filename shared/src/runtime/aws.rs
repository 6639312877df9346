//! The one way fleetwire builds AWS SDK configuration: explicit timeouts and retries (the
//! SDK sets no operation timeout by default), and endpoints from `AWS_ENDPOINT_URL` or the
//! per-service `AWS_ENDPOINT_URL_<SERVICE>` variables, which is how the local stack and
//! `cargo lambda watch` point every client at loopback.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::runtime::config::{ConfigError, Env};

/// Timeouts and retries for every SDK client of one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkSettings {
    /// TCP and TLS connect.
    pub connect_timeout: Duration,
    /// One HTTP attempt, from send to the end of the response.
    pub attempt_timeout: Duration,
    /// The whole operation, all retries included: the bound a caller can plan a budget on.
    pub operation_timeout: Duration,
    /// Attempts per operation, the first one included.
    pub max_attempts: u32,
    /// First backoff of the standard retry strategy (exponential with jitter after it).
    pub initial_backoff: Duration,
}

impl Default for SdkSettings {
    fn default() -> Self {
        SdkSettings {
            connect_timeout: Duration::from_millis(1_000),
            attempt_timeout: Duration::from_millis(2_000),
            operation_timeout: Duration::from_millis(5_000),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(25),
        }
    }
}

impl SdkSettings {
    /// Reads `SDK_CONNECT_TIMEOUT_MS`, `SDK_ATTEMPT_TIMEOUT_MS`, `SDK_OPERATION_TIMEOUT_MS`,
    /// `SDK_MAX_ATTEMPTS` and `SDK_INITIAL_BACKOFF_MS`, each falling back to `defaults`.
    pub fn from_env(env: &Env, defaults: SdkSettings) -> Result<Self, ConfigError> {
        let ms = Duration::from_millis;
        let settings = SdkSettings {
            connect_timeout: env.millis_in(
                "SDK_CONNECT_TIMEOUT_MS",
                defaults.connect_timeout,
                ms(10),
                ms(60_000),
            )?,
            attempt_timeout: env.millis_in(
                "SDK_ATTEMPT_TIMEOUT_MS",
                defaults.attempt_timeout,
                ms(10),
                ms(900_000),
            )?,
            operation_timeout: env.millis_in(
                "SDK_OPERATION_TIMEOUT_MS",
                defaults.operation_timeout,
                ms(10),
                ms(900_000),
            )?,
            max_attempts: env.number_in("SDK_MAX_ATTEMPTS", defaults.max_attempts, 1, 10)?,
            initial_backoff: env.millis_in(
                "SDK_INITIAL_BACKOFF_MS",
                defaults.initial_backoff,
                ms(1),
                ms(10_000),
            )?,
        };
        if settings.attempt_timeout > settings.operation_timeout {
            return Err(ConfigError::Invalid {
                name: "SDK_ATTEMPT_TIMEOUT_MS".into(),
                value: settings.attempt_timeout.as_millis().to_string(),
                reason: format!(
                    "one attempt may not outlast the whole operation ({} ms)",
                    settings.operation_timeout.as_millis()
                ),
            });
        }
        Ok(settings)
    }

    fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }

    fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
    }
}

/// Loads region, credentials and endpoints the standard way, then applies `settings`.
/// Call once at init and build every client from the result.
pub async fn load_sdk_config(settings: &SdkSettings) -> SdkConfig {
    config_loader(settings).load().await
}

/// The loader behind [`load_sdk_config`], for callers that set more (a fixed region in tests).
pub fn config_loader(settings: &SdkSettings) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(settings.timeout_config())
        .retry_config(settings.retry_config())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_when_unset() {
        let env = Env::from_pairs::<&str, &str>([]);
        assert_eq!(
            SdkSettings::from_env(&env, SdkSettings::default()),
            Ok(SdkSettings::default())
        );
    }

    #[test]
    fn settings_read_from_env() {
        let env = Env::from_pairs([
            ("SDK_OPERATION_TIMEOUT_MS", "2500"),
            ("SDK_MAX_ATTEMPTS", "2"),
        ]);
        let settings = SdkSettings::from_env(&env, SdkSettings::default()).unwrap();
        assert_eq!(settings.operation_timeout, Duration::from_millis(2500));
        assert_eq!(settings.max_attempts, 2);
    }

    #[test]
    fn attempt_longer_than_operation_is_refused() {
        let env = Env::from_pairs([
            ("SDK_ATTEMPT_TIMEOUT_MS", "4000"),
            ("SDK_OPERATION_TIMEOUT_MS", "3000"),
        ]);
        let err = SdkSettings::from_env(&env, SdkSettings::default()).unwrap_err();
        assert!(err.to_string().contains("SDK_ATTEMPT_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn zero_attempts_is_refused() {
        let env = Env::from_pairs([("SDK_MAX_ATTEMPTS", "0")]);
        assert!(SdkSettings::from_env(&env, SdkSettings::default()).is_err());
    }

    #[tokio::test]
    async fn loaded_config_carries_the_settings() {
        let settings = SdkSettings::default();
        // A fixed region: with none in the environment the default chain would ask IMDS.
        let config = config_loader(&settings)
            .region(aws_config::Region::from_static("us-east-1"))
            .load()
            .await;
        let timeouts = config.timeout_config().expect("timeouts set");
        assert_eq!(
            timeouts.operation_timeout(),
            Some(settings.operation_timeout)
        );
        assert_eq!(timeouts.connect_timeout(), Some(settings.connect_timeout));
        let retry = config.retry_config().expect("retries set");
        assert_eq!(retry.max_attempts(), settings.max_attempts);
    }
}
