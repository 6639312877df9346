//! The ota-status Lambda: reads its configuration, builds the DynamoDB and SNS clients
//! once, and records OTA status reports.

use fleetwire::adapters::{DynamoOta, SnsAlerts};
use fleetwire::runtime::aws::load_sdk_config;
use fleetwire::runtime::config::{ConfigError, Env};
use lambda_runtime::LambdaEvent;
use ota_status::{OtaStatus, OtaStatusConfig};
use serde_json::Value;
use time::OffsetDateTime;

async fn init() -> Result<OtaStatus<DynamoOta, SnsAlerts>, ConfigError> {
    let config = OtaStatusConfig::from_env(&Env::process())?;
    let sdk = load_sdk_config(&config.sdk).await;
    Ok(OtaStatus::new(
        DynamoOta::new(
            fleetwire::traced_client!(aws_sdk_dynamodb, &sdk),
            config.firmware_table,
            config.rollouts_table,
            config.history_table,
        ),
        SnsAlerts::new(
            fleetwire::traced_client!(aws_sdk_sns, &sdk),
            config.alert_topic_arn,
        ),
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
