//! The fault layer between the AWS SDK for Rust and the real DynamoDB Local and
//! kinesis-mock of `scripts/stack up`: the SDK must read each injected error as the service's
//! own (retrying what it classifies as throttling or transient, not the rest), a partly
//! failed PutRecords must write exactly the entries it answers as written, and TCP toxics
//! must reach the SDK's connections. Endpoints and names come from `.local/run/stack.env`.

use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use faults::{Faults, Switch, start_route};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::testing::{read_stream, run_id, stack_var as var};
use noxious::toxic::{StreamDirection, Toxic, ToxicKind};

/// A free loopback port for a route (bound, then released for the proxy to take).
fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").to_string()
}

fn upstream(service: &str) -> String {
    var(&format!("AWS_ENDPOINT_URL_{service}"))
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// A route in front of `service`, and the SDK settings with the route's address.
async fn route(name: &str, service: &str) -> (Switch, aws_config::SdkConfig, String) {
    let listen = free_port();
    let switch = start_route(name, &listen, &upstream(service))
        .await
        .expect("the route starts");
    let settings = SdkSettings {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        attempt_timeout: Duration::from_millis(1_500),
        operation_timeout: Duration::from_secs(10),
        ..SdkSettings::default()
    };
    (
        switch,
        load_sdk_config(&settings).await,
        format!("http://{listen}"),
    )
}

/// A client of the route: set on the service's own configuration, since
/// `AWS_ENDPOINT_URL_<SERVICE>` outranks the shared one. Each route's clients have a
/// retry partition of their own: the SDK's retry quota is shared by every client of a
/// partition (by default, of a service), and one test's refusals would spend another's.
fn dynamodb_via(config: &aws_config::SdkConfig, url: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(config)
            .endpoint_url(url)
            .retry_partition(aws_sdk_dynamodb::config::retry::RetryPartition::new(
                url.to_owned(),
            ))
            .build(),
    )
}

fn errors(share: f64) -> Faults {
    Faults {
        errors: share,
        ..Faults::default()
    }
}

fn total(switch: &Switch) -> u64 {
    switch.route.injected().values().sum()
}

#[tokio::test]
async fn the_sdk_retries_injected_throttling_and_server_errors_as_the_services_own() {
    let (switch, config, url) = route("dynamodb", "DYNAMODB").await;
    let dynamodb = dynamodb_via(&config, &url);
    let table = var("STATE_TABLE");
    let key = AttributeValue::S(format!("faults-{}", run_id()));

    switch.apply(errors(1.0)).await.expect("faults on");
    let err = dynamodb
        .get_item()
        .table_name(&table)
        .key("device_id", key.clone())
        .send()
        .await
        .expect_err("every attempt is refused");
    let code = err.code().unwrap_or_default().to_owned();
    assert!(
        [
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "InternalServerError",
            "ServiceUnavailable"
        ]
        .contains(&code.as_str()),
        "the SDK parsed the injected error as {code:?}: {err:?}"
    );
    assert_eq!(
        total(&switch),
        3,
        "the SDK retried the error on every attempt: {:?}",
        switch.route.injected()
    );

    // Delayed calls pass, and are counted.
    switch
        .apply(Faults {
            delay_ms: Some([20, 40]),
            ..Faults::default()
        })
        .await
        .expect("delays on");
    let item = dynamodb
        .get_item()
        .table_name(&table)
        .key("device_id", key.clone())
        .send()
        .await
        .expect("a delayed call passes");
    assert!(item.item().is_none());
    assert_eq!(
        switch.route.injected().get("dynamodb delayed calls"),
        Some(&1)
    );

    switch.apply(errors(0.0)).await.expect("faults off");
    let item = dynamodb
        .get_item()
        .table_name(&table)
        .key("device_id", key)
        .send()
        .await
        .expect("DynamoDB Local answers through the layer");
    assert!(item.item().is_none());
}

#[tokio::test]
async fn a_canceled_transaction_reaches_the_caller_with_a_reason_per_item_unretried() {
    let (switch, config, url) = route("dynamodb", "DYNAMODB").await;
    let dynamodb = dynamodb_via(&config, &url);
    let table = var("STATE_TABLE");
    let run = run_id();
    let puts: Vec<TransactWriteItem> = (0..3)
        .map(|i| {
            let put = Put::builder()
                .table_name(&table)
                .item("device_id", AttributeValue::S(format!("faults-{run}-{i}")))
                .build()
                .expect("a put");
            TransactWriteItem::builder().put(put).build()
        })
        .collect();
    switch.apply(errors(1.0)).await.expect("faults on");
    let conflict = "dynamodb TransactionCanceledException [TransactionConflict]";
    for _ in 0..40 {
        let before = switch.route.injected().get(conflict).copied().unwrap_or(0);
        let err = dynamodb
            .transact_write_items()
            .set_transact_items(Some(puts.clone()))
            .send()
            .await
            .expect_err("refused");
        let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) =
            err.as_service_error()
        else {
            continue;
        };
        let codes: Vec<&str> = canceled
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code())
            .collect();
        assert_eq!(codes.len(), 3, "a reason per item: {codes:?}");
        assert_eq!(
            codes
                .iter()
                .filter(|c| **c == "TransactionConflict")
                .count(),
            1
        );
        assert!(
            codes
                .iter()
                .all(|c| *c == "None" || *c == "TransactionConflict")
        );
        let after = switch.route.injected().get(conflict).copied().unwrap_or(0);
        assert_eq!(
            after,
            before + 1,
            "the SDK does not retry a canceled transaction"
        );
        return;
    }
    panic!(
        "no transaction conflict in 40 refused calls: {:?}",
        switch.route.injected()
    );
}

#[tokio::test]
async fn a_partly_failed_put_records_writes_exactly_the_entries_it_answers_as_written() {
    let (switch, config, url) = route("kinesis", "KINESIS").await;
    // One attempt per call: a retried call whose first attempt was written and answered
    // 500 (a fault of the layer too) would write entries its last answer calls failed,
    // as a producer retrying on Kinesis does; this test is about one answer.
    let kinesis = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&config)
            .endpoint_url(url)
            .retry_config(
                aws_sdk_kinesis::config::retry::RetryConfig::standard().with_max_attempts(1),
            )
            .build(),
    );
    let stream = var("TELEMETRY_STREAM");
    let run = run_id();
    switch.apply(errors(1.0)).await.expect("faults on");
    let mut written = Vec::new();
    let mut failed = Vec::new();
    for attempt in 0..40 {
        let tags: Vec<String> = (0..6)
            .map(|i| format!("faults-{run}-{attempt}-{i}"))
            .collect();
        let entries: Vec<PutRecordsRequestEntry> = tags
            .iter()
            .map(|tag| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(tag.as_bytes()))
                    .partition_key(tag)
                    .build()
                    .expect("an entry")
            })
            .collect();
        let Ok(answer) = kinesis
            .put_records()
            .stream_name(&stream)
            .set_records(Some(entries))
            .send()
            .await
        else {
            continue;
        };
        if answer.failed_record_count() == Some(0) {
            continue;
        }
        for (tag, entry) in tags.iter().zip(answer.records()) {
            if entry.error_code().is_some() {
                assert_eq!(
                    entry.error_code(),
                    Some("ProvisionedThroughputExceededException")
                );
                failed.push(tag.clone());
            } else {
                assert!(entry.sequence_number().is_some());
                written.push(tag.clone());
            }
        }
        break;
    }
    assert!(!failed.is_empty(), "no partial failure in 40 calls");
    switch.apply(errors(0.0)).await.expect("faults off");
    let direct = aws_sdk_kinesis::Client::new(&load_sdk_config(&SdkSettings::default()).await);
    let data = read_stream(&direct, &stream)
        .await
        .expect("the stream reads");
    let in_stream = |tag: &String| data.iter().any(|d| d.as_slice() == tag.as_bytes());
    for tag in &written {
        assert!(
            in_stream(tag),
            "{tag} was answered as written but is not in the stream"
        );
    }
    for tag in &failed {
        assert!(
            !in_stream(tag),
            "{tag} was answered as failed but was written"
        );
    }
}

#[tokio::test]
async fn tcp_toxics_reach_the_sdks_connections_and_go_away() {
    let (switch, config, url) = route("state-tcp", "DYNAMODB").await;
    let dynamodb = dynamodb_via(&config, &url);
    let table = var("STATE_TABLE");
    let get = || {
        dynamodb
            .get_item()
            .table_name(&table)
            .key("device_id", AttributeValue::S("faults-tcp".into()))
            .send()
    };
    get().await.expect("no toxics: the call passes");
    // A stall: nothing flows until the connection is closed after 5 s, longer than the
    // SDK's attempt timeout, so every attempt times out.
    let stall = Toxic {
        kind: ToxicKind::Timeout { timeout: 5_000 },
        name: String::new(),
        toxicity: 1.0,
        direction: StreamDirection::Upstream,
    };
    // Switched on twice: the same toxics are left alone the second time (a switch rebuilds
    // every open connection's links).
    for _ in 0..2 {
        switch
            .apply(Faults {
                toxics: vec![stall.clone()],
                ..Faults::default()
            })
            .await
            .expect("toxic on");
    }
    let err = get()
        .await
        .expect_err("a stalled connection fails the call");
    assert!(
        format!("{err:?}").contains("timeout") || format!("{err:?}").contains("Timeout"),
        "{err:?}"
    );
    assert_eq!(
        switch
            .route
            .injected()
            .get("state-tcp timeout on 100 % of connections (switched on)"),
        Some(&1)
    );
    switch.apply(Faults::default()).await.expect("toxic off");
    get().await.expect("toxics off: the call passes again");

    // The same on the answers' side, switched on and off twice: a toxic taken off must be
    // gone, whichever direction it was on.
    for _ in 0..2 {
        let stall_answers = Toxic {
            kind: ToxicKind::Timeout { timeout: 5_000 },
            name: String::new(),
            toxicity: 1.0,
            direction: StreamDirection::Downstream,
        };
        switch
            .apply(Faults {
                toxics: vec![stall_answers],
                ..Faults::default()
            })
            .await
            .expect("toxic on");
        get().await.expect_err("stalled answers fail the call");
        switch.apply(Faults::default()).await.expect("toxic off");
        get().await.expect("toxics off: the call passes again");
    }
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_still_ours_when_the_sdk_retries_it() {
    use fleetwire::adapters::DynamoIdempotency;
    use fleetwire::domain::idempotency::{Claim, IdempotencyStore};

    let (switch, config, url) = route("dynamodb", "DYNAMODB").await;
    let store = DynamoIdempotency::new(dynamodb_via(&config, &url), var("IDEMPOTENCY_TABLE"));
    // Half the attempts refused, a fifth of those after the claim was written: an attempt
    // whose write applied and whose answer said it failed is retried by the SDK, and the
    // retry finds the claim that attempt made.
    switch.apply(errors(0.5)).await.expect("faults on");
    let run = run_id();
    let now = time::OffsetDateTime::now_utc();
    let (mut claimed, mut refused) = (0, 0);
    for i in 0..200 {
        let key = format!("faults-{run}-{i}");
        match store
            .claim(
                &key,
                "fingerprint",
                now,
                now - time::Duration::minutes(1),
                now + time::Duration::hours(1),
            )
            .await
        {
            Ok(Claim::Claimed) => claimed += 1,
            Ok(other) => panic!("a fresh key {key} was not ours: {other:?}"),
            Err(_) => refused += 1,
        }
    }
    let applied_then_failed = switch
        .route
        .injected()
        .get("dynamodb InternalServerError after applying the write (HTTP 500)")
        .copied()
        .unwrap_or(0);
    assert!(applied_then_failed > 0, "{:?}", switch.route.injected());
    assert!(
        claimed > 100,
        "{claimed} claimed, {refused} refused after three attempts"
    );
}
