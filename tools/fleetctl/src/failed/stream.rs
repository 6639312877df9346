//! A failed Kinesis batch's records, read back from the stream, and the event Lambda would
//! have sent for them.

use std::cmp::Ordering;

use fleetwire::runtime::kinesis_event::{KinesisEventSource, kinesis_event_record};
use serde_json::{Value, json};

use super::record::StreamBatch;

/// A record read back from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamedRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// Kinesis's approximate arrival time, in seconds since the epoch.
    pub arrived: f64,
}

/// Orders Kinesis sequence numbers: decimal strings of up to 128 digits that grow within a
/// shard (Kinesis API reference, `SequenceNumber`), so a longer one is the larger.
pub fn sequence_cmp(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Whether `records`, read from the batch's first sequence number on, are the whole batch:
/// the records of a shard's batch are consecutive, so its first and last sequence numbers
/// and its size must all match. Anything else means records left the stream (retention) or
/// the range was misread; a partial re-drive would pass for a whole one.
pub fn check_complete(batch: &StreamBatch, records: &[StreamedRecord]) -> Result<(), String> {
    let first = records.first().map(|r| r.sequence_number.as_str());
    let last = records.last().map(|r| r.sequence_number.as_str());
    if first != Some(batch.start_sequence_number.as_str()) {
        return Err(format!(
            "the batch's first record ({}) is no longer in the stream: its retention has passed",
            batch.start_sequence_number
        ));
    }
    if last != Some(batch.end_sequence_number.as_str()) || records.len() != batch.batch_size {
        return Err(format!(
            "read {} records up to {}, the batch had {} up to {}",
            records.len(),
            last.unwrap_or("none"),
            batch.batch_size,
            batch.end_sequence_number
        ));
    }
    Ok(())
}

/// The Kinesis event Lambda sends for these records: the processor takes a re-driven batch
/// exactly as it took the original.
pub fn kinesis_event(batch: &StreamBatch, region: &str, records: &[StreamedRecord]) -> Value {
    let source = KinesisEventSource {
        shard: &batch.shard_id,
        stream_arn: &batch.stream_arn,
        region,
        invoke_identity_arn: None,
    };
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            kinesis_event_record(
                &source,
                &r.sequence_number,
                &r.partition_key,
                &r.data,
                r.arrived,
            )
        })
        .collect();
    json!({ "Records": records })
}
