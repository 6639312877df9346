//! The mappings' batch logic against a fake function and a recording queue.

use super::delivery::first_failed;
use super::kafka::{kafka_failure_info, kafka_item};
use super::kinesis::KinesisSource;
use super::*;
use fleetwire::runtime::kafka_event::KafkaRecord;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::wiring::{Function, Mapping, Source};

fn items(positions: &[&str]) -> Vec<Item> {
    positions
        .iter()
        .map(|p| Item {
            position: p.to_string(),
            event: Value::Null,
            arrived: OffsetDateTime::now_utc(),
        })
        .collect()
}

#[test]
fn kinesis_events_parse_as_lambdas_own_event_type() {
    let source = KinesisSource {
        shard: "shardId-000000000000",
        stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        region: "us-east-1",
        function_name: "f",
    };
    let arrived = OffsetDateTime::from_unix_timestamp_nanos(1_796_114_069_216_123_456).unwrap();
    let item = source.item("4968", "car-1", b"{}", arrived);
    let event: aws_lambda_events::event::kinesis::KinesisEvent =
        serde_json::from_value(json!({"Records": [item.event]})).unwrap();
    let record = &event.records[0];
    assert_eq!(record.kinesis.partition_key, "car-1");
    assert_eq!(record.kinesis.data.0, b"{}");
    assert_eq!(
        record
            .kinesis
            .approximate_arrival_timestamp
            .0
            .timestamp_millis(),
        1_796_114_069_216
    );
}

#[test]
fn kafka_events_parse_as_lambdas_own_event_type() {
    let headers = BTreeMap::from([("trace".to_string(), vec![1u8, 200])]);
    let item = kafka_item(&KafkaRecord {
        topic: "t".into(),
        partition: 2,
        offset: 15,
        timestamp_millis: 1_796_114_069_216,
        key: Some(b"car-1".to_vec()),
        value: Some(b"{}".to_vec()),
        headers,
    });
    let event: aws_lambda_events::event::kafka::KafkaEvent = serde_json::from_value(json!({
        "eventSource": "aws:kafka", "eventSourceArn": "arn", "bootstrapServers": "b:9092",
        "records": {"t-2": [item.event]}
    }))
    .unwrap();
    let record = &event.records["t-2"][0];
    assert_eq!(record.offset, 15);
    assert_eq!(record.value.as_deref(), Some("e30="));
    assert_eq!(item.position, "15");
}

/// The keys of a JSON document, nested, with every `recordsInfo` partition named `P`.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("recordsInfo", Value::Object(partitions)) => (
                        k.clone(),
                        json!({"P": partitions.values().next().map(shape)}),
                    ),
                    _ => (k.clone(), shape(v)),
                })
                .collect(),
        ),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        other => other.clone(),
    }
}

#[test]
fn a_given_up_kafka_batch_is_recorded_in_the_shape_aws_documents() {
    let example: Value = serde_json::from_str(include_str!(
        "../../../../events/aws-examples/kafka-on-failure-record.json"
    ))
    .unwrap();
    let record = |offset| {
        kafka_item(&KafkaRecord {
            topic: "fleet-telemetry".into(),
            partition: 1,
            offset,
            timestamp_millis: 1_573_691_884_835,
            key: None,
            value: Some(b"{}".to_vec()),
            headers: BTreeMap::new(),
        })
    };
    let info = kafka_failure_info(
        "arn:aws:kafka:us-east-1:1:cluster/c/x",
        "127.0.0.1:9092",
        "fleet-telemetry-1",
        &[record(40), record(41)],
        512,
    );
    assert_eq!(
        shape(&info["KafkaBatchInfo"]),
        shape(&example["KafkaBatchInfo"])
    );
    let partition = &info["KafkaBatchInfo"]["recordsInfo"]["fleet-telemetry-1"];
    assert_eq!(partition["firstRecordOffset"], "40");
    assert_eq!(partition["lastRecordOffset"], "41");
    assert_eq!(
        partition["firstRecordTimestamp"],
        "2019-11-14T00:38:04.835Z"
    );
    assert_eq!(info["KafkaBatchInfo"]["batchSize"], 2);
}

/// The positions of an event's records: Kinesis sequence numbers, or Kafka offsets.
fn positions_of(event: &Value) -> Vec<String> {
    if let Some(records) = event["Records"].as_array() {
        return records
            .iter()
            .map(|r| r["kinesis"]["sequenceNumber"].as_str().unwrap().to_owned())
            .collect();
    }
    event["records"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|records| records.as_array().unwrap())
        .map(|r| r["offset"].as_i64().unwrap().to_string())
        .collect()
}

/// A stand-in for `cargo lambda watch` in these unit tests: records every batch of
/// positions (sequence numbers or offsets) it is invoked with and answers with
/// `answer(batch)`.
async fn fake_lambda(
    answer: impl Fn(&[String]) -> (u16, Value) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
    use http_body_util::{BodyExt, Full};
    let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    let seen = calls.clone();
    tokio::spawn(crate::http::serve(listener, move |request, _| {
        let answer = answer.clone();
        let seen = seen.clone();
        async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let event: Value = serde_json::from_slice(&body).unwrap();
            let batch = positions_of(&event);
            seen.lock().unwrap().push(batch.clone());
            let (status, value) = answer(&batch);
            http::Response::builder()
                .status(status)
                .body(Full::new(bytes::Bytes::from(value.to_string())))
                .unwrap()
        }
    }));
    (format!("http://{address}"), calls)
}

/// An SQS client that knows one queue and keeps what is sent to it.
fn recording_queue() -> (Queues, Arc<Mutex<Vec<String>>>) {
    use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput;
    use aws_sdk_sqs::operation::send_message::SendMessageOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let url = mock!(aws_sdk_sqs::Client::get_queue_url).then_output(|| {
        GetQueueUrlOutput::builder()
            .queue_url("http://sqs/failed")
            .build()
    });
    let keep = sent.clone();
    let send = mock!(aws_sdk_sqs::Client::send_message)
        .match_requests(move |input| {
            keep.lock()
                .unwrap()
                .push(input.message_body().unwrap_or_default().to_owned());
            true
        })
        .then_output(|| SendMessageOutput::builder().build());
    (
        Queues::new(mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &send])),
        sent,
    )
}

fn mapping(bisect: bool, retries: i64) -> Mapping {
    Mapping {
        logical_id: "M".into(),
        function: "F".into(),
        source: Source::Kinesis {
            stream: "s".into(),
            arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s".into(),
        },
        batch_size: 100,
        batching_window_seconds: 0,
        report_batch_item_failures: true,
        bisect_on_error: bisect,
        maximum_retry_attempts: retries,
        maximum_record_age_seconds: -1,
        on_failure_queue: Some("failed".into()),
    }
}

/// Delivers `items` as the mapping would, with the Lambda at `lambda`.
async fn deliver_items(
    lambda: &str,
    queues: Queues,
    mapping: &Mapping,
    items: Vec<Item>,
    shape: &BatchShape<'_>,
) -> EsmStatus {
    let esm = Esm {
        invoker: Invoker::new(lambda, Duration::from_secs(5), 1),
        queues,
        status: EsmStatus::default(),
        region: "us-east-1".into(),
        retry_wait: Duration::from_millis(1),
    };
    let function = Function {
        logical_id: "F".into(),
        binary: "f".into(),
        name: "f".into(),
        arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        async_retries: 2,
        max_event_age: Duration::from_secs(21_600),
        on_failure_queue: None,
    };
    esm.deliver("M/shard", mapping, &function, items, shape)
        .await;
    esm.status
}

/// Delivers Kinesis records of these sequence numbers.
async fn deliver(lambda: &str, queues: Queues, mapping: &Mapping, positions: &[&str]) -> EsmStatus {
    let source = KinesisSource {
        shard: "shardId-000000000000",
        stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        region: "us-east-1",
        function_name: "f",
    };
    let items: Vec<Item> = positions
        .iter()
        .map(|p| source.item(p, "car-1", b"{}", OffsetDateTime::now_utc()))
        .collect();
    let event_of = |items: &[Item]| json!({"Records": items.iter().map(|i| i.event.clone()).collect::<Vec<_>>()});
    let info = |items: &[Item], _| json!({"KinesisBatchInfo": {"batchSize": items.len(), "startSequenceNumber": items[0].position}});
    let shape = BatchShape {
        event_of: &event_of,
        failure_info: &info,
        naming: ItemNaming::Sequence,
    };
    deliver_items(lambda, queues, mapping, items, &shape).await
}

/// Delivers Kafka records of partition `fleet-telemetry-0` at these offsets.
async fn deliver_kafka(
    lambda: &str,
    queues: Queues,
    mapping: &Mapping,
    offsets: &[i64],
) -> EsmStatus {
    let items: Vec<Item> = offsets
        .iter()
        .map(|&offset| {
            kafka_item(&KafkaRecord {
                topic: "fleet-telemetry".into(),
                partition: 0,
                offset,
                timestamp_millis: OffsetDateTime::now_utc().unix_timestamp() * 1000,
                key: None,
                value: Some(b"{}".to_vec()),
                headers: BTreeMap::new(),
            })
        })
        .collect();
    let event_of = |items: &[Item]| {
        json!({"eventSource": "aws:kafka", "records": {
            "fleet-telemetry-0": items.iter().map(|i| i.event.clone()).collect::<Vec<_>>()}})
    };
    let info = |items: &[Item], _| json!({"KafkaBatchInfo": {"batchSize": items.len()}});
    let shape = BatchShape {
        event_of: &event_of,
        failure_info: &info,
        naming: ItemNaming::KafkaOffset {
            partition: "fleet-telemetry-0".into(),
        },
    };
    deliver_items(lambda, queues, mapping, items, &shape).await
}

fn seqs(batches: &[Vec<String>]) -> Vec<Vec<&str>> {
    batches
        .iter()
        .map(|b| b.iter().map(String::as_str).collect())
        .collect()
}

#[tokio::test]
async fn a_partial_batch_response_retries_from_the_first_failed_record_only() {
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (lambda, calls) = fake_lambda(move |_| {
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            (
                200,
                json!({"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": "12"}]}),
            )
        } else {
            (200, json!({"batchItemFailures": []}))
        }
    })
    .await;
    let (queues, sent) = recording_queue();
    let status = deliver(
        &lambda,
        queues,
        &mapping(true, 3),
        &["10", "11", "12", "13"],
    )
    .await;
    assert_eq!(
        seqs(&calls.lock().unwrap()),
        [vec!["10", "11", "12", "13"], vec!["12", "13"]]
    );
    assert!(sent.lock().unwrap().is_empty());
    let snapshot = status.snapshot();
    assert_eq!(snapshot[0]["records_delivered"], 4);
    assert_eq!(snapshot[0]["retries"], 1);
}

#[tokio::test]
async fn a_function_error_bisects_until_the_poison_record_is_alone_then_sends_it_on() {
    let (lambda, calls) = fake_lambda(|batch| {
        if batch.iter().any(|s| s == "12") {
            (
                200,
                json!({"errorType": "Poison", "errorMessage": "cannot decode 12"}),
            )
        } else {
            (200, json!({"batchItemFailures": []}))
        }
    })
    .await;
    let (queues, sent) = recording_queue();
    let status = deliver(
        &lambda,
        queues,
        &mapping(true, 1),
        &["10", "11", "12", "13"],
    )
    .await;
    assert_eq!(
        seqs(&calls.lock().unwrap()),
        [
            vec!["10", "11", "12", "13"],
            vec!["10", "11"],
            vec!["12", "13"],
            vec!["12"],
            vec!["12"],
            vec!["13"],
        ],
        "halves first in order, the poison record retried once, its neighbour delivered"
    );
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let record: Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(
        record["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(record["KinesisBatchInfo"]["startSequenceNumber"], "12");
    assert_eq!(status.snapshot()[0]["records_delivered"], 3);
    assert_eq!(status.snapshot()[0]["batches_to_destination"], 1);
}

#[tokio::test]
async fn without_bisect_the_whole_batch_goes_on_after_its_retries() {
    let (lambda, calls) =
        fake_lambda(|_| (500, json!({"errorType": "Down", "errorMessage": "no"}))).await;
    let (queues, sent) = recording_queue();
    deliver(&lambda, queues, &mapping(false, 2), &["10", "11"]).await;
    assert_eq!(
        calls.lock().unwrap().len(),
        3,
        "the first attempt and two retries"
    );
    assert_eq!(sent.lock().unwrap().len(), 1);
}

#[test]
fn the_earliest_failed_record_is_where_a_retry_starts() {
    let batch = items(&["10", "11", "12", "13"]);
    let response =
        json!({"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": "11"}]});
    let kinesis = ItemNaming::Sequence;
    assert_eq!(first_failed(&response, &batch, &kinesis), Some(1));
    assert_eq!(
        first_failed(&json!({"batchItemFailures": []}), &batch, &kinesis),
        None
    );
    assert_eq!(
        first_failed(&json!({"result": "ok"}), &batch, &kinesis),
        None
    );
    assert_eq!(
        first_failed(
            &json!({"batchItemFailures": [{"itemIdentifier": "99"}]}),
            &batch,
            &kinesis
        ),
        Some(0),
        "an identifier outside the batch fails the whole batch"
    );
}

#[test]
fn a_kafka_response_names_its_partition_and_offset_or_fails_the_whole_batch() {
    let batch = items(&["10", "11", "12", "13"]);
    let kafka = ItemNaming::KafkaOffset {
        partition: "fleet-telemetry-0".into(),
    };
    let named = |identifier: Value| {
        first_failed(
            &json!({"batchItemFailures": [{"itemIdentifier": identifier}]}),
            &batch,
            &kafka,
        )
    };
    assert_eq!(
        named(json!({"partition": "fleet-telemetry-0", "offset": 12})),
        Some(2)
    );
    assert_eq!(
        named(json!({"partition": "fleet-telemetry-1", "offset": 12})),
        Some(0),
        "another partition is not in this batch"
    );
    assert_eq!(
        named(json!("12")),
        Some(0),
        "Kinesis's shape is a bad identifier here"
    );
    assert_eq!(
        named(json!({"partition": "fleet-telemetry-0", "offset": 99})),
        Some(0),
        "an offset outside the batch"
    );
    assert_eq!(
        named(json!({"partition": "fleet-telemetry-0"})),
        Some(0),
        "no offset"
    );
}

#[tokio::test]
async fn a_kafka_partial_batch_response_retries_the_partition_from_the_named_offset() {
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (lambda, calls) = fake_lambda(move |_| {
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            (
                200,
                json!({"batchItemFailures": [{"itemIdentifier": {"partition": "fleet-telemetry-0", "offset": 12}}]}),
            )
        } else {
            (200, json!({"batchItemFailures": []}))
        }
    })
    .await;
    let (queues, sent) = recording_queue();
    let status = deliver_kafka(&lambda, queues, &mapping(true, 3), &[10, 11, 12, 13]).await;
    assert_eq!(
        seqs(&calls.lock().unwrap()),
        [vec!["10", "11", "12", "13"], vec!["12", "13"]]
    );
    assert!(sent.lock().unwrap().is_empty());
    assert_eq!(status.snapshot()[0]["records_delivered"], 4);
}

#[tokio::test]
async fn without_report_batch_item_failures_a_partial_response_is_taken_as_success() {
    let (lambda, calls) = fake_lambda(|_| {
        (
            200,
            json!({"batchItemFailures": [{"itemIdentifier": {"partition": "fleet-telemetry-0", "offset": 11}}]}),
        )
    })
    .await;
    let (queues, _) = recording_queue();
    let mapping = Mapping {
        report_batch_item_failures: false,
        ..mapping(true, 3)
    };
    deliver_kafka(&lambda, queues, &mapping, &[10, 11]).await;
    assert_eq!(
        calls.lock().unwrap().len(),
        1,
        "Lambda ignores the answer unless the mapping turns the response type on"
    );
}
