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
    let mut hasher = Sha256::new();
    hasher.update(reading.device_id.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(reading.timestamp_ms().to_be_bytes());
    hasher.update([0]);
    // The canonical JSON is written straight into the hash: the bytes of
    // `to_value(reading)` with its objects sorted, without building that tree.
    if serde_json::to_writer(HashWriter(&mut hasher), &canonical::Reading(reading)).is_err() {
        // Only a timestamp `time` cannot write as RFC 3339 gets here; validation refuses
        // those, and the hash of what was written is still deterministic.
        hasher.update([0xff]);
    }
    let digest = hasher.finalize();
    let mut id = String::with_capacity(32);
    for byte in &digest[..16] {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes written into a SHA-256.
struct HashWriter<'a>(&'a mut sha2::Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(self.0, bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reading as canonical JSON: every object's keys in byte order, the known fields and
/// the kept unknown ones interleaved as `sort_all_objects` would put them.
mod canonical {
    use serde::ser::{Error, SerializeMap};
    use serde::{Serialize, Serializer};
    use serde_json::Value;
    use time::format_description::well_known::Rfc3339;

    use super::super::reading::{Location, Metadata, TelemetryRecord};

    pub(super) struct Reading<'a>(pub &'a TelemetryRecord);

    enum Field<'a> {
        Text(&'a str),
        Timestamp,
        Number(f64),
        Location(&'a Location),
        Metadata(&'a Metadata),
    }

    impl Serialize for Reading<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let r = self.0;
            // The known fields in byte order, merged with the kept unknown ones (which
            // never share a name with them: validation sets those apart).
            let mut known: Vec<(&str, Field<'_>)> = Vec::with_capacity(7);
            known.push(("device_id", Field::Text(r.device_id.as_str())));
            known.push(("humidity", Field::Number(r.humidity)));
            if let Some(location) = &r.location {
                known.push(("location", Field::Location(location)));
            }
            if let Some(metadata) = &r.metadata {
                known.push(("metadata", Field::Metadata(metadata)));
            }
            known.push(("pressure", Field::Number(r.pressure)));
            known.push(("temperature", Field::Number(r.temperature)));
            known.push(("timestamp", Field::Timestamp));
            let mut extra: Vec<(&str, &Value)> =
                r.extra.iter().map(|(k, v)| (k.as_str(), v)).collect();
            extra.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let mut map = serializer.serialize_map(Some(known.len() + extra.len()))?;
            let mut extra = extra.into_iter().peekable();
            for (key, field) in known {
                while let Some((name, value)) = extra.next_if(|(name, _)| *name < key) {
                    map.serialize_entry(name, &Sorted(value))?;
                }
                match field {
                    Field::Text(text) => map.serialize_entry(key, text)?,
                    Field::Timestamp => {
                        let text = r.timestamp.format(&Rfc3339).map_err(S::Error::custom)?;
                        map.serialize_entry(key, &text)?
                    }
                    Field::Number(n) => map.serialize_entry(key, &n)?,
                    Field::Location(l) => map.serialize_entry(key, &SortedLocation(l))?,
                    Field::Metadata(m) => map.serialize_entry(key, &SortedMetadata(m))?,
                }
            }
            for (name, value) in extra {
                map.serialize_entry(name, &Sorted(value))?;
            }
            map.end()
        }
    }

    struct SortedLocation<'a>(&'a Location);

    impl Serialize for SortedLocation<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(2))?;
            map.serialize_entry("latitude", &self.0.latitude)?;
            map.serialize_entry("longitude", &self.0.longitude)?;
            map.end()
        }
    }

    struct SortedMetadata<'a>(&'a Metadata);

    impl Serialize for SortedMetadata<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let m = self.0;
            let count = usize::from(m.source.is_some()) + usize::from(m.version.is_some());
            let mut map = serializer.serialize_map(Some(count))?;
            if let Some(source) = &m.source {
                map.serialize_entry("source", source)?;
            }
            if let Some(version) = &m.version {
                map.serialize_entry("version", version)?;
            }
            map.end()
        }
    }

    /// A JSON value with every object's keys sorted, at any depth.
    struct Sorted<'a>(&'a Value);

    impl Serialize for Sorted<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Value::Object(object) => {
                    let mut keys: Vec<&String> = object.keys().collect();
                    keys.sort_unstable();
                    let mut map = serializer.serialize_map(Some(keys.len()))?;
                    for key in keys {
                        map.serialize_entry(key, &Sorted(&object[key]))?;
                    }
                    map.end()
                }
                Value::Array(items) => serializer.collect_seq(items.iter().map(Sorted)),
                other => other.serialize(serializer),
            }
        }
    }
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

    /// The id as it was first defined: the reading turned into a JSON tree, every object
    /// sorted, written out. Ids already stored (the processor's seen-marks) were made so,
    /// and the direct writer must give the same bytes for every reading.
    fn record_id_through_a_tree(reading: &TelemetryRecord) -> String {
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

    proptest::proptest! {
        #[test]
        fn the_id_is_the_one_the_json_tree_gives(
            (changed, _) in crate::testing::fuzz::near(json!({
                "device_id": "car-1", "timestamp": "2026-11-25T08:00:00.125+09:00",
                "temperature": 20.5, "humidity": 40, "pressure": 1000.25,
                "location": {"longitude": 126.978, "latitude": 37.5665},
                "metadata": {"version": "1.4.2", "source": "obd2"},
                "odometer": 5, "tags": {"b": [1, {"z": 2, "a": null}], "a": "é"}
            }))
        ) {
            if let Ok(reading) = TelemetryRecord::validate(
                &changed,
                datetime!(2026-11-25 00:00:05 UTC),
                &TimestampLimits::default(),
            ) {
                proptest::prop_assert_eq!(record_id(&reading), record_id_through_a_tree(&reading));
            }
        }

        #[test]
        fn unknown_fields_take_their_place_among_the_known_ones(
            extra in proptest::collection::btree_map("[a-z_]{1,12}", crate::testing::fuzz::json_value(), 0..6)
        ) {
            let mut value = json!({"device_id": "car-1", "timestamp": "2026-11-25T08:00:00Z",
                "temperature": 20.5, "humidity": 40, "pressure": 1000.25,
                "location": {"latitude": 1.5, "longitude": 2.5}, "metadata": {"source": "obd2"}});
            for (key, field) in extra {
                value[key.as_str()] = field;
            }
            if let Ok(reading) = TelemetryRecord::validate(
                &value,
                datetime!(2026-11-25 08:00:05 UTC),
                &TimestampLimits::default(),
            ) {
                proptest::prop_assert_eq!(record_id(&reading), record_id_through_a_tree(&reading));
            }
        }
    }
}
