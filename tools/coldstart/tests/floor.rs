//! The harness against a real runtime client: the SDK-only floor binary of this package,
//! echoing its events (no AWS call), under the loopback Runtime API.

use bytes::Bytes;
use coldstart::measure::{Events, MeasureError, Target, measure, one_start};
use coldstart::runtime_api::{ApiError, Outcome, RuntimeApi};

fn floor() -> Target {
    Target {
        name: "sdk-floor".into(),
        command: vec![env!("CARGO_BIN_EXE_sdk-floor").into()],
        cwd: None,
        env: vec![("AWS_REGION".into(), "us-east-1".into())],
        memory_mb: 128,
        log: None,
    }
}

#[tokio::test]
async fn fresh_starts_of_a_lambda_runtime_client_are_measured() {
    let mut api = RuntimeApi::start().await.unwrap();
    let mut events = Events::one(Bytes::from_static(br#"{"hello":"fleet"}"#));
    let sample = one_start(&mut api, &floor(), &mut events, 5).await.unwrap();
    assert_eq!(
        sample.first_outcome,
        Outcome::Response(r#"{"hello":"fleet"}"#.into())
    );
    assert_eq!(sample.warm.len(), 5);
    assert_eq!(sample.errors, 0);
    assert!(sample.init > std::time::Duration::ZERO);
    assert!(sample.peak_rss_kib.is_some_and(|kib| kib > 100));

    // The same API serves start after start.
    let summary = measure(&mut api, &floor(), &mut events, 3, 10)
        .await
        .unwrap();
    assert_eq!(summary.starts, 3);
    assert_eq!(summary.warm_calls_per_start, 10);
    assert!(summary.cold_start_ms >= summary.init_ms);
    assert!(summary.warm_p99_ms >= summary.warm_p50_ms);
    assert_eq!(summary.first_answer, r#"{"hello":"fleet"}"#);
}

/// One start of `target` that must fail: why it did.
async fn failed_start(target: &Target) -> MeasureError {
    let mut api = RuntimeApi::start().await.unwrap();
    let mut events = Events::one(Bytes::from_static(b"{}"));
    one_start(&mut api, target, &mut events, 1)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_function_that_fails_to_start_is_reported_as_such() {
    let mut target = floor();
    target.command = vec!["sh".into(), "-c".into(), "exit 3".into()];
    let err = failed_start(&target).await;
    assert!(matches!(err, MeasureError::Exited { .. }), "{err}");
    assert!(err.to_string().contains("exit status: 3"), "{err}");
}

#[tokio::test]
async fn an_init_error_reported_to_the_api_fails_the_measurement() {
    let mut target = floor();
    // A bad setting: reported through /runtime/init/error, as fleetwire's functions do.
    target
        .env
        .push(("SDK_MAX_ATTEMPTS".into(), "not a number".into()));
    match failed_start(&target).await {
        MeasureError::Api(ApiError::InitFailed(message)) => {
            assert!(message.contains("SDK_MAX_ATTEMPTS"), "{message}")
        }
        other => panic!("expected the init error, got {other}"),
    }
}
