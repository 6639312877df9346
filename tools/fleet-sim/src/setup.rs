//! What an operator does before a fleet comes online, done here through the same shared
//! adapters fleetctl uses: the allowlist (some serials deliberately left off), two
//! firmware releases signed with a fresh code-signing key and uploaded, and two rollouts:
//! model A's healthy, model B's rigged so that its devices fail and it pauses itself.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use fleetwire::adapters::{DynamoOta, DynamoOtaAdmin, DynamoRegistry};
use fleetwire::cloudfront::{KeyAlgorithm, generate_key};
use fleetwire::domain::ota::image::{ImageDigest, ImageSigner, ImageVerifier};
use fleetwire::domain::ota::{Release, Rollout};
use fleetwire::domain::registry::{RegistryEntry, Serial};
use fleetwire::runtime::retry::RetryPolicy;

/// The resources of the local stack (`.local/run/stack.env`).
#[derive(Debug, Clone)]
pub struct Names {
    pub registry_table: String,
    pub state_table: String,
    pub summaries_table: String,
    pub firmware_table: String,
    pub rollouts_table: String,
    pub history_table: String,
    pub firmware_bucket: String,
    pub dead_letter_queue_url: String,
    pub provisioning_template: String,
    pub backend: Backend,
    pub mqtt_host: String,
    pub mqtt_port: u16,
    /// The runner's data plane and status endpoint.
    pub runner_url: String,
    /// The telemetry HTTP API (`POST /v1/telemetry`) devices without MQTT telemetry use.
    pub api_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Kinesis { stream: String },
    Kafka { bootstrap: String, topic: String },
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} is not set: run scripts/stack up, then `set -a; source .local/run/stack.env; set +a`"))
}

impl Names {
    pub fn from_env() -> Result<Self, String> {
        let backend = match std::env::var("STREAM_BACKEND").as_deref() {
            Ok("msk") => Backend::Kafka {
                bootstrap: var("KAFKA_BOOTSTRAP_SERVERS")?,
                topic: var("KAFKA_TOPIC")?,
            },
            _ => Backend::Kinesis {
                stream: var("TELEMETRY_STREAM")?,
            },
        };
        let port = |name: &str, default: u16| -> Result<u16, String> {
            match std::env::var(name) {
                Ok(v) => v.parse().map_err(|_| format!("{name}={v:?} is not a port")),
                Err(_) => Ok(default),
            }
        };
        Ok(Self {
            registry_table: var("REGISTRY_TABLE")?,
            state_table: var("STATE_TABLE")?,
            summaries_table: var("SUMMARIES_TABLE")?,
            firmware_table: var("FIRMWARE_TABLE")?,
            rollouts_table: var("ROLLOUTS_TABLE")?,
            history_table: var("OTA_HISTORY_TABLE")?,
            firmware_bucket: var("FIRMWARE_BUCKET")?,
            dead_letter_queue_url: var("DEAD_LETTER_QUEUE_URL")?,
            provisioning_template: var("PROVISIONING_TEMPLATE")?,
            backend,
            mqtt_host: "127.0.0.1".into(),
            mqtt_port: port("FLEETWIRE_MQTT_PORT", 1883)?,
            runner_url: format!(
                "http://127.0.0.1:{}",
                port("FLEETWIRE_IOT_DATA_PORT", 8087)?
            ),
            api_url: match std::env::var("TELEMETRY_API_URL") {
                Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
                _ => format!("http://127.0.0.1:{}", port("FLEETWIRE_API_PORT", 8089)?),
            },
        })
    }
}

/// Which of the two models a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Its rollout goes well.
    Healthy,
    /// Its devices report their update failed: the rollout must pause.
    Failing,
}

/// One virtual device as planned.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub index: usize,
    pub serial: String,
    pub thing: String,
    pub model: Model,
    /// On the allowlist; a device that is not must be denied.
    pub listed: bool,
    /// Loses its link once during the run and sends what it buffered on reconnect.
    pub flaps: bool,
    /// Sends its telemetry over HTTPS (`POST /v1/telemetry` with a device token) instead
    /// of MQTT; everything else still over MQTT.
    pub https: bool,
    /// Sends faster than the others and, once it has a history, one reading far from it:
    /// the stream processor must raise a z-score anomaly for it.
    pub spikes: bool,
}

/// The run's fleet, after the operator's preparations.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub run: String,
    pub devices: Vec<DeviceSpec>,
    pub healthy_model: String,
    pub failing_model: String,
    pub version: String,
    pub rollouts: Vec<String>,
    pub verifier: ImageVerifier,
}

impl Fleet {
    pub fn model_name(&self, model: Model) -> &str {
        match model {
            Model::Healthy => &self.healthy_model,
            Model::Failing => &self.failing_model,
        }
    }

    /// The thing-name prefix of every device of this run.
    pub fn prefix(&self) -> String {
        format!("sim-{}-", self.run)
    }
}

/// What the devices of a run are like.
#[derive(Debug, Clone)]
pub struct Shape {
    pub devices: usize,
    /// Share of serials left off the allowlist.
    pub unlisted_share: f64,
    /// Share of devices whose link drops once.
    pub flap_share: f64,
    /// Share of devices sending telemetry over HTTPS.
    pub https_share: f64,
}

/// Plans the devices and makes the allowlist, releases and rollouts for them.
pub async fn prepare(
    sdk: &aws_types::SdkConfig,
    names: &Names,
    shape: &Shape,
    run: &str,
) -> Result<Fleet, String> {
    let mut devices: Vec<DeviceSpec> = (0..shape.devices)
        .map(|index| DeviceSpec {
            index,
            serial: format!("SIM-{run}-{index:05}"),
            thing: format!("sim-{run}-{index:05}"),
            // Every fourth device is of the failing model.
            model: if index % 4 == 3 {
                Model::Failing
            } else {
                Model::Healthy
            },
            listed: !share(index, shape.unlisted_share, 7),
            flaps: share(index, shape.flap_share, 3),
            https: share(index, shape.https_share, 5),
            spikes: false,
        })
        .collect();
    // One steady device (listed, healthy, on MQTT, never flapping) spikes.
    if let Some(steady) = devices
        .iter_mut()
        .find(|d| d.listed && !d.flaps && !d.https && d.model == Model::Healthy)
    {
        steady.spikes = true;
    }
    let fleet = Fleet {
        run: run.to_owned(),
        healthy_model: format!("sim-{run}-a"),
        failing_model: format!("sim-{run}-b"),
        version: "2.0.0".into(),
        rollouts: vec![format!("sim-{run}-a-2.0.0"), format!("sim-{run}-b-2.0.0")],
        verifier: ImageVerifier::from_der(&[]),
        devices,
    };
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let registry = DynamoRegistry::new(dynamodb.clone(), &names.registry_table);
    let entries: Vec<RegistryEntry> = fleet
        .devices
        .iter()
        .filter(|d| d.listed)
        .map(|d| {
            let serial = Serial::parse(&d.serial).expect("simulator serials are valid");
            RegistryEntry::allowed(serial, fleet.model_name(d.model), &d.thing)
        })
        .collect();
    let retry = RetryPolicy {
        max_attempts: 10,
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
        budget: Duration::from_secs(60),
    };
    registry
        .batch_put(&entries, &retry)
        .await
        .map_err(|e| format!("allowlist: {e}"))?;

    // A code-signing key of the run; devices verify with its public half.
    let key = generate_key(KeyAlgorithm::EcdsaP256).map_err(|e| e.to_string())?;
    let signer = ImageSigner::from_pem(key.private_pem.as_bytes()).map_err(|e| e.to_string())?;
    let verifier = ImageVerifier::from_der(&signer.public_key_der());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    );
    let ota = DynamoOtaAdmin::new(DynamoOta::new(
        dynamodb,
        &names.firmware_table,
        &names.rollouts_table,
        &names.history_table,
    ));
    // The rigged rollout pauses after two failures, or after one in a fleet too small to
    // have two devices of the failing model on the allowlist.
    let failing_listed = fleet
        .devices
        .iter()
        .filter(|d| d.listed && d.model == Model::Failing)
        .count() as u64;
    for (model, rollout_id, threshold, min_sample) in [
        (&fleet.healthy_model, &fleet.rollouts[0], 0.5, 5),
        (
            &fleet.failing_model,
            &fleet.rollouts[1],
            0.2,
            failing_listed.clamp(1, 2),
        ),
    ] {
        let image: Vec<u8> = (0..64 * 1024).map(|_| fastrand::u8(..)).collect();
        let digest = ImageDigest::of_bytes(&image);
        let release = Release {
            model: model.clone(),
            version: fleet.version.clone(),
            s3_key: format!("{model}/{}/firmware.bin", fleet.version),
            size: digest.size,
            sha256: digest.sha256_hex(),
            signature: signer.sign(&digest),
            notes: Some("fleet simulator".into()),
        };
        s3.put_object()
            .bucket(&names.firmware_bucket)
            .key(&release.s3_key)
            .body(ByteStream::from(image))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "upload {}: {}",
                    release.s3_key,
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })?;
        ota.publish_release(&release)
            .await
            .map_err(|e| format!("release {model}: {e}"))?;
        let rollout = Rollout::active(
            rollout_id,
            model,
            &fleet.version,
            100.0,
            threshold,
            min_sample,
        );
        ota.create_rollout(&rollout)
            .await
            .map_err(|e| format!("rollout {rollout_id}: {e}"))?;
    }
    Ok(Fleet { verifier, ..fleet })
}

/// Whether device `index` is among a `share` of the fleet, spread evenly (`offset` keeps
/// different shares from picking the same devices).
fn share(index: usize, share: f64, offset: usize) -> bool {
    if share <= 0.0 {
        return false;
    }
    let slot = (index + offset) as f64 * share;
    slot.floor() != (slot - share).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_pick_that_many_devices_spread_out() {
        let picked: Vec<usize> = (0..100).filter(|i| share(*i, 0.1, 7)).collect();
        assert_eq!(picked.len(), 10);
        assert!(picked.windows(2).all(|w| w[1] - w[0] == 10), "{picked:?}");
        assert_eq!((0..20).filter(|i| share(*i, 0.25, 3)).count(), 5);
        assert_eq!((0..20).filter(|i| share(*i, 0.0, 3)).count(), 0);
        assert_eq!((0..20).filter(|i| share(*i, 1.0, 3)).count(), 20);
    }
}
