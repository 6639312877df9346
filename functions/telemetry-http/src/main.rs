//! The telemetry-http Lambda: reads its configuration, builds the stream, queue,
//! idempotency and rate-limit clients once, and answers API Gateway's requests.

// The ingest future (sink choice, retries, Kafka client) nests deeper than rustc's default
// layout query depth of 128 once the runtime wraps it.
#![recursion_limit = "256"]

use std::convert::Infallible;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use fleetwire::adapters::{DynamoIdempotency, DynamoRateCounter, SqsDeadLetters};
use fleetwire::domain::rate_limit::CallerRateLimiter;
use fleetwire::ingest::sink::{ConfiguredSink, InitError, connect};
use fleetwire::ingest::{Ingest, IngestConfig};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::runtime::config::Env;
use lambda_runtime::LambdaEvent;
use telemetry_http::{HttpConfig, HttpIngest};
use time::OffsetDateTime;

type Entry = HttpIngest<ConfiguredSink, SqsDeadLetters, DynamoIdempotency, DynamoRateCounter>;

async fn init() -> Result<Entry, InitError> {
    let env = Env::process();
    let config = IngestConfig::from_env(&env)?;
    let http = HttpConfig::from_env(&env)?;
    let sdk = load_sdk_config(&SdkSettings::from_env(&env, SdkSettings::default())?).await;
    let (sink, dead_letters) = connect(&config, &sdk).await?;
    let dynamodb = fleetwire::traced_client!(aws_sdk_dynamodb, &sdk);
    let idempotency = DynamoIdempotency::new(dynamodb.clone(), &http.idempotency_table);
    let entry = HttpIngest::new(
        Ingest::new(sink, dead_letters, &config),
        idempotency,
        http.http,
    );
    Ok(match http.caller_rates {
        Some(rates) => entry.with_rate_limit(CallerRateLimiter::new(
            DynamoRateCounter::new(dynamodb, rates.table),
            rates.limit,
        )),
        None => entry,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::runtime::serve(
        init(),
        async |entry, event: LambdaEvent<ApiGatewayV2httpRequest>| {
            Ok::<_, Infallible>(
                entry
                    .handle(&event.payload, OffsetDateTime::now_utc())
                    .await,
            )
        },
    )
    .await
}
