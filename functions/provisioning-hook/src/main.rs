//! The provisioning-hook Lambda: reads its configuration, builds the DynamoDB client once,
//! and serves IoT Core's pre-provisioning hook requests.

use std::convert::Infallible;

use fleetwire::adapters::{DynamoDeviceState, DynamoRegistry};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::runtime::config::{ConfigError, Env};
use lambda_runtime::LambdaEvent;
use provisioning_hook::{HookConfig, ProvisioningHook, config::SDK_DEFAULTS};
use serde_json::Value;

async fn init() -> Result<ProvisioningHook<DynamoRegistry, DynamoDeviceState>, ConfigError> {
    let env = Env::process();
    let config = HookConfig::from_env(&env)?;
    let sdk = load_sdk_config(&SdkSettings::from_env(&env, SDK_DEFAULTS)?).await;
    let dynamodb = fleetwire::traced_client!(aws_sdk_dynamodb, &sdk);
    let registry = DynamoRegistry::new(dynamodb.clone(), config.registry_table.clone());
    let binding = DynamoDeviceState::new(dynamodb, config.state_table.clone());
    Ok(ProvisioningHook::new(registry, binding, config))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::runtime::serve(init(), async |hook, event: LambdaEvent<Value>| {
        Ok::<_, Infallible>(hook.handle(&event.payload).await)
    })
    .await
}
