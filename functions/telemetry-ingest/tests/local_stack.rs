//! The ingest core with its real adapters against the local stack: 10,000 records into
//! kinesis-mock and back with none lost, and rejects in the SQS dead-letter queue.
//!
//! A stream write is at least once: when a PutRecords call outlives its attempt timeout
//! (a loaded machine, a slow shard) the SDK asks again, and the records it had already
//! written are there twice. Those copies are whole and carry the same `record_id`, which
//! the stream processor drops; the assertions below hold the stream to exactly that.
//! Run by `scripts/test` after `scripts/stack up`; without the stack they fail saying so.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetwire::adapters::{KinesisSink, SqsDeadLetters};
use fleetwire::domain::dead_letter::{DeadLetter, DeadLetterSink};
use fleetwire::domain::telemetry::TimestampLimits;
use fleetwire::ingest::config::Backend;
use fleetwire::ingest::stream::StreamSink;
use fleetwire::ingest::{Ingest, IngestConfig};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::runtime::retry::RetryPolicy;
use fleetwire::testing::{START_HINT, read_stream_devices, run_id, stack_var as var};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn config() -> IngestConfig {
    IngestConfig {
        backend: Backend::Kinesis {
            stream: var("TELEMETRY_STREAM"),
        },
        dead_letter_queue_url: var("DEAD_LETTER_QUEUE_URL"),
        max_batch: 500,
        limits: TimestampLimits::default(),
        sink_retry: RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            budget: Duration::from_secs(30),
        },
        dead_letter_retry: RetryPolicy::default(),
    }
}

async fn clients() -> (aws_sdk_kinesis::Client, aws_sdk_sqs::Client) {
    let sdk = load_sdk_config(&SdkSettings {
        max_attempts: 2,
        ..SdkSettings::default()
    })
    .await;
    (
        aws_sdk_kinesis::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
    )
}

/// 20 devices named `{prefix}-NN`, each sending 5 buffered batches of 100 readings an hour
/// old, through `ingest`; the records accepted and the stream calls made.
async fn send_ten_thousand<S: StreamSink, D: DeadLetterSink>(
    ingest: &Ingest<S, D>,
    prefix: &str,
) -> (usize, usize) {
    let now = OffsetDateTime::now_utc();
    let start_ms = (now.unix_timestamp() - 3600) * 1000;
    let (mut accepted, mut calls) = (0, 0);
    for device in 0..20 {
        let thing = format!("{prefix}-{device:02}");
        for batch in 0..5 {
            let records: Vec<Value> = (0..100)
                .map(|n| {
                    let seq = batch * 100 + n;
                    json!({"device_id": thing, "timestamp": start_ms + seq * 1000, "temperature": 20.0 + (seq % 7) as f64,
                           "humidity": 45, "pressure": 1000, "seq": seq})
                })
                .collect();
            let event = json!({"records": records, "thing_name": thing, "received_at": now.unix_timestamp() * 1000});
            let summary = telemetry_ingest::handle(ingest, &event, now)
                .await
                .unwrap_or_else(|e| panic!("{e}\n{START_HINT}"));
            assert_eq!(summary.dead_lettered, 0, "{summary:?}");
            accepted += summary.accepted;
            calls += summary.stream_calls;
        }
    }
    (accepted, calls)
}

/// The 10,000 records came back, none lost: 10,000 distinct record ids, any copy identical
/// to the record it repeats (a retried write), and each of the 20 devices' records in order
/// by first appearance (one partition key, one shard or partition).
fn assert_none_lost_in_order(found: &[Value]) {
    let mut first: BTreeMap<&str, &Value> = BTreeMap::new();
    let mut in_order: Vec<&Value> = Vec::with_capacity(found.len());
    for record in found {
        let id = record["record_id"]
            .as_str()
            .unwrap_or_else(|| panic!("a record without a record_id: {record}"));
        match first.get(id) {
            Some(original) => assert_eq!(
                *original, record,
                "a copy of {id} differs from the record it repeats"
            ),
            None => {
                first.insert(id, record);
                in_order.push(record);
            }
        }
    }
    let copies = found.len() - in_order.len();
    if copies > 0 {
        println!("{copies} records were written twice by a retried call, each whole");
    }
    assert_eq!(in_order.len(), 10_000, "every record is there");
    let mut by_device: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for record in in_order {
        by_device
            .entry(record["device_id"].as_str().unwrap())
            .or_default()
            .push(record["seq"].as_i64().unwrap());
    }
    assert_eq!(by_device.len(), 20);
    for (device, seqs) in by_device {
        assert_eq!(seqs.len(), 500, "{device}: every record of the device");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{device}: one device's records stay in order"
        );
    }
}

#[tokio::test]
async fn ten_thousand_records_reach_the_stream_none_lost() {
    let (kinesis, sqs) = clients().await;
    let config = config();
    let ingest = Ingest::new(
        KinesisSink::new(kinesis.clone(), var("TELEMETRY_STREAM"), config.sink_retry),
        SqsDeadLetters::new(sqs, var("DEAD_LETTER_QUEUE_URL"), config.dead_letter_retry),
        &config,
    );
    let run = run_id();
    let (accepted, calls) = send_ten_thousand(&ingest, &format!("it-{run}")).await;
    assert_eq!(accepted, 10_000);
    println!("10,000 records in {calls} PutRecords calls");
    let found =
        read_stream_devices(&kinesis, &var("TELEMETRY_STREAM"), &format!("it-{run}-")).await;
    assert_none_lost_in_order(&found);
}

#[tokio::test]
async fn rejects_are_in_the_dead_letter_queue_with_their_reasons() {
    let (kinesis, sqs) = clients().await;
    let config = config();
    let run = run_id();
    // A queue of this test's own: the stack's dead-letter queue also gets what the local
    // runner's stream processor refuses of every other test's records.
    let queue = sqs
        .create_queue()
        .queue_name(format!("dead-letters-{run}"))
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .expect("a queue URL")
        .to_owned();
    let ingest = Ingest::new(
        KinesisSink::new(kinesis, var("TELEMETRY_STREAM"), config.sink_retry),
        SqsDeadLetters::new(sqs.clone(), queue.clone(), config.dead_letter_retry),
        &config,
    );
    let thing = format!("dlq-{run}");
    let now = OffsetDateTime::now_utc();
    let ms = now.unix_timestamp() * 1000;
    let event = json!({
        "records": [
            {"device_id": thing, "timestamp": ms, "temperature": 21, "humidity": 40, "pressure": 1000},
            {"device_id": thing, "timestamp": ms, "temperature": 999, "humidity": 40, "pressure": 1000},
            {"device_id": format!("other-{run}"), "timestamp": ms, "temperature": 21, "humidity": 40, "pressure": 1000},
        ],
        "thing_name": thing, "received_at": ms
    });
    let summary = telemetry_ingest::handle(&ingest, &event, now)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{START_HINT}"));
    assert_eq!((summary.accepted, summary.dead_lettered), (1, 2));

    let mut reasons = BTreeMap::new();
    for _ in 0..20 {
        let page = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for message in page.messages() {
            let letter: DeadLetter =
                serde_json::from_str(message.body().unwrap_or_default()).expect("a dead letter");
            if letter.topic.as_deref() == Some(&format!("fleet/{thing}/telemetry")) {
                reasons.insert(letter.reason.clone(), letter.errors.clone());
            }
        }
        if reasons.len() == 2 {
            break;
        }
    }
    assert_eq!(
        reasons.keys().collect::<Vec<_>>(),
        vec!["spoofed", "validation"]
    );
    assert!(
        reasons["validation"][0].starts_with("temperature: 999"),
        "{:?}",
        reasons["validation"]
    );
}

/// Every record in the Kafka topic whose device id starts with `prefix`.
async fn read_topic(prefix: &str) -> Vec<Value> {
    use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
    let client = rskafka::client::ClientBuilder::new(vec![var("KAFKA_BOOTSTRAP_SERVERS")])
        .build()
        .await
        .expect("kafka client");
    let topic = var("KAFKA_TOPIC");
    let partitions = client
        .list_topics()
        .await
        .expect("topics")
        .into_iter()
        .find(|t| t.name == topic)
        .expect("topic")
        .partitions;
    let mut found = Vec::new();
    for partition in partitions {
        let reader = client
            .partition_client(topic.clone(), partition, UnknownTopicHandling::Error)
            .await
            .expect("partition");
        let mut offset = reader
            .get_offset(OffsetAt::Earliest)
            .await
            .expect("earliest");
        loop {
            let (records, high_watermark) = reader
                .fetch_records(offset, 1..5_000_000, 1_000)
                .await
                .expect("fetch");
            for record in &records {
                let value: Value = record
                    .record
                    .value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice(v).ok())
                    .unwrap_or(Value::Null);
                if value["device_id"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(prefix))
                {
                    found.push(value);
                }
                offset = record.offset + 1;
            }
            // The high watermark, not ListOffsets(Latest), tells when the partition is read.
            if records.is_empty() || offset >= high_watermark {
                break;
            }
        }
    }
    found
}

#[tokio::test]
async fn ten_thousand_records_reach_the_kafka_topic_none_lost() {
    let (_, sqs) = clients().await;
    let sdk = load_sdk_config(&SdkSettings::default()).await;
    let config = config();
    let sink = fleetwire::adapters::KafkaSink::connect(
        vec![var("KAFKA_BOOTSTRAP_SERVERS")],
        &var("KAFKA_TOPIC"),
        fleetwire::adapters::KafkaAuth::Plaintext,
        &sdk,
        config.sink_retry,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{START_HINT}"));
    assert!(
        sink.partition_count() >= 2,
        "the local topic has several partitions"
    );
    let ingest = Ingest::new(
        sink,
        SqsDeadLetters::new(sqs, var("DEAD_LETTER_QUEUE_URL"), config.dead_letter_retry),
        &config,
    );
    let run = run_id();
    let (accepted, _) = send_ten_thousand(&ingest, &format!("kf-{run}")).await;
    assert_eq!(accepted, 10_000);
    let found = read_topic(&format!("kf-{run}-")).await;
    assert_none_lost_in_order(&found);
}
