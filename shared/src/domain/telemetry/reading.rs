//! A reading as the fleet knows it once validated: who sent it, when, and what it measured.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Longest device id; the IoT thing-name limit.
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// Limits on the reading's timestamp, relative to the time it is received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampLimits {
    /// How far in the future a device clock may run.
    pub max_future_skew: Duration,
    /// How old a buffered reading may be.
    pub max_age: Duration,
}

impl Default for TimestampLimits {
    fn default() -> Self {
        TimestampLimits {
            max_future_skew: Duration::from_secs(5 * 60),
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The client ids a claim certificate may connect with (the template's claim policy allows
/// `iot:Connect` on `client/claim-*` only). No thing may be named so: a leaked claim
/// certificate, shipped in every device of a batch, then cannot connect as a device, have
/// IoT Core disconnect the real one (`DUPLICATE_CLIENTID`) and take over its session.
pub const CLAIM_CLIENT_ID_PREFIX: &str = "claim-";

/// A device identity: 1 to 128 characters of `[A-Za-z0-9:_-]` (the IoT thing-name
/// alphabet), not starting with [`CLAIM_CLIENT_ID_PREFIX`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.chars().count() > MAX_DEVICE_ID_LEN {
            return Err(format!("longer than {MAX_DEVICE_ID_LEN} characters"));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')))
        {
            return Err(format!("character {bad:?} is outside [A-Za-z0-9:_-]"));
        }
        if raw.starts_with(CLAIM_CLIENT_ID_PREFIX) {
            return Err(format!(
                "starts with {CLAIM_CLIENT_ID_PREFIX:?}, which only claimants' connections use"
            ));
        }
        Ok(DeviceId(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceId {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        DeviceId::parse(&raw)
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> String {
        id.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A validated reading. Serializes back to the wire shape, with the timestamp normalised
/// to RFC 3339 UTC and unknown fields kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryRecord {
    pub device_id: DeviceId,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub temperature: f64,
    pub humidity: f64,
    pub pressure: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Fields the schema does not name, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TelemetryRecord {
    /// Milliseconds since the epoch, the form the tables store.
    pub fn timestamp_ms(&self) -> i64 {
        i64::try_from(self.timestamp.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}
