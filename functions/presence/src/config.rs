//! The function's settings, read once at init.

use fleetwire::runtime::aws::SdkSettings;
use fleetwire::runtime::config::{ConfigError, Env};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceConfig {
    /// `STATE_TABLE`: where each device's presence is kept.
    pub state_table: String,
    /// `SDK_*`: the DynamoDB client's timeouts and retries.
    pub sdk: SdkSettings,
}

impl PresenceConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(PresenceConfig {
            state_table: env.required("STATE_TABLE", "the device State table")?,
            sdk: SdkSettings::from_env(env, SdkSettings::default())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_table_is_read_with_the_client_defaults() {
        let config =
            PresenceConfig::from_env(&Env::from_pairs([("STATE_TABLE", "state")])).unwrap();
        assert_eq!(config.state_table, "state");
        assert_eq!(config.sdk, SdkSettings::default());
    }

    #[test]
    fn a_missing_table_is_an_init_error_naming_it() {
        let err = PresenceConfig::from_env(&Env::from_pairs::<&str, &str>([])).unwrap_err();
        assert!(err.to_string().contains("STATE_TABLE"), "{err}");
    }
}
