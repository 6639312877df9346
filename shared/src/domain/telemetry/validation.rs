//! Validation of one reading's JSON: every field error at once, unknown fields kept.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ranges;
use super::reading::*;

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
        for key in extra.keys().filter(|key| is_reserved(key)) {
            check.fail(
                key,
                "reserved: the ingest or the IoT rule writes this field, a reading may not",
            );
        }

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
}

/// Whether the processed record or the rule's event already uses `name`: a reading that
/// brought it would give the record two values under one name.
fn is_reserved(name: &str) -> bool {
    super::enrichment::ADDED_FIELDS.contains(&name)
        || [super::rule::THING_NAME, super::rule::PAYLOAD_BASE64].contains(&name)
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
mod tests;
