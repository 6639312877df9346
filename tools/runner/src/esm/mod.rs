//! Event source mappings, as Lambda runs them: each Kinesis shard (or Kafka partition)
//! polled in order, records batched up to `BatchSize` or `MaximumBatchingWindowInSeconds`,
//! and the function invoked with Lambda's event shape.
//!
//! Kinesis: with `ReportBatchItemFailures`, a response naming failed records retries the
//! batch from the first of them (what succeeded before it is not sent again); a function
//! error retries the whole batch, split in halves first with `BisectBatchOnFunctionError`.
//! After `MaximumRetryAttempts` (or when its records are older than
//! `MaximumRecordAgeInSeconds`) a batch goes to the OnFailure destination as Lambda's
//! `KinesisBatchInfo` record, and the shard moves on. Kafka (MSK): the same, with the
//! partial batch response in Kafka's shape (`{"partition": "<topic>-<n>", "offset": n}`)
//! and a `KafkaBatchInfo` record.

mod delivery;
pub(crate) mod kafka;
mod kinesis;
mod status;

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use crate::lambda::Invoker;
use crate::queues::Queues;

pub use status::{EsmStatus, MappingControl, PollerStatus, StartAt};

/// How a source turns records into an event and a failed batch into its destination
/// record, and how its partial batch response names a record.
pub struct BatchShape<'a> {
    pub(crate) event_of: &'a (dyn Fn(&[Item]) -> Value + Send + Sync),
    pub(crate) failure_info: &'a (dyn Fn(&[Item], u32) -> Value + Send + Sync),
    pub(crate) naming: ItemNaming,
}

/// How a partial batch response names a record of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemNaming {
    /// Kinesis: `{"itemIdentifier": "<sequence number>"}`.
    Sequence,
    /// Kafka: `{"itemIdentifier": {"partition": "<topic>-<n>", "offset": n}}`, the
    /// partition named by its key in the event's `records` map.
    KafkaOffset { partition: String },
}

/// A record of either source, as the batch logic needs it.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// Kinesis sequence number, or Kafka offset.
    pub(crate) position: String,
    pub(crate) event: Value,
    pub(crate) arrived: OffsetDateTime,
}

/// What the mappings need to run.
#[derive(Clone)]
pub struct Esm {
    pub invoker: Invoker,
    pub queues: Queues,
    pub status: EsmStatus,
    pub region: String,
    /// Waits between retries of a failed batch.
    pub retry_wait: Duration,
}

#[cfg(test)]
mod tests;
