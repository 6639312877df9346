//! `failed list` and `failed redrive` against in-memory stand-ins of the queue, the stream
//! and the function; the records are AWS's own examples.

use std::sync::Mutex;

use serde_json::json;

use super::*;

const KINESIS_RECORD: &str =
    include_str!("../../../../events/aws-examples/kinesis-on-failure-record.json");
const KAFKA_RECORD: &str =
    include_str!("../../../../events/aws-examples/kafka-on-failure-record.json");
const RULE_ERROR: &str = include_str!("../../../../events/aws-examples/iot-rule-error-action.json");

#[derive(Default)]
struct Queue {
    messages: Mutex<Vec<QueuedMessage>>,
    deleted: Mutex<Vec<String>>,
    released: Mutex<Vec<String>>,
}

impl Queue {
    fn holding(bodies: &[String]) -> Self {
        let messages = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| QueuedMessage {
                id: format!("m{i}"),
                receipt: format!("r{i}"),
                body: body.clone(),
            })
            .collect();
        Self {
            messages: Mutex::new(messages),
            ..Self::default()
        }
    }
}

impl FailedQueue for Queue {
    async fn receive_all(&self, _hold: Duration) -> Result<Vec<QueuedMessage>, Failure> {
        Ok(self.messages.lock().unwrap().clone())
    }
    async fn delete(&self, receipt: &str) -> Result<(), Failure> {
        self.deleted.lock().unwrap().push(receipt.into());
        Ok(())
    }
    async fn release(&self, receipt: &str) -> Result<(), Failure> {
        self.released.lock().unwrap().push(receipt.into());
        Ok(())
    }
}

/// A shard holding records numbered `first..=last` (sequence numbers `"1000"` up).
struct Shard {
    first: u64,
    last: u64,
}

impl StreamReader for Shard {
    async fn read(&self, batch: &StreamBatch) -> Result<Vec<StreamedRecord>, Failure> {
        let start: u64 = batch.start_sequence_number.parse().unwrap();
        let end: u64 = batch.end_sequence_number.parse().unwrap();
        Ok((start.max(self.first)..=end.min(self.last))
            .map(|n| StreamedRecord {
                sequence_number: n.to_string(),
                partition_key: "car-1".into(),
                data: format!(r#"{{"n":{n}}}"#).into_bytes(),
                arrived: 1_796_114_069.216,
            })
            .collect())
    }
}

/// A cluster whose every partition holds offsets `first..=last`, but for `gap` (where a
/// transaction marker sits).
struct Topic {
    first: i64,
    last: i64,
    gap: Option<i64>,
}

const NO_TOPIC: Topic = Topic {
    first: 0,
    last: -1,
    gap: None,
};

impl TopicReader for Topic {
    async fn read(
        &self,
        _batch: &KafkaBatch,
        span: &PartitionSpan,
    ) -> Result<Vec<KafkaRecord>, Failure> {
        Ok((span.first.max(self.first)..=span.last.min(self.last))
            .filter(|offset| Some(*offset) != self.gap)
            .map(|offset| KafkaRecord {
                topic: span.topic.clone(),
                partition: span.partition,
                offset,
                timestamp_millis: 1_796_114_069_216,
                key: Some(b"car-1".to_vec()),
                value: Some(format!(r#"{{"n":{offset}}}"#).into_bytes()),
                headers: Default::default(),
            })
            .collect())
    }
}

/// Answers every invocation with `answer`, keeping each event's positions: Kinesis
/// sequence numbers, or Kafka `<topic>-<partition>:<offset>`.
struct Function {
    answer: Result<Value, String>,
    calls: Mutex<Vec<(String, Vec<String>)>>,
}

impl Function {
    fn answering(answer: Result<Value, String>) -> Self {
        Self {
            answer,
            calls: Mutex::default(),
        }
    }
}

impl FunctionInvoker for Function {
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, String> {
        let sequences = match payload["Records"].as_array() {
            Some(records) => records
                .iter()
                .map(|r| r["kinesis"]["sequenceNumber"].as_str().unwrap().to_owned())
                .collect(),
            None => payload["records"]
                .as_object()
                .unwrap()
                .iter()
                .flat_map(|(key, records)| {
                    records
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(move |r| format!("{key}:{}", r["offset"]))
                })
                .collect(),
        };
        self.calls
            .lock()
            .unwrap()
            .push((function.to_owned(), sequences));
        self.answer.clone()
    }
}

/// A Kinesis failure record in AWS's example shape, naming records `start..=end`.
fn batch_record(start: u64, end: u64) -> String {
    let mut record: Value = serde_json::from_str(KINESIS_RECORD).unwrap();
    record["KinesisBatchInfo"]["startSequenceNumber"] = json!(start.to_string());
    record["KinesisBatchInfo"]["endSequenceNumber"] = json!(end.to_string());
    record["KinesisBatchInfo"]["batchSize"] = json!(end - start + 1);
    record.to_string()
}

/// A Kafka failure record in AWS's example shape, naming offsets of `fleet-telemetry`'s
/// partitions: `(partition, first, last)`.
fn kafka_record(spans: &[(i32, i64, i64)], size: usize) -> String {
    let mut record: Value = serde_json::from_str(KAFKA_RECORD).unwrap();
    let info = &mut record["KafkaBatchInfo"];
    info["batchSize"] = json!(size);
    info["recordsInfo"] = spans
        .iter()
        .map(|(partition, first, last)| {
            (
                format!("fleet-telemetry-{partition}"),
                json!({"firstRecordOffset": first.to_string(), "lastRecordOffset": last.to_string(),
                    "firstRecordTimestamp": "2026-12-07T10:00:00.000Z",
                    "lastRecordTimestamp": "2026-12-07T10:00:01.000Z"}),
            )
        })
        .collect::<serde_json::Map<String, Value>>()
        .into();
    record.to_string()
}

fn done() -> Result<Value, String> {
    Ok(json!({"batchItemFailures": []}))
}

#[test]
fn awss_own_records_are_told_apart() {
    let FailedEvent::StreamBatch {
        batch,
        function_arn,
        condition,
    } = FailedEvent::parse(KINESIS_RECORD)
    else {
        panic!("not a stream batch");
    };
    assert_eq!(batch.shard_id, "shardId-000000000001");
    assert_eq!(batch.batch_size, 500);
    assert_eq!(
        batch.stream().unwrap(),
        ("mystream".to_string(), "us-east-2".to_string())
    );
    assert_eq!(record::function_name(&function_arn), "myfunction");
    assert_eq!(condition, "RetryAttemptsExhausted");
    assert_eq!(FailedEvent::parse(RULE_ERROR).kind(), "rule-error");
    let async_record = json!({"requestContext": {"functionArn": "arn:aws:lambda:us-east-1:1:function:f:$LATEST",
        "condition": "RetriesExhausted"}, "requestPayload": {"a": 1}});
    assert_eq!(
        FailedEvent::parse(&async_record.to_string()).describe(),
        "an event for f (RetriesExhausted)"
    );
    assert_eq!(
        FailedEvent::parse(&kafka_record(&[(0, 15, 16)], 2)).describe(),
        "2 records of fleet-telemetry-0 from offset 15 to 16 (RetryAttemptsExhausted)"
    );
    assert_eq!(FailedEvent::parse("not json").kind(), "unknown");
    assert_eq!(
        FailedEvent::parse(r#"{"KinesisBatchInfo": {"shardId": 1}}"#).kind(),
        "unknown",
        "a batch record missing its range is not re-drivable"
    );
}

#[test]
fn sequence_numbers_order_as_numbers() {
    assert!(stream::sequence_cmp("9", "10").is_lt());
    assert!(
        stream::sequence_cmp(
            "49601189658422359378836298522902373528957594348623495186",
            "49601189658422359378836298521827638475320189012309704722"
        )
        .is_gt()
    );
    assert!(stream::sequence_cmp("7", "7").is_eq());
}

#[test]
fn the_redriven_event_is_lambdas_own_kinesis_event() {
    let FailedEvent::StreamBatch { batch, .. } = FailedEvent::parse(&batch_record(1000, 1001))
    else {
        panic!("not a stream batch");
    };
    let records = vec![StreamedRecord {
        sequence_number: "1000".into(),
        partition_key: "car-1".into(),
        data: b"{\"a\":1}".to_vec(),
        arrived: 1_545_084_650.987,
    }];
    let event = stream::kinesis_event(&batch, "us-east-2", &records);
    let parsed: aws_lambda_events::event::kinesis::KinesisEvent =
        serde_json::from_value(event).unwrap();
    let record = &parsed.records[0];
    assert_eq!(record.kinesis.data.0, b"{\"a\":1}");
    assert_eq!(record.kinesis.sequence_number, "1000");
    assert_eq!(
        record.event_id.as_deref(),
        Some("shardId-000000000001:1000")
    );
    assert_eq!(
        record.event_source_arn.as_deref(),
        Some("arn:aws:kinesis:us-east-2:123456789012:stream/mystream")
    );
}

#[tokio::test]
async fn a_stream_batch_is_redriven_whole_and_its_message_deleted_other_kinds_stay() {
    let queue = Queue::holding(&[batch_record(1000, 1002), RULE_ERROR.to_string()]);
    let function = Function::answering(done());
    let shard = Shard {
        first: 1000,
        last: 2000,
    };
    let answer = redrive(
        &queue,
        &shard,
        &NO_TOPIC,
        &function,
        "processor",
        false,
        true,
    )
    .await
    .unwrap();
    assert!(!answer.failed, "{}", answer.text);
    assert_eq!(
        *function.calls.lock().unwrap(),
        vec![(
            "processor".to_string(),
            vec!["1000".to_string(), "1001".into(), "1002".into()]
        )]
    );
    assert_eq!(*queue.deleted.lock().unwrap(), vec!["r0"]);
    assert_eq!(*queue.released.lock().unwrap(), vec!["r1"]);
    let reports: Value = serde_json::from_str(&answer.text).unwrap();
    assert_eq!(reports[0]["outcome"], "done");
    assert_eq!(reports[0]["records"], 3);
    assert_eq!(reports[1]["outcome"], "skipped");
}

#[tokio::test]
async fn a_batch_whose_records_left_the_stream_is_kept_and_fails_the_command() {
    let queue = Queue::holding(&[batch_record(900, 1002)]);
    let function = Function::answering(done());
    let shard = Shard {
        first: 1000,
        last: 2000,
    };
    let answer = redrive(
        &queue,
        &shard,
        &NO_TOPIC,
        &function,
        "processor",
        false,
        false,
    )
    .await
    .unwrap();
    assert!(answer.failed);
    assert!(
        answer.text.contains("retention has passed"),
        "{}",
        answer.text
    );
    assert!(
        function.calls.lock().unwrap().is_empty(),
        "a partial batch is never passed off as the whole"
    );
    assert!(queue.deleted.lock().unwrap().is_empty());
    assert_eq!(*queue.released.lock().unwrap(), vec!["r0"]);
}

#[tokio::test]
async fn a_batch_the_processor_still_fails_stays_in_the_queue() {
    let shard = Shard {
        first: 1000,
        last: 2000,
    };
    for answer in [
        Ok(json!({"batchItemFailures": [{"itemIdentifier": "1001"}]})),
        Err("Unhandled: {\"errorType\":\"Throttled\"}".to_string()),
    ] {
        let queue = Queue::holding(&[batch_record(1000, 1002)]);
        let function = Function::answering(answer);
        let report = redrive(
            &queue,
            &shard,
            &NO_TOPIC,
            &function,
            "processor",
            false,
            false,
        )
        .await
        .unwrap();
        assert!(report.failed, "{}", report.text);
        assert!(queue.deleted.lock().unwrap().is_empty());
        assert_eq!(*queue.released.lock().unwrap(), vec!["r0"]);
    }
}

#[tokio::test]
async fn a_dry_run_reads_but_invokes_and_deletes_nothing() {
    let queue = Queue::holding(&[batch_record(1000, 1002)]);
    let function = Function::answering(done());
    let shard = Shard {
        first: 1000,
        last: 2000,
    };
    let answer = redrive(
        &queue,
        &shard,
        &NO_TOPIC,
        &function,
        "processor",
        true,
        false,
    )
    .await
    .unwrap();
    assert!(!answer.failed);
    assert!(answer.text.contains("ready: 3 records"), "{}", answer.text);
    assert!(function.calls.lock().unwrap().is_empty());
    assert!(queue.deleted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_large_batch_goes_in_invocations_of_bounded_size() {
    let queue = Queue::holding(&[batch_record(1000, 2199)]);
    let function = Function::answering(done());
    let shard = Shard {
        first: 1000,
        last: 5000,
    };
    redrive(
        &queue,
        &shard,
        &NO_TOPIC,
        &function,
        "processor",
        false,
        false,
    )
    .await
    .unwrap();
    let sizes: Vec<usize> = function
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.len())
        .collect();
    assert_eq!(sizes, vec![RECORDS_PER_INVOKE, RECORDS_PER_INVOKE, 200]);
}

#[tokio::test]
async fn list_shows_every_message_and_leaves_it_in_the_queue() {
    let queue = Queue::holding(&[batch_record(1000, 1002), RULE_ERROR.to_string()]);
    let answer = list(&queue, false).await.unwrap();
    assert!(answer.text.contains("stream-batch"), "{}", answer.text);
    assert!(
        answer
            .text
            .contains("3 records of shardId-000000000001 from 1000 to 1002"),
        "{}",
        answer.text
    );
    assert!(answer.text.contains("rule TestAction"), "{}", answer.text);
    assert!(queue.deleted.lock().unwrap().is_empty());
    assert_eq!(queue.released.lock().unwrap().len(), 2);
}

#[test]
fn awss_kafka_example_reads_as_a_batch_of_two_partitions() {
    let FailedEvent::KafkaBatch {
        batch, condition, ..
    } = FailedEvent::parse(KAFKA_RECORD)
    else {
        panic!("not a Kafka batch");
    };
    assert_eq!(batch.batch_size, 500);
    assert_eq!(condition, "RetryAttemptsExhausted");
    assert_eq!(
        batch.records_info.keys().collect::<Vec<_>>(),
        ["Topic-0", "Topic-1"]
    );
    // The example's offsets are copied from the Kinesis page: too large for a Kafka
    // offset (a signed 64-bit number), so the batch is listed and not re-driven.
    let why = batch.spans().unwrap_err();
    assert!(why.contains("is not a Kafka offset"), "{why}");
    assert_eq!(
        FailedEvent::parse(r#"{"KafkaBatchInfo": {"batchSize": 2}}"#).kind(),
        "unknown",
        "a batch record missing its offsets is not re-drivable"
    );
}

#[test]
fn a_partition_key_splits_at_its_last_hyphen() {
    let FailedEvent::KafkaBatch { batch, .. } = FailedEvent::parse(&kafka_record(&[(12, 3, 9)], 7))
    else {
        panic!("not a Kafka batch");
    };
    assert_eq!(
        batch.spans().unwrap(),
        vec![PartitionSpan {
            topic: "fleet-telemetry".into(),
            partition: 12,
            first: 3,
            last: 9
        }]
    );
    let mut reversed = batch.clone();
    reversed
        .records_info
        .get_mut("fleet-telemetry-12")
        .unwrap()
        .first_record_offset = "10".into();
    assert!(
        reversed.spans().is_err(),
        "a range that ends before it starts"
    );
}

#[tokio::test]
async fn a_kafka_batch_is_redriven_across_its_partitions_and_its_message_deleted() {
    let queue = Queue::holding(&[kafka_record(&[(0, 5, 7), (1, 2, 2)], 4)]);
    let function = Function::answering(done());
    let topic = Topic {
        first: 0,
        last: 100,
        gap: None,
    };
    let shard = Shard { first: 0, last: 0 };
    let answer = redrive(&queue, &shard, &topic, &function, "processor", false, true)
        .await
        .unwrap();
    assert!(!answer.failed, "{}", answer.text);
    assert_eq!(
        function.calls.lock().unwrap()[0].1,
        vec![
            "fleet-telemetry-0:5",
            "fleet-telemetry-0:6",
            "fleet-telemetry-0:7",
            "fleet-telemetry-1:2"
        ]
    );
    assert_eq!(*queue.deleted.lock().unwrap(), vec!["r0"]);
    let reports: Value = serde_json::from_str(&answer.text).unwrap();
    assert_eq!(reports[0]["kind"], "kafka-batch");
    assert_eq!(reports[0]["records"], 4);
}

#[tokio::test]
async fn a_kafka_batch_the_topic_cannot_give_back_whole_is_kept() {
    let cases = [
        // The first records left the topic (retention).
        (
            Topic {
                first: 6,
                last: 100,
                gap: None,
            },
            "retention has passed",
        ),
        // The topic ends before the batch's last offset.
        (
            Topic {
                first: 0,
                last: 6,
                gap: None,
            },
            "the batch went to 7",
        ),
        // A gap inside the range: whole ends, one record fewer than the batch had.
        (
            Topic {
                first: 0,
                last: 100,
                gap: Some(6),
            },
            "read 2 records, the batch had 3",
        ),
    ];
    for (topic, why) in cases {
        let queue = Queue::holding(&[kafka_record(&[(0, 5, 7)], 3)]);
        let function = Function::answering(done());
        let shard = Shard { first: 0, last: 0 };
        let answer = redrive(&queue, &shard, &topic, &function, "processor", false, false)
            .await
            .unwrap();
        assert!(answer.failed, "{}", answer.text);
        assert!(answer.text.contains(why), "{why}: {}", answer.text);
        assert!(function.calls.lock().unwrap().is_empty());
        assert_eq!(*queue.released.lock().unwrap(), vec!["r0"]);
    }
}

#[tokio::test]
async fn a_kafka_batch_the_processor_still_fails_in_kafkas_shape_stays() {
    let queue = Queue::holding(&[kafka_record(&[(0, 5, 7)], 3)]);
    let function = Function::answering(Ok(json!({"batchItemFailures": [
        {"itemIdentifier": {"partition": "fleet-telemetry-0", "offset": 6}}]})));
    let topic = Topic {
        first: 0,
        last: 100,
        gap: None,
    };
    let shard = Shard { first: 0, last: 0 };
    let answer = redrive(&queue, &shard, &topic, &function, "processor", false, false)
        .await
        .unwrap();
    assert!(answer.failed);
    assert!(answer.text.contains("\"offset\":6"), "{}", answer.text);
    assert!(queue.deleted.lock().unwrap().is_empty());
}

#[test]
fn the_redriven_kafka_event_is_lambdas_own_kafka_event() {
    let FailedEvent::KafkaBatch { batch, .. } = FailedEvent::parse(&kafka_record(&[(3, 8, 8)], 1))
    else {
        panic!("not a Kafka batch");
    };
    let record = KafkaRecord {
        topic: "fleet-telemetry".into(),
        partition: 3,
        offset: 8,
        timestamp_millis: 1_545_084_650_987,
        key: None,
        value: Some(b"{}".to_vec()),
        headers: Default::default(),
    };
    let event = topic::kafka_batch_event(&batch, &[record]);
    let parsed: aws_lambda_events::event::kafka::KafkaEvent =
        serde_json::from_value(event).unwrap();
    assert_eq!(parsed.records["fleet-telemetry-3"][0].offset, 8);
    assert_eq!(
        parsed.event_source_arn.as_deref(),
        Some(batch.event_source_arn.as_str())
    );
}
