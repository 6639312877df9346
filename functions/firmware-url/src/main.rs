//! The firmware-url Lambda: reads its configuration, loads the CloudFront signing key from
//! Secrets Manager once, builds the clients once, and answers firmware requests.

use firmware_url::{FirmwareUrl, FirmwareUrlConfig};
use fleetwire::adapters::secrets::load_url_signer;
use fleetwire::adapters::{DynamoOta, DynamoRegistry, IotDataChannel};
use fleetwire::runtime::aws::load_sdk_config;
use fleetwire::runtime::config::{ConfigError, Env};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use time::OffsetDateTime;

type Configured = FirmwareUrl<DynamoRegistry, DynamoOta, IotDataChannel>;

async fn init() -> Result<Configured, ConfigError> {
    let config = FirmwareUrlConfig::from_env(&Env::process())?;
    let sdk = load_sdk_config(&config.sdk).await;
    let secret_id = &config.signing_key_secret;
    let signer = load_url_signer(
        &fleetwire::traced_client!(aws_sdk_secretsmanager, &sdk),
        secret_id,
    )
    .await
    .map_err(|e| ConfigError::Invalid {
        name: "SIGNING_KEY_SECRET_ARN".into(),
        value: secret_id.clone(),
        reason: e.to_string(),
    })?;
    let dynamodb = fleetwire::traced_client!(aws_sdk_dynamodb, &sdk);
    Ok(FirmwareUrl::new(
        DynamoRegistry::new(dynamodb.clone(), config.registry_table),
        DynamoOta::new(
            dynamodb,
            config.firmware_table,
            config.rollouts_table,
            config.history_table,
        ),
        IotDataChannel::new(fleetwire::traced_client!(aws_sdk_iotdataplane, &sdk)),
        signer,
        config.urls,
    ))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::runtime::serve(init(), async |function, event: LambdaEvent<Value>| {
        function
            .handle(&event.payload, OffsetDateTime::now_utc())
            .await
    })
    .await
}
