//! The local archive against the stack of `scripts/stack up`: records put on the stream
//! come out of the archive bucket as Parquet rows, and a record that cannot be converted
//! comes out under the error prefix.

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use fleetwire::domain::telemetry::{EnrichedRecord, TelemetryRecord, TimestampLimits};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::testing::stack_var as env;
use fleetwire::testing::unique_id;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{Value, json};
use time::OffsetDateTime;

async fn runner(method: http::Method, path: &str) -> Value {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!(
            "http://127.0.0.1:{}{path}",
            env("FLEETWIRE_IOT_DATA_PORT")
        ))
        .body(Empty::new())
        .unwrap();
    let answer = client.request(request).await.unwrap();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

fn records_read(status: &Value) -> u64 {
    status["archive"][0]["records_read"].as_u64().unwrap()
}

/// Every object under `prefix`, by key.
async fn objects(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            let key = object.key().unwrap().to_owned();
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            found.push((key, body.body.collect().await.unwrap().to_vec()));
        }
    }
    found
}

#[tokio::test]
async fn what_the_stream_carries_lands_in_the_archive_as_parquet_by_the_hour() {
    let sdk = load_sdk_config(&SdkSettings::default()).await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let stream = env("TELEMETRY_STREAM");
    let bucket = env("ARCHIVE_BUCKET");
    let before = records_read(&runner(http::Method::GET, "/runner/status").await);

    let device = unique_id("car-archive").to_lowercase();
    let now = OffsetDateTime::now_utc();
    let mut sent = Vec::new();
    for n in 0..5 {
        let reading = json!({"device_id": device, "timestamp": (now.unix_timestamp() - n) * 1000,
            "temperature": 20.0 + n as f64, "humidity": 40, "pressure": 1000,
            "location": {"latitude": 37.5, "longitude": 127.0}});
        let record = EnrichedRecord::new(
            TelemetryRecord::validate(&reading, now, &TimestampLimits::default()).unwrap(),
            now,
        );
        sent.push(serde_json::to_value(&record).unwrap());
    }
    let broken = format!(r#"{{"device_id": "{device}", "temperature": "warm"}}"#);
    let mut request = kinesis.put_records().stream_name(&stream);
    for record in &sent {
        request = request.records(
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .partition_key(&device)
                .data(Blob::new(serde_json::to_vec(record).unwrap()))
                .build()
                .unwrap(),
        );
    }
    request = request.records(
        aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
            .partition_key(&device)
            .data(Blob::new(broken.clone()))
            .build()
            .unwrap(),
    );
    let put = request.send().await.unwrap();
    assert_eq!(put.failed_record_count, Some(0));

    // The archive reads the stream once a second; wait until it has our six records.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while records_read(&runner(http::Method::GET, "/runner/status").await) < before + 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the archive did not read the records"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let flushed = runner(http::Method::POST, "/runner/archive/flush").await;
    let object = flushed["flushed"][0]["object"].as_str().unwrap().to_owned();
    // Under the hour of the oldest record of the object (which may hold other traffic),
    // named as Firehose names objects.
    assert!(
        object.starts_with("telemetry/year=")
            && object.contains("/hour=")
            && object.contains("/fleetwire-local-archive-1-"),
        "{object}"
    );

    let written = objects(&s3, &bucket, &object).await;
    let reader = SerializedFileReader::new(Bytes::from(written[0].1.clone())).unwrap();
    let rows: Vec<Value> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| row.unwrap().to_json_value())
        .filter(|row| row["device_id"] == json!(device))
        .collect();
    assert_eq!(rows.len(), 5, "every good record, once: {rows:?}");
    for (row, record) in rows.iter().zip(&sent) {
        assert_eq!(row["record_id"], record["record_id"]);
        assert_eq!(row["temperature"], record["temperature"]);
        assert_eq!(row["hour_of_day"], record["hour"]);
    }

    let error_object = flushed["flushed"][0]["error_object"].as_str().unwrap();
    assert!(
        error_object.starts_with("errors/format-conversion-failed/"),
        "{error_object}"
    );
    let errors = objects(&s3, &bucket, error_object).await;
    let documents: Vec<Value> = String::from_utf8(errors[0].1.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let ours = documents
        .iter()
        .find(|d| BASE64.decode(d["rawData"].as_str().unwrap()).unwrap() == broken.as_bytes())
        .expect("the broken record is kept whole under the error prefix");
    assert_eq!(
        ours["ErrorMessage"],
        "temperature: expected a number, found \"warm\""
    );
}
