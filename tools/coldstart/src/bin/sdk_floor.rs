//! The floor each function is measured against: lambda_runtime, the logging subscriber and
//! one DynamoDB client built at init with the same SDK settings as ours, and per event one
//! `GetItem` (on `FLOOR_TABLE`, key `FLOOR_KEY_NAME` = `FLOOR_KEY`) or, without a table,
//! the event echoed back. Whatever a function costs beyond this is its own code.

use aws_sdk_dynamodb::types::AttributeValue;
use fleetwire::aws::{SdkSettings, load_sdk_config};
use fleetwire::config::Env;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

struct Lookup {
    table: String,
    key_name: String,
    key: String,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::logging::init();
    let env = Env::process();
    let settings =
        fleetwire::init::or_report(SdkSettings::from_env(&env, SdkSettings::default())).await?;
    let sdk = load_sdk_config(&settings).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let lookup = std::env::var("FLOOR_TABLE").ok().map(|table| Lookup {
        table,
        key_name: std::env::var("FLOOR_KEY_NAME").unwrap_or_else(|_| "serial".into()),
        key: std::env::var("FLOOR_KEY").unwrap_or_else(|_| "floor".into()),
    });
    let (client, lookup) = (&client, &lookup);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let Some(lookup) = lookup else {
            return Ok::<_, lambda_runtime::Error>(event.payload);
        };
        let item = client
            .get_item()
            .table_name(&lookup.table)
            .key(&lookup.key_name, AttributeValue::S(lookup.key.clone()))
            .send()
            .await?;
        Ok(json!({ "found": item.item.is_some() }))
    }))
    .await
}
