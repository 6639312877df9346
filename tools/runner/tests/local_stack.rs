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

/// On the MSK backend the same delivery reads the telemetry topic: the archive of that
/// wiring, run against the stack's Kafka broker, writes what the topic carries.
#[tokio::test]
async fn on_the_msk_backend_the_archive_reads_the_topic() {
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    use runner::archive::Archive;
    use runner::esm::StartAt;
    use runner::wiring::{DeliverySource, Wiring};

    let sdk = load_sdk_config(&SdkSettings::default()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let topic = env("KAFKA_TOPIC");
    let bootstrap = env("KAFKA_BOOTSTRAP_SERVERS");
    let mut template =
        stack::template::Template::parse(include_str!("../../../template.yaml")).unwrap();
    for (name, value) in [
        ("Stage", "local"),
        ("StreamBackend", "msk"),
        ("MskTopic", topic.as_str()),
        (
            "MskClusterArn",
            "arn:aws:kafka:us-east-1:123456789012:cluster/fleetwire-local/0",
        ),
    ] {
        template.set_parameter(name, value).unwrap();
    }
    let wiring = Wiring::read(&template, "fleetwire", "us-east-1", stack::LOCAL_ACCOUNT).unwrap();
    let mut delivery = wiring.deliveries[0].clone();
    assert_eq!(
        delivery.source,
        DeliverySource::Kafka {
            topic: topic.clone()
        }
    );
    delivery.bucket = env("ARCHIVE_BUCKET");

    // Three readings of one device on the topic, as the ingest produces them.
    let device = unique_id("car-msk-archive").to_lowercase();
    let now = OffsetDateTime::now_utc();
    let records: Vec<Vec<u8>> = (0..3)
        .map(|n| {
            let reading = json!({"device_id": device, "timestamp": (now.unix_timestamp() - n) * 1000,
                "temperature": 30.0 + n as f64, "humidity": 40, "pressure": 1000});
            serde_json::to_vec(&EnrichedRecord::new(
                TelemetryRecord::validate(&reading, now, &TimestampLimits::default()).unwrap(),
                now,
            ))
            .unwrap()
        })
        .collect();
    rskafka::client::ClientBuilder::new(vec![bootstrap.clone()])
        .build()
        .await
        .unwrap()
        .partition_client(topic.clone(), 0, UnknownTopicHandling::Retry)
        .await
        .unwrap()
        .produce(
            records
                .iter()
                .map(|value| rskafka::record::Record {
                    key: Some(device.clone().into_bytes()),
                    value: Some(value.clone()),
                    headers: Default::default(),
                    timestamp: rskafka::chrono::Utc::now(),
                })
                .collect(),
            Compression::NoCompression,
        )
        .await
        .unwrap();

    // From the topic's start, so the records above are read whatever else it holds.
    let archive = Archive::new(delivery, s3.clone(), "us-east-1".into()).unwrap();
    archive
        .start(
            aws_sdk_kinesis::Client::new(&sdk),
            Some(&bootstrap),
            StartAt::TrimHorizon,
        )
        .await
        .unwrap();
    let (mut last, mut still) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while still < 3 || last < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the topic was not read"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        let read = archive.status().records_read;
        still = if read == last { still + 1 } else { 0 };
        last = read;
    }
    let flushed = archive.flush().await.unwrap();
    let object = flushed.object.expect("an object was written");
    let written = objects(&s3, &env("ARCHIVE_BUCKET"), &object).await;
    let reader = SerializedFileReader::new(Bytes::from(written[0].1.clone())).unwrap();
    let temperatures: Vec<Value> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| row.unwrap().to_json_value())
        .filter(|row| row["device_id"] == json!(device))
        .map(|row| row["temperature"].clone())
        .collect();
    assert_eq!(temperatures, [json!(30.0), json!(31.0), json!(32.0)]);
}
