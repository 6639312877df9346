//! The telemetry-ingest Lambda: reads its configuration, builds the stream and queue
//! clients once, and serves the IoT rule's invocations.

// The ingest future (sink choice, retries, Kafka client) nests deeper than rustc's default
// layout query depth of 128 once the runtime wraps it.
#![recursion_limit = "256"]

use fleetwire::adapters::SqsDeadLetters;
use fleetwire::ingest::Ingest;
use fleetwire::ingest::sink::{ConfiguredSink, InitError, connect};
use fleetwire::runtime::aws::load_sdk_config;
use fleetwire::runtime::config::Env;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use telemetry_ingest::{TelemetryIngestConfig, handle};
use time::OffsetDateTime;

async fn init() -> Result<Ingest<ConfiguredSink, SqsDeadLetters>, InitError> {
    let config = TelemetryIngestConfig::from_env(&Env::process())?;
    let sdk = load_sdk_config(&config.sdk).await;
    let (sink, dead_letters) = connect(&config.ingest, &sdk).await?;
    Ok(Ingest::new(sink, dead_letters, &config.ingest))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::runtime::serve(init(), async |ingest, event: LambdaEvent<Value>| {
        handle(ingest, &event.payload, OffsetDateTime::now_utc()).await
    })
    .await
}
