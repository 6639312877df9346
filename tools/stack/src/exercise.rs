//! One pass of the shared adapters against the local stack, for the demo: each step prints
//! what it did and what it proves.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetwire::adapters::{DynamoDeviceState, DynamoRegistry, KinesisSink, SqsDeadLetters};
use fleetwire::domain::dead_letter::{DeadLetter, DeadLetterSink};
use fleetwire::domain::device_state::DeviceStateStore;
use fleetwire::domain::registry::{
    ClaimOutcome, ProvisioningClaim, ProvisioningRecord, Registry, RegistryEntry, Serial,
};
use fleetwire::domain::telemetry::{TelemetryRecord, TimestampLimits};
use fleetwire::ingest::stream::{StreamRecord, StreamSink};
use fleetwire::runtime::retry::RetryPolicy;
use serde_json::json;
use time::OffsetDateTime;

use crate::local::Clients;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn need<'a>(values: &'a BTreeMap<String, String>, var: &str) -> Result<&'a str, BoxError> {
    values
        .get(var)
        .map(String::as_str)
        .ok_or_else(|| format!("template.yaml declares no resource for {var}").into())
}

pub async fn run(clients: &Clients, values: &BTreeMap<String, String>) -> Result<(), BoxError> {
    let now = OffsetDateTime::now_utc();
    let suffix = now.unix_timestamp();
    let retry = RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        budget: Duration::from_secs(10),
    };

    let registry = DynamoRegistry::new(clients.dynamodb.clone(), need(values, "REGISTRY_TABLE")?);
    let serial = Serial::parse(&format!("DEMO-{suffix}"))?;
    registry
        .add(&RegistryEntry::allowed(
            serial.clone(),
            "demo-model",
            format!("demo-car-{suffix}"),
        ))
        .await?;
    let claim = ProvisioningClaim {
        serial: serial.clone(),
        record: ProvisioningRecord {
            certificate_id: "demo-certificate".into(),
            claim_certificate_id: "demo-claim".into(),
            client_id: format!("demo-car-{suffix}"),
            at: now,
        },
    };
    let first = registry.claim(&claim).await?;
    // IoT Core retrying the same request (same certificate) gets the same answer...
    let retried = registry.claim(&claim).await?;
    // ...while another certificate for the serial is a replay or a clone.
    let mut replay = claim.clone();
    replay.record.certificate_id = "another-certificate".into();
    let replayed = registry.claim(&replay).await?;
    let single_use = matches!(first, ClaimOutcome::Provisioned(_))
        && matches!(retried, ClaimOutcome::Provisioned(_))
        && matches!(replayed, ClaimOutcome::Refused { current: Some(_) });
    println!(
        "  registry   {serial}: allowed, claimed once, retry let through, replay refused ({})",
        verdict(single_use)
    );

    let states = DynamoDeviceState::new(clients.dynamodb.clone(), need(values, "STATE_TABLE")?);
    let reading = |seconds_ago: i64| {
        let value = json!({
            "device_id": format!("demo-car-{suffix}"), "timestamp": (suffix - seconds_ago) * 1000,
            "temperature": 21.5, "humidity": 40, "pressure": 1012
        });
        TelemetryRecord::validate(&value, now, &TimestampLimits::default())
    };
    let newer = states.record_telemetry(&reading(1)?).await?;
    let older = states.record_telemetry(&reading(60)?).await?;
    println!(
        "  state      newer reading {newer:?}, older reading {older:?} ({})",
        verdict(format!("{newer:?}{older:?}") == "AppliedStale")
    );

    let sink = KinesisSink::new(
        clients.kinesis.clone(),
        need(values, "TELEMETRY_STREAM")?,
        retry,
    );
    let records: Vec<StreamRecord> = (0..3)
        .map(|n| StreamRecord {
            partition_key: format!("demo-car-{suffix}"),
            data: format!("demo record {n}").into_bytes(),
        })
        .collect();
    let report = sink.put_records(&records).await;
    println!(
        "  stream     {} of {} records delivered in {} call(s) ({})",
        report.delivered,
        records.len(),
        report.calls,
        verdict(report.all_delivered())
    );

    let dead_letters = SqsDeadLetters::new(
        clients.sqs.clone(),
        need(values, "DEAD_LETTER_QUEUE_URL")?,
        retry,
    );
    dead_letters
        .send(&[DeadLetter {
            reason: "demo".into(),
            errors: vec!["temperature: 451 is outside -90..=150 °C".into()],
            source: "stack".into(),
            device_id: Some(format!("demo-car-{suffix}")),
            topic: None,
            caller: None,
            received_at: None,
            rejected_at: now,
            payload: json!({"device_id": format!("demo-car-{suffix}"), "temperature": 451}),
            payload_base64: None,
        }])
        .await?;
    println!(
        "  dead-letter one rejected reading stored with its reason ({})",
        verdict(true)
    );

    if !(single_use && report.all_delivered() && format!("{newer:?}{older:?}") == "AppliedStale") {
        return Err("an adapter did not behave as expected (see above)".into());
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "UNEXPECTED" }
}
