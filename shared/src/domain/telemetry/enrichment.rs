//! What the ingest adds to a valid reading: the processed record of the stream.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::reading::*;

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

/// The fields [`EnrichedRecord`] adds to a reading, as they serialize.
pub const ADDED_FIELDS: [&str; 6] = [
    "record_id",
    "temperature_fahrenheit",
    "hour",
    "day_of_week",
    "is_weekend",
    "received_at",
];

/// A deterministic id: SHA-256 over the device id, the timestamp in milliseconds and the
/// reading's canonical JSON (every object's keys sorted), as 32 hex characters. The receive
/// time is not part of it, so a retried delivery gets the same id, and neither is the order
/// the sender wrote its keys in, so the same reading relayed by another path does too.
/// Sorting is explicit: serde_json keeps insertion order in this workspace (the AWS SDK's
/// HTTP client turns on its `preserve_order` feature), so its plain output is not canonical.
pub fn record_id(reading: &TelemetryRecord) -> String {
    use sha2::{Digest, Sha256};
    let mut canonical = serde_json::to_value(reading).unwrap_or_default();
    canonical.sort_all_objects();
    let mut hasher = Sha256::new();
    hasher.update(reading.device_id.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(reading.timestamp_ms().to_be_bytes());
    hasher.update([0]);
    hasher.update(canonical.to_string());
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

    #[test]
    fn the_record_id_does_not_depend_on_the_order_the_sender_wrote_its_keys_in() {
        let written = |text: &str| {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            TelemetryRecord::validate(
                &value,
                datetime!(2026-11-25 08:00:05 UTC),
                &TimestampLimits::default(),
            )
            .unwrap()
        };
        let one = written(
            r#"{"device_id":"car-1","timestamp":"2026-11-25T08:00:00Z","temperature":20,"humidity":40,"pressure":1000,"odometer":5,"tags":{"b":1,"a":2}}"#,
        );
        let other = written(
            r#"{"tags":{"a":2,"b":1},"odometer":5,"pressure":1000,"humidity":40,"temperature":20,"timestamp":"2026-11-25T08:00:00Z","device_id":"car-1"}"#,
        );
        assert_eq!(record_id(&one), record_id(&other));
    }

    #[test]
    fn added_fields_name_exactly_what_enrichment_adds() {
        let plain = reading(20.0, "2026-11-25T08:00:00Z");
        let reading_keys = serde_json::to_value(&plain).unwrap();
        let enriched = serde_json::to_value(EnrichedRecord::new(
            plain,
            datetime!(2026-11-25 08:00:01 UTC),
        ))
        .unwrap();
        let mut added: Vec<&str> = enriched
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| reading_keys.get(k.as_str()).is_none())
            .map(String::as_str)
            .collect();
        added.sort_unstable();
        let mut declared = ADDED_FIELDS.to_vec();
        declared.sort_unstable();
        assert_eq!(added, declared);
    }
}
