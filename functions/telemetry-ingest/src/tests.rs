//! The ingest core with in-memory stream and dead-letter queue.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetwire::runtime::retry::RetryPolicy;
use fleetwire::testing::{Behaviour, RecordingDeadLetters, RecordingStream, event as sample};
use serde::Deserialize;
use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use fleetwire::domain::telemetry::TimestampLimits;
use fleetwire::ingest::config::Backend;
use fleetwire::ingest::{Ingest, IngestConfig};
use fleetwire::runtime::error::StoreError;

/// The sample events were received at 08:00:00; they are judged 30 s later.
const NOW: OffsetDateTime = datetime!(2026-11-25 08:00:30 UTC);

fn event(name: &str) -> Value {
    sample("telemetry-ingest", name)
}

fn config() -> IngestConfig {
    IngestConfig {
        backend: Backend::Kinesis { stream: "s".into() },
        dead_letter_queue_url: "q".into(),
        max_batch: 100,
        limits: TimestampLimits::default(),
        sink_retry: RetryPolicy::default(),
        dead_letter_retry: RetryPolicy::default(),
    }
}

fn ingest() -> Ingest<RecordingStream, RecordingDeadLetters> {
    Ingest::new(
        RecordingStream::default(),
        RecordingDeadLetters::default(),
        &config(),
    )
}

#[derive(Deserialize)]
struct Expected {
    event: String,
    accepted: usize,
    rejected: BTreeMap<String, usize>,
    field: Option<String>,
}

#[tokio::test]
async fn every_sample_event_is_accepted_or_rejected_as_expected() {
    let expected: Vec<Expected> = serde_json::from_str(&fleetwire::testing::events::event_text(
        "telemetry-ingest",
        "expected.json",
    ))
    .unwrap();
    assert!(expected.len() >= 15);
    for case in expected {
        let ingest = ingest();
        let summary = handle(&ingest, &event(&case.event), NOW).await.unwrap();
        let rejected: BTreeMap<String, usize> = summary
            .rejected
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(
            (summary.accepted, &rejected),
            (case.accepted, &case.rejected),
            "{}",
            case.event
        );
        assert_eq!(
            ingest.sink().delivered().len(),
            case.accepted,
            "{}",
            case.event
        );
        let letters = ingest.dead_letters().sent();
        assert_eq!(
            letters.len(),
            case.rejected.values().sum::<usize>(),
            "{}: one dead letter per reject",
            case.event
        );
        if let Some(field) = case.field {
            assert!(
                letters[0]
                    .errors
                    .iter()
                    .any(|e| e.starts_with(&format!("{field}:"))),
                "{}: {:?}",
                case.event,
                letters[0].errors
            );
        }
    }
}

#[tokio::test]
async fn accepted_record_is_enriched_and_keyed_by_device() {
    let ingest = ingest();
    handle(&ingest, &event("extra-fields.json"), NOW)
        .await
        .unwrap();
    let [record] = &ingest.sink().delivered()[..] else {
        panic!("one record")
    };
    assert_eq!(record.partition_key, "car-0001");
    let data: Value = serde_json::from_slice(&record.data).unwrap();
    assert_eq!(data["received_at"], "2026-11-25T08:00:00Z");
    assert_eq!(data["temperature_fahrenheit"], 70.7);
    assert_eq!(
        (
            data["hour"].as_u64(),
            data["day_of_week"].as_u64(),
            data["is_weekend"].as_bool()
        ),
        (Some(7), Some(3), Some(false))
    );
    assert_eq!(data["record_id"].as_str().map(str::len), Some(32));
    assert_eq!(data["odometer_km"], 48211.7, "unknown fields are kept");
    assert_eq!(data["battery"]["cells"][1], 3.92);
    assert!(
        data.get("thing_name").is_none(),
        "the rule's own fields are not part of the record"
    );
}

#[tokio::test]
async fn spoofed_record_is_dead_lettered_with_topic_time_and_payload() {
    let ingest = ingest();
    handle(&ingest, &event("spoofed-device-id.json"), NOW)
        .await
        .unwrap();
    let [letter] = &ingest.dead_letters().sent()[..] else {
        panic!("one letter")
    };
    assert_eq!(letter.reason, "spoofed");
    assert_eq!(letter.source, "telemetry-ingest");
    assert_eq!(letter.topic.as_deref(), Some("fleet/car-0001/telemetry"));
    assert_eq!(letter.caller.as_deref(), Some("car-0001"));
    assert_eq!(letter.received_at, Some(datetime!(2026-11-25 08:00:00 UTC)));
    assert_eq!(letter.device_id.as_deref(), Some("car-0002"));
    assert_eq!(
        letter.errors,
        vec![r#"device_id: "car-0002" is not the sender, which is "car-0001""#]
    );
    assert_eq!(letter.payload["device_id"], "car-0002");
    assert!(ingest.sink().delivered().is_empty());
}

/// The event the template's rule makes of `payload` published on `fleet/car-0001/telemetry`:
/// `SELECT encode(*, 'base64') AS payload_base64, topic(2) AS thing_name, timestamp() AS
/// received_at`.
fn rule_event(payload: &Value) -> Value {
    use base64::Engine;
    let bytes = serde_json::to_vec(payload).unwrap();
    json!({
        "payload_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        "thing_name": "car-0001",
        "received_at": 1795593600000_i64,
    })
}

fn reading_of(device: &str) -> Value {
    json!({"device_id": device, "timestamp": "2026-11-25T07:59:30Z", "temperature": 21.5,
        "humidity": 40.2, "pressure": 1013.2})
}

#[tokio::test]
async fn a_device_that_names_another_thing_in_its_payload_is_still_judged_by_its_topic() {
    let ingest = ingest();
    let mut steering = reading_of("car-0002");
    steering["thing_name"] = json!("car-0002");
    steering["received_at"] = json!(0);
    handle(&ingest, &rule_event(&steering), NOW).await.unwrap();
    let [letter] = &ingest.dead_letters().sent()[..] else {
        panic!("one letter")
    };
    assert_eq!(letter.reason, "spoofed");
    assert_eq!(letter.caller.as_deref(), Some("car-0001"));
    assert_eq!(letter.received_at, Some(datetime!(2026-11-25 08:00:00 UTC)));
    assert_eq!(
        letter.payload, steering,
        "the letter holds what the device sent"
    );
    assert!(ingest.sink().delivered().is_empty());
}

#[tokio::test]
async fn a_reading_that_brings_the_rules_fields_on_its_own_topic_is_refused_not_merged() {
    let ingest = ingest();
    let mut steering = reading_of("car-0001");
    steering["received_at"] = json!(0);
    steering["thing_name"] = json!("car-0001");
    handle(&ingest, &rule_event(&steering), NOW).await.unwrap();
    let [letter] = &ingest.dead_letters().sent()[..] else {
        panic!("one letter")
    };
    assert_eq!(letter.reason, "validation");
    assert!(
        letter.errors.iter().all(|e| e.contains("reserved")) && letter.errors.len() == 2,
        "{:?}",
        letter.errors
    );
    assert!(ingest.sink().delivered().is_empty());
}

#[tokio::test]
async fn a_reading_in_the_rules_event_is_accepted_with_the_rules_receive_time() {
    let ingest = ingest();
    handle(&ingest, &rule_event(&reading_of("car-0001")), NOW)
        .await
        .unwrap();
    let [record] = &ingest.sink().delivered()[..] else {
        panic!("one record")
    };
    let data: Value = serde_json::from_slice(&record.data).unwrap();
    assert_eq!(data["received_at"], "2026-11-25T08:00:00Z");
    assert!(ingest.dead_letters().sent().is_empty());
}

#[tokio::test]
async fn not_json_payload_is_kept_as_base64() {
    let ingest = ingest();
    handle(&ingest, &event("malformed-json.json"), NOW)
        .await
        .unwrap();
    let [letter] = &ingest.dead_letters().sent()[..] else {
        panic!("one letter")
    };
    assert_eq!(letter.reason, "malformed_json");
    assert_eq!(letter.payload, Value::Null);
    assert_eq!(
        letter.payload_base64.as_deref(),
        event("malformed-json.json")["payload_base64"].as_str()
    );
}

#[tokio::test]
async fn every_field_error_of_a_record_is_in_its_letter() {
    let ingest = ingest();
    let bad = json!({"device_id": "car-0001", "timestamp": "soon", "temperature": 500, "humidity": "wet",
        "thing_name": "car-0001", "received_at": 1795593600000_i64});
    handle(&ingest, &bad, NOW).await.unwrap();
    let letter = &ingest.dead_letters().sent()[0];
    let fields: Vec<&str> = letter
        .errors
        .iter()
        .map(|e| e.split(':').next().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["timestamp", "temperature", "humidity", "pressure"]
    );
}

#[tokio::test]
async fn batch_over_the_maximum_is_rejected_whole() {
    let mut config = config();
    config.max_batch = 3;
    let ingest = Ingest::new(
        RecordingStream::default(),
        RecordingDeadLetters::default(),
        &config,
    );
    let summary = handle(&ingest, &event("valid-batch.json"), NOW)
        .await
        .unwrap();
    assert_eq!(summary.accepted, 0);
    assert_eq!(summary.rejected, BTreeMap::from([("batch_too_large", 5)]));
    assert!(ingest.dead_letters().sent()[0].errors[0].contains("at most 3"));
}

#[tokio::test]
async fn event_without_thing_name_cannot_be_attributed_and_is_rejected() {
    let ingest = ingest();
    let mut reading = event("valid-reading.json");
    reading.as_object_mut().unwrap().remove("thing_name");
    let summary = handle(&ingest, &reading, NOW).await.unwrap();
    assert_eq!(
        summary.rejected,
        BTreeMap::from([("missing_thing_name", 1)])
    );
}

#[tokio::test]
async fn records_the_sink_never_takes_go_to_the_dead_letter_queue() {
    let ingest = ingest();
    ingest.sink().fail_partition_key("car-0001");
    let summary = handle(&ingest, &event("valid-batch.json"), NOW)
        .await
        .unwrap();
    assert_eq!(summary.accepted, 0);
    assert_eq!(summary.rejected, BTreeMap::from([("sink_unavailable", 5)]));
    assert_eq!(
        summary.stream_errors,
        BTreeMap::from([("ProvisionedThroughputExceededException".to_string(), 5)]),
        "the stream's own error code is counted, not only kept in the letters"
    );
    let letters = ingest.dead_letters().sent();
    assert_eq!(letters.len(), 5);
    assert!(letters[0].errors[0].starts_with("ProvisionedThroughputExceededException"));
    assert_eq!(
        letters[0].payload["device_id"], "car-0001",
        "the enriched record is kept"
    );
    assert!(letters[0].payload["record_id"].is_string());
}

#[tokio::test]
async fn dead_letter_queue_failure_fails_the_invocation() {
    let ingest = ingest();
    ingest
        .dead_letters()
        .set_behaviour(Behaviour::Failing(StoreError::Unavailable {
            call: "SQS.SendMessageBatch".into(),
            message: "down".into(),
        }));
    let err = handle(&ingest, &event("spoofed-device-id.json"), NOW)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("1 rejected records not stored"),
        "{err}"
    );
    let diagnostic: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diagnostic.error_type, "DeadLetterUnavailable");
}

#[tokio::test]
async fn all_good_input_never_touches_the_dead_letter_queue() {
    let ingest = ingest();
    ingest
        .dead_letters()
        .set_behaviour(Behaviour::Failing(StoreError::Unavailable {
            call: "x".into(),
            message: "y".into(),
        }));
    let summary = handle(&ingest, &event("valid-batch.json"), NOW)
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.dead_lettered), (5, 0));
}

#[tokio::test]
async fn same_reading_twice_has_the_same_record_id() {
    let ingest = ingest();
    handle(&ingest, &event("valid-reading.json"), NOW)
        .await
        .unwrap();
    handle(
        &ingest,
        &event("valid-reading.json"),
        NOW + Duration::from_secs(60),
    )
    .await
    .unwrap();
    let ids: Vec<Value> = ingest
        .sink()
        .delivered()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.data).unwrap()["record_id"].clone())
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn accepted_and_rejected_readings_are_counted_in_the_invocations_emf() {
    use fleetwire::runtime::metrics::name;
    use fleetwire::testing::metrics::{counted, flushed, record};
    record();
    let logs = fleetwire::testing::logs::capture("fleetwire-test-function");
    let ingest = ingest();
    handle(&ingest, &event("valid-reading.json"), NOW)
        .await
        .unwrap();
    handle(&ingest, &event("out-of-range-temperature.json"), NOW)
        .await
        .unwrap();
    let documents = flushed("ingest-request", None);
    assert!(counted(&documents, name::READINGS_ACCEPTED, None) >= 1);
    assert!(counted(&documents, name::READINGS_REJECTED, None) >= 1);
    assert!(counted(&documents, name::READINGS_DEAD_LETTERED, None) >= 1);
    let line = logs.line("reading dead-lettered", None);
    fleetwire::testing::logs::assert_powertools_keys(&line, "fleetwire-test-function");
    assert!(line["device_id"].is_string(), "{line}");
}

#[tokio::test]
async fn the_ingested_line_names_the_record_ids_the_stream_took() {
    let logs = fleetwire::testing::logs::capture("fleetwire-test-function");
    let ingest = ingest();
    handle(&ingest, &event("valid-reading.json"), NOW)
        .await
        .unwrap();
    let written = ingest.sink().delivered();
    let id = serde_json::from_slice::<Value>(&written.last().unwrap().data).unwrap()["record_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let line = logs.line("telemetry ingested", Some(("record_ids", &id)));
    fleetwire::testing::logs::assert_powertools_keys(&line, "fleetwire-test-function");
}

/// The whole ingest against anything a rule could pass on: the sample events with one part
/// changed into any JSON, and any JSON at all. Nothing panics and nothing is dropped
/// silently: every reading of the message is accepted into the stream or dead-lettered.
mod fuzz {
    use fleetwire::testing::fuzz::{json_value, near};
    use proptest::prelude::*;

    use super::*;

    fn accounted(message: &Value) -> Result<(), TestCaseError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ingest = ingest();
        let summary = runtime.block_on(handle(&ingest, message, NOW)).unwrap();
        let rejected: usize = summary.rejected.values().sum();
        prop_assert_eq!(
            summary.accepted + rejected,
            summary.received,
            "{:?}",
            summary
        );
        prop_assert_eq!(ingest.sink().delivered().len(), summary.accepted);
        prop_assert_eq!(summary.dead_lettered, rejected);
        Ok(())
    }

    proptest! {
        #[test]
        fn a_changed_reading_is_streamed_or_dead_lettered((message, _) in near(event("valid-reading.json"))) {
            accounted(&message)?;
        }

        #[test]
        fn a_changed_batch_is_streamed_or_dead_lettered((message, _) in near(event("valid-batch.json"))) {
            accounted(&message)?;
        }

        #[test]
        fn any_json_is_streamed_or_dead_lettered(message in json_value()) {
            accounted(&message)?;
        }
    }
}
