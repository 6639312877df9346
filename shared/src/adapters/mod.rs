//! AWS implementations of the port traits.

pub mod conditional;
pub mod dynamodb;
pub mod idempotency_dynamodb;
pub mod iot_data;
pub mod item;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod kinesis;
pub mod ota_admin;
pub mod ota_dynamodb;
pub mod presence_dynamodb;
pub mod processing_dynamodb;
pub mod rate_counter_dynamodb;
pub mod registry_admin;
pub mod signing_secret;
pub mod sns;
pub mod sqs;

pub use dynamodb::{DynamoDeviceState, DynamoRegistry};
pub use idempotency_dynamodb::DynamoIdempotency;
pub use iot_data::IotDataChannel;
#[cfg(feature = "kafka")]
pub use kafka::{KafkaAuth, KafkaSink};
pub use kinesis::KinesisSink;
pub use ota_dynamodb::DynamoOta;
pub use processing_dynamodb::DynamoProcessing;
pub use rate_counter_dynamodb::DynamoRateCounter;
pub use sns::SnsAlerts;
pub use sqs::SqsDeadLetters;
