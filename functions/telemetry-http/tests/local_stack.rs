//! telemetry-http against the local stack, over real HTTP: requests to the runner's HTTP
//! API (the template's routes, with tokens from the runner's issuer), served by the
//! function under `cargo lambda watch`, writing to kinesis-mock and the DynamoDB Local
//! idempotency and caller-rate tables; and the function's own URL under `cargo lambda watch`, which has no
//! authorizer and so must refuse. Run by `scripts/test` after `scripts/stack up`.

use std::collections::BTreeMap;

use bytes::Bytes;
use fleetwire::testing::{START_HINT, invoke_under_watch, run_id, stack_var as var};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use time::OffsetDateTime;

struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Value,
}

async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::post(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}; {START_HINT}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        headers,
        body,
    }
}

/// A token from the runner's issuer with these claims.
async fn token(claims: Value) -> String {
    let url = format!(
        "http://127.0.0.1:{}/runner/tokens",
        var("FLEETWIRE_IOT_DATA_PORT")
    );
    let issued = post(&url, &[], claims.to_string()).await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    issued.body["token"].as_str().unwrap().to_owned()
}

/// The function built under `cargo lambda watch` before the runner's API calls it: its
/// first invoke includes the build, which can outlast the runner's invoke timeout.
fn built_under_watch() {
    let event: Value = fleetwire::testing::event("telemetry-http", "no-authorizer.json");
    assert_eq!(
        invoke_under_watch("telemetry-http", &event)["statusCode"],
        401
    );
}

fn api(path: &str) -> String {
    format!("{}{path}", var("TELEMETRY_API_URL"))
}

fn reading(device: &str, seq: i64) -> Value {
    let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    json!({"device_id": device, "timestamp": now_ms - 60_000 + seq, "temperature": 21.5,
           "humidity": 40.0, "pressure": 1013.0, "seq": seq})
}

/// Every record in the stream whose device id starts with `prefix`.
async fn in_stream(prefix: &str) -> Vec<Value> {
    let sdk =
        fleetwire::runtime::aws::load_sdk_config(&fleetwire::runtime::aws::SdkSettings::default())
            .await;
    let client = aws_sdk_kinesis::Client::new(&sdk);
    fleetwire::testing::read_stream_devices(&client, &var("TELEMETRY_STREAM"), prefix).await
}

#[tokio::test]
async fn a_gateway_posts_for_its_devices_once_and_a_retry_replays_the_answer() {
    built_under_watch();
    let run = format!("http-{}", run_id());
    let (mine, other) = (format!("{run}-a"), format!("{run}-b"));
    let bearer = format!(
        "Bearer {}",
        token(json!({"sub": format!("{run}-gw"), "fleetwire:devices": [mine]})).await
    );
    let body = json!({"records": [
        reading(&mine, 1),
        reading(&mine, 2),
        reading(&other, 3),
        {"device_id": mine, "timestamp": 0, "temperature": 900},
    ]})
    .to_string();
    let key = format!("{run}-batch-1");
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", key.as_str()),
    ];

    let first = post(&api("/v1/telemetry"), &headers, body.clone()).await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(first.body["accepted"], 2, "{}", first.body);
    assert_eq!(first.body["rejected"], 2, "{}", first.body);
    let statuses: Vec<&str> = first.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "accepted", "rejected", "rejected"]);
    assert_eq!(first.body["records"][2]["reason"], "spoofed");

    let again = post(&api("/v1/telemetry"), &headers, body.clone()).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body, first.body, "the retry replays the first answer");
    assert_eq!(
        again.headers.get("idempotent-replayed").map(String::as_str),
        Some("true")
    );

    let changed_body = json!({"records": [reading(&mine, 9)]}).to_string();
    let changed = post(&api("/v1/telemetry"), &headers, changed_body).await;
    assert_eq!(changed.status, 422, "{}", changed.body);

    let stored = in_stream(&run).await;
    assert_eq!(
        stored.len(),
        2,
        "each accepted record once, the retry wrote nothing: {stored:?}"
    );
    assert!(stored.iter().all(|r| r["device_id"] == mine.as_str()));
}

#[tokio::test]
async fn the_api_refuses_callers_it_cannot_trust_and_bodies_it_cannot_take() {
    built_under_watch();
    let run = format!("http-{}", run_id());
    let device = format!("{run}-a");
    let json_type = ("content-type", "application/json");
    let one = json!({"records": [reading(&device, 1)]}).to_string();

    let anonymous = post(&api("/v1/telemetry"), &[json_type], one.clone()).await;
    assert_eq!(anonymous.status, 401);

    let foreign_audience = token(json!({"sub": device, "aud": "someone-else"})).await;
    let bearer = format!("Bearer {foreign_audience}");
    let refused = post(
        &api("/v1/telemetry"),
        &[json_type, ("authorization", &bearer)],
        one.clone(),
    )
    .await;
    assert_eq!(refused.status, 401);

    let no_devices = format!(
        "Bearer {}",
        token(json!({"sub": device, "fleetwire:devices": []})).await
    );
    let forbidden = post(
        &api("/v1/telemetry"),
        &[json_type, ("authorization", &no_devices)],
        one.clone(),
    )
    .await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);

    let own = format!("Bearer {}", token(json!({"sub": device})).await);
    let all_invalid = post(
        &api("/v1/telemetry"),
        &[json_type, ("authorization", &own)],
        json!({"device_id": device, "temperature": "warm"}).to_string(),
    )
    .await;
    assert_eq!(all_invalid.status, 400, "{}", all_invalid.body);
    assert!(
        !all_invalid.body["records"][0]["errors"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let too_big = post(
        &api("/v1/telemetry"),
        &[json_type, ("authorization", &own)],
        vec![b' '; 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(too_big.status, 413, "{}", too_big.body);

    // The IAM route needs SigV4, which the local API does not verify: refused, not open.
    let iam = post(&api("/v1/backend/telemetry"), &[json_type], one).await;
    assert_eq!(iam.status, 403);
    assert!(in_stream(&run).await.is_empty());
}

/// Eight requests at once from the holder of `bearer`, each refused as `text/plain` right
/// after its count: only the rate counter works, so a burst is quick to spend.
async fn eight_cheap_requests(bearer: &str) -> Vec<Answer> {
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (url, bearer) = (api("/v1/telemetry"), bearer.to_owned());
        requests.spawn(async move {
            post(
                &url,
                &[("content-type", "text/plain"), ("authorization", &bearer)],
                "x",
            )
            .await
        });
    }
    requests.join_all().await
}

#[tokio::test]
async fn a_caller_over_its_own_rate_limit_waits_while_another_goes_on() {
    built_under_watch();
    let run = format!("http-{}", run_id());
    let (noisy, quiet) = (format!("{run}-noisy"), format!("{run}-quiet"));
    let per_second = var("CALLER_RATE_LIMIT");
    let burst: usize = var("CALLER_BURST")
        .parse()
        .expect("CALLER_BURST is a number");
    let noisy_bearer = format!("Bearer {}", token(json!({"sub": noisy})).await);

    let (mut sent, mut limited) = (0, None);
    while limited.is_none() && sent < burst * 4 {
        for answer in eight_cheap_requests(&noisy_bearer).await {
            match answer.status {
                415 => {}
                429 => limited = limited.or(Some(answer)),
                other => panic!("expected 415 or 429, got {other}: {}", answer.body),
            }
        }
        sent += 8;
    }
    let limited =
        limited.unwrap_or_else(|| panic!("{sent} requests from one caller and none was limited"));
    let retry_after: u64 = limited.headers["retry-after"]
        .parse()
        .expect("Retry-After in seconds");
    let window_seconds = (burst as u64).div_ceil(per_second.parse().unwrap());
    assert!(
        (1..=window_seconds).contains(&retry_after),
        "Retry-After {retry_after} within a window of {window_seconds} s"
    );
    let message = limited.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "rate limit of {per_second} requests per second (burst {burst})"
        )),
        "{message}"
    );

    // Another caller, in the same moment, has a budget of its own.
    let json_type = ("content-type", "application/json");
    let quiet_bearer = format!("Bearer {}", token(json!({"sub": quiet})).await);
    let quiet_answer = post(
        &api("/v1/telemetry"),
        &[json_type, ("authorization", &quiet_bearer)],
        reading(&quiet, 1).to_string(),
    )
    .await;
    assert_eq!(quiet_answer.status, 202, "{}", quiet_answer.body);

    // When Retry-After has passed, the noisy caller's next window lets it in.
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    let again = post(
        &api("/v1/telemetry"),
        &[json_type, ("authorization", &noisy_bearer)],
        reading(&noisy, 2).to_string(),
    )
    .await;
    assert_eq!(again.status, 202, "{}", again.body);
    let mut stored: Vec<String> = in_stream(&run)
        .await
        .iter()
        .map(|r| r["device_id"].as_str().unwrap().to_owned())
        .collect();
    stored.sort();
    stored.dedup();
    assert_eq!(stored, [noisy, quiet]);
}

#[tokio::test]
async fn the_function_url_under_watch_has_no_authorizer_and_refuses_to_write() {
    built_under_watch();
    let url = format!(
        "http://127.0.0.1:{}/lambda-url/telemetry-http/v1/telemetry",
        var("FLEETWIRE_LAMBDA_PORT")
    );
    let device = format!("http-{}-a", run_id());
    let answer = post(
        &url,
        &[("content-type", "application/json")],
        json!({"records": [reading(&device, 1)]}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(in_stream(&device).await.is_empty());
}

#[tokio::test]
async fn an_iam_signed_back_end_writes_for_any_device() {
    let run = format!("http-{}", run_id());
    let mut event: Value = fleetwire::testing::event("telemetry-http", "backend-iam.json");
    let devices = [format!("{run}-x"), format!("{run}-y")];
    event["body"] = json!({"records": [reading(&devices[0], 1), reading(&devices[1], 2)]})
        .to_string()
        .into();
    let answer = invoke_under_watch("telemetry-http", &event);
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let stored = in_stream(&run).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
}
