//! The function's settings, read once at init.

use fleetwire::runtime::aws::SdkSettings;
use fleetwire::runtime::config::{ConfigError, Env};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtaStatusConfig {
    /// `FIRMWARE_TABLE`, `ROLLOUTS_TABLE`, `OTA_HISTORY_TABLE`: the OTA tables.
    pub firmware_table: String,
    pub rollouts_table: String,
    pub history_table: String,
    /// `ALERT_TOPIC_ARN`: where a paused rollout is announced.
    pub alert_topic_arn: String,
    /// `SDK_*`: the clients' timeouts and retries.
    pub sdk: SdkSettings,
}

impl OtaStatusConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(OtaStatusConfig {
            firmware_table: env.required("FIRMWARE_TABLE", "the Firmware release table")?,
            rollouts_table: env.required("ROLLOUTS_TABLE", "the Rollouts table")?,
            history_table: env.required("OTA_HISTORY_TABLE", "the OtaHistory table")?,
            alert_topic_arn: env.required("ALERT_TOPIC_ARN", "the SNS alert topic")?,
            sdk: SdkSettings::from_env(env, SdkSettings::default())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(&str, &str); 4] = [
        ("FIRMWARE_TABLE", "firmware"),
        ("ROLLOUTS_TABLE", "rollouts"),
        ("OTA_HISTORY_TABLE", "history"),
        (
            "ALERT_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:alerts",
        ),
    ];

    #[test]
    fn every_table_and_the_topic_are_read() {
        let config = OtaStatusConfig::from_env(&Env::from_pairs(ALL)).unwrap();
        assert_eq!(
            (
                config.firmware_table.as_str(),
                config.rollouts_table.as_str(),
                config.history_table.as_str()
            ),
            ("firmware", "rollouts", "history")
        );
        assert!(config.alert_topic_arn.ends_with(":alerts"));
    }

    #[test]
    fn each_missing_setting_is_named() {
        for missing in ALL.map(|(name, _)| name) {
            let env = Env::from_pairs(ALL.into_iter().filter(|(name, _)| *name != missing));
            let err = OtaStatusConfig::from_env(&env).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
    }
}
