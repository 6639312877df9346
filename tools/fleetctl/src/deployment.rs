//! Which deployment fleetctl works on: resource names and AWS clients.
//!
//! Names come from the same variables the functions read (`REGISTRY_TABLE`,
//! `FIRMWARE_BUCKET`, ...; `source .local/run/stack.env` sets them all for the local stack),
//! and otherwise from the template's naming scheme for the stage (`--stage`, or
//! `FLEETWIRE_STAGE`, default `dev`): `fleetwire-<stage>-registry` and so on. Endpoints,
//! region and credentials are the SDK's usual ones (`AWS_PROFILE`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL_<SERVICE>`).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_types::SdkConfig;
use fleetwire::adapters::KafkaAuth;
use fleetwire::adapters::{DynamoOta, DynamoOtaAdmin, DynamoRegistry};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::runtime::config::Env;

use crate::Failure;

/// Where the archive's queries run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveEngine {
    Athena,
    DuckDb,
}

/// Resource names of one deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub stage: String,
    vars: BTreeMap<String, String>,
}

impl Deployment {
    /// `stage` from `--stage`, else `FLEETWIRE_STAGE`, else `dev`.
    pub fn from_env(stage: Option<String>) -> Self {
        Self::from_vars(stage, std::env::vars())
    }

    pub fn from_vars(
        stage: Option<String>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let stage = stage
            .or_else(|| vars.get("FLEETWIRE_STAGE").cloned())
            .unwrap_or_else(|| "dev".into());
        Self { stage, vars }
    }

    fn named(&self, var: &str, suffix: &str) -> String {
        self.vars
            .get(var)
            .cloned()
            .unwrap_or_else(|| format!("fleetwire-{}-{suffix}", self.stage))
    }

    pub fn registry_table(&self) -> String {
        self.named("REGISTRY_TABLE", "registry")
    }
    pub fn state_table(&self) -> String {
        self.named("STATE_TABLE", "state")
    }
    pub fn summaries_table(&self) -> String {
        self.named("SUMMARIES_TABLE", "summaries")
    }
    pub fn firmware_table(&self) -> String {
        self.named("FIRMWARE_TABLE", "firmware")
    }
    pub fn rollouts_table(&self) -> String {
        self.named("ROLLOUTS_TABLE", "rollouts")
    }
    pub fn ota_history_table(&self) -> String {
        self.named("OTA_HISTORY_TABLE", "ota-history")
    }

    /// The firmware bucket: CloudFormation names it, so it must be given.
    pub fn firmware_bucket(&self) -> Result<String, Failure> {
        self.vars.get("FIRMWARE_BUCKET").cloned().ok_or_else(|| {
            Failure::usage(
                "set FIRMWARE_BUCKET to the firmware bucket (stack output FirmwareBucketName)",
            )
        })
    }

    /// The failed-events queue: SQS names it, so it must be given.
    pub fn failed_events_queue_url(&self) -> Result<String, Failure> {
        self.vars.get("FAILED_EVENTS_QUEUE_URL").cloned().ok_or_else(|| {
            Failure::usage(
                "set FAILED_EVENTS_QUEUE_URL to the failed-events queue (stack output FailedEventsQueueUrl)",
            )
        })
    }

    /// The function failed stream batches are re-driven through.
    pub fn stream_processor_function(&self) -> String {
        self.named("STREAM_PROCESSOR_FUNCTION", "stream-processor")
    }

    /// How `failed redrive` reaches a Kafka cluster: `KAFKA_SECURITY` as the ingest reads it
    /// (`msk-iam`, the default: TLS and an IAM token; `plaintext`: a local broker).
    pub fn kafka_auth(&self) -> Result<KafkaAuth, Failure> {
        match self.vars.get("KAFKA_SECURITY").map(String::as_str) {
            None | Some("msk-iam") => Ok(KafkaAuth::MskIam),
            Some("plaintext") => Ok(KafkaAuth::Plaintext),
            Some(other) => Err(Failure::usage(format!(
                "KAFKA_SECURITY is {other}: expected msk-iam or plaintext"
            ))),
        }
    }

    /// Where `archive query` runs: `FLEETWIRE_ARCHIVE_ENGINE`, `athena` (the default) or
    /// `duckdb` (the local stack).
    pub fn archive_engine(&self) -> Result<ArchiveEngine, Failure> {
        match self
            .vars
            .get("FLEETWIRE_ARCHIVE_ENGINE")
            .map(String::as_str)
        {
            None | Some("athena") => Ok(ArchiveEngine::Athena),
            Some("duckdb") => Ok(ArchiveEngine::DuckDb),
            Some(other) => Err(Failure::usage(format!(
                "FLEETWIRE_ARCHIVE_ENGINE is {other}: expected athena or duckdb"
            ))),
        }
    }

    /// The analytics workgroup (`ATHENA_WORKGROUP`, else `fleetwire-<stage>`).
    pub fn athena_workgroup(&self) -> String {
        self.vars
            .get("ATHENA_WORKGROUP")
            .cloned()
            .unwrap_or_else(|| format!("fleetwire-{}", self.stage))
    }

    /// The archive's Glue database (`ARCHIVE_DATABASE`, else `fleetwire_<stage>`).
    pub fn archive_database(&self) -> String {
        self.vars
            .get("ARCHIVE_DATABASE")
            .cloned()
            .unwrap_or_else(|| format!("fleetwire_{}", self.stage))
    }

    /// The archive bucket: CloudFormation names it, so it must be given.
    pub fn archive_bucket(&self) -> Result<String, Failure> {
        self.vars.get("ARCHIVE_BUCKET").cloned().ok_or_else(|| {
            Failure::usage(
                "set ARCHIVE_BUCKET to the archive bucket (stack output ArchiveBucketName)",
            )
        })
    }

    /// The Python DuckDB runs in (`FLEETWIRE_PYTHON`, else `python3`).
    pub fn python(&self) -> std::path::PathBuf {
        self.vars
            .get("FLEETWIRE_PYTHON")
            .map_or_else(|| "python3".into(), Into::into)
    }

    /// The signing-key secret, by ARN or name.
    pub fn signing_secret(&self) -> String {
        self.vars
            .get("SIGNING_KEY_SECRET_ARN")
            .cloned()
            .unwrap_or_else(|| format!("fleetwire-{}/cloudfront-signing-key", self.stage))
    }

    /// The key group's id when given (`FIRMWARE_KEY_GROUP_ID`, stack output
    /// FirmwareKeyGroupId); otherwise fleetctl finds it by [`Deployment::key_group_name`].
    pub fn key_group_id(&self) -> Option<String> {
        self.vars.get("FIRMWARE_KEY_GROUP_ID").cloned()
    }

    pub fn key_group_name(&self) -> String {
        format!("fleetwire-{}-firmware", self.stage)
    }

    /// The distribution whose deployment `keys rotate` waits for, when given.
    pub fn distribution_id(&self) -> Option<String> {
        self.vars.get("FIRMWARE_DISTRIBUTION_ID").cloned()
    }

    /// A name for a new CloudFront public key: unique per account, as CloudFront requires.
    pub fn public_key_name(&self, unix_seconds: i64) -> String {
        format!("fleetwire-{}-firmware-{unix_seconds}", self.stage)
    }
}

/// The AWS configuration every command builds its clients from, loaded once.
#[derive(Debug, Clone)]
pub struct Aws {
    pub sdk: SdkConfig,
}

impl Aws {
    /// Operator calls may be slow (large uploads) but must not hang: a minute per attempt,
    /// five per operation, three attempts; the `SDK_*` variables override these.
    pub async fn load() -> Result<Self, Failure> {
        let defaults = SdkSettings {
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(60),
            operation_timeout: Duration::from_secs(300),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
        };
        let settings = SdkSettings::from_env(&Env::process(), defaults)
            .map_err(|e| Failure::usage(e.to_string()))?;
        let sdk = load_sdk_config(&settings).await;
        if sdk.region().is_none() {
            return Err(Failure::usage(
                "no AWS region: set AWS_REGION (or a profile with a region)",
            ));
        }
        Ok(Self { sdk })
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn registry(&self, deployment: &Deployment) -> DynamoRegistry {
        DynamoRegistry::new(self.dynamodb(), deployment.registry_table())
    }

    pub fn ota(&self, deployment: &Deployment) -> DynamoOtaAdmin {
        DynamoOtaAdmin::new(DynamoOta::new(
            self.dynamodb(),
            deployment.firmware_table(),
            deployment.rollouts_table(),
            deployment.ota_history_table(),
        ))
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        // Path-style addressing works with every S3 endpoint, the local one included.
        let config = aws_sdk_s3::config::Builder::from(&self.sdk)
            .force_path_style(self.sdk.endpoint_url().is_some() || local_s3())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub fn iot(&self) -> aws_sdk_iot::Client {
        aws_sdk_iot::Client::new(&self.sdk)
    }

    pub fn cloudfront(&self) -> aws_sdk_cloudfront::Client {
        aws_sdk_cloudfront::Client::new(&self.sdk)
    }

    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub fn kinesis(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.sdk)
    }

    pub fn athena(&self) -> aws_sdk_athena::Client {
        aws_sdk_athena::Client::new(&self.sdk)
    }

    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk)
    }
}

fn local_s3() -> bool {
    std::env::var("AWS_ENDPOINT_URL_S3").is_ok_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_follow_the_stage_unless_a_variable_names_them() {
        let d = Deployment::from_vars(None, vars(&[("REGISTRY_TABLE", "my-registry")]));
        assert_eq!(d.stage, "dev");
        assert_eq!(d.registry_table(), "my-registry");
        assert_eq!(d.rollouts_table(), "fleetwire-dev-rollouts");
        assert_eq!(d.ota_history_table(), "fleetwire-dev-ota-history");
        assert_eq!(d.signing_secret(), "fleetwire-dev/cloudfront-signing-key");
        let prod = Deployment::from_vars(Some("prod".into()), vars(&[("FLEETWIRE_STAGE", "x")]));
        assert_eq!(prod.stage, "prod", "--stage wins over FLEETWIRE_STAGE");
        assert_eq!(prod.key_group_name(), "fleetwire-prod-firmware");
    }

    #[test]
    fn the_bucket_must_be_given() {
        let d = Deployment::from_vars(None, vars(&[("FIRMWARE_BUCKET", " ")]));
        let err = d.firmware_bucket().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("FirmwareBucketName"), "{err}");
    }
}
