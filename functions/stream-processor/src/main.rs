//! The stream-processor Lambda: reads its configuration, builds the DynamoDB, SNS and SQS
//! clients once, and serves the Kinesis or MSK event source mapping.

use fleetwire::adapters::{DynamoDeviceState, DynamoProcessing, SnsAlerts, SqsDeadLetters};
use fleetwire::runtime::aws::load_sdk_config;
use fleetwire::runtime::config::{ConfigError, Env};
use fleetwire::runtime::retry::RetryPolicy;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use stream_processor::{Processor, ProcessorConfig, handle};

type Configured = Processor<DynamoProcessing, SnsAlerts, SqsDeadLetters, DynamoDeviceState>;

async fn init() -> Result<Configured, ConfigError> {
    let config = ProcessorConfig::from_env(&Env::process())?;
    let sdk = load_sdk_config(&config.sdk).await;
    let dynamodb = fleetwire::traced_client!(aws_sdk_dynamodb, &sdk);
    Ok(Processor::new(
        DynamoProcessing::new(
            dynamodb.clone(),
            &config.state_table,
            config.summaries_table,
            config.processed_records_table,
            config.remember,
        ),
        SnsAlerts::new(
            fleetwire::traced_client!(aws_sdk_sns, &sdk),
            config.alert_topic_arn,
        ),
        SqsDeadLetters::new(
            fleetwire::traced_client!(aws_sdk_sqs, &sdk),
            config.dead_letter_queue_url,
            RetryPolicy::default(),
        ),
        DynamoDeviceState::new(dynamodb, config.state_table),
        config.rules,
    ))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleetwire::runtime::serve(init(), async |processor, event: LambdaEvent<Value>| {
        handle(processor, &event.payload).await
    })
    .await
}
