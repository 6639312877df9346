//! firmware-url against the local stack: the Registry index and the OTA tables on DynamoDB
//! Local, the signing key from Secrets Manager and the publish on moto, and the binary
//! itself under `cargo lambda watch`. Run by `scripts/test` after `scripts/stack up`.

use firmware_url::{FirmwareUrl, Handled, UrlSettings};
use fleetwire::adapters::secrets::load_url_signer;
use fleetwire::adapters::{DynamoOta, DynamoOtaAdmin, DynamoRegistry, IotDataChannel};
use fleetwire::cloudfront::{UrlVerifier, VerifyingKey};
use fleetwire::domain::ota::{DeviceChannel, Release, Rollout};
use fleetwire::domain::registry::{Registry, RegistryEntry, RegistryStatus, Serial};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::testing::stack_var as env;
use fleetwire::testing::{RecordingChannel, invoke_under_watch};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn key_file(name: &str) -> String {
    let path = format!(
        "{}/../../shared/tests/data/cloudfront/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

struct Stack {
    sdk: aws_types::SdkConfig,
    registry: DynamoRegistry,
    ota: DynamoOta,
}

async fn stack() -> Stack {
    let sdk = load_sdk_config(&SdkSettings {
        max_attempts: 2,
        ..SdkSettings::default()
    })
    .await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    Stack {
        registry: DynamoRegistry::new(dynamodb.clone(), env("REGISTRY_TABLE")),
        ota: DynamoOta::new(
            dynamodb,
            env("FIRMWARE_TABLE"),
            env("ROLLOUTS_TABLE"),
            env("OTA_HISTORY_TABLE"),
        ),
        sdk,
    }
}

/// Puts the test key into the signing secret, as an operator would after deploying.
async fn set_signing_secret(stack: &Stack) {
    let value =
        json!({"key_pair_id": "K2JCJMDEHXQW5F", "private_key": key_file("rsa2048_pkcs1.pem")});
    aws_sdk_secretsmanager::Client::new(&stack.sdk)
        .put_secret_value()
        .secret_id(env("SIGNING_KEY_SECRET_ARN"))
        .secret_string(value.to_string())
        .send()
        .await
        .expect("PutSecretValue on moto");
}

/// A PROVISIONED device of a fresh model with one 100 % rollout of 2.0.0: ids unique per
/// run, so tests never see each other's rows.
async fn seed(stack: &Stack, tag: &str) -> (String, String) {
    let unique = format!(
        "{tag}-{}-{}",
        OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000,
        fastrand::u32(..)
    );
    let thing = format!("car-{unique}");
    let model = format!("model-{unique}");
    let mut entry = RegistryEntry::allowed(
        Serial::parse(&format!("SN-{unique}")).unwrap(),
        &model,
        &thing,
    );
    entry.status = RegistryStatus::Provisioned;
    stack.registry.add(&entry).await.unwrap();
    DynamoOtaAdmin::new(stack.ota.clone())
        .put_release(&Release {
            model: model.clone(),
            version: "2.0.0".into(),
            s3_key: format!("{model}/2.0.0/image.bin"),
            size: 4_194_304,
            sha256: "ab".repeat(32),
            signature: "c2lnbmF0dXJl".into(),
            notes: None,
        })
        .await
        .unwrap();
    let rollout = Rollout::active(format!("r-{unique}"), &model, "2.0.0", 100.0, 0.2, 10);
    DynamoOtaAdmin::new(stack.ota.clone())
        .put_rollout(&rollout)
        .await
        .unwrap();
    (thing, model)
}

fn request(thing: &str, model: &str) -> Value {
    json!({"thing_name": thing, "source_ip": "203.0.113.5", "request_id": "req-1",
           "model": model, "current_version": "1.0.0"})
}

#[tokio::test]
async fn offers_through_the_real_tables_and_the_secret() {
    let stack = stack().await;
    set_signing_secret(&stack).await;
    let (thing, model) = seed(&stack, "fw").await;
    let signer = load_url_signer(
        &aws_sdk_secretsmanager::Client::new(&stack.sdk),
        &env("SIGNING_KEY_SECRET_ARN"),
    )
    .await
    .unwrap();
    let settings = UrlSettings {
        download_base: "https://d111111abcdef8.cloudfront.net".into(),
        base_ttl_seconds: 900,
        slowest_bytes_per_second: 16_384,
        max_ttl_seconds: 86_400,
        bind_to_source_ip: false,
    };
    let function = FirmwareUrl::new(
        stack.registry.clone(),
        stack.ota.clone(),
        RecordingChannel::default(),
        signer,
        settings,
    );
    let now = OffsetDateTime::now_utc();
    // DynamoDB Local's indexes answer right away; on AWS they lag the table by well under a second.
    let handled = function
        .handle(&request(&thing, &model), now)
        .await
        .unwrap();
    let expires_at = now.unix_timestamp() + 900 + 256;
    assert!(
        matches!(handled, Handled::Offered { ref version, expires_at: e, .. } if version == "2.0.0" && e == expires_at),
        "{handled:?}"
    );

    let history = DynamoOtaAdmin::new(stack.ota.clone())
        .history(&thing)
        .await
        .unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["at"], "offer#req-1");
    assert_eq!(history[0]["version"], "2.0.0");
    assert_eq!(history[0]["from_version"], "1.0.0");
    assert!(
        history[0]["expires_at"].as_i64().unwrap() > now.unix_timestamp(),
        "TTL set"
    );

    let verifier = UrlVerifier::new().trust(
        "K2JCJMDEHXQW5F",
        VerifyingKey::from_pem(key_file("rsa2048_public.pem").as_bytes()).unwrap(),
    );
    let (_, answer) = function_answer(&function);
    verifier
        .verify(
            answer["url"].as_str().unwrap(),
            now.unix_timestamp() + 1,
            None,
        )
        .unwrap();

    let unknown = function
        .handle(&request("car-nobody", &model), now)
        .await
        .unwrap();
    assert!(
        matches!(unknown, Handled::Answered { ref reason, .. } if reason.contains("not in the Registry"))
    );
}

fn function_answer(
    function: &FirmwareUrl<DynamoRegistry, DynamoOta, RecordingChannel>,
) -> (String, Value) {
    function
        .channel()
        .published()
        .into_iter()
        .next()
        .expect("one answer published")
}

#[tokio::test]
async fn the_iot_data_plane_takes_the_answer() {
    let stack = stack().await;
    let channel = IotDataChannel::new(aws_sdk_iotdataplane::Client::new(&stack.sdk));
    channel
        .publish(
            "fleet/car-1/firmware/url",
            br#"{"request_id":"r"}"#.to_vec(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_binary_answers_under_cargo_lambda_watch() {
    let stack = stack().await;
    set_signing_secret(&stack).await;
    let (thing, model) = seed(&stack, "watch").await;
    let answer = invoke_under_watch("firmware-url", &request(&thing, &model));
    assert_eq!(answer["result"], "offered", "{answer}");
    assert_eq!(answer["version"], "2.0.0");
    let history = DynamoOtaAdmin::new(stack.ota.clone())
        .history(&thing)
        .await
        .unwrap();
    assert_eq!(history[0]["at"], "offer#req-1");

    let refused = invoke_under_watch(
        "firmware-url",
        &json!({"thing_name": thing, "request_id": "req-2",
        "model": "wrong-model", "current_version": "1.0.0"}),
    );
    assert_eq!(refused["result"], "answered", "{refused}");
    assert_eq!(refused["status"], "not_eligible");
}
