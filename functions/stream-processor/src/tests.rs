//! The processor with in-memory stores.

use fleetwire::domain::telemetry::{TelemetryRecord, TimestampLimits};
use fleetwire::testing::{
    Behaviour, InMemoryDeviceState, InMemoryProcessing, RecordingAlerts, RecordingDeadLetters,
};
use serde_json::{Value, json};
use time::macros::datetime;

use super::*;

type TestProcessor =
    Processor<InMemoryProcessing, RecordingAlerts, RecordingDeadLetters, InMemoryDeviceState>;

fn processor() -> TestProcessor {
    let rules = AnomalyRules {
        min_samples: 5,
        ..AnomalyRules::default()
    };
    Processor::new(
        InMemoryProcessing::default(),
        RecordingAlerts::default(),
        RecordingDeadLetters::default(),
        InMemoryDeviceState::default(),
        rules,
    )
}

fn reading(device: &str, minute: i64, temperature: f64) -> EnrichedRecord {
    let at = datetime!(2026-11-25 08:00 UTC) + time::Duration::minutes(minute);
    let value = json!({"device_id": device, "timestamp": at.unix_timestamp() * 1000, "temperature": temperature,
        "humidity": 40, "pressure": 1000, "location": {"latitude": 37.5, "longitude": 127.0},
        "metadata": {"version": "1.0", "source": "obd"}});
    let record = TelemetryRecord::validate(&value, at, &TimestampLimits::default()).unwrap();
    EnrichedRecord::new(record, at + time::Duration::seconds(1))
}

fn input(shard: &str, sequence: usize, record: &EnrichedRecord) -> InputRecord {
    InputRecord {
        group: shard.into(),
        item_id: ItemIdentifier::Sequence(format!("{sequence}")),
        data: serde_json::to_vec(record).unwrap(),
    }
}

fn device(id: &str) -> DeviceId {
    DeviceId::parse(id).unwrap()
}

#[tokio::test]
async fn readings_make_summaries_state_and_statistics() {
    let p = processor();
    let batch: Vec<InputRecord> = (0..6)
        .map(|m| {
            input(
                "shard-0",
                m as usize,
                &reading("car-1", m * 10, 20.0 + m as f64),
            )
        })
        .collect();
    let (response, summary) = p.process(&batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((summary.applied, summary.duplicates), (6, 0));
    let hour = p
        .store
        .summary(&device("car-1"), "2026-11-25T08")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hour.record_count, 6);
    assert_eq!(
        (hour.min_temperature, hour.max_temperature),
        (Some(20.0), Some(25.0))
    );
    assert_eq!(hour.avg_temperature(), Some(22.5));
    assert_eq!(hour.data_quality_score(), Some(1.0));
    let state = p.state.get(&device("car-1")).await.unwrap().unwrap();
    assert_eq!(
        state.last_telemetry.unwrap()["temperature"],
        25.0,
        "the newest reading is the state"
    );
    assert_eq!(
        p.store
            .load_stats(&device("car-1"))
            .await
            .unwrap()
            .stats
            .temperature
            .count,
        6
    );
}

#[tokio::test]
async fn a_replayed_batch_changes_nothing() {
    let p = processor();
    let batch: Vec<InputRecord> = (0..8)
        .map(|m| {
            input(
                "shard-0",
                m as usize,
                &reading("car-1", m, 20.0 + (m % 3) as f64),
            )
        })
        .collect();
    p.process(&batch).await.unwrap();
    let before = p
        .store
        .summary(&device("car-1"), "2026-11-25T08")
        .await
        .unwrap();
    let stats_before = p.store.load_stats(&device("car-1")).await.unwrap();
    let (_, summary) = p.process(&batch).await.unwrap();
    assert_eq!((summary.applied, summary.duplicates), (0, 8));
    assert_eq!(
        p.store
            .summary(&device("car-1"), "2026-11-25T08")
            .await
            .unwrap(),
        before
    );
    assert_eq!(
        p.store.load_stats(&device("car-1")).await.unwrap(),
        stats_before
    );
}

#[tokio::test]
async fn readings_of_one_hour_across_batches_equal_one_batch() {
    let readings: Vec<EnrichedRecord> = (0..30)
        .map(|m| reading("car-1", m * 2, 15.0 + (m % 7) as f64))
        .collect();
    let whole = processor();
    let all: Vec<InputRecord> = readings
        .iter()
        .enumerate()
        .map(|(i, r)| input("s", i, r))
        .collect();
    whole.process(&all).await.unwrap();
    let split = processor();
    for chunk in all.chunks(7) {
        split.process(chunk).await.unwrap();
    }
    let hour = "2026-11-25T08";
    assert_eq!(
        split.store.summary(&device("car-1"), hour).await.unwrap(),
        whole.store.summary(&device("car-1"), hour).await.unwrap()
    );
    assert_eq!(
        split
            .store
            .load_stats(&device("car-1"))
            .await
            .unwrap()
            .stats,
        whole
            .store
            .load_stats(&device("car-1"))
            .await
            .unwrap()
            .stats
    );
}

#[tokio::test]
async fn an_older_reading_never_replaces_the_state() {
    let p = processor();
    p.process(&[input("s", 0, &reading("car-1", 30, 25.0))])
        .await
        .unwrap();
    p.process(&[input("s", 1, &reading("car-1", 10, 5.0))])
        .await
        .unwrap();
    let state = p.state.get(&device("car-1")).await.unwrap().unwrap();
    assert_eq!(state.last_telemetry.unwrap()["temperature"], 25.0);
}

#[tokio::test]
async fn each_anomaly_is_published_once() {
    let p = processor();
    let mut batch: Vec<InputRecord> = (0..10)
        .map(|m| input("s", m as usize, &reading("car-1", m, 20.0 + (m % 2) as f64)))
        .collect();
    batch.push(input("s", 10, &reading("car-1", 11, 90.0)));
    p.process(&batch).await.unwrap();
    p.process(&batch).await.unwrap();
    let sent = p.alerts.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].metric, sent[0].value),
        (fleetwire::domain::processing::Metric::Temperature, 90.0)
    );
    assert_eq!(
        p.store
            .summary(&device("car-1"), "2026-11-25T08")
            .await
            .unwrap()
            .unwrap()
            .anomaly_count,
        1
    );
}

#[tokio::test]
async fn alerts_lost_to_a_failed_publish_go_out_on_the_retry() {
    let p = processor();
    let batch = vec![input("s", 0, &reading("car-1", 0, 95.0))];
    p.alerts
        .set_behaviour(Behaviour::Failing(StoreError::Unavailable {
            call: "SNS.Publish".into(),
            message: "down".into(),
        }));
    let (response, _) = p.process(&batch).await.unwrap();
    assert_eq!(
        response.batch_item_failures,
        vec![ItemFailure {
            item_identifier: ItemIdentifier::Sequence("0".into())
        }]
    );
    assert_eq!(p.store.pending_alerts(), 1, "kept with its record");
    p.alerts.set_behaviour(Behaviour::Normal);
    let (response, summary) = p.process(&batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.duplicates, 1);
    assert_eq!(p.alerts.sent().len(), 1);
    assert_eq!(p.store.pending_alerts(), 0);
}

#[tokio::test]
async fn a_store_failure_reports_the_first_failed_record_of_each_shard() {
    let p = processor();
    p.store
        .set_behaviour(Behaviour::Failing(StoreError::Throttled {
            call: "DynamoDB".into(),
            message: "slow".into(),
        }));
    let batch = vec![
        input("shard-a", 100, &reading("car-1", 0, 20.0)),
        input("shard-a", 101, &reading("car-2", 0, 20.0)),
        input("shard-b", 200, &reading("car-3", 0, 20.0)),
    ];
    let (response, summary) = p.process(&batch).await.unwrap();
    let ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.to_string())
        .collect();
    assert_eq!(ids, vec!["100", "200"]);
    assert_eq!(summary.failed_groups, 2);
}

#[tokio::test]
async fn undecodable_records_are_dead_lettered_not_reported() {
    let p = processor();
    let batch = vec![
        InputRecord {
            group: "s".into(),
            item_id: ItemIdentifier::Sequence("1".into()),
            data: b"\xff\x00 not json".to_vec(),
        },
        InputRecord {
            group: "s".into(),
            item_id: ItemIdentifier::Sequence("2".into()),
            data: br#"{"device_id": "car-1"}"#.to_vec(),
        },
        input("s", 3, &reading("car-1", 0, 20.0)),
    ];
    let (response, summary) = p.process(&batch).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "no poison-pill loop"
    );
    assert_eq!((summary.undecodable, summary.applied), (2, 1));
    let letters = p.dead_letters.sent();
    assert_eq!(letters[0].reason, "undecodable");
    assert!(letters[0].payload_base64.is_some());
    assert_eq!(letters[1].payload["device_id"], "car-1");
}

#[tokio::test]
async fn dead_letter_failure_fails_the_whole_batch() {
    let p = processor();
    p.dead_letters
        .set_behaviour(Behaviour::Failing(StoreError::Unavailable {
            call: "SQS".into(),
            message: "down".into(),
        }));
    let batch = vec![InputRecord {
        group: "s".into(),
        item_id: ItemIdentifier::Sequence("1".into()),
        data: b"junk".to_vec(),
    }];
    assert!(p.process(&batch).await.is_err());
}

#[tokio::test]
async fn readings_of_two_hours_go_to_two_summaries() {
    let p = processor();
    let batch = vec![
        input("s", 0, &reading("car-1", 50, 20.0)),
        input("s", 1, &reading("car-1", 70, 30.0)),
    ];
    p.process(&batch).await.unwrap();
    assert_eq!(
        p.store
            .summary(&device("car-1"), "2026-11-25T08")
            .await
            .unwrap()
            .unwrap()
            .record_count,
        1
    );
    assert_eq!(
        p.store
            .summary(&device("car-1"), "2026-11-25T09")
            .await
            .unwrap()
            .unwrap()
            .max_temperature,
        Some(30.0)
    );
}

fn sample(name: &str) -> serde_json::Value {
    fleetwire::testing::event("stream-processor", name)
}

#[tokio::test]
async fn sample_kinesis_batch_then_its_replay() {
    let p = processor();
    let (_, records) = input::from_event(&sample("kinesis-batch.json")).unwrap();
    let (response, summary) = p.process(&records).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((summary.applied, summary.undecodable), (3, 1));
    let (_, replay) = input::from_event(&sample("kinesis-replayed-batch.json")).unwrap();
    let (_, summary) = p.process(&replay).await.unwrap();
    assert_eq!((summary.applied, summary.duplicates), (0, 2));
    let hour = p
        .store
        .summary(&device("car-0001"), "2026-11-25T08")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hour.record_count, 3);
}

#[tokio::test]
async fn sample_kafka_batch_is_processed_like_kinesis() {
    let p = processor();
    let (source, records) = input::from_event(&sample("kafka-batch.json")).unwrap();
    assert_eq!(source, input::Source::Kafka);
    let (_, summary) = p.process(&records).await.unwrap();
    assert_eq!(summary.applied, 3);
}

fn failing_store() -> TestProcessor {
    let p = processor();
    p.store
        .set_behaviour(Behaviour::Failing(StoreError::Throttled {
            call: "DynamoDB".into(),
            message: "slow".into(),
        }));
    p
}

#[tokio::test]
async fn a_kinesis_batch_that_partly_fails_answers_which_records_to_retry() {
    let response = handle(&failing_store(), &sample("kinesis-batch.json"))
        .await
        .unwrap();
    assert!(!response.batch_item_failures.is_empty());
}

/// A Kafka event of two partitions: car-1's readings on partition 0 at offsets 40 and 41,
/// car-2's on partition 1 at offsets 7 and 8, in Lambda's MSK event shape.
fn two_partition_kafka_event() -> Value {
    let record = |partition: i32, offset: i64, reading: &EnrichedRecord| {
        use base64::Engine;
        json!({"topic": "fleet-telemetry", "partition": partition, "offset": offset,
            "timestamp": 1795593601123_i64, "timestampType": "CREATE_TIME", "key": null,
            "value": base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(reading).unwrap()),
            "headers": []})
    };
    json!({"eventSource": "aws:kafka", "bootstrapServers": "b-1:9098", "records": {
        "fleet-telemetry-0": [record(0, 40, &reading("car-1", 0, 20.0)), record(0, 41, &reading("car-1", 1, 20.1))],
        "fleet-telemetry-1": [record(1, 7, &reading("car-2", 0, 20.0)), record(1, 8, &reading("car-2", 1, 20.1))],
    }})
}

#[tokio::test]
async fn a_kafka_batch_that_partly_fails_names_the_failed_partition_and_offset_in_kafkas_shape() {
    let p = processor();
    p.store.fail_device(device("car-2"));
    let response = handle(&p, &two_partition_kafka_event()).await.unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": {"partition": "fleet-telemetry-1", "offset": 7}}
        ]}),
        "only the failed partition, from its first failed offset"
    );
    let applied = p
        .store
        .summary(&device("car-1"), "2026-11-25T08")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(applied.record_count, 2, "the healthy partition is done");
}

#[tokio::test]
async fn a_kinesis_partial_failure_names_sequence_numbers_as_strings() {
    let p = processor();
    p.store.fail_device(device("car-2"));
    let batch = vec![
        input("shardId-000000000000", 100, &reading("car-1", 0, 20.0)),
        input("shardId-000000000000", 101, &reading("car-2", 0, 20.0)),
    ];
    let (response, _) = p.process(&batch).await.unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "101"}]})
    );
}

#[tokio::test]
async fn a_kafka_batch_that_succeeds_answers_no_failures() {
    let response = handle(&processor(), &sample("kafka-batch.json"))
        .await
        .unwrap();
    assert_eq!(response, BatchResponse::default());
}

#[tokio::test]
async fn an_event_of_neither_mapping_fails_the_invocation() {
    let err = handle(&processor(), &serde_json::json!({"hello": "world"}))
        .await
        .unwrap_err();
    assert!(matches!(err, HandleError::Event(_)), "{err}");
}

#[tokio::test]
async fn a_failed_state_write_is_made_good_by_the_retry() {
    let p = processor();
    let batch = vec![input("s", 0, &reading("car-1", 5, 21.0))];
    p.state
        .set_behaviour(Behaviour::Failing(StoreError::Throttled {
            call: "DynamoDB.UpdateItem".into(),
            message: "slow".into(),
        }));
    let (response, _) = p.process(&batch).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1, "reported for retry");
    p.state.set_behaviour(Behaviour::Normal);
    p.process(&batch).await.unwrap();
    let state = p
        .state
        .get(&device("car-1"))
        .await
        .unwrap()
        .expect("the retry stores the reading");
    assert_eq!(state.last_telemetry.unwrap()["temperature"], 21.0);
    assert_eq!(
        p.store
            .summary(&device("car-1"), "2026-11-25T08")
            .await
            .unwrap()
            .unwrap()
            .record_count,
        1
    );
}

/// The in-memory store, counting how many devices' statistics are being loaded at once;
/// each load yields once, as a network call would.
#[derive(Default)]
struct OverlapCounting {
    inner: InMemoryProcessing,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl ProcessingStore for OverlapCounting {
    async fn load_stats(
        &self,
        device: &DeviceId,
    ) -> Result<fleetwire::domain::processing::StoredStats, StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::task::yield_now().await;
        self.in_flight.fetch_sub(1, SeqCst);
        self.inner.load_stats(device).await
    }
    async fn commit(&self, commit: &HourCommit) -> Result<CommitOutcome, StoreError> {
        self.inner.commit(commit).await
    }
    async fn widen_range(
        &self,
        device: &DeviceId,
        hour: &str,
        min: f64,
        max: f64,
    ) -> Result<(), StoreError> {
        self.inner.widen_range(device, hour, min, max).await
    }
    async fn alerts_published(&self, record_ids: &[String]) -> Result<(), StoreError> {
        self.inner.alerts_published(record_ids).await
    }
    async fn summary(
        &self,
        device: &DeviceId,
        hour: &str,
    ) -> Result<Option<HourlySummary>, StoreError> {
        self.inner.summary(device, hour).await
    }
}

#[tokio::test]
async fn devices_of_a_batch_are_processed_at_once_up_to_the_limit() {
    let p = Processor::new(
        OverlapCounting::default(),
        RecordingAlerts::default(),
        RecordingDeadLetters::default(),
        InMemoryDeviceState::default(),
        AnomalyRules::default(),
    );
    let devices = DEVICES_AT_ONCE + 4;
    let batch: Vec<InputRecord> = (0..devices * 3)
        .map(|i| {
            let car = format!("car-{}", i % devices);
            input("shard-0", i, &reading(&car, (i / devices) as i64, 20.0))
        })
        .collect();
    let (response, summary) = p.process(&batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.applied, devices * 3);
    let most = p.store.most.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(most, DEVICES_AT_ONCE, "devices in flight at once");
    // Every device got its three readings into its hour.
    for car in 0..devices {
        let id = device(&format!("car-{car}"));
        let summary = p
            .store
            .summary(&id, "2026-11-25T08")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(summary.record_count, 3, "car-{car}");
    }
}

/// AWS's documented Kinesis and MSK events (`events/aws-examples/SOURCES.md`) parse with
/// the processor's own types; their data ("Hello, this is a test.") is no processed record,
/// so each record is dead-lettered as undecodable and the batch succeeds.
#[tokio::test]
async fn aws_documented_stream_events_get_a_decision() {
    for (name, records) in [("kinesis.json", 2), ("msk.json", 1)] {
        let p = processor();
        let event = fleetwire::testing::event("aws-examples", name);
        let response = handle(&p, &event)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(response, BatchResponse::default(), "{name}");
        let letters = p.dead_letters.sent();
        assert_eq!(letters.len(), records, "{name}");
        assert!(letters.iter().all(|l| l.reason == "undecodable"), "{name}");
    }
}

/// AWS's MSK example carries `headers`, as arrays of byte values; a record without them,
/// or with bytes beyond ASCII written either as unsigned (195) or as Java's signed bytes
/// (-61), is just as much an MSK record. The processor does not read headers.
#[tokio::test]
async fn msk_records_without_headers_or_with_any_header_bytes_parse() {
    let example = fleetwire::testing::event("aws-examples", "msk.json");
    let with_headers = |headers: Value| {
        let mut event = example.clone();
        event["records"]["mytopic-0"][0]["headers"] = headers;
        event
    };
    let mut without = example.clone();
    without["records"]["mytopic-0"][0]
        .as_object_mut()
        .unwrap()
        .remove("headers");
    let unsigned = with_headers(json!([{"source": [195, 169, 255]}]));
    let signed = with_headers(json!([{"source": [-61, -87, -1]}]));
    for event in [unsigned, signed, without] {
        let (source, records) = input::from_event(&event).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((source, records.len()), (input::Source::Kafka, 1));
    }
}

#[tokio::test]
async fn processed_records_and_duplicates_are_counted_in_the_invocations_emf() {
    use fleetwire::runtime::metrics::name;
    use fleetwire::testing::metrics::{counted, flushed, record};
    record();
    let logs = fleetwire::testing::logs::capture("fleetwire-test-function");
    let p = processor();
    let batch: Vec<InputRecord> = (0..3)
        .map(|m| input("shard-0", m as usize, &reading("car-m", m * 10, 21.0)))
        .collect();
    p.process(&batch).await.unwrap();
    p.process(&batch).await.unwrap();
    let documents = flushed("processor-request", None);
    assert!(counted(&documents, name::RECORDS_PROCESSED, None) >= 3);
    assert!(counted(&documents, name::DUPLICATES_SKIPPED, None) >= 3);
    let line = logs.line("batch processed", None);
    fleetwire::testing::logs::assert_powertools_keys(&line, "fleetwire-test-function");
}

#[tokio::test]
async fn the_batch_line_names_its_record_ids_as_the_ingest_wrote_them() {
    let logs = fleetwire::testing::logs::capture("fleetwire-test-function");
    let p = processor();
    let batch: Vec<InputRecord> = (0..3)
        .map(|m| input("shard-0", m as usize, &reading("car-ids", m * 10, 21.5)))
        .collect();
    let ids: Vec<String> = batch
        .iter()
        .map(|r| {
            serde_json::from_slice::<EnrichedRecord>(&r.data)
                .unwrap()
                .record_id
        })
        .collect();
    p.process(&batch).await.unwrap();
    logs.line("batch processed", Some(("record_ids", &ids.join(","))));
}
