//! The telemetry-ingest Lambda: reads its configuration, builds the stream and queue
//! clients once, and serves the IoT rule's invocations.

use fleetwire::adapters::{KafkaAuth, KafkaSink, KinesisSink, SqsDeadLetters};
use fleetwire::aws::{SdkSettings, load_sdk_config};
use fleetwire::config::{ConfigError, Env};
use fleetwire::stream::{DeliveryReport, StreamRecord, StreamSink};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use telemetry_ingest::config::{Backend, KafkaSecurity};
use telemetry_ingest::{Ingest, IngestConfig, IngestError, IngestSummary};
use time::OffsetDateTime;

/// The configured stream, chosen at init.
enum ConfiguredSink {
    Kinesis(KinesisSink),
    Kafka(KafkaSink),
}

impl StreamSink for ConfiguredSink {
    async fn put_records(&self, records: &[StreamRecord]) -> DeliveryReport {
        match self {
            ConfiguredSink::Kinesis(sink) => sink.put_records(records).await,
            ConfiguredSink::Kafka(sink) => sink.put_records(records).await,
        }
    }
}

/// Why init failed: a setting, or the Kafka cluster that could not be reached.
#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kafka(#[from] fleetwire::error::StoreError),
}

impl From<InitError> for lambda_runtime::Diagnostic {
    fn from(error: InitError) -> Self {
        match error {
            InitError::Config(e) => e.into(),
            InitError::Kafka(e) => e.into(),
        }
    }
}

async fn init() -> Result<Ingest<ConfiguredSink, SqsDeadLetters>, InitError> {
    let env = Env::process();
    let config = IngestConfig::from_env(&env)?;
    let sdk = load_sdk_config(&SdkSettings::from_env(&env, SdkSettings::default())?).await;
    let sink = match &config.backend {
        Backend::Kinesis { stream } => ConfiguredSink::Kinesis(KinesisSink::new(
            aws_sdk_kinesis::Client::new(&sdk),
            stream,
            config.sink_retry,
        )),
        Backend::Kafka {
            bootstrap_servers,
            topic,
            security,
        } => {
            let auth = match security {
                KafkaSecurity::MskIam => KafkaAuth::MskIam,
                KafkaSecurity::Plaintext => KafkaAuth::Plaintext,
            };
            // Connecting at init warms the connection and fails fast on a wrong topic.
            ConfiguredSink::Kafka(
                KafkaSink::connect(
                    bootstrap_servers.clone(),
                    topic,
                    auth,
                    &sdk,
                    config.sink_retry,
                )
                .await?,
            )
        }
    };
    let dead_letters = SqsDeadLetters::new(
        aws_sdk_sqs::Client::new(&sdk),
        &config.dead_letter_queue_url,
        config.dead_letter_retry,
    );
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
