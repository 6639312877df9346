//! A failed Kafka batch's records, read back from the topic, and the event Lambda would
//! have sent for them.

use fleetwire::runtime::kafka_event::{KafkaRecord, kafka_event, kafka_event_record};
use serde_json::Value;

use super::record::{KafkaBatch, PartitionSpan};

/// Whether `records`, read from a span's first offset to its last, are the span: they
/// must start at its first offset and end at its last (offsets inside may skip, where a
/// transaction marker or compaction left a gap). Anything else means records left the
/// topic (retention) or the span was misread; a partial re-drive would pass for a whole one.
pub fn check_span(span: &PartitionSpan, records: &[KafkaRecord]) -> Result<(), String> {
    let name = format!("{}-{}", span.topic, span.partition);
    match (records.first(), records.last()) {
        (Some(first), Some(last)) if first.offset == span.first && last.offset == span.last => {
            Ok(())
        }
        (Some(first), _) if first.offset != span.first => Err(format!(
            "the batch's first record of {name} (offset {}) is no longer in the topic: its retention has passed",
            span.first
        )),
        (None, _) => Err(format!(
            "no record of {name} from offset {} to {} is in the topic",
            span.first, span.last
        )),
        (_, last) => Err(format!(
            "read {name} up to offset {}, the batch went to {}",
            last.map_or(-1, |r| r.offset),
            span.last
        )),
    }
}

/// The Kafka event Lambda sends for these records: the processor takes a re-driven batch
/// exactly as it took the original.
pub fn kafka_batch_event(batch: &KafkaBatch, records: &[KafkaRecord]) -> Value {
    let records: Vec<Value> = records.iter().map(kafka_event_record).collect();
    kafka_event(&batch.event_source_arn, &batch.bootstrap_servers, &records)
}
