//! fleetctl against the local stack, as an operator runs it: the binary with the stack's
//! variables (`scripts/test` sources `.local/run/stack.env`), its stdout parsed back from
//! `--json`, and the tables and services checked directly. Run by `scripts/test` after
//! `scripts/stack up`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use aws_smithy_mocks::{RuleMode, mock, mock_client};
use fleetctl::Failure;
use fleetctl::cloudfront_keys::{CloudFrontKeys, SecretsManagerSigningSecret};
use fleetctl::keys::{
    self, GroupRef, KeyDistribution, KeyGroup, PublicKey, Rotation, SigningSecret,
};
use fleetwire::adapters::secrets::load_url_signer;
use fleetwire::adapters::{DynamoOta, DynamoOtaAdmin, DynamoRegistry};
use fleetwire::cloudfront::{
    HashAlgorithm, KeyAlgorithm, Policy, UrlSigner, UrlVerifier, VerifyingKey, generate_key,
};
use fleetwire::domain::ota::image::{ImageDigest, ImageSigner, ImageVerifier};
use fleetwire::domain::ota::{OfferRecord, OtaLedger, OtaPhase, OutcomeRecord};
use fleetwire::domain::registry::{
    ProvisioningClaim, ProvisioningRecord, Registry, RegistryStatus, Serial,
};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::testing::stack_var as env;
use fleetwire::testing::unique_id;
use serde_json::{Value, json};
use time::OffsetDateTime;

async fn sdk() -> aws_types::SdkConfig {
    load_sdk_config(&SdkSettings {
        max_attempts: 2,
        ..SdkSettings::default()
    })
    .await
}

fn fleetctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs fleetctl, expects `code`, and returns stdout.
fn run(args: &[&str], code: i32) -> String {
    let out = fleetctl(args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "fleetctl {args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    if code != 0 && stdout.is_empty() {
        return stderr;
    }
    stdout
}

fn run_json(args: &[&str], code: i32) -> Value {
    let stdout = run(args, code);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// A folder of the test's own under the system's temporary folder, removed when the test
/// ends (pass or fail): a publish test writes images of 17 MiB there.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_id(tag));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn registry(sdk: &aws_types::SdkConfig) -> DynamoRegistry {
    DynamoRegistry::new(aws_sdk_dynamodb::Client::new(sdk), env("REGISTRY_TABLE"))
}

fn ota(sdk: &aws_types::SdkConfig) -> DynamoOtaAdmin {
    DynamoOtaAdmin::new(DynamoOta::new(
        aws_sdk_dynamodb::Client::new(sdk),
        env("FIRMWARE_TABLE"),
        env("ROLLOUTS_TABLE"),
        env("OTA_HISTORY_TABLE"),
    ))
}

async fn provision(registry: &DynamoRegistry, serial: &str, certificate_id: &str) {
    let claim = ProvisioningClaim {
        serial: Serial::parse(serial).unwrap(),
        record: ProvisioningRecord {
            certificate_id: certificate_id.into(),
            claim_certificate_id: "claim".into(),
            client_id: serial.into(),
            at: OffsetDateTime::now_utc(),
        },
    };
    registry.claim(&claim).await.unwrap();
}

async fn status_of(registry: &DynamoRegistry, serial: &str) -> RegistryStatus {
    registry
        .get(&Serial::parse(serial).unwrap())
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn import_reports_bad_rows_by_line_and_never_overwrites_a_provisioned_serial() {
    let sdk = sdk().await;
    let registry = registry(&sdk);
    let tag = unique_id("IMP");
    let dir = ScratchDir::new("import");
    let file = dir.join("batch.csv");
    let csv = format!(
        "serial,model,thing_name\n{tag}-1,sensor-x\n{tag}-2,sensor-x,car-{tag}-2\nbad serial,sensor-x\n\
         {tag}-3,sensor-x\n{tag}-1,sensor-y\n"
    );
    std::fs::write(&file, &csv).unwrap();
    let path = file.to_str().unwrap();

    let dry = run_json(&["registry", "import", path, "--dry-run", "--json"], 1);
    assert_eq!(dry["report"]["created"], 3, "{dry}");
    assert!(
        registry
            .get(&Serial::parse(&format!("{tag}-1")).unwrap())
            .await
            .unwrap()
            .is_none(),
        "a dry run writes nothing"
    );

    // Invalid rows make the exit code 1; the valid ones are imported all the same.
    let first = run_json(&["registry", "import", path, "--json"], 1);
    assert_eq!(first["imported"], 3, "{first}");
    let invalid: Vec<u64> = first["report"]["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["line"].as_u64().unwrap())
        .collect();
    assert_eq!(invalid, [4, 6]);
    assert!(first["report"]["batch_calls"].as_u64().unwrap() >= 1);
    let again = run_json(&["registry", "import", path, "--json"], 1);
    assert_eq!(again["report"]["unchanged"], 3, "{again}");
    assert_eq!(again["imported"], 0);

    // One device provisions; a re-import that changes its row leaves it PROVISIONED.
    provision(&registry, &format!("{tag}-1"), "cert-1").await;
    std::fs::write(&file, format!("{tag}-1,sensor-z\n{tag}-3,sensor-z\n")).unwrap();
    let kept = run_json(&["registry", "import", path, "--json"], 0);
    assert_eq!(kept["report"]["replaced"], 1, "{kept}");
    assert_eq!(kept["report"]["skipped"][0]["serial"], format!("{tag}-1"));
    assert_eq!(
        status_of(&registry, &format!("{tag}-1")).await,
        RegistryStatus::Provisioned
    );
    let forced = run(&["registry", "import", path, "--force"], 0);
    assert!(forced.contains("imported 1 of 2 rows"), "{forced}");
    let rearmed = registry
        .get(&Serial::parse(&format!("{tag}-1")).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rearmed.status, RegistryStatus::Allowed);
    assert_eq!(rearmed.model, "sensor-z");
    assert!(rearmed.provisioning.is_none());
    // DynamoDB Local never leaves items unprocessed, so the BatchWriteItem retry of
    // UnprocessedItems is proven with aws-smithy-mocks instead, in
    // shared/src/adapters/registry_admin.rs (`unprocessed_items_are_sent_again_...`).
}

#[tokio::test]
async fn add_show_list_and_allow_by_hand() {
    let sdk = sdk().await;
    let registry = registry(&sdk);
    let serial = unique_id("ADD");
    let added = run_json(
        &[
            "registry",
            "add",
            &serial,
            "--model",
            "sensor-x",
            "--thing-name",
            &format!("t-{serial}"),
            "--attribute",
            "Fleet=seoul",
            "--json",
        ],
        0,
    );
    assert_eq!(added["status"], "ALLOWED");
    let twice = run(&["registry", "add", &serial, "--model", "sensor-x"], 1);
    assert!(twice.contains("already in the Registry"), "{twice}");
    let shown = run_json(&["registry", "show", &serial, "--json"], 0);
    assert_eq!(shown["attributes"]["Fleet"], "seoul");
    assert_eq!(shown["thing_name"], format!("t-{serial}"));
    let human = run(&["registry", "show", &serial], 0);
    assert!(
        human.contains("attributes") && human.contains("Fleet=seoul"),
        "{human}"
    );
    let listed = run_json(&["registry", "list", "--status", "allowed", "--json"], 0);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["serial"] == serial.as_str())
    );

    provision(&registry, &serial, "cert-allow").await;
    let already = run(&["registry", "allow", &serial], 2);
    assert!(
        already.contains("--yes"),
        "no terminal, no --yes: refused ({already})"
    );
    let allowed = run_json(&["registry", "allow", &serial, "--yes", "--json"], 0);
    assert_eq!(allowed["previous_status"], "PROVISIONED");
    assert_eq!(status_of(&registry, &serial).await, RegistryStatus::Allowed);
    let unknown = run(&["registry", "show", &unique_id("NOPE")], 1);
    assert!(unknown.contains("not in the Registry"), "{unknown}");
}

#[tokio::test]
async fn revoke_cuts_off_the_certificate_and_the_hook_then_denies_the_serial() {
    let sdk = sdk().await;
    let registry = registry(&sdk);
    let iot = aws_sdk_iot::Client::new(&sdk);
    let serial = unique_id("REV");
    // The device as fleet provisioning left it: a certificate with the device policy.
    let created = iot
        .create_keys_and_certificate()
        .set_as_active(true)
        .send()
        .await
        .unwrap();
    let certificate_id = created.certificate_id().unwrap().to_owned();
    let certificate_arn = created.certificate_arn().unwrap().to_owned();
    let policy = unique_id("device-policy");
    iot.create_policy()
        .policy_name(&policy)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    iot.attach_policy()
        .policy_name(&policy)
        .target(&certificate_arn)
        .send()
        .await
        .unwrap();
    run(&["registry", "add", &serial, "--model", "sensor-x"], 0);
    provision(&registry, &serial, &certificate_id).await;

    let revoked = run_json(&["registry", "revoke", &serial, "--json"], 0);
    assert_eq!(revoked["previous_status"], "PROVISIONED");
    assert_eq!(revoked["certificate"]["previous_status"], "ACTIVE");
    assert_eq!(revoked["certificate"]["detached_policies"], json!([policy]));
    let described = iot
        .describe_certificate()
        .certificate_id(&certificate_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described
            .certificate_description()
            .unwrap()
            .status()
            .unwrap()
            .as_str(),
        "REVOKED"
    );
    let attached = iot
        .list_attached_policies()
        .target(&certificate_arn)
        .send()
        .await
        .unwrap();
    assert!(attached.policies().is_empty());
    // Running it again finishes nothing new and fails nothing.
    let again = run_json(&["registry", "revoke", &serial, "--json"], 0);
    assert_eq!(again["certificate"]["previous_status"], "REVOKED");

    // The provisioning hook, under cargo lambda watch, now refuses the serial.
    let answer = fleetwire::testing::invoke_under_watch(
        "provisioning-hook",
        &json!({
            "claimCertificateId": "4f1e0c3d8a9b2c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
            "certificateId": "c0ffee0000000000000000000000000000000000000000000000000000000099",
            "certificatePem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "templateArn": "arn:aws:iot:us-east-1:123456789012:provisioningtemplate/fleetwire-local-fleet",
            "clientId": serial,
            "parameters": {"SerialNumber": serial},
        }),
    );
    assert_eq!(answer["allowProvisioning"], false, "{answer}");
    let unknown = run(&["registry", "revoke", &unique_id("NOPE")], 1);
    assert!(unknown.contains("not in the Registry"), "{unknown}");
}

fn image(dir: &Path, name: &str, size: usize, seed: u8) -> PathBuf {
    let path = dir.join(name);
    let bytes: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn publish_then_roll_out_then_follow_the_rollout() {
    let sdk = sdk().await;
    let ota = ota(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let dir = ScratchDir::new("publish");
    let model = unique_id("model");
    let key = generate_key(KeyAlgorithm::EcdsaP256).unwrap();
    let key_file = dir.join("code-signing.pem");
    std::fs::write(&key_file, &key.private_pem).unwrap();
    let verifier = ImageVerifier::from_der(
        &ImageSigner::from_pem(key.private_pem.as_bytes())
            .unwrap()
            .public_key_der(),
    );
    // Larger than the multipart threshold: three parts of 8 MiB or less.
    let big = image(&dir, "fw-2.0.0.bin", 17 * 1024 * 1024 + 5, 7);
    let publish = |version: &str, file: &Path| {
        vec![
            "firmware".to_string(),
            "publish".into(),
            "--model".into(),
            model.clone(),
            "--version".into(),
            version.into(),
            "--file".into(),
            file.to_string_lossy().into_owned(),
            "--signing-key".into(),
            key_file.to_string_lossy().into_owned(),
            "--notes".into(),
            "fixes the sensor drift".into(),
            "--json".into(),
        ]
    };
    let args = publish("2.0.0", &big);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let published = run_json(&args, 0);
    assert_eq!(published["outcome"], "published");
    let bytes = std::fs::read(&big).unwrap();
    let digest = ImageDigest::of_bytes(&bytes);
    assert_eq!(published["sha256"], digest.sha256_hex());
    assert_eq!(published["size"], bytes.len());
    assert!(verifier.verify(&bytes, published["signature"].as_str().unwrap()));
    let object = s3
        .get_object()
        .bucket(env("FIRMWARE_BUCKET"))
        .key(published["s3_key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        ImageDigest::of_bytes(&stored).sha256_hex(),
        digest.sha256_hex(),
        "multipart upload intact"
    );
    let release = ota.get_release(&model, "2.0.0").await.unwrap().unwrap();
    assert_eq!(release.sha256, digest.sha256_hex());

    // Publishing the same image again is harmless; another image for the version is not.
    assert_eq!(
        run_json(&args, 0)["outcome"],
        "already published (same image)"
    );
    let other = image(&dir, "fw-2.0.0.bin.other", 1000, 9);
    let conflicting = publish("2.0.0", &other);
    let conflicting: Vec<&str> = conflicting.iter().map(String::as_str).collect();
    let refused = run(&conflicting, 1);
    assert!(refused.contains("releases never change"), "{refused}");
    assert_eq!(
        ota.get_release(&model, "2.0.0")
            .await
            .unwrap()
            .unwrap()
            .sha256,
        digest.sha256_hex()
    );
    let listed = run_json(&["firmware", "list", "--model", &model, "--json"], 0);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let create = |version: &str| {
        run(
            &[
                "rollout",
                "create",
                "--model",
                &model,
                "--version",
                version,
                "--percent",
                "10",
                "--failure-threshold",
                "0.2",
                "--min-samples",
                "5",
                "--json",
            ],
            if version == "2.0.0" { 0 } else { 1 },
        )
    };
    assert!(create("9.9.9").contains("not published"));
    let created: Value = serde_json::from_str(&create("2.0.0")).unwrap();
    let id = created["rollout_id"].as_str().unwrap().to_owned();
    assert_eq!(id, format!("{model}-2.0.0"));
    assert!(
        run(
            &[
                "rollout",
                "create",
                "--model",
                &model,
                "--version",
                "2.0.0",
                "--percent",
                "10",
                "--failure-threshold",
                "0.2",
                "--min-samples",
                "5"
            ],
            1
        )
        .contains("exists already")
    );

    let widened = run_json(&["rollout", "set-percent", &id, "50", "--json"], 0);
    assert_eq!(widened["percentage"], 50.0);
    // Outcomes as ota-status counts them: 2 of 5 failed, 40 % > 20 %.
    for (i, phase) in ["succeeded", "succeeded", "succeeded", "failed", "failed"]
        .iter()
        .enumerate()
    {
        let device = format!("car-{i}-{id}");
        ota.ota()
            .record_offer(&OfferRecord {
                device_id: device.clone(),
                request_id: "r1".into(),
                rollout_id: id.clone(),
                version: "2.0.0".into(),
                from_version: "1.0.0".into(),
                url_expires_at: 0,
                at: OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        ota.ota()
            .record_outcome(&OutcomeRecord {
                device_id: device,
                request_id: "r1".into(),
                rollout_id: id.clone(),
                version: "2.0.0".into(),
                phase: if *phase == "failed" {
                    OtaPhase::Failed
                } else {
                    OtaPhase::Succeeded
                },
                detail: None,
                at: OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
    }
    let status = run_json(&["rollout", "status", &id, "--json"], 0);
    assert_eq!(status["failure_rate"], 0.4, "{status}");
    assert_eq!(
        (status["successes"].as_u64(), status["failures"].as_u64()),
        (Some(3), Some(2))
    );
    let paused = run_json(
        &[
            "rollout",
            "pause",
            &id,
            "--reason",
            "field reports",
            "--json",
        ],
        0,
    );
    assert_eq!(paused["status"], "PAUSED");
    assert_eq!(paused["pause_reason"], "field reports");
    assert!(run(&["rollout", "pause", &id], 1).contains("is PAUSED"));
    let resumed = run_json(&["rollout", "resume", &id, "--json"], 0);
    assert_eq!(resumed["status"], "ACTIVE");
    assert_eq!(
        (resumed["successes"].as_u64(), resumed["failures"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        (
            resumed["total_successes"].as_u64(),
            resumed["total_failures"].as_u64()
        ),
        (Some(3), Some(2))
    );
    assert!(resumed["pause_reason"].is_null());
    let human = run(&["rollout", "status", &id], 0);
    assert!(human.contains("not yet measured: 0 of 5"), "{human}");
    let aborted = run_json(&["rollout", "abort", &id, "--json"], 0);
    assert_eq!(aborted["status"], "ABORTED");
    assert!(run(&["rollout", "resume", &id], 1).contains("is ABORTED"));
    assert!(run(&["rollout", "status", &unique_id("nope")], 1).contains("no rollout"));
    let all = run_json(&["rollout", "list", "--model", &model, "--json"], 0);
    assert_eq!(all[0]["rollout_id"], id.as_str());
}

#[tokio::test]
async fn device_show_gathers_registry_state_summaries_and_history() {
    let sdk = sdk().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let serial = unique_id("DEV");
    let thing = format!("car-{serial}");
    run(
        &[
            "registry",
            "add",
            &serial,
            "--model",
            "sensor-x",
            "--thing-name",
            &thing,
        ],
        0,
    );
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.into());
    let n = |v: &str| aws_sdk_dynamodb::types::AttributeValue::N(v.into());
    dynamodb
        .put_item()
        .table_name(env("STATE_TABLE"))
        .item("device_id", s(&thing))
        .item(
            "online",
            aws_sdk_dynamodb::types::AttributeValue::Bool(true),
        )
        .item("connected_at", n("1764547200000"))
        .item("last_telemetry_at", n("1764547260000"))
        .send()
        .await
        .unwrap();
    for (hour, count, sum) in [
        ("2026-12-01T09", "2", "41.0"),
        ("2026-12-01T10", "4", "88.0"),
    ] {
        dynamodb
            .put_item()
            .table_name(env("SUMMARIES_TABLE"))
            .item("device_id", s(&thing))
            .item("hour", s(hour))
            .item("record_count", n(count))
            .item("temperature_sum", n(sum))
            .item("temperature_sum_squares", n("1000"))
            .item("anomaly_count", n("0"))
            .item("quality_sum", n(count))
            .send()
            .await
            .unwrap();
    }
    ota(&sdk)
        .ota()
        .record_offer(&OfferRecord {
            device_id: thing.clone(),
            request_id: "r1".into(),
            rollout_id: "sensor-x-2.0.0".into(),
            version: "2.0.0".into(),
            from_version: "1.0.0".into(),
            url_expires_at: 0,
            at: OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();

    for id in [&thing, &serial] {
        let report = run_json(&["device", "show", id, "--json"], 0);
        assert_eq!(report["device_id"], thing.as_str());
        assert_eq!(report["registry"]["serial"], serial.as_str());
        assert_eq!(report["state"]["online"], true);
        assert_eq!(
            report["summaries"][0]["hour"], "2026-12-01T10",
            "newest first"
        );
        assert_eq!(report["summaries"][0]["avg_temperature"], 22.0);
        assert_eq!(report["ota_history"][0]["rollout_id"], "sensor-x-2.0.0");
    }
    let human = run(&["device", "show", &thing], 0);
    for section in [
        "Registry",
        "State",
        "Hourly summaries",
        "OTA history",
        "2026-12-01T10",
    ] {
        assert!(human.contains(section), "{human}");
    }
    assert!(run(&["device", "show", &unique_id("ghost")], 1).contains("nothing is known"));
}

// --- keys -----------------------------------------------------------------------------
// moto has CloudFront public keys, key groups (create, get, list) and Secrets Manager, but
// no UpdateKeyGroup. The rotation below therefore uses moto for everything but the key
// group, which an aws-smithy-mocks client keeps (GetKeyGroup/UpdateKeyGroup with ETags).

/// Public keys from moto, the key group from a mocked CloudFront client.
struct MotoKeysMockedGroup {
    moto: CloudFrontKeys,
    group: CloudFrontKeys,
}

impl KeyDistribution for MotoKeysMockedGroup {
    async fn find_key_group(&self, name: &str) -> Result<Option<String>, Failure> {
        self.group.find_key_group(name).await
    }
    async fn key_group(&self, id: &str) -> Result<KeyGroup, Failure> {
        self.group.key_group(id).await
    }
    async fn set_key_group_items(&self, group: &KeyGroup, items: &[String]) -> Result<(), Failure> {
        self.group.set_key_group_items(group, items).await
    }
    async fn create_public_key(
        &self,
        name: &str,
        caller_reference: &str,
        key: &str,
        comment: &str,
    ) -> Result<String, Failure> {
        self.moto
            .create_public_key(name, caller_reference, key, comment)
            .await
    }
    async fn public_key(&self, id: &str) -> Result<PublicKey, Failure> {
        self.moto.public_key(id).await
    }
    async fn delete_public_key(&self, id: &str, etag: &str) -> Result<(), Failure> {
        self.moto.delete_public_key(id, etag).await
    }
    async fn wait_deployed(&self, timeout: Duration) -> Result<(), Failure> {
        self.moto.wait_deployed(timeout).await
    }
}

/// A CloudFront client whose one key group lives in memory; UpdateKeyGroup checks IfMatch.
fn mocked_key_group(initial: Vec<String>) -> aws_sdk_cloudfront::Client {
    use aws_sdk_cloudfront::operation::get_key_group::GetKeyGroupOutput;
    use aws_sdk_cloudfront::operation::update_key_group::UpdateKeyGroupOutput;
    use aws_sdk_cloudfront::types::{KeyGroup as SdkKeyGroup, KeyGroupConfig};
    use std::sync::{Arc, Mutex};

    let state = Arc::new(Mutex::new((initial, 1u32)));
    let group = |items: Vec<String>| {
        SdkKeyGroup::builder()
            .id("KGLOCAL")
            .last_modified_time(aws_smithy_types::DateTime::from_secs(0))
            .key_group_config(
                KeyGroupConfig::builder()
                    .name("fleetwire-local-firmware")
                    .set_items(Some(items))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let read = state.clone();
    let get = mock!(aws_sdk_cloudfront::Client::get_key_group).then_output(move || {
        let (items, version) = read.lock().unwrap().clone();
        GetKeyGroupOutput::builder()
            .key_group(group(items))
            .e_tag(format!("E{version}"))
            .build()
    });
    let write = state.clone();
    let update = mock!(aws_sdk_cloudfront::Client::update_key_group)
        .match_requests(move |input| {
            let mut state = write.lock().unwrap();
            if input.if_match() != Some(format!("E{}", state.1).as_str()) {
                return false;
            }
            state.0 = input.key_group_config().unwrap().items().to_vec();
            state.1 += 1;
            true
        })
        .then_output(|| UpdateKeyGroupOutput::builder().build());
    mock_client!(aws_sdk_cloudfront, RuleMode::MatchAny, [&get, &update])
}

fn sign(signer: &UrlSigner) -> String {
    signer
        .sign(
            "https://firmware.fleetwire.localhost/m/2.0.0/fw.bin",
            &Policy::expiring_at(4_000_000_000).unwrap(),
        )
        .unwrap()
}

async fn distribution(keys: &impl KeyDistribution) -> UrlVerifier {
    let group = keys.key_group("KGLOCAL").await.unwrap();
    let mut verifier = UrlVerifier::new();
    for id in &group.items {
        let key = keys.public_key(id).await.unwrap();
        verifier = verifier.trust(
            id.clone(),
            VerifyingKey::from_pem(key.encoded_key.as_bytes()).unwrap(),
        );
    }
    verifier
}

#[tokio::test]
async fn key_rotation_keeps_urls_of_both_keys_valid_until_the_old_one_is_retired() {
    let sdk = sdk().await;
    let cloudfront = aws_sdk_cloudfront::Client::new(&sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    // The key the template deployed, and the secret holding its private half.
    let first = generate_key(KeyAlgorithm::Rsa2048).unwrap();
    let moto = CloudFrontKeys::new(cloudfront.clone(), None);
    let first_id = moto
        .create_public_key(
            &unique_id("template-key"),
            &unique_id("cfn"),
            &first.public_pem,
            "Verifies firmware URLs.",
        )
        .await
        .unwrap();
    let secret_id = own_secret(&secrets, &json!({"key_pair_id": "", "private_key": ""})).await;
    let secret = SecretsManagerSigningSecret::new(secrets.clone(), &secret_id);
    secret
        .store(&first_id, &first.private_pem, HashAlgorithm::Sha1)
        .await
        .unwrap();
    let old_signer = load_url_signer(&secrets, &secret_id).await.unwrap();

    let keys = MotoKeysMockedGroup {
        moto,
        group: CloudFrontKeys::new(mocked_key_group(vec![first_id.clone()]), None),
    };
    let rotated = keys::rotate(
        &keys,
        &secret,
        &Rotation {
            group: GroupRef::Id("KGLOCAL".into()),
            algorithm: KeyAlgorithm::EcdsaP256,
            public_key_name: unique_id("fleetwire-local-firmware"),
            wait: Duration::from_secs(1),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        rotated.previous_key_pair_id.as_deref(),
        Some(first_id.as_str())
    );
    // firmware-url's next cold start reads the new key from the secret.
    let new_signer = load_url_signer(&secrets, &secret_id).await.unwrap();
    assert_eq!(new_signer.key_pair_id(), rotated.key_pair_id);
    let (old_url, new_url) = (sign(&old_signer), sign(&new_signer));
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let during = distribution(&keys).await;
    during
        .verify(&old_url, now, None)
        .expect("a warm function's URL during the overlap");
    during
        .verify(&new_url, now, None)
        .expect("a new URL during the overlap");

    let listed = keys::list(&keys, &secret, &GroupRef::Id("KGLOCAL".into()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[1].signing && !listed[0].signing);

    let retired = keys::retire(&keys, &secret, &GroupRef::Id("KGLOCAL".into()), &first_id)
        .await
        .unwrap();
    assert!(
        !retired.deleted,
        "the template's key is CloudFormation's to delete"
    );
    let after = distribution(&keys).await;
    assert!(after.verify(&old_url, now, None).is_err());
    after.verify(&new_url, now, None).unwrap();

    // A key fleetctl made is deleted when retired (from moto, for real).
    let third = keys::rotate(
        &keys,
        &secret,
        &Rotation {
            group: GroupRef::Id("KGLOCAL".into()),
            algorithm: KeyAlgorithm::Rsa2048,
            public_key_name: unique_id("fleetwire-local-firmware"),
            wait: Duration::from_secs(1),
        },
    )
    .await
    .unwrap();
    assert_ne!(third.key_pair_id, rotated.key_pair_id);
    let deleted = keys::retire(
        &keys,
        &secret,
        &GroupRef::Id("KGLOCAL".into()),
        &rotated.key_pair_id,
    )
    .await
    .unwrap();
    assert!(deleted.deleted);
    assert!(keys.public_key(&rotated.key_pair_id).await.is_err());
}

/// A signing secret of this test's own (the stack's is firmware-url's).
async fn own_secret(secrets: &aws_sdk_secretsmanager::Client, value: &Value) -> String {
    secrets
        .create_secret()
        .name(unique_id("fleetctl-test/cloudfront-signing-key"))
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn keys_commands_read_moto_and_fail_cleanly_where_it_has_no_api() {
    let sdk = sdk().await;
    let cloudfront = aws_sdk_cloudfront::Client::new(&sdk);
    let key = generate_key(KeyAlgorithm::Rsa2048).unwrap();
    let moto = CloudFrontKeys::new(cloudfront.clone(), None);
    let key_id = moto
        .create_public_key(
            &unique_id("cli-key"),
            &unique_id("cfn"),
            &key.public_pem,
            "template key",
        )
        .await
        .unwrap();
    let group = cloudfront
        .create_key_group()
        .key_group_config(
            aws_sdk_cloudfront::types::KeyGroupConfig::builder()
                .name(unique_id("cli-group"))
                .items(&key_id)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let group_id = group.key_group().unwrap().id().to_owned();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret_id = own_secret(
        &secrets,
        &json!({"key_pair_id": key_id, "private_key": key.private_pem}),
    )
    .await;
    let keys_command = |args: &[&str], secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_fleetctl"))
            .args(args)
            .env("FIRMWARE_KEY_GROUP_ID", &group_id)
            .env("SIGNING_KEY_SECRET_ARN", secret)
            .output()
            .unwrap()
    };
    // No such secret: keys list fails with one line naming the call.
    let out = keys_command(&["keys", "list", "--json"], &unique_id("no-such-secret"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SecretsManager.GetSecretValue"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let out = keys_command(&["keys", "list", "--json"], &secret_id);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["key_pair_id"], key_id.as_str());
    assert_eq!(listed[0]["created_by"], "template");
    assert_eq!(listed[0]["signing"], true);
    // moto cannot update a key group: rotate must fail and leave no orphan public key.
    // A stage of its own makes the new key's name this test's alone.
    let stage = unique_id("cli").to_ascii_lowercase();
    let out = keys_command(&["keys", "rotate", "--stage", &stage], &secret_id);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CloudFront.UpdateKeyGroup"), "{stderr}");
    let keys = cloudfront.list_public_keys().send().await.unwrap();
    let prefix = format!("fleetwire-{stage}-firmware-");
    let orphans: Vec<&str> = keys
        .public_key_list()
        .map(|l| l.items())
        .unwrap_or_default()
        .iter()
        .map(|k| k.name())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert!(
        orphans.is_empty(),
        "the new public key was taken away again: {orphans:?}"
    );
    let signing = SecretsManagerSigningSecret::new(secrets, &secret_id);
    assert_eq!(
        signing.active_key_id().await.unwrap().as_deref(),
        Some(key_id.as_str()),
        "the secret still holds the old key"
    );
}

/// The report of the message whose description names `marker`.
fn report_naming<'a>(reports: &'a Value, marker: &str) -> &'a Value {
    reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["description"].as_str().unwrap().contains(marker))
        .unwrap_or_else(|| panic!("no report names {marker}: {reports}"))
}

/// The tests of `failed` take turns: each re-drive drains the one failed-events queue.
static FAILED_QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The record Lambda writes to the failed-events queue when it gives up on a Kinesis batch
/// (AWS's example, events/aws-examples/kinesis-on-failure-record.json, with this batch's
/// range), as the runner writes it.
fn given_up(shard: &str, first: &str, last: &str, size: usize, stream_arn: &str) -> String {
    json!({
        "requestContext": {"requestId": unique_id("req"), "condition": "RetryAttemptsExhausted",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:fleetwire-local-stream-processor:$LATEST",
            "approximateInvokeCount": 11},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-12-07T10:00:00.000Z",
        "KinesisBatchInfo": {"shardId": shard, "startSequenceNumber": first, "endSequenceNumber": last,
            "approximateArrivalOfFirstRecord": "2026-12-07T09:59:58.000Z",
            "approximateArrivalOfLastRecord": "2026-12-07T09:59:59.000Z",
            "batchSize": size, "streamArn": stream_arn}
    })
    .to_string()
}

/// Three readings of one device an hour ago, ten seconds apart, as the ingest writes them.
fn three_readings(device: &str) -> Vec<fleetwire::domain::telemetry::EnrichedRecord> {
    use fleetwire::domain::telemetry::{EnrichedRecord, TelemetryRecord, TimestampLimits};
    let at = OffsetDateTime::now_utc().replace_second(0).unwrap() - time::Duration::hours(1);
    (0..3)
        .map(|n| {
            let value = json!({"device_id": device, "timestamp": (at.unix_timestamp() + n * 10) * 1000,
                "temperature": 20.0 + n as f64, "humidity": 40, "pressure": 1000,
                "location": {"latitude": 37.5, "longitude": 127.0}});
            EnrichedRecord::new(
                TelemetryRecord::validate(&value, at, &TimestampLimits::default()).unwrap(),
                at,
            )
        })
        .collect()
}

/// Puts the failure `record` in the queue and re-drives it, twice: both times fleetctl
/// lists it as `kind` (its description names `marker`), the batch goes through the
/// processor, and the summary of the readings' hour counts each of the three once; then
/// the message is gone.
async fn redriven_twice_counted_once(
    sdk: &aws_types::SdkConfig,
    record: &str,
    marker: &str,
    kind: &str,
    readings: &[fleetwire::domain::telemetry::EnrichedRecord],
) {
    use fleetwire::adapters::DynamoProcessing;
    use fleetwire::domain::processing::{ProcessingStore, hour_key};
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let processing = DynamoProcessing::new(
        aws_sdk_dynamodb::Client::new(sdk),
        env("STATE_TABLE"),
        env("SUMMARIES_TABLE"),
        env("PROCESSED_RECORDS_TABLE"),
        Duration::from_secs(86_400),
    );
    let id = readings[0].reading.device_id.clone();
    let hour = hour_key(&readings[0]);
    for round in 0..2 {
        sqs.send_message()
            .queue_url(env("FAILED_EVENTS_QUEUE_URL"))
            .message_body(record)
            .send()
            .await
            .unwrap();
        let listed = run_json(&["failed", "list", "--json"], 0);
        assert_eq!(report_naming(&listed, marker)["kind"], kind);

        let reports = run_json(&["failed", "redrive", "--json"], 0);
        let report = report_naming(&reports, marker);
        assert_eq!(report["outcome"], "done", "round {round}: {report}");
        assert_eq!(report["records"], 3);
        let summary = processing.summary(&id, &hour).await.unwrap().unwrap();
        assert_eq!(
            summary.record_count, 3,
            "round {round}: each reading counted once"
        );
    }
    let left = run_json(&["failed", "list", "--json"], 0);
    assert!(
        !left.to_string().contains(marker),
        "a re-driven batch leaves the queue: {left}"
    );
}

/// Deletes the queue's messages whose body holds `marker`: a test leaves the queue as it
/// found it.
async fn remove_messages(sdk: &aws_types::SdkConfig, marker: &str) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue = env("FAILED_EVENTS_QUEUE_URL");
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    for message in received.messages.unwrap_or_default() {
        if message.body().unwrap_or_default().contains(marker) {
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_given_up_batch_is_redriven_through_the_processor_once_however_often() {
    let _turn = FAILED_QUEUE.lock().await;
    let sdk = sdk().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let stream = env("TELEMETRY_STREAM");
    let queue = env("FAILED_EVENTS_QUEUE_URL");
    let stream_arn = kinesis
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;

    // Three readings of one device on the stream, as the ingest writes them.
    let device = unique_id("car-redrive").to_lowercase();
    let readings = three_readings(&device);
    let (mut shard, mut sequences) = (String::new(), Vec::new());
    for reading in &readings {
        let put = kinesis
            .put_record()
            .stream_name(&stream)
            .partition_key(&device)
            .data(aws_sdk_kinesis::primitives::Blob::new(
                serde_json::to_vec(reading).unwrap(),
            ))
            .send()
            .await
            .unwrap();
        shard = put.shard_id;
        sequences.push(put.sequence_number);
    }
    let record = given_up(&shard, &sequences[0], &sequences[2], 3, &stream_arn);
    redriven_twice_counted_once(&sdk, &record, &sequences[0], "stream-batch", &readings).await;

    // A batch the stream cannot give back stays in the queue, and the command says so.
    let missing_shard = unique_id("shardId-gone");
    sqs.send_message()
        .queue_url(&queue)
        .message_body(given_up(
            &missing_shard,
            &sequences[0],
            &sequences[2],
            3,
            &stream_arn,
        ))
        .send()
        .await
        .unwrap();
    let reports = run_json(&["failed", "redrive", "--json"], 1);
    assert_eq!(report_naming(&reports, &missing_shard)["outcome"], "failed");
    let listed = run_json(&["failed", "list", "--json"], 0);
    assert!(
        listed.to_string().contains(&missing_shard),
        "kept: {listed}"
    );
    remove_messages(&sdk, &missing_shard).await;
}

/// The record Lambda writes to the failed-events queue when it gives up on a Kafka batch
/// (AWS's example, events/aws-examples/kafka-on-failure-record.json, with this batch's
/// partition and offsets), as the runner writes it.
fn given_up_kafka(bootstrap: &str, partition: &str, first: i64, last: i64, size: usize) -> String {
    json!({
        "requestContext": {"requestId": unique_id("req"), "condition": "RetryAttemptsExhausted",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:fleetwire-local-stream-processor:$LATEST",
            "approximateInvokeCount": 11},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-12-07T10:00:00.000Z",
        "KafkaBatchInfo": {"batchSize": size,
            "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/fleetwire-local/0",
            "bootstrapServers": bootstrap, "payloadSize": 2048,
            "recordsInfo": {partition: {
                "firstRecordOffset": first.to_string(), "lastRecordOffset": last.to_string(),
                "firstRecordTimestamp": "2026-12-07T09:59:58.000Z",
                "lastRecordTimestamp": "2026-12-07T09:59:59.000Z"}}}
    })
    .to_string()
}

#[tokio::test]
async fn a_given_up_kafka_batch_is_redriven_through_the_processor_once_however_often() {
    use rskafka::client::partition::{Compression, UnknownTopicHandling};

    let _turn = FAILED_QUEUE.lock().await;
    let sdk = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = env("FAILED_EVENTS_QUEUE_URL");
    let bootstrap = env("KAFKA_BOOTSTRAP_SERVERS");
    let topic = env("KAFKA_TOPIC");
    let partition = rskafka::client::ClientBuilder::new(vec![bootstrap.clone()])
        .build()
        .await
        .unwrap()
        .partition_client(topic.clone(), 0, UnknownTopicHandling::Retry)
        .await
        .unwrap();

    // Three readings of one device on partition 0 of the topic, as the ingest writes them.
    let device = unique_id("car-kredrive").to_lowercase();
    let readings = three_readings(&device);
    let offsets = partition
        .produce(
            readings
                .iter()
                .map(|reading| rskafka::record::Record {
                    key: Some(device.clone().into_bytes()),
                    value: Some(serde_json::to_vec(reading).unwrap()),
                    headers: Default::default(),
                    timestamp: rskafka::chrono::Utc::now(),
                })
                .collect(),
            Compression::NoCompression,
        )
        .await
        .unwrap();
    let key = format!("{topic}-0");
    let marker = format!("{key} from offset {} to {}", offsets[0], offsets[2]);
    let record = given_up_kafka(&bootstrap, &key, offsets[0], offsets[2], 3);
    redriven_twice_counted_once(&sdk, &record, &marker, "kafka-batch", &readings).await;

    // Offsets the topic has not reached: the batch stays in the queue, and the command
    // says so.
    let beyond = offsets[2] + 1_000_000;
    let missing = format!("{key} from offset {beyond} to {}", beyond + 1);
    sqs.send_message()
        .queue_url(&queue)
        .message_body(given_up_kafka(&bootstrap, &key, beyond, beyond + 1, 2))
        .send()
        .await
        .unwrap();
    let reports = run_json(&["failed", "redrive", "--json"], 1);
    assert_eq!(report_naming(&reports, &missing)["outcome"], "failed");
    remove_messages(&sdk, &beyond.to_string()).await;
}

/// Runs fleetctl with `vars` added to the environment; expects `code`; stdout as JSON
/// (null when it failed).
fn run_json_with(args: &[&str], vars: &[(&str, &str)], code: i32) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "fleetctl {args:?}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if code != 0 {
        return Value::Null;
    }
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A request to a local server: the runner's API, or moto's.
async fn http_call(method: http::Method, url: &str, body: Option<Value>) -> Value {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let answer = client.request(request).await.unwrap();
    let bytes = answer.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_athena_answer_is_read_past_its_header_row() {
    let sdk = sdk().await;
    let athena = aws_sdk_athena::Client::new(&sdk);
    let workgroup = unique_id("fleetwire-test");
    athena
        .create_work_group()
        .name(&workgroup)
        .send()
        .await
        .unwrap();
    // moto runs no SQL: its API queues the answer the next GetQueryResults gives, here in
    // Athena's own form (the first row of a SELECT is its column names).
    let row = |cells: &[&str]| json!({"Data": cells.iter().map(|c| json!({"VarCharValue": c})).collect::<Vec<_>>()});
    let moto = env("AWS_ENDPOINT_URL_ATHENA");
    http_call(
        http::Method::POST,
        &format!("{moto}/moto-api/static/athena/query-results"),
        Some(json!({"region": env("AWS_REGION"), "results": [{
            "rows": [row(&["device_id", "last_reading"]),
                     row(&["car-0001", "2026-12-07T01:00:00Z"]),
                     row(&["car-0002", "2026-12-07T02:00:00Z"])],
            "column_info": [{"Name": "device_id", "Type": "varchar"},
                            {"Name": "last_reading", "Type": "varchar"}]}]})),
    )
    .await;

    let rows = run_json_with(
        &[
            "archive",
            "query",
            "silent_devices",
            "--since",
            "2026-12-07T06:00:00Z",
            "--json",
        ],
        &[
            ("FLEETWIRE_ARCHIVE_ENGINE", "athena"),
            ("ATHENA_WORKGROUP", &workgroup),
        ],
        0,
    );
    assert_eq!(
        rows,
        json!([{"device_id": "car-0001", "last_reading": "2026-12-07T01:00:00Z"},
               {"device_id": "car-0002", "last_reading": "2026-12-07T02:00:00Z"}])
    );
    // What Athena was asked: the named query's text, in the workgroup, with the cutoff.
    let listed = athena
        .list_query_executions()
        .work_group(&workgroup)
        .send()
        .await
        .unwrap();
    let id = listed.query_execution_ids()[0].clone();
    let execution = athena
        .get_query_execution()
        .query_execution_id(id)
        .send()
        .await
        .unwrap();
    let execution = execution.query_execution().unwrap();
    assert_eq!(
        execution.query(),
        Some(include_str!(
            "../../../analytics/queries/silent_devices.sql"
        ))
    );
}

#[tokio::test]
async fn the_local_archive_answers_the_named_queries_with_duckdb() {
    use fleetwire::domain::telemetry::{EnrichedRecord, TelemetryRecord, TimestampLimits};

    let sdk = sdk().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let runner = format!("http://127.0.0.1:{}", env("FLEETWIRE_IOT_DATA_PORT"));
    let read = |status: &Value| status["archive"][0]["records_read"].as_u64().unwrap();
    let before =
        read(&http_call(http::Method::GET, &format!("{runner}/runner/status"), None).await);

    // Three readings of one device, in one hour, on the stream as the ingest writes them.
    let device = unique_id("car-duck").to_lowercase();
    let at = OffsetDateTime::now_utc().replace_second(0).unwrap();
    let mut request = kinesis.put_records().stream_name(env("TELEMETRY_STREAM"));
    for (n, temperature) in [18.5, 21.0, 24.5].iter().enumerate() {
        let value = json!({"device_id": device, "timestamp": (at.unix_timestamp() - n as i64) * 1000,
            "temperature": temperature, "humidity": 40, "pressure": 1000});
        let reading = EnrichedRecord::new(
            TelemetryRecord::validate(&value, at, &TimestampLimits::default()).unwrap(),
            at,
        );
        request = request.records(
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .partition_key(&device)
                .data(aws_sdk_kinesis::primitives::Blob::new(
                    serde_json::to_vec(&reading).unwrap(),
                ))
                .build()
                .unwrap(),
        );
    }
    request.send().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while read(&http_call(http::Method::GET, &format!("{runner}/runner/status"), None).await)
        < before + 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the archive did not read the stream"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    http_call(
        http::Method::POST,
        &format!("{runner}/runner/archive/flush"),
        None,
    )
    .await;

    let duckdb = [("FLEETWIRE_ARCHIVE_ENGINE", "duckdb")];
    let stats = run_json_with(
        &["archive", "query", "hourly_device_stats", "--json"],
        &duckdb,
        0,
    );
    let ours: Vec<&Value> = stats
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["device_id"] == json!(device))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0]["record_count"], "3");
    assert_eq!(ours[0]["min_temperature"], "18.5");
    assert_eq!(ours[0]["max_temperature"], "24.5");
    assert_eq!(ours[0]["avg_temperature"], "21.333333333333332");

    let silent = run_json_with(
        &[
            "archive",
            "query",
            "silent_devices",
            "--since",
            "2000-01-01T00:00:00Z",
            "--json",
        ],
        &duckdb,
        0,
    );
    assert!(
        !silent.to_string().contains(&device),
        "a device that just reported is not silent: {silent}"
    );
    // A query that does not exist, and a parameter missing: usage errors.
    run_json_with(&["archive", "query", "nope", "--json"], &duckdb, 2);
    run_json_with(
        &["archive", "query", "silent_devices", "--json"],
        &duckdb,
        2,
    );
}

#[tokio::test]
async fn fleet_status_counts_a_models_devices_and_who_is_online() {
    let sdk = sdk().await;
    let model = unique_id("model-glance").to_lowercase();
    let (serial, thing) = (
        unique_id("SN-GLANCE"),
        unique_id("car-glance").to_lowercase(),
    );
    run(
        &[
            "registry",
            "add",
            &serial,
            "--model",
            &model,
            "--thing-name",
            &thing,
        ],
        0,
    );
    aws_sdk_dynamodb::Client::new(&sdk)
        .put_item()
        .table_name(env("STATE_TABLE"))
        .item(
            "device_id",
            aws_sdk_dynamodb::types::AttributeValue::S(thing.clone()),
        )
        .item(
            "online",
            aws_sdk_dynamodb::types::AttributeValue::Bool(true),
        )
        .send()
        .await
        .unwrap();
    let fleet = run_json(&["fleet", "status", "--json"], 0);
    let row = fleet["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == json!(model))
        .unwrap_or_else(|| panic!("no row for {model}: {fleet}"));
    assert_eq!(row["allowed"], 1);
    assert_eq!(row["online"], 1);
    assert_eq!(row["offline"], 0);
    let text = run(&["fleet", "status"], 0);
    assert!(text.contains(&model), "{text}");
}
