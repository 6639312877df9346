//! The archive's conversion read back with the parquet crate's own reader, its prefixes,
//! and what it reads from the project's template.

use std::collections::BTreeMap;

use bytes::Bytes;
use fleetwire::domain::telemetry::{EnrichedRecord, TelemetryRecord, TimestampLimits};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

use super::convert::{Column, ColumnType, Converted, Converter};
use super::prefix;
use crate::wiring::DeliverySource;

/// The archive table's columns as the project's template declares them.
fn project_columns() -> Vec<Column> {
    let wiring = crate::wiring::project(&[("Stage", "local")]);
    let [delivery] = &wiring.deliveries[..] else {
        panic!("one delivery stream: {:?}", wiring.deliveries);
    };
    delivery.columns.clone()
}

/// A processed record as the ingest writes it to the stream.
fn ingested(device: &str, temperature: f64) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    let reading = json!({"device_id": device, "timestamp": now.unix_timestamp() * 1000,
        "temperature": temperature, "humidity": 40.0, "pressure": 1012.0,
        "location": {"latitude": 37.5665, "longitude": 126.978},
        "metadata": {"version": "1.4.2", "source": "obd2"}});
    let reading = TelemetryRecord::validate(&reading, now, &TimestampLimits::default()).unwrap();
    serde_json::to_vec(&EnrichedRecord::new(reading, now)).unwrap()
}

/// Every row of a Parquet file, as JSON.
fn rows(file: Vec<u8>) -> Vec<Value> {
    let reader = SerializedFileReader::new(Bytes::from(file)).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| row.unwrap().to_json_value())
        .collect()
}

#[test]
fn the_ingests_records_convert_with_the_templates_table_and_bad_ones_fail_alone() {
    let converter = Converter::new(project_columns()).unwrap();
    let good = ingested("car-0001", 21.5);
    let original: Value = serde_json::from_slice(&good).unwrap();
    let wrong_type = br#"{"device_id": "car-0002", "temperature": "hot"}"#;
    let records: Vec<&[u8]> = vec![&good, b"not json", wrong_type, b"[1, 2]"];
    let Converted {
        parquet: file,
        failed,
    } = converter.convert(&records).unwrap();
    let reasons: Vec<(usize, &str)> = failed.iter().map(|(i, e)| (*i, e.0.as_str())).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].1.contains("not JSON"), "{reasons:?}");
    assert_eq!(
        reasons[1],
        (2, "temperature: expected a number, found \"hot\"")
    );
    assert!(reasons[2].1.contains("not a JSON object"), "{reasons:?}");

    let rows = rows(file.expect("the good record is written"));
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    for key in ["device_id", "timestamp", "record_id", "received_at"] {
        assert_eq!(row[key], original[key], "{key}");
    }
    assert_eq!(row["temperature"], json!(21.5));
    assert_eq!(row["location"]["latitude"], json!(37.5665));
    assert_eq!(row["metadata"]["source"], json!("obd2"));
    // The JSON key "hour" fills the column hour_of_day (ColumnToJsonKeyMappings).
    assert_eq!(row["hour_of_day"], original["hour"]);
    assert_eq!(row["is_weekend"], original["is_weekend"]);
}

#[test]
fn absent_and_null_values_are_nulls_at_the_level_they_stop() {
    let columns = vec![
        Column {
            name: "id".into(),
            json_key: "id".into(),
            kind: ColumnType::String,
        },
        Column {
            name: "where".into(),
            json_key: "where".into(),
            kind: ColumnType::parse("struct<lat:double,tags:struct<a:int,b:boolean>>").unwrap(),
        },
        Column {
            name: "n".into(),
            json_key: "n".into(),
            kind: ColumnType::BigInt,
        },
    ];
    let converter = Converter::new(columns).unwrap();
    let records: Vec<&[u8]> = vec![
        br#"{"ID": "upper", "where": {"lat": 1.5, "tags": {"a": 7}}, "n": 9000000000}"#,
        br#"{"id": "none", "where": null}"#,
        br#"{"id": "part", "where": {"tags": {"b": true}}, "extra": 1}"#,
    ];
    let Converted {
        parquet: file,
        failed,
    } = converter.convert(&records).unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    let rows = rows(file.unwrap());
    assert_eq!(
        rows,
        vec![
            json!({"id": "upper", "where": {"lat": 1.5, "tags": {"a": 7, "b": null}}, "n": 9_000_000_000i64}),
            json!({"id": "none", "where": null, "n": null}),
            json!({"id": "part", "where": {"lat": null, "tags": {"a": null, "b": true}}, "n": null}),
        ]
    );
    assert!(ColumnType::parse("array<int>").is_err());
    assert!(ColumnType::parse("map<string,int>").is_err());
    let Converted {
        parquet: none,
        failed,
    } = converter.convert(&[b"{\"n\": 1.5}"]).unwrap();
    assert!(none.is_none(), "nothing converted, no object");
    assert_eq!(failed[0].1.0, "n: expected a 64-bit integer, found 1.5");
}

#[test]
fn prefixes_evaluate_as_firehose_does_and_unknown_expressions_are_refused() {
    let at = datetime!(2026-12-07 09:05:03 UTC);
    assert_eq!(
        prefix::evaluate(
            "telemetry/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/",
            at,
            ""
        )
        .unwrap(),
        "telemetry/year=2026/month=12/day=07/hour=09/"
    );
    assert_eq!(
        prefix::evaluate(
            "errors/!{firehose:error-output-type}/!{timestamp:yyyy-MM-dd-HH-mm-ss}",
            at,
            prefix::FORMAT_CONVERSION_FAILED
        )
        .unwrap(),
        "errors/format-conversion-failed/2026-12-07-09-05-03"
    );
    assert!(prefix::check("x/!{partitionKeyFromQuery:device}/").is_err());
    assert!(prefix::check("x/!{timestamp:EEE}/").is_err());
    assert!(prefix::check("x/!{timestamp:yyyy").is_err());
}

#[test]
fn the_project_delivery_is_read_from_the_template() {
    let wiring = crate::wiring::project(&[("Stage", "local"), ("ArchiveBufferSeconds", "60")]);
    let delivery = &wiring.deliveries[0];
    assert_eq!(delivery.name, "fleetwire-local-archive");
    assert_eq!(delivery.buffer_seconds, 60);
    assert_eq!(delivery.buffer_bytes, 64 * 1024 * 1024);
    assert!(delivery.prefix.starts_with("telemetry/year="));
    let keys: BTreeMap<&str, &str> = delivery
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.json_key.as_str()))
        .collect();
    assert_eq!(keys["hour_of_day"], "hour");
    assert_eq!(keys["device_id"], "device_id");
    assert_eq!(
        delivery.source,
        DeliverySource::Kinesis {
            stream: "fleetwire-local-telemetry".into()
        }
    );
    let msk = crate::wiring::project(&[
        ("Stage", "local"),
        ("StreamBackend", "msk"),
        ("MskTopic", "fleet-telemetry"),
        (
            "MskClusterArn",
            "arn:aws:kafka:us-east-1:123456789012:cluster/fleet/0",
        ),
    ]);
    assert_eq!(
        msk.deliveries[0].source,
        DeliverySource::Kafka {
            topic: "fleet-telemetry".into()
        },
        "on MSK the archive reads the topic"
    );
    assert_eq!(msk.deliveries[0].columns, delivery.columns);
}
