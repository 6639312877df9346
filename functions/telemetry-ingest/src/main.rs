//! The telemetry-ingest Lambda: reads its configuration, builds the stream and queue
//! clients once, and serves the IoT rule's invocations.

// The ingest future (sink choice, retries, Kafka client) nests deeper than rustc's default
// layout query depth of 128 once the runtime wraps it.
#![recursion_limit = "256"]

use fleetwire::adapters::SqsDeadLetters;
use fleetwire::aws::{SdkSettings, load_sdk_config};
use fleetwire::config::Env;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use telemetry_ingest::sink::{ConfiguredSink, InitError, connect};
use telemetry_ingest::{Ingest, IngestConfig, IngestError, IngestSummary};
use time::OffsetDateTime;

async fn init() -> Result<Ingest<ConfiguredSink, SqsDeadLetters>, InitError> {
    let env = Env::process();
    let config = IngestConfig::from_env(&env)?;
    let sdk = load_sdk_config(&SdkSettings::from_env(&env, SdkSettings::default())?).await;
    let (sink, dead_letters) = connect(&config, &sdk).await?;
    Ok(Ingest::new(sink, dead_letters, &config))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::logging::init();
    let ingest = fleetwire::init::or_report(init().await).await?;
    let ingest = &ingest;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let summary: Result<IngestSummary, IngestError> = ingest
            .handle(&event.payload, OffsetDateTime::now_utc())
            .await;
        summary
    }))
    .await
}
