//! The processor with its real adapters against the local stack (DynamoDB Local, moto's
//! SNS and SQS): summaries equal a recomputation from the raw readings, replays change
//! nothing, and concurrent processors of one device never move its state backwards.
//! Run by `scripts/test` after `scripts/stack up`; without the stack they fail saying so.

use std::sync::Arc;
use std::time::Duration;

use fleetwire::adapters::{DynamoDeviceState, DynamoProcessing, SnsAlerts, SqsDeadLetters};
use fleetwire::domain::device_state::DeviceStateStore;
use fleetwire::domain::processing::{AnomalyRules, DeviceLedger, ProcessingStore, hour_key};
use fleetwire::domain::telemetry::{DeviceId, EnrichedRecord, TelemetryRecord, TimestampLimits};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::runtime::retry::RetryPolicy;
use fleetwire::testing::{START_HINT, stack_var as var};
use serde_json::json;
use stream_processor::{InputRecord, ItemIdentifier, Processor};
use time::OffsetDateTime;

type Real = Processor<DynamoProcessing, SnsAlerts, SqsDeadLetters, DynamoDeviceState>;

fn rules() -> AnomalyRules {
    AnomalyRules {
        min_samples: 5,
        ..AnomalyRules::default()
    }
}

async fn processor() -> Real {
    let sdk = load_sdk_config(&SdkSettings {
        max_attempts: 3,
        ..SdkSettings::default()
    })
    .await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    Processor::new(
        DynamoProcessing::new(
            dynamodb.clone(),
            var("STATE_TABLE"),
            var("SUMMARIES_TABLE"),
            var("PROCESSED_RECORDS_TABLE"),
            Duration::from_secs(86_400),
        ),
        SnsAlerts::new(aws_sdk_sns::Client::new(&sdk), var("ALERT_TOPIC_ARN")),
        SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(&sdk),
            var("DEAD_LETTER_QUEUE_URL"),
            RetryPolicy::default(),
        ),
        DynamoDeviceState::new(dynamodb, var("STATE_TABLE")),
        rules(),
    )
}

fn readings(device: &str, count: usize) -> Vec<EnrichedRecord> {
    let start = OffsetDateTime::now_utc()
        .replace_minute(0)
        .unwrap()
        .replace_second(0)
        .unwrap()
        - time::Duration::hours(2);
    (0..count)
        .map(|n| {
            let at = start + time::Duration::seconds(n as i64 * 37);
            let value = json!({"device_id": device, "timestamp": at.unix_timestamp() * 1000,
                "temperature": 18.0 + (n % 11) as f64 * 0.7 + if n == 60 { 70.0 } else { 0.0 },
                "humidity": 40, "pressure": 1000, "location": {"latitude": 37.5, "longitude": 127.0}});
            let reading = TelemetryRecord::validate(&value, at, &TimestampLimits::default()).unwrap();
            EnrichedRecord::new(reading, at + time::Duration::seconds(1))
        })
        .collect()
}

fn inputs(records: &[EnrichedRecord]) -> Vec<InputRecord> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| InputRecord {
            group: "shardId-0".into(),
            item_id: ItemIdentifier::Sequence(format!("{i}")),
            data: serde_json::to_vec(r).unwrap(),
        })
        .collect()
}

fn device_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000,
        fastrand::u32(..100_000)
    )
}

#[tokio::test]
async fn summaries_match_a_recomputation_and_replays_change_nothing() {
    let p = processor().await;
    let device = device_name("sp-summary");
    let records = readings(&device, 200);
    let batch = inputs(&records);
    // Uneven batches, the second replayed twice, as an event source mapping might.
    for chunk in [
        &batch[..37],
        &batch[37..120],
        &batch[37..120],
        &batch[37..120],
        &batch[120..],
    ] {
        let (response, _) = p
            .process(chunk)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{START_HINT}"));
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    let mut expected = DeviceLedger::default();
    for r in &records {
        expected.apply(r, &rules());
    }
    let store = DynamoProcessing::new(
        aws_sdk_dynamodb::Client::new(&load_sdk_config(&SdkSettings::default()).await),
        var("STATE_TABLE"),
        var("SUMMARIES_TABLE"),
        var("PROCESSED_RECORDS_TABLE"),
        Duration::from_secs(60),
    );
    let id = DeviceId::parse(&device).unwrap();
    for (hour, want) in &expected.summaries {
        let got = store
            .summary(&id, hour)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no summary for {hour}"));
        assert_eq!(
            (got.record_count, got.anomaly_count),
            (want.record_count, want.anomaly_count),
            "{hour}"
        );
        assert_eq!(
            (got.min_temperature, got.max_temperature),
            (want.min_temperature, want.max_temperature),
            "{hour}"
        );
        let close = |a: Option<f64>, b: Option<f64>| (a.unwrap() - b.unwrap()).abs() < 1e-9;
        assert!(
            close(got.avg_temperature(), want.avg_temperature()),
            "{hour}"
        );
        assert!(close(got.temp_stddev(), want.temp_stddev()), "{hour}");
        assert!(
            close(got.data_quality_score(), want.data_quality_score()),
            "{hour}"
        );
    }
    assert!(
        expected
            .summaries
            .values()
            .map(|s| s.anomaly_count)
            .sum::<u64>()
            >= 1,
        "the 70 °C jump is an anomaly"
    );
    assert_eq!(
        store.load_stats(&id).await.unwrap().stats.temperature.count,
        200
    );
    let newest = records.iter().map(hour_key).max().unwrap();
    assert!(expected.summaries.contains_key(&newest));
}

#[tokio::test]
async fn concurrent_processors_of_one_device_never_move_state_backwards() {
    let p = Arc::new(processor().await);
    let device = device_name("sp-concurrent");
    let records = readings(&device, 120);
    let batch = inputs(&records);
    // Four processors take overlapping slices at once (a redelivery racing the original).
    let slices = [(0, 60), (30, 90), (60, 120), (0, 120)];
    let tasks: Vec<_> = slices
        .iter()
        .map(|&(from, to)| {
            let p = Arc::clone(&p);
            let chunk = batch[from..to].to_vec();
            tokio::spawn(async move { p.process(&chunk).await })
        })
        .collect();
    let mut failed = Vec::new();
    for task in tasks {
        let (response, _) = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\n{START_HINT}"));
        failed.extend(response.batch_item_failures);
    }
    // What a conflict left for retry, the event source mapping would redeliver: do so.
    if !failed.is_empty() {
        let (response, _) = p.process(&batch).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    let state = DynamoDeviceState::new(
        aws_sdk_dynamodb::Client::new(&load_sdk_config(&SdkSettings::default()).await),
        var("STATE_TABLE"),
    );
    let stored = state
        .get(&DeviceId::parse(&device).unwrap())
        .await
        .unwrap()
        .unwrap();
    let newest = records
        .iter()
        .map(|r| r.reading.timestamp_ms())
        .max()
        .unwrap();
    assert_eq!(
        stored.last_telemetry_at,
        Some(newest),
        "the newest reading wins whatever the interleaving"
    );
    let stats = DynamoProcessing::new(
        aws_sdk_dynamodb::Client::new(&load_sdk_config(&SdkSettings::default()).await),
        var("STATE_TABLE"),
        var("SUMMARIES_TABLE"),
        var("PROCESSED_RECORDS_TABLE"),
        Duration::from_secs(60),
    )
    .load_stats(&DeviceId::parse(&device).unwrap())
    .await
    .unwrap();
    assert_eq!(
        stats.stats.temperature.count, 120,
        "each reading counted exactly once"
    );
}
