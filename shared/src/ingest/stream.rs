//! The telemetry stream as the ingest function sees it: records in, a per-record report out.
//!
//! A PutRecords call can "succeed" with failed entries inside; the report makes every
//! record's fate explicit, so none is dropped without a trace.

use std::future::Future;

/// One record for the stream. The partition key is the device id, so one device's records
/// stay on one shard (or partition) and in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// A record the sink could not deliver after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecord {
    /// Position in the slice given to `put_records`.
    pub index: usize,
    pub error_code: String,
    pub message: String,
    /// Whether a later try may succeed (throttling, outage) as opposed to a bad record.
    pub transient: bool,
}

/// What happened to each record of one `put_records` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    /// In ascending index order.
    pub failed: Vec<FailedRecord>,
    /// Service calls made, retries included (for throughput accounting).
    pub calls: usize,
    /// Record sends beyond the first, i.e. entries resent after a failure.
    pub retried: usize,
}

impl DeliveryReport {
    pub fn all_delivered(&self) -> bool {
        self.failed.is_empty()
    }
}

pub trait StreamSink: Send + Sync {
    /// Delivers `records`, retrying only the ones that failed; never returns before every
    /// record is either delivered or listed in `failed`.
    fn put_records(&self, records: &[StreamRecord]) -> impl Future<Output = DeliveryReport> + Send;
}
