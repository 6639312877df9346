//! The stream-processor Lambda: reads its configuration, builds the DynamoDB, SNS and SQS
//! clients once, and serves the Kinesis or MSK event source mapping.

use std::time::Duration;

use fleetwire::adapters::{DynamoDeviceState, DynamoProcessing, SnsAlerts, SqsDeadLetters};
use fleetwire::aws::{SdkSettings, load_sdk_config};
use fleetwire::config::{ConfigError, Env};
use fleetwire::processing::AnomalyRules;
use fleetwire::retry::RetryPolicy;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use stream_processor::input::{Source, from_event};
use stream_processor::{BatchResponse, Processor};

type Configured = Processor<DynamoProcessing, SnsAlerts, SqsDeadLetters, DynamoDeviceState>;

async fn init() -> Result<Configured, ConfigError> {
    let env = Env::process();
    let state_table = env.required("STATE_TABLE", "the device State table")?;
    let rules = AnomalyRules {
        z_threshold: env.parse_or("ANOMALY_Z_THRESHOLD", 3.0)?,
        min_samples: env.number_in("ANOMALY_MIN_SAMPLES", 30, 2, 1_000_000)?,
        ..AnomalyRules::default()
    };
    let remember = Duration::from_secs(86_400 * env.number_in("REMEMBER_RECORDS_DAYS", 8, 1, 400)?);
    let sdk = load_sdk_config(&SdkSettings::from_env(&env, SdkSettings::default())?).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(Processor::new(
        DynamoProcessing::new(
            dynamodb.clone(),
            &state_table,
            env.required("SUMMARIES_TABLE", "the hourly Summaries table")?,
            env.required(
                "PROCESSED_RECORDS_TABLE",
                "the table of processed record ids",
            )?,
            remember,
        ),
        SnsAlerts::new(
            aws_sdk_sns::Client::new(&sdk),
            env.required("ALERT_TOPIC_ARN", "the SNS alert topic")?,
        ),
        SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(&sdk),
            env.required(
                "DEAD_LETTER_QUEUE_URL",
                "the SQS queue for undecodable records",
            )?,
            RetryPolicy::default(),
        ),
        DynamoDeviceState::new(dynamodb, state_table),
        rules,
    ))
}

async fn handle(
    processor: &Configured,
    event: &Value,
) -> Result<BatchResponse, lambda_runtime::Error> {
    let (source, records) = from_event(event)?;
    let (response, _) = processor.process(&records).await?;
    if source == Source::Kafka && !response.batch_item_failures.is_empty() {
        // The whole batch comes again; what was applied is skipped as duplicates.
        return Err(format!(
            "{} partitions failed; the batch is retried",
            response.batch_item_failures.len()
        )
        .into());
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::logging::init();
    let processor = fleetwire::init::or_report(init().await).await?;
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(processor, &event.payload).await
    }))
    .await
}
