//! The hook's settings, read once at init.

use std::time::Duration;

use fleetwire::runtime::aws::SdkSettings;
use fleetwire::runtime::config::{ConfigError, Env};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookConfig {
    /// `REGISTRY_TABLE`: the allowlist.
    pub registry_table: String,
    /// `STATE_TABLE`: where the thing's own certificate is bound, for presence.
    pub state_table: String,
    /// `SERIAL_PARAMETER` (default `SerialNumber`): the template parameter carrying the serial.
    pub serial_parameter: String,
    /// `DECISION_BUDGET_MS` (default 3000, 100 to 4500): the time to answer in; past it the
    /// hook denies. IoT Core itself gives up after 5 s.
    pub budget: Duration,
    /// `LOCK_AFTER_DENIALS` (default 5): refused attempts after which a serial is LOCKED.
    pub lock_after: u32,
}

/// The DynamoDB client's defaults for the hook: a slow call must end well inside the budget.
pub const SDK_DEFAULTS: SdkSettings = SdkSettings {
    connect_timeout: Duration::from_millis(300),
    attempt_timeout: Duration::from_millis(800),
    operation_timeout: Duration::from_millis(2_500),
    max_attempts: 3,
    initial_backoff: Duration::from_millis(20),
};

impl HookConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let serial_parameter = env
            .optional("SERIAL_PARAMETER")
            .unwrap_or_else(|| "SerialNumber".into());
        Ok(HookConfig {
            registry_table: env
                .required("REGISTRY_TABLE", "the Registry table holding the allowlist")?,
            state_table: env.required(
                "STATE_TABLE",
                "the State table where a thing's certificate is bound",
            )?,
            serial_parameter,
            budget: env.millis_in(
                "DECISION_BUDGET_MS",
                Duration::from_secs(3),
                Duration::from_millis(100),
                Duration::from_millis(4_500),
            )?,
            lock_after: env.number_in("LOCK_AFTER_DENIALS", 5, 1, 1_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_only_the_table_is_set() {
        let config = HookConfig::from_env(&Env::from_pairs([
            ("REGISTRY_TABLE", "registry"),
            ("STATE_TABLE", "state"),
        ]))
        .unwrap();
        assert_eq!(config.serial_parameter, "SerialNumber");
        assert_eq!(config.budget, Duration::from_secs(3));
        assert_eq!(config.lock_after, 5);
    }

    #[test]
    fn missing_table_and_out_of_range_budget_are_named() {
        let err = HookConfig::from_env(&Env::from_pairs::<&str, &str>([])).unwrap_err();
        assert!(err.to_string().contains("REGISTRY_TABLE"), "{err}");
        let env = Env::from_pairs([
            ("REGISTRY_TABLE", "r"),
            ("STATE_TABLE", "s"),
            ("DECISION_BUDGET_MS", "5000"),
        ]);
        let err = HookConfig::from_env(&env).unwrap_err();
        assert!(err.to_string().contains("DECISION_BUDGET_MS"), "{err}");
    }

    #[test]
    fn sdk_operation_timeout_fits_inside_the_default_budget() {
        assert!(SDK_DEFAULTS.operation_timeout < Duration::from_secs(3));
    }
}
