//! `fleetctl failed`: what the failed-events queue holds, and the re-drive of the stream
//! batches the processor gave up on.
//!
//! A mapping's failure record names a batch, not its records: a Kinesis batch by shard and
//! sequence range, a Kafka batch by the first and last offset of each of its partitions.
//! The records stay in the stream (or topic) until its retention passes, and the mappings
//! give up on a batch well before that (`MaximumRecordAgeInSeconds` of the template).
//! `redrive` reads each named batch back and invokes the stream processor with the event
//! Lambda would have sent. The processor drops records it processed before, so a
//! re-drive, or two, never counts a reading twice. A message is deleted only when its
//! whole batch went through; anything else is left in the queue with the reason.

pub mod aws;
pub mod record;
pub mod stream;
pub mod topic;

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::Answer;
use crate::Failure;
use crate::output::Table;
use fleetwire::runtime::kafka_event::KafkaRecord;
use record::{FailedEvent, KafkaBatch, PartitionSpan, StreamBatch};
use stream::StreamedRecord;

/// Events per invocation of a re-drive: well under Lambda's 6 MB synchronous payload for
/// readings of a few hundred bytes.
pub const RECORDS_PER_INVOKE: usize = 500;

/// How long a listed message stays hidden from other readers; `list` shows it again at once.
const LIST_HOLD: Duration = Duration::from_secs(30);
/// How long a message being re-driven stays hidden: its batch read and invoked.
const REDRIVE_HOLD: Duration = Duration::from_secs(300);

/// One message of the queue, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: String,
    pub receipt: String,
    pub body: String,
}

/// The failed-events queue.
pub trait FailedQueue: Send + Sync {
    /// Every message now visible, each hidden from other readers for `hold`.
    fn receive_all(
        &self,
        hold: Duration,
    ) -> impl Future<Output = Result<Vec<QueuedMessage>, Failure>> + Send;
    fn delete(&self, receipt: &str) -> impl Future<Output = Result<(), Failure>> + Send;
    /// Makes a received message visible again at once.
    fn release(&self, receipt: &str) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// Reads a batch's records back from its stream, from its first sequence number on.
pub trait StreamReader: Send + Sync {
    fn read(
        &self,
        batch: &StreamBatch,
    ) -> impl Future<Output = Result<Vec<StreamedRecord>, Failure>> + Send;
}

/// Reads a Kafka batch's records of one partition back from its cluster, by offset.
pub trait TopicReader: Send + Sync {
    fn read(
        &self,
        batch: &KafkaBatch,
        span: &PartitionSpan,
    ) -> impl Future<Output = Result<Vec<KafkaRecord>, Failure>> + Send;
}

/// Invokes a function synchronously: `Ok` with its answer, `Err` with its error.
pub trait FunctionInvoker: Send + Sync {
    fn invoke(
        &self,
        function: &str,
        payload: &Value,
    ) -> impl Future<Output = Result<Value, String>> + Send;
}

/// A message as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub message_id: String,
    pub kind: &'static str,
    pub description: String,
    pub record: Value,
}

/// What `redrive` did with one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Redriven {
    /// The whole batch went through the processor; the message is deleted.
    Done { records: usize },
    /// `--dry-run`: the batch is complete in the stream and would be re-driven.
    Ready { records: usize },
    /// The batch could not be re-driven; the message stays.
    Failed { reason: String },
    /// Not a batch of a mapping; the message stays for whoever handles its kind.
    Skipped { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct RedriveReport {
    pub message_id: String,
    pub kind: &'static str,
    pub description: String,
    #[serde(flatten)]
    pub redriven: Redriven,
}

/// Lists the queue's messages, leaving them in it.
pub async fn list(queue: &impl FailedQueue, json: bool) -> Result<Answer, Failure> {
    let messages = queue.receive_all(LIST_HOLD).await?;
    let mut listed = Vec::with_capacity(messages.len());
    for message in &messages {
        let event = FailedEvent::parse(&message.body);
        listed.push(Listed {
            message_id: message.id.clone(),
            kind: event.kind(),
            description: event.describe(),
            record: serde_json::from_str(&message.body)
                .unwrap_or_else(|_| Value::String(message.body.clone())),
        });
        queue.release(&message.receipt).await?;
    }
    if json {
        return crate::output::json(&listed).map(Answer::ok);
    }
    if listed.is_empty() {
        return Ok(Answer::ok("the failed-events queue is empty"));
    }
    let mut table = Table::new(["MESSAGE", "KIND", "WHAT FAILED"]);
    for item in &listed {
        table.row([
            item.message_id.clone(),
            item.kind.to_string(),
            item.description.clone(),
        ]);
    }
    Ok(Answer::ok(table.render()))
}

/// Re-drives every Kinesis and Kafka batch of the queue through `processor`; `dry_run`
/// reads the batches and invokes nothing. Fails (exit 1) when a batch could not be
/// re-driven.
pub async fn redrive(
    queue: &impl FailedQueue,
    reader: &impl StreamReader,
    topics: &impl TopicReader,
    invoker: &impl FunctionInvoker,
    processor: &str,
    dry_run: bool,
    json: bool,
) -> Result<Answer, Failure> {
    let messages = queue.receive_all(REDRIVE_HOLD).await?;
    let mut reports = Vec::with_capacity(messages.len());
    for message in &messages {
        let event = FailedEvent::parse(&message.body);
        let redriven = match &event {
            FailedEvent::StreamBatch { batch, .. } => {
                redrive_batch(reader, invoker, processor, batch, dry_run).await
            }
            FailedEvent::KafkaBatch { batch, .. } => {
                redrive_kafka_batch(topics, invoker, processor, batch, dry_run).await
            }
            other => Redriven::Skipped {
                reason: format!("a {} is not a batch of a mapping", other.kind()),
            },
        };
        if matches!(redriven, Redriven::Done { .. }) {
            queue.delete(&message.receipt).await?;
        } else {
            queue.release(&message.receipt).await?;
        }
        reports.push(RedriveReport {
            message_id: message.id.clone(),
            kind: event.kind(),
            description: event.describe(),
            redriven,
        });
    }
    let failed = reports
        .iter()
        .any(|r| matches!(r.redriven, Redriven::Failed { .. }));
    let text = if json {
        crate::output::json(&reports)?
    } else if reports.is_empty() {
        "the failed-events queue is empty".into()
    } else {
        let mut table = Table::new(["MESSAGE", "WHAT FAILED", "RE-DRIVE"]);
        for report in &reports {
            let outcome = match &report.redriven {
                Redriven::Done { records } => format!("done: {records} records processed"),
                Redriven::Ready { records } => format!("ready: {records} records in the stream"),
                Redriven::Failed { reason } => format!("failed: {reason}"),
                Redriven::Skipped { reason } => format!("skipped: {reason}"),
            };
            table.row([
                report.message_id.clone(),
                report.description.clone(),
                outcome,
            ]);
        }
        table.render()
    };
    Ok(Answer { text, failed })
}

async fn redrive_batch(
    reader: &impl StreamReader,
    invoker: &impl FunctionInvoker,
    processor: &str,
    batch: &StreamBatch,
    dry_run: bool,
) -> Redriven {
    let failed = |reason: String| Redriven::Failed { reason };
    let region = match batch.stream() {
        Ok((_, region)) => region,
        Err(reason) => return failed(reason),
    };
    let records = match reader.read(batch).await {
        Ok(records) => records,
        Err(e) => return failed(format!("cannot read the stream: {e}")),
    };
    if let Err(reason) = stream::check_complete(batch, &records) {
        return failed(reason);
    }
    if dry_run {
        return Redriven::Ready {
            records: records.len(),
        };
    }
    let events = records
        .chunks(RECORDS_PER_INVOKE)
        .map(|chunk| stream::kinesis_event(batch, &region, chunk));
    match invoke_all(invoker, processor, events).await {
        Ok(()) => Redriven::Done {
            records: records.len(),
        },
        Err(reason) => failed(reason),
    }
}

async fn redrive_kafka_batch(
    reader: &impl TopicReader,
    invoker: &impl FunctionInvoker,
    processor: &str,
    batch: &KafkaBatch,
    dry_run: bool,
) -> Redriven {
    let failed = |reason: String| Redriven::Failed { reason };
    let spans = match batch.spans() {
        Ok(spans) => spans,
        Err(reason) => return failed(reason),
    };
    let mut records = Vec::new();
    for span in &spans {
        let read = match reader.read(batch, span).await {
            Ok(read) => read,
            Err(e) => return failed(format!("cannot read the topic: {e}")),
        };
        if let Err(reason) = topic::check_span(span, &read) {
            return failed(reason);
        }
        records.extend(read);
    }
    if records.len() != batch.batch_size {
        return failed(format!(
            "read {} records, the batch had {}",
            records.len(),
            batch.batch_size
        ));
    }
    if dry_run {
        return Redriven::Ready {
            records: records.len(),
        };
    }
    let events = records
        .chunks(RECORDS_PER_INVOKE)
        .map(|chunk| topic::kafka_batch_event(batch, chunk));
    match invoke_all(invoker, processor, events).await {
        Ok(()) => Redriven::Done {
            records: records.len(),
        },
        Err(reason) => failed(reason),
    }
}

/// Invokes `processor` with each event in turn, stopping at the first it fails, wholly or
/// in part (a partial batch response of either mapping's shape).
async fn invoke_all(
    invoker: &impl FunctionInvoker,
    processor: &str,
    events: impl Iterator<Item = Value>,
) -> Result<(), String> {
    for event in events {
        let answer = invoker
            .invoke(processor, &event)
            .await
            .map_err(|error| format!("{processor} failed: {error}"))?;
        let still_failing = answer
            .get("batchItemFailures")
            .and_then(Value::as_array)
            .filter(|failures| !failures.is_empty());
        if let Some(failures) = still_failing {
            return Err(format!(
                "{processor} still fails from record {}",
                failures[0]["itemIdentifier"]
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
