//! The messages of the failed-events queue, told apart by their shape.
//!
//! Three writers share the queue, each with the record AWS documents for it:
//! - an event source mapping that gave up on a batch (AWS Lambda developer guide, "Retain
//!   discarded batch records for a Kinesis Data Streams event source": the invocation
//!   record with `KinesisBatchInfo`; the MSK mapping's is "Capturing discarded batches for
//!   Amazon MSK and self-managed Apache Kafka event sources", with `KafkaBatchInfo`);
//! - an asynchronous invocation that used up its retries (the same guide, "Retaining
//!   records of asynchronous invocations": the record with `requestPayload`);
//! - an IoT rule whose action failed (AWS IoT Core developer guide, "Error action message
//!   format": `ruleName`, `topic`, `failures`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A batch a Kinesis mapping gave up on: which records, not the records themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamBatch {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub batch_size: usize,
    pub stream_arn: String,
}

impl StreamBatch {
    /// The stream's name and region, from its ARN
    /// (`arn:aws:kinesis:<region>:<account>:stream/<name>`).
    pub fn stream(&self) -> Result<(String, String), String> {
        let parts: Vec<&str> = self.stream_arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", _, "kinesis", region, _, resource] => resource
                .strip_prefix("stream/")
                .map(|name| (name.to_string(), region.to_string()))
                .ok_or_else(|| format!("{} names no stream", self.stream_arn)),
            _ => Err(format!("{} is not a Kinesis stream ARN", self.stream_arn)),
        }
    }
}

/// A batch an MSK mapping gave up on: for each partition of the batch, its first and last
/// offsets (strings in the record), not the records themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatch {
    pub batch_size: usize,
    pub event_source_arn: String,
    pub bootstrap_servers: String,
    /// Keyed `<topic>-<partition>`.
    pub records_info: BTreeMap<String, OffsetRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetRange {
    pub first_record_offset: String,
    pub last_record_offset: String,
}

/// One partition's part of a Kafka batch, read as numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpan {
    pub topic: String,
    pub partition: i32,
    pub first: i64,
    pub last: i64,
}

impl KafkaBatch {
    /// Each partition's topic, number and offsets. A key is `<topic>-<partition>`, and a
    /// topic name may hold hyphens itself, so the number is what follows the last one.
    pub fn spans(&self) -> Result<Vec<PartitionSpan>, String> {
        let mut spans = Vec::with_capacity(self.records_info.len());
        for (key, range) in &self.records_info {
            let (topic, partition) = key
                .rsplit_once('-')
                .and_then(|(topic, n)| Some((topic, n.parse::<i32>().ok()?)))
                .filter(|(topic, _)| !topic.is_empty())
                .ok_or_else(|| format!("{key} names no topic and partition"))?;
            let offset = |text: &str| {
                text.parse::<i64>()
                    .map_err(|_| format!("{text} of {key} is not a Kafka offset"))
            };
            let (first, last) = (
                offset(&range.first_record_offset)?,
                offset(&range.last_record_offset)?,
            );
            if first > last {
                return Err(format!(
                    "{key}: first offset {first} is after the last, {last}"
                ));
            }
            spans.push(PartitionSpan {
                topic: topic.to_string(),
                partition,
                first,
                last,
            });
        }
        if spans.is_empty() {
            return Err("the record names no partition".into());
        }
        Ok(spans)
    }
}

/// What one message of the queue is.
#[derive(Debug, Clone, PartialEq)]
pub enum FailedEvent {
    /// A Kinesis batch the stream processor gave up on; re-drivable while its records are
    /// in the stream.
    StreamBatch {
        batch: StreamBatch,
        function_arn: String,
        condition: String,
    },
    /// A Kafka batch the MSK mapping gave up on; re-drivable while its records are in the
    /// topic.
    KafkaBatch {
        batch: KafkaBatch,
        function_arn: String,
        condition: String,
    },
    /// An asynchronous invocation that used up its retries; the payload is in the record.
    AsyncInvocation {
        function_arn: String,
        condition: String,
    },
    /// An IoT rule action that failed; the device's payload is in the message.
    RuleError { rule: String, topic: String },
    /// Not a shape any writer of the queue sends.
    Unknown,
}

impl FailedEvent {
    /// Reads a message body. Anything that is not one of the three records is `Unknown`,
    /// never an error: the queue is the operator's to read whatever is in it.
    pub fn parse(body: &str) -> FailedEvent {
        let Ok(value) = serde_json::from_str::<Value>(body) else {
            return FailedEvent::Unknown;
        };
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        if let Some(info) = value.get("KinesisBatchInfo") {
            return match serde_json::from_value::<StreamBatch>(info.clone()) {
                Ok(batch) => FailedEvent::StreamBatch {
                    batch,
                    function_arn: text("/requestContext/functionArn"),
                    condition: text("/requestContext/condition"),
                },
                Err(_) => FailedEvent::Unknown,
            };
        }
        if let Some(info) = value.get("KafkaBatchInfo") {
            return match serde_json::from_value::<KafkaBatch>(info.clone()) {
                Ok(batch) => FailedEvent::KafkaBatch {
                    batch,
                    function_arn: text("/requestContext/functionArn"),
                    condition: text("/requestContext/condition"),
                },
                Err(_) => FailedEvent::Unknown,
            };
        }
        if value.get("requestPayload").is_some() {
            return FailedEvent::AsyncInvocation {
                function_arn: text("/requestContext/functionArn"),
                condition: text("/requestContext/condition"),
            };
        }
        if value.get("ruleName").is_some() && value.get("failures").is_some() {
            return FailedEvent::RuleError {
                rule: text("/ruleName"),
                topic: text("/topic"),
            };
        }
        FailedEvent::Unknown
    }

    /// A short name of the kind, for tables and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            FailedEvent::StreamBatch { .. } => "stream-batch",
            FailedEvent::KafkaBatch { .. } => "kafka-batch",
            FailedEvent::AsyncInvocation { .. } => "async-invocation",
            FailedEvent::RuleError { .. } => "rule-error",
            FailedEvent::Unknown => "unknown",
        }
    }

    /// One line saying what failed.
    pub fn describe(&self) -> String {
        match self {
            FailedEvent::StreamBatch {
                batch, condition, ..
            } => format!(
                "{} records of {} from {} to {} ({condition})",
                batch.batch_size,
                batch.shard_id,
                batch.start_sequence_number,
                batch.end_sequence_number
            ),
            FailedEvent::KafkaBatch {
                batch, condition, ..
            } => {
                let ranges: Vec<String> = batch
                    .records_info
                    .iter()
                    .map(|(key, range)| {
                        format!(
                            "{key} from offset {} to {}",
                            range.first_record_offset, range.last_record_offset
                        )
                    })
                    .collect();
                format!(
                    "{} records of {} ({condition})",
                    batch.batch_size,
                    ranges.join(", ")
                )
            }
            FailedEvent::AsyncInvocation {
                function_arn,
                condition,
            } => format!("an event for {} ({condition})", function_name(function_arn)),
            FailedEvent::RuleError { rule, topic } => {
                format!("rule {rule} could not act on a message of {topic}")
            }
            FailedEvent::Unknown => "a message of no known shape".into(),
        }
    }
}

/// The function's name from its ARN (`...:function:<name>[:<qualifier>]`).
pub fn function_name(arn: &str) -> &str {
    arn.split(':').nth(6).unwrap_or(arn)
}
