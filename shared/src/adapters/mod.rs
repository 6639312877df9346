//! AWS implementations of the port traits.

pub mod dynamodb;
pub mod item;
pub mod kinesis;
pub mod sqs;

pub use dynamodb::{DynamoDeviceState, DynamoRegistry};
pub use kinesis::KinesisSink;
pub use sqs::SqsDeadLetters;
