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
    assert!(
        DeviceId::parse("claim-SN-0001")
            .unwrap_err()
            .contains("claimants"),
        "the claimants' client ids are no thing names"
    );
    assert!(DeviceId::parse("car-claim-1").is_ok());
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
fn a_reading_may_not_bring_a_field_the_ingest_or_the_rule_writes() {
    let mut reading = valid();
    reading["thing_name"] = json!("car-2");
    reading["received_at"] = json!(0);
    reading["record_id"] = json!("0123");
    let errors = validate(&reading).unwrap_err().errors;
    let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["received_at", "record_id", "thing_name"]);
    assert!(errors.iter().all(|e| e.problem.starts_with("reserved")));
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

/// The validator against anything a device could send: a valid reading with one part
/// changed into any JSON, and any JSON at all.
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::fuzz::{assert_names_the_field, json_value, near};

    proptest! {
        #[test]
        fn a_changed_reading_is_valid_or_names_what_is_wrong((reading, keys) in near(valid())) {
            if let Err(error) = validate(&reading) {
                prop_assert!(!error.errors.is_empty());
                assert_names_the_field(&error.to_string(), &keys);
            }
        }

        #[test]
        fn any_json_is_validated_or_refused_without_a_panic(reading in json_value()) {
            if let Err(error) = validate(&reading) {
                prop_assert!(error.errors.iter().all(|e| !e.field.is_empty() && !e.problem.is_empty()));
            }
        }
    }
}
