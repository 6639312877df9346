//! AWS implementations of the port traits, one folder or file per service.

pub mod dynamodb;
pub mod iot_data;
pub mod kafka;
pub mod kinesis;
pub mod secrets;
pub mod sns;
pub mod sqs;

pub use dynamodb::{
    DynamoDeviceState, DynamoIdempotency, DynamoOta, DynamoOtaAdmin, DynamoProcessing,
    DynamoRateCounter, DynamoRegistry,
};
pub use iot_data::IotDataChannel;
pub use kafka::{KafkaAuth, KafkaReader, KafkaSink};
pub use kinesis::KinesisSink;
pub use sns::SnsAlerts;
pub use sqs::SqsDeadLetters;
