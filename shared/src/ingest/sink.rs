//! The stream and dead-letter queue an entry point writes to, as configured: built once at
//! init by both entry points (the IoT rule's and the HTTPS API's).

use crate::adapters::{KafkaAuth, KafkaSink, KinesisSink, SqsDeadLetters};
use crate::ingest::stream::{DeliveryReport, StreamRecord, StreamSink};
use crate::runtime::config::ConfigError;
use crate::runtime::error::StoreError;
use aws_types::SdkConfig;

use crate::ingest::IngestConfig;
use crate::ingest::config::{Backend, KafkaSecurity};

/// The configured stream, chosen at init.
pub enum ConfiguredSink {
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
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kafka(#[from] StoreError),
}

impl From<InitError> for lambda_runtime::Diagnostic {
    fn from(error: InitError) -> Self {
        match error {
            InitError::Config(e) => e.into(),
            InitError::Kafka(e) => e.into(),
        }
    }
}

/// The stream of `config` and its dead-letter queue.
pub async fn connect(
    config: &IngestConfig,
    sdk: &SdkConfig,
) -> Result<(ConfiguredSink, SqsDeadLetters), InitError> {
    let sink = match &config.backend {
        Backend::Kinesis { stream } => ConfiguredSink::Kinesis(KinesisSink::new(
            crate::traced_client!(aws_sdk_kinesis, sdk),
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
                    sdk,
                    config.sink_retry,
                )
                .await?,
            )
        }
    };
    let dead_letters = SqsDeadLetters::new(
        crate::traced_client!(aws_sdk_sqs, sdk),
        &config.dead_letter_queue_url,
        config.dead_letter_retry,
    );
    Ok((sink, dead_letters))
}
