//! The presence Lambda: reads its configuration, builds the DynamoDB client once, and
//! applies IoT lifecycle events to the State table.

use fleetwire::adapters::DynamoDeviceState;
use fleetwire::runtime::aws::load_sdk_config;
use fleetwire::runtime::config::{ConfigError, Env};
use lambda_runtime::LambdaEvent;
use presence::{Presence, PresenceConfig};
use serde_json::Value;

async fn init() -> Result<Presence<DynamoDeviceState>, ConfigError> {
    let config = PresenceConfig::from_env(&Env::process())?;
    let sdk = load_sdk_config(&config.sdk).await;
    Ok(Presence::new(DynamoDeviceState::new(
        fleetwire::traced_client!(aws_sdk_dynamodb, &sdk),
        config.state_table,
    )))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::runtime::serve(init(), async |presence, event: LambdaEvent<Value>| {
        presence.handle(&event.payload).await
    })
    .await
}
