//! Typed configuration read from environment variables once, at init.
//!
//! Functions describe their settings as a struct and read it through [`Env`]. A missing or
//! malformed variable becomes a [`ConfigError`] that names the variable, so a bad deploy
//! fails at start with a message an operator can act on.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set ({meaning})")]
    Missing { name: String, meaning: String },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

impl From<ConfigError> for lambda_runtime::Diagnostic {
    fn from(error: ConfigError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "ConfigError".into(),
            error_message: error.to_string(),
        }
    }
}

/// Where settings come from: the process environment, or a fixed map in tests
/// (changing the process environment is `unsafe` in edition 2024, and racy across tests).
pub struct Env {
    source: Source,
}

enum Source {
    Process,
    Fixed(HashMap<String, String>),
}

impl Env {
    /// The real process environment.
    pub fn process() -> Self {
        Env {
            source: Source::Process,
        }
    }

    /// A fixed set of variables, for tests and tools.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Env {
            source: Source::Fixed(vars),
        }
    }

    /// The variable's value; an empty value counts as unset.
    pub fn optional(&self, name: &str) -> Option<String> {
        let value = match &self.source {
            Source::Process => std::env::var(name).ok(),
            Source::Fixed(vars) => vars.get(name).cloned(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// A variable that must be set; `meaning` says what it is for in the error.
    pub fn required(&self, name: &str, meaning: &str) -> Result<String, ConfigError> {
        self.optional(name).ok_or_else(|| ConfigError::Missing {
            name: name.to_string(),
            meaning: meaning.to_string(),
        })
    }

    /// A parsed variable with a default when unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| invalid(name, &raw, e)),
        }
    }

    /// A number with a default, checked against an inclusive range.
    pub fn number_in<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let value = self.parse_or(name, default)?;
        if value < min || value > max {
            return Err(invalid(
                name,
                &value.to_string(),
                format!("must be between {min} and {max}"),
            ));
        }
        Ok(value)
    }

    /// A duration given in milliseconds (`NAME_MS` by convention), with a default and a
    /// range, so a typo like `30000000` is refused rather than turning a budget off.
    pub fn millis_in(
        &self,
        name: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let ms = self.number_in(name, millis(default), millis(min), millis(max))?;
        Ok(Duration::from_millis(ms))
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`), with a default.
    pub fn flag_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(invalid(name, &raw, "expected true or false")),
            },
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn invalid(name: &str, value: &str, reason: impl Display) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_required_variable_names_it_and_its_meaning() {
        let env = Env::from_pairs([("OTHER", "x")]);
        let err = env
            .required("REGISTRY_TABLE", "the Registry table name")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable REGISTRY_TABLE is not set (the Registry table name)"
        );
    }

    #[test]
    fn blank_value_counts_as_missing() {
        let env = Env::from_pairs([("REGISTRY_TABLE", "  ")]);
        assert!(matches!(
            env.required("REGISTRY_TABLE", "table"),
            Err(ConfigError::Missing { .. })
        ));
    }

    #[test]
    fn malformed_number_names_variable_and_value() {
        let env = Env::from_pairs([("MAX_BATCH", "ten")]);
        let err = env.parse_or("MAX_BATCH", 10u32).unwrap_err();
        let ConfigError::Invalid { name, value, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!((name.as_str(), value.as_str()), ("MAX_BATCH", "ten"));
    }

    #[test]
    fn unset_number_takes_default() {
        let env = Env::from_pairs::<&str, &str>([]);
        assert_eq!(env.parse_or("MAX_BATCH", 10u32), Ok(10));
    }

    #[test]
    fn number_outside_range_is_refused() {
        let env = Env::from_pairs([("MAX_BATCH", "0")]);
        let err = env.number_in("MAX_BATCH", 10u32, 1, 500).unwrap_err();
        assert!(
            err.to_string().contains("must be between 1 and 500"),
            "{err}"
        );
    }

    #[test]
    fn millis_parse_into_durations_within_range() {
        let env = Env::from_pairs([("BUDGET_MS", "2500")]);
        let budget = env.millis_in(
            "BUDGET_MS",
            Duration::from_secs(3),
            Duration::from_millis(100),
            Duration::from_millis(4500),
        );
        assert_eq!(budget, Ok(Duration::from_millis(2500)));

        let env = Env::from_pairs([("BUDGET_MS", "30000000")]);
        assert!(
            env.millis_in(
                "BUDGET_MS",
                Duration::from_secs(3),
                Duration::ZERO,
                Duration::from_secs(5)
            )
            .is_err()
        );
    }

    #[test]
    fn flags_accept_common_spellings_and_refuse_others() {
        let env = Env::from_pairs([("A", "YES"), ("B", "0"), ("C", "maybe")]);
        assert_eq!(env.flag_or("A", false), Ok(true));
        assert_eq!(env.flag_or("B", true), Ok(false));
        assert_eq!(env.flag_or("UNSET", true), Ok(true));
        assert!(env.flag_or("C", true).is_err());
    }

    #[test]
    fn config_error_becomes_a_named_diagnostic() {
        let diagnostic: lambda_runtime::Diagnostic = ConfigError::Missing {
            name: "X".into(),
            meaning: "y".into(),
        }
        .into();
        assert_eq!(diagnostic.error_type, "ConfigError");
        assert!(diagnostic.error_message.contains("X"));
    }
}
