//! AWS implementations of the port traits.

pub mod dynamodb;
pub mod item;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod kinesis;
pub mod presence_dynamodb;
pub mod sqs;

pub use dynamodb::{DynamoDeviceState, DynamoRegistry};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaAuth, KafkaSink};
pub use kinesis::KinesisSink;
pub use sqs::SqsDeadLetters;
