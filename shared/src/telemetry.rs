//! The telemetry reading of seed 004 and its validation.
//!
//! Validation walks the JSON by hand instead of deriving `Deserialize`, so that one pass
//! reports every field error at once (serde stops at the first), and fields we do not know
//! are kept for downstream consumers rather than dropped.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The physical ranges a reading must fall in. They bound what real sensors report, so a
/// value outside them is a broken sensor or a forged message, not weather.
pub mod ranges {
    /// °C: Earth's recorded extremes (-89.2 °C, 56.7 °C) lie inside; +150 °C is the top of
    /// automotive-grade sensors (engine bay, battery pack).
    pub const TEMPERATURE_C: (f64, f64) = (-90.0, 150.0);
    /// % relative humidity.
    pub const HUMIDITY_PCT: (f64, f64) = (0.0, 100.0);
    /// hPa: the range of common barometric sensors (BMP280/BME280: 300 to 1100 hPa);
    /// the summit of Everest is about 314 hPa.
    pub const PRESSURE_HPA: (f64, f64) = (300.0, 1100.0);
    /// Degrees, WGS 84.
    pub const LATITUDE: (f64, f64) = (-90.0, 90.0);
    pub const LONGITUDE: (f64, f64) = (-180.0, 180.0);
}

/// The fields the IoT rule adds to the device's JSON. The rule of seed 001 is
/// `SELECT *, topic(2) AS thing_name, timestamp() AS received_at FROM 'fleet/+/telemetry'`;
/// a payload that is not JSON arrives base64 encoded instead (`encode(*, 'base64')`).
/// They are the envelope, not the reading: removed before a reading is validated. The
/// Python peer in `bench/peers/python` lists the same names in `RULE_FIELDS`.
pub mod rule {
    /// The topic's thing name: who IoT Core authenticated.
    pub const THING_NAME: &str = "thing_name";
    /// When IoT Core received the message, in milliseconds since the epoch.
    pub const RECEIVED_AT: &str = "received_at";
    /// A payload that is not JSON, base64 encoded.
    pub const PAYLOAD_BASE64: &str = "payload_base64";
    /// All of them.
    pub const FIELDS: [&str; 3] = [THING_NAME, RECEIVED_AT, PAYLOAD_BASE64];
}

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

/// A device identity: 1 to 128 characters of `[A-Za-z0-9:_-]` (the IoT thing-name alphabet).
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

/// One problem with one field; `field` is a dotted path such as `location.latitude`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Every field error of one reading, in field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("invalid telemetry: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

impl TelemetryRecord {
    /// Validates one reading received at `now`, reporting every field error at once.
    pub fn validate(
        value: &Value,
        now: OffsetDateTime,
        limits: &TimestampLimits,
    ) -> Result<Self, ValidationErrors> {
        let mut check = Checker::default();
        let Some(object) = value.as_object() else {
            check.fail(
                "$",
                format!("expected a JSON object, got {}", json_kind(value)),
            );
            return Err(check.finish());
        };

        let device_id = check.device_id(object.get("device_id"));
        let timestamp = check.timestamp(object.get("timestamp"), now, limits);
        let temperature = check.number(object, "temperature", ranges::TEMPERATURE_C, "°C");
        let humidity = check.number(object, "humidity", ranges::HUMIDITY_PCT, "%");
        let pressure = check.number(object, "pressure", ranges::PRESSURE_HPA, "hPa");
        let location = check.location(object.get("location"));
        let metadata = check.metadata(object.get("metadata"));

        let extra: Map<String, Value> = object
            .iter()
            .filter(|(key, _)| !KNOWN_FIELDS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();

        match (
            device_id,
            timestamp,
            temperature,
            humidity,
            pressure,
            location,
            metadata,
        ) {
            (
                Some(device_id),
                Some(timestamp),
                Some(temperature),
                Some(humidity),
                Some(pressure),
                Some(location),
                Some(metadata),
            ) if check.errors.is_empty() => Ok(TelemetryRecord {
                device_id,
                timestamp,
                temperature,
                humidity,
                pressure,
                location,
                metadata,
                extra,
            }),
            _ => Err(check.finish()),
        }
    }

    /// Milliseconds since the epoch, the form the tables store.
    pub fn timestamp_ms(&self) -> i64 {
        i64::try_from(self.timestamp.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

const KNOWN_FIELDS: [&str; 7] = [
    "device_id",
    "timestamp",
    "temperature",
    "humidity",
    "pressure",
    "location",
    "metadata",
];

#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, field: &str, problem: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            problem: problem.into(),
        });
    }

    fn finish(self) -> ValidationErrors {
        ValidationErrors {
            errors: self.errors,
        }
    }

    fn device_id(&mut self, value: Option<&Value>) -> Option<DeviceId> {
        match value {
            None | Some(Value::Null) => self.fail("device_id", "is required"),
            Some(Value::String(raw)) => match DeviceId::parse(raw) {
                Ok(id) => return Some(id),
                Err(problem) => self.fail("device_id", problem),
            },
            Some(other) => self.fail(
                "device_id",
                format!("expected a string, got {}", json_kind(other)),
            ),
        }
        None
    }

    fn timestamp(
        &mut self,
        value: Option<&Value>,
        now: OffsetDateTime,
        limits: &TimestampLimits,
    ) -> Option<OffsetDateTime> {
        let parsed = match value {
            None | Some(Value::Null) => Err("is required".to_string()),
            Some(Value::String(raw)) => OffsetDateTime::parse(raw, &Rfc3339)
                .map_err(|e| format!("{raw:?} is not an RFC 3339 date-time ({e})")),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(ms) => OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .map_err(|_| format!("{ms} is out of range for epoch milliseconds")),
                None => Err(format!("{n} is not a whole number of epoch milliseconds")),
            },
            Some(other) => Err(format!(
                "expected RFC 3339 or epoch milliseconds, got {}",
                json_kind(other)
            )),
        };
        let at = match parsed {
            Ok(at) => at,
            Err(problem) => {
                self.fail("timestamp", problem);
                return None;
            }
        };
        if at > now + limits.max_future_skew {
            self.fail(
                "timestamp",
                format!(
                    "is more than {}s in the future",
                    limits.max_future_skew.as_secs()
                ),
            );
            return None;
        }
        if at < now - limits.max_age {
            self.fail(
                "timestamp",
                format!("is older than {}s", limits.max_age.as_secs()),
            );
            return None;
        }
        Some(at.to_offset(time::UtcOffset::UTC))
    }

    fn number(
        &mut self,
        object: &Map<String, Value>,
        field: &str,
        (min, max): (f64, f64),
        unit: &str,
    ) -> Option<f64> {
        self.number_at(field, object.get(field), (min, max), unit)
    }

    fn number_at(
        &mut self,
        field: &str,
        value: Option<&Value>,
        (min, max): (f64, f64),
        unit: &str,
    ) -> Option<f64> {
        match value {
            None | Some(Value::Null) => self.fail(field, "is required"),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() && (min..=max).contains(&x) => return Some(x),
                Some(x) => self.fail(field, format!("{x} is outside {min}..={max} {unit}")),
                None => self.fail(field, format!("{n} is not a number")),
            },
            Some(other) => self.fail(
                field,
                format!("expected a number, got {}", json_kind(other)),
            ),
        }
        None
    }

    /// `Some(None)` when absent (location is optional), `None` when invalid.
    fn location(&mut self, value: Option<&Value>) -> Option<Option<Location>> {
        match value {
            None | Some(Value::Null) => Some(None),
            Some(Value::Object(location)) => {
                let latitude = self.number_at(
                    "location.latitude",
                    location.get("latitude"),
                    ranges::LATITUDE,
                    "°",
                );
                let longitude = self.number_at(
                    "location.longitude",
                    location.get("longitude"),
                    ranges::LONGITUDE,
                    "°",
                );
                Some(Some(Location {
                    latitude: latitude?,
                    longitude: longitude?,
                }))
            }
            Some(other) => {
                self.fail(
                    "location",
                    format!("expected an object, got {}", json_kind(other)),
                );
                None
            }
        }
    }

    fn metadata(&mut self, value: Option<&Value>) -> Option<Option<Metadata>> {
        match value {
            None | Some(Value::Null) => Some(None),
            Some(Value::Object(metadata)) => {
                let mut text = |field: &str| match metadata.get(field) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(other) => {
                        self.fail(
                            &format!("metadata.{field}"),
                            format!("expected a string, got {}", json_kind(other)),
                        );
                        Err(())
                    }
                };
                let version = text("version");
                let source = text("source");
                Some(Some(Metadata {
                    version: version.ok()?,
                    source: source.ok()?,
                }))
            }
            Some(other) => {
                self.fail(
                    "metadata",
                    format!("expected an object, got {}", json_kind(other)),
                );
                None
            }
        }
    }
}

/// How a JSON value is described in error messages ("a string", "an array", ...).
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00:00 UTC);

    fn valid() -> Value {
        json!({
            "device_id": "car-0001",
            "timestamp": "2026-11-25T11:59:30Z",
            "temperature": 21.5,
            "humidity": 40.0,
            "pressure": 1013.2,
            "location": {"latitude": 37.56, "longitude": 126.97},
            "metadata": {"version": "1.2.0", "source": "obd"}
        })
    }

    fn validate(value: &Value) -> Result<TelemetryRecord, ValidationErrors> {
        TelemetryRecord::validate(value, NOW, &TimestampLimits::default())
    }

    fn fields(err: &ValidationErrors) -> Vec<&str> {
        err.errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn valid_reading_is_accepted_and_normalised() {
        let record = validate(&valid()).unwrap();
        assert_eq!(record.device_id.as_str(), "car-0001");
        assert_eq!(record.timestamp, datetime!(2026-11-25 11:59:30 UTC));
        assert_eq!(
            record.location,
            Some(Location {
                latitude: 37.56,
                longitude: 126.97
            })
        );
        assert_eq!(
            record.metadata.as_ref().and_then(|m| m.source.as_deref()),
            Some("obd")
        );
    }

    #[test]
    fn epoch_milliseconds_and_offsets_are_accepted() {
        let mut reading = valid();
        reading["timestamp"] = json!(NOW.unix_timestamp() * 1000 - 1500);
        assert_eq!(
            validate(&reading).unwrap().timestamp_ms(),
            NOW.unix_timestamp() * 1000 - 1500
        );

        reading["timestamp"] = json!("2026-11-25T20:59:30+09:00");
        assert_eq!(
            validate(&reading).unwrap().timestamp,
            datetime!(2026-11-25 11:59:30 UTC)
        );
    }

    #[test]
    fn each_missing_required_field_is_reported() {
        for field in [
            "device_id",
            "timestamp",
            "temperature",
            "humidity",
            "pressure",
        ] {
            let mut reading = valid();
            reading.as_object_mut().unwrap().remove(field);
            let err = validate(&reading).unwrap_err();
            assert_eq!(fields(&err), vec![field], "{err}");
            assert_eq!(err.errors[0].problem, "is required");
        }
    }

    #[test]
    fn location_and_metadata_are_optional() {
        let mut reading = valid();
        reading.as_object_mut().unwrap().remove("location");
        reading.as_object_mut().unwrap().remove("metadata");
        let record = validate(&reading).unwrap();
        assert_eq!((record.location, record.metadata), (None, None));
    }

    #[test]
    fn each_out_of_range_field_is_reported() {
        let cases = [
            ("temperature", json!(150.1)),
            ("temperature", json!(-90.5)),
            ("humidity", json!(-0.1)),
            ("humidity", json!(100.5)),
            ("pressure", json!(299.0)),
            ("pressure", json!(1100.1)),
        ];
        for (field, value) in cases {
            let mut reading = valid();
            reading[field] = value.clone();
            let err = validate(&reading).unwrap_err();
            assert_eq!(fields(&err), vec![field], "{field}={value}");
            assert!(err.errors[0].problem.contains("is outside"), "{err}");
        }
        for (field, value) in [("latitude", json!(90.01)), ("longitude", json!(-180.5))] {
            let mut reading = valid();
            reading["location"][field] = value;
            let err = validate(&reading).unwrap_err();
            assert_eq!(fields(&err), vec![format!("location.{field}")]);
        }
    }

    #[test]
    fn range_edges_are_inside() {
        let mut reading = valid();
        reading["temperature"] = json!(150);
        reading["humidity"] = json!(0);
        reading["pressure"] = json!(300);
        reading["location"] = json!({"latitude": -90, "longitude": 180});
        assert!(validate(&reading).is_ok());
    }

    #[test]
    fn every_error_is_reported_in_one_pass() {
        let reading = json!({
            "device_id": "bad id!",
            "timestamp": "yesterday",
            "temperature": "hot",
            "humidity": 120,
            "location": {"latitude": 95},
            "metadata": {"version": 3}
        });
        let err = validate(&reading).unwrap_err();
        assert_eq!(
            fields(&err),
            vec![
                "device_id",
                "timestamp",
                "temperature",
                "humidity",
                "pressure",
                "location.latitude",
                "location.longitude",
                "metadata.version"
            ]
        );
    }

    #[test]
    fn device_id_alphabet_and_length_are_enforced() {
        assert!(DeviceId::parse("fleet:car_01-A").is_ok());
        assert!(DeviceId::parse(&"a".repeat(128)).is_ok());
        assert!(
            DeviceId::parse(&"a".repeat(129))
                .unwrap_err()
                .contains("longer than 128")
        );
        assert!(DeviceId::parse("car/01").unwrap_err().contains("'/'"));
        assert!(DeviceId::parse("").is_err());
    }

    #[test]
    fn timestamps_too_far_ahead_or_too_old_are_refused() {
        let mut reading = valid();
        reading["timestamp"] = json!("2026-11-25T12:06:00Z");
        assert!(
            validate(&reading).unwrap_err().errors[0]
                .problem
                .contains("in the future")
        );
        reading["timestamp"] = json!("2026-11-17T11:59:59Z");
        assert!(
            validate(&reading).unwrap_err().errors[0]
                .problem
                .contains("older than")
        );
        reading["timestamp"] = json!(1.5);
        assert!(
            validate(&reading).unwrap_err().errors[0]
                .problem
                .contains("whole number")
        );
    }

    #[test]
    fn non_object_is_refused() {
        let err = validate(&json!([1, 2])).unwrap_err();
        assert_eq!(
            err.errors,
            vec![FieldError {
                field: "$".into(),
                problem: "expected a JSON object, got an array".into()
            }]
        );
    }

    #[test]
    fn unknown_fields_are_kept_through_a_round_trip() {
        let mut reading = valid();
        reading["odometer_km"] = json!(12345.6);
        reading["tags"] = json!(["winter"]);
        let record = validate(&reading).unwrap();
        assert_eq!(record.extra.get("odometer_km"), Some(&json!(12345.6)));
        let round_trip = serde_json::to_value(&record).unwrap();
        assert_eq!(round_trip["tags"], json!(["winter"]));
        assert_eq!(round_trip["timestamp"], json!("2026-11-25T11:59:30Z"));
        let again: TelemetryRecord = serde_json::from_value(round_trip).unwrap();
        assert_eq!(again, record);
    }

    #[test]
    fn error_message_lists_every_field() {
        let mut reading = valid();
        reading["humidity"] = json!(101);
        reading["pressure"] = json!(null);
        let err = validate(&reading).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid telemetry: humidity: 101 is outside 0..=100 %; pressure: is required"
        );
    }
}

/// A validated reading with what ingest adds (design.md's processed record). The anomaly
/// fields are the stream processor's and are not set here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedRecord {
    #[serde(flatten)]
    pub reading: TelemetryRecord,
    /// Same device, timestamp and content give the same id: downstream drops duplicates by it.
    pub record_id: String,
    pub temperature_fahrenheit: f64,
    /// Hour of day of the reading, 0-23, UTC.
    pub hour: u8,
    /// ISO 8601 day of the week of the reading, 1 (Monday) to 7 (Sunday), UTC.
    pub day_of_week: u8,
    /// Saturday or Sunday, UTC.
    pub is_weekend: bool,
    /// When IoT Core received the message (the rule's `timestamp()`), RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

impl EnrichedRecord {
    pub fn new(reading: TelemetryRecord, received_at: OffsetDateTime) -> Self {
        let at = reading.timestamp;
        let day_of_week = at.weekday().number_from_monday();
        EnrichedRecord {
            record_id: record_id(&reading),
            temperature_fahrenheit: reading.temperature * 9.0 / 5.0 + 32.0,
            hour: at.hour(),
            day_of_week,
            is_weekend: day_of_week >= 6,
            received_at: received_at.to_offset(time::UtcOffset::UTC),
            reading,
        }
    }
}

/// A deterministic id: SHA-256 over the device id, the timestamp in milliseconds and the
/// reading's canonical JSON (keys sorted), as 32 hex characters. The receive time is not
/// part of it, so a retried delivery gets the same id.
pub fn record_id(reading: &TelemetryRecord) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(reading.device_id.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(reading.timestamp_ms().to_be_bytes());
    hasher.update([0]);
    // serde_json's Map is a BTreeMap here: the serialization is canonical.
    hasher.update(serde_json::to_vec(reading).unwrap_or_default());
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod enrichment_tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn reading(temperature: f64, timestamp: &str) -> TelemetryRecord {
        let value = json!({"device_id": "car-1", "timestamp": timestamp, "temperature": temperature,
            "humidity": 50, "pressure": 1000, "odometer": 5});
        TelemetryRecord::validate(
            &value,
            datetime!(2026-11-29 23:00 UTC),
            &TimestampLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn enrichment_derives_fahrenheit_and_calendar_fields_in_utc() {
        let received = datetime!(2026-11-28 21:40:05 UTC);
        let enriched = EnrichedRecord::new(reading(100.0, "2026-11-29T06:30:00+09:00"), received);
        assert_eq!(enriched.temperature_fahrenheit, 212.0);
        assert_eq!(
            (enriched.hour, enriched.day_of_week, enriched.is_weekend),
            (21, 6, true),
            "Saturday 21:30 UTC"
        );
        let weekday = EnrichedRecord::new(reading(-40.0, "2026-11-25T08:00:00Z"), received);
        assert_eq!(weekday.temperature_fahrenheit, -40.0);
        assert_eq!(
            (weekday.hour, weekday.day_of_week, weekday.is_weekend),
            (8, 3, false),
            "Wednesday"
        );
    }

    #[test]
    fn record_id_depends_on_content_not_on_receive_time() {
        let a = EnrichedRecord::new(
            reading(20.0, "2026-11-25T08:00:00Z"),
            datetime!(2026-11-25 08:00:01 UTC),
        );
        let b = EnrichedRecord::new(
            reading(20.0, "2026-11-25T08:00:00Z"),
            datetime!(2026-11-25 09:00:00 UTC),
        );
        let c = EnrichedRecord::new(
            reading(20.5, "2026-11-25T08:00:00Z"),
            datetime!(2026-11-25 08:00:01 UTC),
        );
        let d = EnrichedRecord::new(
            reading(20.0, "2026-11-25T08:00:00.001Z"),
            datetime!(2026-11-25 08:00:01 UTC),
        );
        assert_eq!(a.record_id, b.record_id, "a retry keeps its id");
        assert_ne!(a.record_id, c.record_id);
        assert_ne!(a.record_id, d.record_id);
        assert_eq!(a.record_id.len(), 32);
    }

    #[test]
    fn enriched_record_serializes_flat_with_extra_fields_kept() {
        let enriched = EnrichedRecord::new(
            reading(20.0, "2026-11-25T08:00:00Z"),
            datetime!(2026-11-25 08:00:01 UTC),
        );
        let value = serde_json::to_value(&enriched).unwrap();
        assert_eq!(value["device_id"], "car-1");
        assert_eq!(value["odometer"], 5);
        assert_eq!(value["temperature_fahrenheit"], 68.0);
        assert_eq!(value["received_at"], "2026-11-25T08:00:01Z");
        let back: EnrichedRecord = serde_json::from_value(value).unwrap();
        assert_eq!(back.record_id, enriched.record_id);
    }
}
