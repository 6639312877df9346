//! The presence Lambda: reads its configuration, builds the DynamoDB client once, and
//! applies IoT lifecycle events to the State table.

use fleetwire::adapters::DynamoDeviceState;
use fleetwire::aws::{SdkSettings, load_sdk_config};
use fleetwire::config::{ConfigError, Env};
use lambda_runtime::{LambdaEvent, service_fn};
use presence::Presence;
use serde_json::Value;

async fn init() -> Result<Presence<DynamoDeviceState>, ConfigError> {
    let env = Env::process();
    let table = env.required("STATE_TABLE", "the device State table")?;
    let sdk = load_sdk_config(&SdkSettings::from_env(&env, SdkSettings::default())?).await;
    Ok(Presence::new(DynamoDeviceState::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table,
    )))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::logging::init();
    let presence = fleetwire::init::or_report(init().await).await?;
    let presence = &presence;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        presence.handle(&event.payload).await
    }))
    .await
}
