//! The HTTP mapping over the ingest core, with in-memory stream, dead-letter queue and
//! idempotency table, on the API Gateway events in `events/telemetry-http`.

use fleetwire::domain::rate_limit::RateLimit;
use fleetwire::domain::telemetry::TimestampLimits;
use fleetwire::ingest::IngestConfig;
use fleetwire::ingest::config::Backend;
use fleetwire::runtime::error::StoreError;
use fleetwire::runtime::retry::RetryPolicy;
use fleetwire::testing::{
    Behaviour, InMemoryIdempotency, InMemoryRateCounter, RecordingDeadLetters, RecordingStream,
};
use time::macros::datetime;

use super::*;

/// The sample requests were sent at 08:00:00; they are answered 30 s later.
const NOW: OffsetDateTime = datetime!(2026-11-25 08:00:30 UTC);

type Entry =
    HttpIngest<RecordingStream, RecordingDeadLetters, InMemoryIdempotency, InMemoryRateCounter>;

fn event(name: &str) -> ApiGatewayV2httpRequest {
    serde_json::from_value(fleetwire::testing::event("telemetry-http", name))
        .unwrap_or_else(|e| panic!("events/telemetry-http/{name}: {e}"))
}

fn entry() -> Entry {
    entry_with(HttpSettings::default())
}

fn entry_with(settings: HttpSettings) -> Entry {
    let config = IngestConfig {
        backend: Backend::Kinesis { stream: "s".into() },
        dead_letter_queue_url: "q".into(),
        max_batch: 100,
        limits: TimestampLimits::default(),
        sink_retry: RetryPolicy::default(),
        dead_letter_retry: RetryPolicy::default(),
    };
    let ingest = Ingest::new(
        RecordingStream::default(),
        RecordingDeadLetters::default(),
        &config,
    );
    HttpIngest::new(ingest, InMemoryIdempotency::default(), settings)
}

struct Answered {
    status: i64,
    headers: HeaderMap,
    body: Value,
}

async fn send(entry: &Entry, request: &ApiGatewayV2httpRequest) -> Answered {
    send_at(entry, request, NOW).await
}

async fn send_at(entry: &Entry, request: &ApiGatewayV2httpRequest, at: OffsetDateTime) -> Answered {
    let response = entry.handle(request, at).await;
    let body = match response.body {
        Some(ResponseBody::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a JSON text body, got {other:?}"),
    };
    Answered {
        status: response.status_code,
        headers: response.headers,
        body,
    }
}

fn devices_in_stream(entry: &Entry) -> Vec<String> {
    entry
        .ingest
        .sink()
        .delivered()
        .into_iter()
        .map(|r| r.partition_key)
        .collect()
}

#[tokio::test]
async fn a_device_token_writes_its_own_reading() {
    let entry = entry();
    let answered = send(&entry, &event("device-token.json")).await;
    assert_eq!(answered.status, 202);
    assert_eq!(answered.body["accepted"], 1);
    assert_eq!(
        answered.body["records"],
        json!([{"index": 0, "device_id": "car-0001", "status": "accepted"}])
    );
    assert_eq!(devices_in_stream(&entry), ["car-0001"]);
    assert_eq!(
        answered.headers.get("content-type").unwrap(),
        "application/json"
    );
}

#[tokio::test]
async fn a_gateway_gets_a_result_per_record_and_its_spoofs_are_kept_with_the_reason() {
    let entry = entry();
    let answered = send(&entry, &event("gateway-batch.json")).await;
    assert_eq!(answered.status, 202, "{}", answered.body);
    assert_eq!(answered.body["accepted"], 2);
    assert_eq!(answered.body["rejected"], 2);
    let records = answered.body["records"].as_array().unwrap();
    let statuses: Vec<&str> = records
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "accepted", "rejected", "rejected"]);
    assert_eq!(records[2]["reason"], "spoofed");
    assert!(
        records[2]["errors"][0]
            .as_str()
            .unwrap()
            .contains("\"token:gw-0001\" may write for")
    );
    assert_eq!(records[3]["reason"], "validation");
    assert!(
        records[3]["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("humidity")
    );
    assert_eq!(devices_in_stream(&entry), ["car-0001", "car-0002"]);
    let letters = entry.ingest.dead_letters().sent();
    assert_eq!(letters.len(), 2);
    assert!(letters.iter().all(|l| l.source == "telemetry-http"
        && l.topic.as_deref() == Some("POST /v1/telemetry")
        && l.caller.as_deref() == Some("token:gw-0001")));
    assert_eq!(letters[0].reason, "spoofed");
}

#[tokio::test]
async fn an_iam_back_end_writes_for_any_device_of_the_fleet() {
    let entry = entry();
    let answered = send(&entry, &event("backend-iam.json")).await;
    assert_eq!(answered.status, 202);
    assert_eq!(answered.body["accepted"], 2);
    assert_eq!(devices_in_stream(&entry), ["car-0001", "car-0042"]);
}

#[tokio::test]
async fn a_request_without_an_authorizer_writes_nothing() {
    let entry = entry();
    let answered = send(&entry, &event("no-authorizer.json")).await;
    assert_eq!(answered.status, 401);
    assert!(
        answered.body["message"]
            .as_str()
            .unwrap()
            .contains("no authorizer context")
    );
    assert!(devices_in_stream(&entry).is_empty());
    assert!(entry.ingest.dead_letters().sent().is_empty());
}

fn jwt_claims(
    request: &mut ApiGatewayV2httpRequest,
) -> &mut std::collections::HashMap<String, String> {
    &mut request
        .request_context
        .authorizer
        .as_mut()
        .expect("the event has an authorizer")
        .jwt
        .as_mut()
        .expect("the authorizer is a JWT one")
        .claims
}

#[tokio::test]
async fn a_token_that_names_no_device_is_forbidden_and_one_without_sub_unauthenticated() {
    let entry = entry();
    let mut request = event("gateway-batch.json");
    jwt_claims(&mut request).insert("fleetwire:devices".into(), "[]".into());
    assert_eq!(send(&entry, &request).await.status, 403);
    let mut request2 = event("device-token.json");
    jwt_claims(&mut request2).remove("sub");
    assert_eq!(send(&entry, &request2).await.status, 401);
    assert!(devices_in_stream(&entry).is_empty());
}

#[tokio::test]
async fn all_invalid_is_400_with_every_field_error_and_every_record_kept() {
    let entry = entry();
    let answered = send(&entry, &event("all-invalid.json")).await;
    assert_eq!(answered.status, 400);
    assert_eq!(answered.body["accepted"], 0);
    let records = answered.body["records"].as_array().unwrap();
    assert!(
        records[0]["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("temperature")
    );
    // The second record misses every required field but one: each is named.
    assert!(records[1]["errors"].as_array().unwrap().len() >= 4);
    assert_eq!(entry.ingest.dead_letters().sent().len(), 2);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400_and_kept() {
    let entry = entry();
    let mut request = event("device-token.json");
    request.body = Some("temperature=21.5".into());
    let answered = send(&entry, &request).await;
    assert_eq!(answered.status, 400);
    assert_eq!(answered.body["records"][0]["reason"], "malformed_json");
    let letters = entry.ingest.dead_letters().sent();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].payload_base64.is_some());
}

#[tokio::test]
async fn size_method_and_content_type_are_checked_before_anything_is_written() {
    let entry = entry_with(HttpSettings {
        max_body_bytes: 1024,
        ..HttpSettings::default()
    });
    let mut big = event("device-token.json");
    big.body = Some(format!(
        r#"{{"records": [{}]}}"#,
        vec![r#"{"device_id": "car-0001"}"#; 60].join(",")
    ));
    let answered = send(&entry, &big).await;
    assert_eq!(answered.status, 413);
    assert!(
        answered.body["message"]
            .as_str()
            .unwrap()
            .contains("at most 1024")
    );

    let mut get = event("device-token.json");
    get.request_context.http.method = Method::GET;
    let answered = send(&entry, &get).await;
    assert_eq!(answered.status, 405);
    assert_eq!(answered.headers.get("allow").unwrap(), "POST");

    let mut form = event("device-token.json");
    form.headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    assert_eq!(send(&entry, &form).await.status, 415);
    assert!(devices_in_stream(&entry).is_empty());
    assert!(entry.ingest.dead_letters().sent().is_empty());
}

#[tokio::test]
async fn a_base64_body_is_decoded() {
    let entry = entry();
    let mut request = event("device-token.json");
    request.body = Some(BASE64.encode(request.body.as_deref().unwrap()));
    request.is_base64_encoded = true;
    assert_eq!(send(&entry, &request).await.status, 202);
}

#[tokio::test]
async fn a_retried_request_replays_the_first_answer_and_writes_nothing_twice() {
    let entry = entry();
    let request = event("gateway-batch.json");
    let first = send(&entry, &request).await;
    let again = send(&entry, &request).await;
    assert_eq!(again.status, first.status);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(devices_in_stream(&entry), ["car-0001", "car-0002"]);
    assert_eq!(entry.ingest.dead_letters().sent().len(), 2);
    // Keys are per caller: the same key from another caller is its own request.
    assert_eq!(
        entry.idempotency.keys(),
        ["token:gw-0001#gw-0001-batch-000042"]
    );
}

#[tokio::test]
async fn a_key_reused_for_another_body_is_422_and_a_bad_key_is_400() {
    let entry = entry();
    let request = event("gateway-batch.json");
    send(&entry, &request).await;
    let mut other = request.clone();
    other.body = Some(event("device-token.json").body.unwrap());
    assert_eq!(send(&entry, &other).await.status, 422);

    let mut bad = request.clone();
    bad.headers
        .insert("idempotency-key", HeaderValue::from_static("has space"));
    assert_eq!(send(&entry, &bad).await.status, 400);
    assert_eq!(devices_in_stream(&entry).len(), 2);
}

#[tokio::test]
async fn a_concurrent_retry_is_told_to_come_back() {
    let entry = entry();
    let request = event("gateway-batch.json");
    let print = fingerprint(&[
        b"/v1/telemetry",
        request.body.as_deref().unwrap().as_bytes(),
    ]);
    entry
        .idempotency
        .claim(
            "token:gw-0001#gw-0001-batch-000042",
            &print,
            NOW,
            NOW - time::Duration::minutes(1),
            NOW + time::Duration::days(1),
        )
        .await
        .unwrap();
    let answered = send(&entry, &request).await;
    assert_eq!(answered.status, 409);
    assert_eq!(answered.headers.get("retry-after").unwrap(), "5");
    assert!(devices_in_stream(&entry).is_empty());
}

#[tokio::test]
async fn a_stream_outage_is_503_with_what_to_resend_and_the_key_is_free_again() {
    let entry = entry();
    entry.ingest.sink().fail_partition_key("car-0002");
    let request = event("gateway-batch.json");
    let answered = send(&entry, &request).await;
    assert_eq!(answered.status, 503);
    assert_eq!(answered.headers.get("retry-after").unwrap(), "5");
    assert_eq!(answered.body["unavailable"], 1);
    assert_eq!(answered.body["records"][1]["status"], "unavailable");
    assert_eq!(answered.body["records"][0]["status"], "accepted");
    // Never dead-lettered: the caller holds it and sends it again.
    assert!(
        entry
            .ingest
            .dead_letters()
            .sent()
            .iter()
            .all(|l| l.reason != "sink_unavailable")
    );
    assert!(entry.idempotency.keys().is_empty(), "the claim is released");
}

#[tokio::test]
async fn a_dead_letter_outage_is_503_because_rejects_could_not_be_kept() {
    let entry = entry();
    entry
        .ingest
        .dead_letters()
        .set_behaviour(Behaviour::Failing(StoreError::Unavailable {
            call: "SQS.SendMessageBatch".into(),
            message: "down".into(),
        }));
    let answered = send(&entry, &event("gateway-batch.json")).await;
    assert_eq!(answered.status, 503);
    assert!(answered.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn an_idempotency_table_outage_is_503_and_nothing_is_written() {
    let entry = entry();
    entry
        .idempotency
        .set_behaviour(Behaviour::Failing(StoreError::Timeout {
            call: "DynamoDB.PutItem".into(),
            message: "slow".into(),
        }));
    let answered = send(&entry, &event("gateway-batch.json")).await;
    assert_eq!(answered.status, 503);
    assert!(devices_in_stream(&entry).is_empty());
}

/// Each caller may send `burst` requests per window of `burst / per_second` seconds.
fn rate_limited(per_second: u32, burst: u32) -> Entry {
    entry().with_rate_limit(CallerRateLimiter::new(
        InMemoryRateCounter::default(),
        RateLimit::new(per_second, burst).unwrap(),
    ))
}

fn rate_counts(entry: &Entry) -> Vec<(String, u32, OffsetDateTime)> {
    entry
        .limiter
        .as_ref()
        .expect("a limiter")
        .counter()
        .counts()
}

#[tokio::test]
async fn a_caller_over_its_rate_limit_is_429_until_its_next_window_and_others_go_on() {
    // Windows of 2 s; NOW (08:00:30) starts one, so the next starts 2 s later.
    let entry = rate_limited(1, 2);
    let device = event("device-token.json");
    assert_eq!(send(&entry, &device).await.status, 202);
    assert_eq!(send(&entry, &device).await.status, 202);
    let limited = send(&entry, &device).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "2");
    let message = limited.body["message"].as_str().unwrap();
    assert!(
        message.contains("over its rate limit of 1 requests per second (burst 2)"),
        "{message}"
    );
    assert_eq!(devices_in_stream(&entry), ["car-0001", "car-0001"]);
    // Another caller has a budget of its own.
    assert_eq!(send(&entry, &event("gateway-batch.json")).await.status, 202);
    // The next window lets the first caller in again.
    let later = NOW + std::time::Duration::from_secs(2);
    assert_eq!(send_at(&entry, &device, later).await.status, 202);
}

#[tokio::test]
async fn a_caller_that_is_not_authenticated_spends_no_budget() {
    let entry = rate_limited(1, 1);
    assert_eq!(send(&entry, &event("no-authorizer.json")).await.status, 401);
    assert!(rate_counts(&entry).is_empty());
}

#[tokio::test]
async fn a_rate_table_outage_lets_requests_in() {
    let entry = rate_limited(1, 1);
    entry
        .limiter
        .as_ref()
        .unwrap()
        .counter()
        .set_behaviour(Behaviour::Failing(StoreError::Unavailable {
            call: "DynamoDB.UpdateItem".into(),
            message: "connection refused".into(),
        }));
    let device = event("device-token.json");
    assert_eq!(send(&entry, &device).await.status, 202);
    assert_eq!(send(&entry, &device).await.status, 202);
    assert_eq!(devices_in_stream(&entry), ["car-0001", "car-0001"]);
}

/// AWS's documented HTTP API requests (`events/aws-examples/SOURCES.md`, payload format
/// 2.0 with a JWT and with an IAM authorizer) parse with the function's own request type
/// and get an answer: the example's token names no device (no `sub`), and the IAM-signed
/// caller's body ("Hello from Lambda") is no reading.
#[tokio::test]
async fn aws_documented_http_api_requests_get_an_answer() {
    async fn answer(name: &str) -> Answered {
        let request: ApiGatewayV2httpRequest =
            serde_json::from_value(fleetwire::testing::event("aws-examples", name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let entry = entry();
        let answered = send(&entry, &request).await;
        assert!(devices_in_stream(&entry).is_empty(), "{name}");
        answered
    }
    let jwt = answer("apigw-v2-jwt-authorizer.json").await;
    assert_eq!(
        (jwt.status, &jwt.body),
        (401, &json!({"message": "the token has no sub claim"}))
    );
    let iam = answer("apigw-v2-iam-authorizer.json").await;
    assert_eq!(iam.status, 400);
    assert_eq!(iam.body["records"][0]["reason"], "malformed_json");
}

#[tokio::test]
async fn answers_and_readings_are_counted_in_the_invocations_emf() {
    use fleetwire::runtime::metrics::name;
    use fleetwire::testing::metrics::{counted, flushed, record};
    record();
    let logs = fleetwire::testing::logs::capture("fleetwire-test-function");
    let entry = entry();
    assert_eq!(send(&entry, &event("device-token.json")).await.status, 202);
    let documents = flushed("http-request", None);
    assert!(counted(&documents, name::HTTP_ANSWERS, Some(("Status", "202"))) >= 1);
    assert!(counted(&documents, name::READINGS_ACCEPTED, None) >= 1);
    let line = logs.line("telemetry request answered", None);
    fleetwire::testing::logs::assert_powertools_keys(&line, "fleetwire-test-function");
}

/// The HTTP entry point against anything API Gateway could pass on: AWS's documented
/// requests and our device-token request with one part changed into any JSON, and any
/// body. A request that reads as API Gateway's type always gets an answer, never a 5xx
/// with the stores healthy, and a refusal says why in its body.
mod fuzz {
    use fleetwire::testing::fuzz::{near, text};
    use proptest::prelude::*;

    use super::*;

    fn answered(request: &ApiGatewayV2httpRequest) -> Result<(), TestCaseError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let entry = entry();
        let answer = runtime.block_on(send(&entry, request));
        prop_assert!(answer.status < 500, "{} {}", answer.status, answer.body);
        if answer.status >= 400 {
            prop_assert!(
                answer.body.get("message").is_some() || answer.body.get("records").is_some(),
                "a refusal without a reason: {}",
                answer.body
            );
        }
        Ok(())
    }

    fn changed(example: Value) -> impl Strategy<Value = Value> {
        near(example).prop_map(|(request, _)| request)
    }

    proptest! {
        #[test]
        fn a_changed_request_is_answered(
            request in prop_oneof![
                changed(fleetwire::testing::event("aws-examples", "apigw-v2-jwt-authorizer.json")),
                changed(fleetwire::testing::event("aws-examples", "apigw-v2-iam-authorizer.json")),
                changed(fleetwire::testing::event("telemetry-http", "device-token.json")),
            ]
        ) {
            if let Ok(request) = serde_json::from_value::<ApiGatewayV2httpRequest>(request) {
                answered(&request)?;
            }
        }

        #[test]
        fn any_body_is_answered(body in text(), base64 in any::<bool>()) {
            let mut request = event("device-token.json");
            request.body = Some(if base64 {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(body.as_bytes())
            } else {
                body
            });
            request.is_base64_encoded = base64;
            answered(&request)?;
        }
    }
}
