//! The ota-status Lambda: reads its configuration, builds the DynamoDB and SNS clients
//! once, and records OTA status reports.

use fleetwire::adapters::{DynamoOta, SnsAlerts};
use fleetwire::aws::{SdkSettings, load_sdk_config};
use fleetwire::config::{ConfigError, Env};
use lambda_runtime::{LambdaEvent, service_fn};
use ota_status::OtaStatus;
use serde_json::Value;
use time::OffsetDateTime;

async fn init() -> Result<OtaStatus<DynamoOta, SnsAlerts>, ConfigError> {
    let env = Env::process();
    let sdk = load_sdk_config(&SdkSettings::from_env(&env, SdkSettings::default())?).await;
    Ok(OtaStatus::new(
        DynamoOta::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            env.required("FIRMWARE_TABLE", "the Firmware release table")?,
            env.required("ROLLOUTS_TABLE", "the Rollouts table")?,
            env.required("OTA_HISTORY_TABLE", "the OtaHistory table")?,
        ),
        SnsAlerts::new(
            aws_sdk_sns::Client::new(&sdk),
            env.required("ALERT_TOPIC_ARN", "the SNS alert topic")?,
        ),
    ))
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
