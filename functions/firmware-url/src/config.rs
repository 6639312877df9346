//! The function's settings, read once at init.

use fleetwire::runtime::aws::SdkSettings;
use fleetwire::runtime::config::{ConfigError, Env};

use crate::UrlSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareUrlConfig {
    /// How URLs are made: base, lifetime, source-IP binding.
    pub urls: UrlSettings,
    /// `SIGNING_KEY_SECRET_ARN`: the secret holding the CloudFront key pair.
    pub signing_key_secret: String,
    /// `REGISTRY_TABLE`: who a thing is (model, serial).
    pub registry_table: String,
    /// `FIRMWARE_TABLE`, `ROLLOUTS_TABLE`, `OTA_HISTORY_TABLE`: the OTA tables.
    pub firmware_table: String,
    pub rollouts_table: String,
    pub history_table: String,
    /// `SDK_*`: the clients' timeouts and retries.
    pub sdk: SdkSettings,
}

impl FirmwareUrlConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(FirmwareUrlConfig {
            urls: UrlSettings {
                download_base: download_base(env)?,
                base_ttl_seconds: env.number_in("URL_TTL_SECONDS", 900, 60, 86_400)?,
                slowest_bytes_per_second: env.number_in(
                    "SLOWEST_LINK_BYTES_PER_SECOND",
                    16_384,
                    1,
                    1 << 30,
                )?,
                max_ttl_seconds: env.number_in("URL_MAX_TTL_SECONDS", 86_400, 60, 7 * 86_400)?,
                bind_to_source_ip: env.flag_or("BIND_URL_TO_SOURCE_IP", false)?,
            },
            signing_key_secret: env.required(
                "SIGNING_KEY_SECRET_ARN",
                "the secret holding the CloudFront key",
            )?,
            registry_table: env.required("REGISTRY_TABLE", "the device Registry table")?,
            firmware_table: env.required("FIRMWARE_TABLE", "the Firmware release table")?,
            rollouts_table: env.required("ROLLOUTS_TABLE", "the Rollouts table")?,
            history_table: env.required("OTA_HISTORY_TABLE", "the OtaHistory table")?,
            sdk: SdkSettings::from_env(env, SdkSettings::default())?,
        })
    }
}

/// `https://<FIRMWARE_DISTRIBUTION_DOMAIN>`, unless `FIRMWARE_BASE_URL` names another
/// base (the local stack's CloudFront, which serves plain HTTP on loopback).
fn download_base(env: &Env) -> Result<String, ConfigError> {
    match env.optional("FIRMWARE_BASE_URL") {
        Some(base) if base.starts_with("https://") || base.starts_with("http://") => {
            Ok(base.trim_end_matches('/').to_owned())
        }
        Some(base) => Err(ConfigError::Invalid {
            name: "FIRMWARE_BASE_URL".into(),
            value: base,
            reason: "must start with https:// (or http:// for a local endpoint)".into(),
        }),
        None => Ok(format!(
            "https://{}",
            env.required(
                "FIRMWARE_DISTRIBUTION_DOMAIN",
                "the CloudFront distribution's domain",
            )?
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> Env {
        let mut pairs = vec![
            (
                "SIGNING_KEY_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:key",
            ),
            ("REGISTRY_TABLE", "registry"),
            ("FIRMWARE_TABLE", "firmware"),
            ("ROLLOUTS_TABLE", "rollouts"),
            ("OTA_HISTORY_TABLE", "history"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn urls_point_at_the_distribution_over_https_with_the_defaults() {
        let config = FirmwareUrlConfig::from_env(&env(&[(
            "FIRMWARE_DISTRIBUTION_DOMAIN",
            "d111111abcdef8.cloudfront.net",
        )]))
        .unwrap();
        assert_eq!(
            config.urls.download_base,
            "https://d111111abcdef8.cloudfront.net"
        );
        assert_eq!(config.urls.base_ttl_seconds, 900);
        assert_eq!(config.urls.slowest_bytes_per_second, 16_384);
        assert_eq!(config.urls.max_ttl_seconds, 86_400);
        assert!(!config.urls.bind_to_source_ip);
    }

    #[test]
    fn a_base_url_wins_over_the_domain_and_loses_its_trailing_slash() {
        let config = FirmwareUrlConfig::from_env(&env(&[
            ("FIRMWARE_BASE_URL", "http://127.0.0.1:8088/"),
            ("FIRMWARE_DISTRIBUTION_DOMAIN", "ignored.example"),
        ]))
        .unwrap();
        assert_eq!(config.urls.download_base, "http://127.0.0.1:8088");
    }

    #[test]
    fn a_base_url_without_a_scheme_is_refused() {
        let err =
            FirmwareUrlConfig::from_env(&env(&[("FIRMWARE_BASE_URL", "cdn.example")])).unwrap_err();
        assert!(err.to_string().contains("FIRMWARE_BASE_URL"), "{err}");
    }

    #[test]
    fn without_a_base_or_a_domain_init_fails_naming_the_domain() {
        let err = FirmwareUrlConfig::from_env(&env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("FIRMWARE_DISTRIBUTION_DOMAIN"),
            "{err}"
        );
    }

    #[test]
    fn a_lifetime_outside_its_range_is_refused() {
        let err = FirmwareUrlConfig::from_env(&env(&[
            ("FIRMWARE_DISTRIBUTION_DOMAIN", "d.example"),
            ("URL_TTL_SECONDS", "10"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("URL_TTL_SECONDS"), "{err}");
    }
}
