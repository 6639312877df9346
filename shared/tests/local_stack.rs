//! The shared adapters against the real local servers of `scripts/stack up` (DynamoDB
//! Local, kinesis-mock, moto). Selected with `--features local-stack-tests`; resource
//! names and endpoints come from `.local/run/stack.env`, which `scripts/test` loads.
//! Without a reachable stack these tests fail and say how to start it: they never skip.

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use fleetwire::adapters::{DynamoDeviceState, DynamoRegistry, KinesisSink, SqsDeadLetters};
use fleetwire::domain::dead_letter::{DeadLetter, DeadLetterSink};
use fleetwire::domain::device_state::{DeviceStateStore, WriteOutcome};
use fleetwire::domain::registry::{
    AddOutcome, ClaimOutcome, Denial, DenialOutcome, ProvisioningClaim, ProvisioningRecord,
    Registry, RegistryEntry, RegistryStatus, RevokeOutcome, Serial,
};
use fleetwire::domain::telemetry::{TelemetryRecord, TimestampLimits};
use fleetwire::ingest::stream::{StreamRecord, StreamSink};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::runtime::error::StoreError;
use fleetwire::runtime::retry::RetryPolicy;
use fleetwire::testing::{START_HINT, run_id, stack_var as var};
use serde_json::json;
use time::OffsetDateTime;

/// The SDK configuration for the local stack, after checking that each endpoint answers:
/// a stack that is not up fails here with the way to start it, never as a skipped test.
async fn sdk() -> aws_config::SdkConfig {
    for service in ["DYNAMODB", "KINESIS", "SQS"] {
        let endpoint = var(&format!("AWS_ENDPOINT_URL_{service}"));
        let address = endpoint
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        let reachable = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
        assert!(
            reachable,
            "{service} endpoint {endpoint} does not answer; {START_HINT}"
        );
    }
    let settings = SdkSettings {
        max_attempts: 2,
        ..SdkSettings::default()
    };
    load_sdk_config(&settings).await
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        budget: Duration::from_secs(10),
    }
}

async fn registry() -> DynamoRegistry {
    DynamoRegistry::new(
        aws_sdk_dynamodb::Client::new(&sdk().await),
        var("REGISTRY_TABLE"),
    )
}

fn provisioning(serial: &Serial, claim: &str) -> ProvisioningClaim {
    ProvisioningClaim {
        serial: serial.clone(),
        record: ProvisioningRecord {
            certificate_id: format!("cert-{serial}"),
            claim_certificate_id: claim.into(),
            client_id: format!("client-{serial}"),
            at: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
        },
    }
}

fn expect_ok<T>(result: Result<T, StoreError>) -> T {
    result.unwrap_or_else(|e| panic!("{e}\n{START_HINT}"))
}

#[tokio::test]
async fn conditional_put_succeeds_then_reports_the_existing_item_as_a_value() {
    let registry = registry().await;
    let serial = Serial::parse(&format!("SN-{}", run_id())).unwrap();
    let mut entry = RegistryEntry::allowed(serial.clone(), "model-x", format!("car-{serial}"));
    entry.attributes = BTreeMap::from([("Fleet".to_string(), "seoul".to_string())]);

    assert_eq!(expect_ok(registry.add(&entry).await), AddOutcome::Added);

    let mut again = entry.clone();
    again.model = "something-else".into();
    assert_eq!(
        expect_ok(registry.add(&again).await),
        AddOutcome::AlreadyPresent(Box::new(entry.clone()))
    );
    assert_eq!(
        expect_ok(registry.get(&serial).await),
        Some(entry),
        "the first write stands"
    );
}

#[tokio::test]
async fn claim_moves_allowed_to_provisioned_once_and_refuses_other_certificates() {
    let registry = registry().await;
    let serial = Serial::parse(&format!("SN-{}", run_id())).unwrap();
    expect_ok(
        registry
            .add(&RegistryEntry::allowed(
                serial.clone(),
                "m",
                format!("car-{serial}"),
            ))
            .await,
    );

    let claim = provisioning(&serial, "claim-1");
    let ClaimOutcome::Provisioned(entry) = expect_ok(registry.claim(&claim).await) else {
        panic!("first claim refused")
    };
    assert_eq!(entry.status, RegistryStatus::Provisioned);
    assert_eq!(entry.provisioning, Some(claim.record.clone()));

    // The same claim again (an answer lost to a timeout) is let through, first time kept.
    let mut retry = claim.clone();
    retry.record.at += time::Duration::seconds(5);
    let ClaimOutcome::Provisioned(again) = expect_ok(registry.claim(&retry).await) else {
        panic!("retry refused")
    };
    assert_eq!(again.provisioning, Some(claim.record.clone()));

    let mut replay = provisioning(&serial, "claim-1");
    replay.record.certificate_id = "cert-of-an-attacker".into();
    let ClaimOutcome::Refused {
        current: Some(current),
    } = expect_ok(registry.claim(&replay).await)
    else {
        panic!("replay must be refused with the row as it was")
    };
    assert_eq!(current.status, RegistryStatus::Provisioned);
    assert_eq!(current.provisioning, Some(claim.record));
}

#[tokio::test]
async fn denials_are_counted_then_lock_the_serial_and_unknown_serials_stay_unknown() {
    let registry = registry().await;
    let serial = Serial::parse(&format!("SN-{}", run_id())).unwrap();
    expect_ok(
        registry
            .add(&RegistryEntry::allowed(
                serial.clone(),
                "m",
                format!("car-{serial}"),
            ))
            .await,
    );
    let denial = |serial: &Serial| Denial {
        serial: serial.clone(),
        reason: "wrong-claim-certificate".into(),
        at: OffsetDateTime::now_utc(),
        lock_after: 3,
    };
    assert_eq!(
        expect_ok(registry.record_denial(&denial(&serial)).await),
        DenialOutcome::Counted { attempts: 1 }
    );
    assert_eq!(
        expect_ok(registry.record_denial(&denial(&serial)).await),
        DenialOutcome::Counted { attempts: 2 }
    );
    assert_eq!(
        expect_ok(registry.record_denial(&denial(&serial)).await),
        DenialOutcome::Locked { attempts: 3 }
    );
    assert_eq!(
        expect_ok(registry.record_denial(&denial(&serial)).await),
        DenialOutcome::NotCounted
    );
    let locked = expect_ok(registry.get(&serial).await).unwrap();
    assert_eq!(
        (locked.status, locked.denied_attempts),
        (RegistryStatus::Locked, 3)
    );
    assert!(matches!(
        expect_ok(registry.claim(&provisioning(&serial, "c")).await),
        ClaimOutcome::Refused { .. }
    ));

    let unknown = Serial::parse(&format!("SN-unknown-{}", run_id())).unwrap();
    assert_eq!(
        expect_ok(registry.record_denial(&denial(&unknown)).await),
        DenialOutcome::NotCounted
    );
    assert_eq!(
        expect_ok(registry.get(&unknown).await),
        None,
        "an unknown serial is never created"
    );
}

#[tokio::test]
async fn revoked_serial_cannot_be_claimed() {
    let registry = registry().await;
    let serial = Serial::parse(&format!("SN-{}", run_id())).unwrap();
    let entry = RegistryEntry::allowed(serial.clone(), "m", format!("car-{serial}"));
    expect_ok(registry.add(&entry).await);
    assert_eq!(
        expect_ok(registry.revoke(&serial, OffsetDateTime::now_utc()).await),
        RevokeOutcome::Revoked(Box::new(entry))
    );
    let ClaimOutcome::Refused {
        current: Some(current),
    } = expect_ok(registry.claim(&provisioning(&serial, "c")).await)
    else {
        panic!("a revoked serial must be refused")
    };
    assert_eq!(current.status, RegistryStatus::Revoked);
    let unknown = Serial::parse(&format!("SN-unknown-{}", run_id())).unwrap();
    assert_eq!(
        expect_ok(registry.revoke(&unknown, OffsetDateTime::now_utc()).await),
        RevokeOutcome::Unknown
    );
    assert_eq!(expect_ok(registry.get(&unknown).await), None);
}

#[tokio::test]
async fn claim_of_unknown_serial_is_refused_without_creating_it() {
    let registry = registry().await;
    let serial = Serial::parse(&format!("SN-unknown-{}", run_id())).unwrap();
    assert_eq!(
        expect_ok(registry.claim(&provisioning(&serial, "c")).await),
        ClaimOutcome::Refused { current: None }
    );
    assert_eq!(expect_ok(registry.get(&serial).await), None);
}

#[tokio::test]
async fn claim_with_another_batch_claim_certificate_is_refused() {
    let registry = registry().await;
    let serial = Serial::parse(&format!("SN-{}", run_id())).unwrap();
    let mut entry = RegistryEntry::allowed(serial.clone(), "m", format!("car-{serial}"));
    entry.claim_certificate_ids = vec!["claim-batch-7".into()];
    expect_ok(registry.add(&entry).await);

    let refused = expect_ok(
        registry
            .claim(&provisioning(&serial, "claim-batch-8"))
            .await,
    );
    assert_eq!(
        refused,
        ClaimOutcome::Refused {
            current: Some(entry)
        }
    );
    assert!(matches!(
        expect_ok(
            registry
                .claim(&provisioning(&serial, "claim-batch-7"))
                .await
        ),
        ClaimOutcome::Provisioned(_)
    ));
}

#[tokio::test]
async fn device_state_keeps_the_newest_reading_only() {
    let states = DynamoDeviceState::new(
        aws_sdk_dynamodb::Client::new(&sdk().await),
        var("STATE_TABLE"),
    );
    let device = format!("car-{}", run_id());
    let now = OffsetDateTime::now_utc();
    let reading = |seconds_ago: i64, temperature: f64| {
        let value = json!({
            "device_id": device, "timestamp": (now.unix_timestamp() - seconds_ago) * 1000,
            "temperature": temperature, "humidity": 40, "pressure": 1000
        });
        TelemetryRecord::validate(&value, now, &TimestampLimits::default()).unwrap()
    };

    assert_eq!(
        expect_ok(states.record_telemetry(&reading(10, 20.0)).await),
        WriteOutcome::Applied
    );
    assert_eq!(
        expect_ok(states.record_telemetry(&reading(60, 30.0)).await),
        WriteOutcome::Stale,
        "older loses"
    );
    assert_eq!(
        expect_ok(states.record_telemetry(&reading(10, 25.0)).await),
        WriteOutcome::Stale,
        "same time loses"
    );
    let state = expect_ok(states.get(&reading(0, 0.0).device_id).await).expect("state stored");
    assert_eq!(state.version, 1);
    assert_eq!(
        state.last_telemetry.unwrap()["temperature"].as_f64(),
        Some(20.0)
    );
}

#[tokio::test]
async fn missing_table_is_a_rejected_call_not_a_business_answer() {
    let registry = DynamoRegistry::new(
        aws_sdk_dynamodb::Client::new(&sdk().await),
        "fleetwire-no-such-table",
    );
    let err = registry
        .get(&Serial::parse("SN1").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err}");
    assert!(
        err.to_string().contains("ResourceNotFoundException"),
        "{err}"
    );
}

#[tokio::test]
async fn put_records_then_get_records_returns_the_same_records_in_order() {
    let config = sdk().await;
    let client = aws_sdk_kinesis::Client::new(&config);
    let stream = var("TELEMETRY_STREAM");
    let sink = KinesisSink::new(client.clone(), &stream, fast_retry());
    let run = run_id();
    // More than one PutRecords call's worth, over a few partition keys.
    let records: Vec<StreamRecord> = (0..620)
        .map(|n| StreamRecord {
            partition_key: format!("car-{}", n % 4),
            data: format!("{run}:{n}").into_bytes(),
        })
        .collect();

    let report = sink.put_records(&records).await;
    assert!(report.all_delivered(), "{:?}", report.failed.first());
    assert_eq!(report.delivered, 620);
    assert!(
        report.calls >= 2,
        "620 records need two calls, made {}",
        report.calls
    );

    let seen: Vec<String> = fleetwire::testing::read_stream(&client, &stream)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{START_HINT}"))
        .into_iter()
        .map(|d| String::from_utf8_lossy(&d).into_owned())
        .filter(|d| d.starts_with(&format!("{run}:")))
        .collect();
    assert_eq!(seen.len(), 620, "every record comes back once");
    for key in 0..4 {
        let of_key: Vec<usize> = seen
            .iter()
            .filter_map(|d| d.split(':').nth(1)?.parse().ok())
            .filter(|n: &usize| n % 4 == key)
            .collect();
        let mut sorted = of_key.clone();
        sorted.sort_unstable();
        assert_eq!(
            of_key, sorted,
            "records of one partition key keep their order"
        );
    }
}

#[tokio::test]
async fn put_records_to_a_missing_stream_reports_every_record_failed() {
    let client = aws_sdk_kinesis::Client::new(&sdk().await);
    let sink = KinesisSink::new(client, "fleetwire-no-such-stream", fast_retry());
    let records = vec![
        StreamRecord {
            partition_key: "k".into(),
            data: b"x".to_vec()
        };
        3
    ];
    let report = sink.put_records(&records).await;
    assert_eq!(report.delivered, 0);
    assert_eq!(
        report.failed.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(
        report.failed.iter().all(|f| !f.transient),
        "{:?}",
        report.failed[0]
    );
}

#[tokio::test]
async fn dead_letters_are_sent_and_received_with_their_reason() {
    let client = aws_sdk_sqs::Client::new(&sdk().await);
    let queue_url = var("DEAD_LETTER_QUEUE_URL");
    let sink = SqsDeadLetters::new(client.clone(), &queue_url, fast_retry());
    let run = run_id();
    let letters: Vec<DeadLetter> = (0..12)
        .map(|n| DeadLetter {
            reason: "validation".into(),
            errors: vec![format!("temperature: {n} is outside -90..=150 °C")],
            source: "local-stack-test".into(),
            device_id: Some(format!("car-{run}")),
            topic: None,
            caller: None,
            received_at: None,
            rejected_at: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
            payload: json!({"run": run, "n": n}),
            payload_base64: None,
        })
        .collect();
    expect_ok(sink.send(&letters).await);

    let mut received: Vec<DeadLetter> = Vec::new();
    for _ in 0..20 {
        let page = client
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for message in page.messages() {
            let letter: DeadLetter =
                serde_json::from_str(message.body().unwrap_or_default()).expect("a dead letter");
            if letter.payload["run"] == json!(run) {
                let attributes = message.message_attributes().expect("attributes");
                assert_eq!(attributes["reason"].string_value(), Some("validation"));
                assert_eq!(
                    attributes["source"].string_value(),
                    Some("local-stack-test")
                );
                received.push(letter);
                if let Some(handle) = message.receipt_handle() {
                    client
                        .delete_message()
                        .queue_url(&queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete");
                }
            }
        }
        if received.len() == letters.len() {
            break;
        }
    }
    received.sort_by_key(|l| l.payload["n"].as_u64());
    assert_eq!(received, letters);
}
