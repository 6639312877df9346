//! The telemetry stream port, recording what it receives.

use std::sync::Mutex;

use crate::ingest::stream::{DeliveryReport, FailedRecord, StreamRecord, StreamSink};
use crate::testing::lock;

/// A stream that records what it receives; records whose partition key is listed in
/// `failing_keys` fail, as throttled entries of PutRecords do.
#[derive(Debug, Default)]
pub struct RecordingStream {
    pub records: Mutex<Vec<StreamRecord>>,
    failing_keys: Mutex<Vec<String>>,
}

impl RecordingStream {
    pub fn fail_partition_key(&self, key: &str) {
        lock(&self.failing_keys).push(key.to_string());
    }

    pub fn delivered(&self) -> Vec<StreamRecord> {
        lock(&self.records).clone()
    }
}

impl StreamSink for RecordingStream {
    async fn put_records(&self, records: &[StreamRecord]) -> DeliveryReport {
        let failing = lock(&self.failing_keys).clone();
        let mut report = DeliveryReport {
            calls: 1,
            ..DeliveryReport::default()
        };
        let mut stored = lock(&self.records);
        for (index, record) in records.iter().enumerate() {
            if failing.contains(&record.partition_key) {
                report.failed.push(FailedRecord {
                    index,
                    error_code: "ProvisionedThroughputExceededException".into(),
                    message: "rate exceeded for shard".into(),
                    transient: true,
                });
            } else {
                stored.push(record.clone());
                report.delivered += 1;
            }
        }
        report
    }
}
