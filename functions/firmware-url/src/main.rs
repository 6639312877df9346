//! The firmware-url Lambda: reads its configuration, loads the CloudFront signing key from
//! Secrets Manager once, builds the clients once, and answers firmware requests.

use firmware_url::{FirmwareUrl, UrlSettings};
use fleetwire::adapters::signing_secret::load_url_signer;
use fleetwire::adapters::{DynamoOta, DynamoRegistry, IotDataChannel};
use fleetwire::aws::{SdkSettings, load_sdk_config};
use fleetwire::config::{ConfigError, Env};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use time::OffsetDateTime;

type Configured = FirmwareUrl<DynamoRegistry, DynamoOta, IotDataChannel>;

async fn init() -> Result<Configured, ConfigError> {
    let env = Env::process();
    let settings = UrlSettings {
        download_base: download_base(&env)?,
        base_ttl_seconds: env.number_in("URL_TTL_SECONDS", 900, 60, 86_400)?,
        slowest_bytes_per_second: env.number_in(
            "SLOWEST_LINK_BYTES_PER_SECOND",
            16_384,
            1,
            1 << 30,
        )?,
        max_ttl_seconds: env.number_in("URL_MAX_TTL_SECONDS", 86_400, 60, 7 * 86_400)?,
        bind_to_source_ip: env.flag_or("BIND_URL_TO_SOURCE_IP", false)?,
    };
    let secret_id = env.required(
        "SIGNING_KEY_SECRET_ARN",
        "the secret holding the CloudFront key",
    )?;
    let sdk = load_sdk_config(&SdkSettings::from_env(&env, SdkSettings::default())?).await;
    let signer = load_url_signer(&aws_sdk_secretsmanager::Client::new(&sdk), &secret_id)
        .await
        .map_err(|e| ConfigError::Invalid {
            name: "SIGNING_KEY_SECRET_ARN".into(),
            value: secret_id.clone(),
            reason: e.to_string(),
        })?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(FirmwareUrl::new(
        DynamoRegistry::new(
            dynamodb.clone(),
            env.required("REGISTRY_TABLE", "the device Registry table")?,
        ),
        DynamoOta::new(
            dynamodb,
            env.required("FIRMWARE_TABLE", "the Firmware release table")?,
            env.required("ROLLOUTS_TABLE", "the Rollouts table")?,
            env.required("OTA_HISTORY_TABLE", "the OtaHistory table")?,
        ),
        IotDataChannel::new(aws_sdk_iotdataplane::Client::new(&sdk)),
        signer,
        settings,
    ))
}

/// `https://<FIRMWARE_DISTRIBUTION_DOMAIN>`, unless `FIRMWARE_BASE_URL` names another
/// base (the local stack's CloudFront, which serves plain HTTP on loopback).
fn download_base(env: &Env) -> Result<String, ConfigError> {
    match env.optional("FIRMWARE_BASE_URL") {
        Some(base) if base.starts_with("https://") || base.starts_with("http://") => {
            Ok(base.trim_end_matches('/').to_owned())
        }
        Some(base) => Err(ConfigError::Invalid {
            name: "FIRMWARE_BASE_URL".into(),
            value: base,
            reason: "must start with https:// (or http:// for a local endpoint)".into(),
        }),
        None => Ok(format!(
            "https://{}",
            env.required(
                "FIRMWARE_DISTRIBUTION_DOMAIN",
                "the CloudFront distribution's domain",
            )?
        )),
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::logging::init();
    let function = fleetwire::init::or_report(init().await).await?;
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        function
            .handle(&event.payload, OffsetDateTime::now_utc())
            .await
    }))
    .await
}
