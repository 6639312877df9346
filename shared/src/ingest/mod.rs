//! The ingest core both entry points share: the IoT rule's (`functions/telemetry-ingest`)
//! and the HTTPS API's (`functions/telemetry-http`).
//!
//! Every reading is validated (all field errors at once), checked against the identity IoT
//! Core authenticated (the topic's thing name), enriched, and written to the stream with
//! the device as partition key. Nothing is dropped silently: a rejected record goes to the
//! dead-letter queue with its reason, so does a record the stream still refuses after the
//! retry budget, and when the dead-letter queue itself cannot be written the invocation
//! fails so Lambda's retries and OnFailure destination keep the event.

pub mod config;
pub mod envelope;
pub mod sink;
pub mod stream;

use std::collections::BTreeMap;

use crate::domain::dead_letter::{DeadLetter, DeadLetterSink};
use crate::domain::telemetry::{EnrichedRecord, TelemetryRecord, TimestampLimits};
use crate::ingest::stream::{StreamRecord, StreamSink};
use crate::runtime::error::StoreError;
use crate::runtime::metrics;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

pub use config::IngestConfig;
use envelope::Body;
pub use envelope::Envelope;
pub use envelope::Sender;

/// The name dead letters carry as their source.
pub const SOURCE: &str = "telemetry-ingest";
/// Largest record Kinesis takes, partition key included.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Why a record did not reach the stream: the dead letter's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A field is missing, mistyped or out of range (`errors` lists each).
    Validation,
    /// `device_id` differs from the topic's thing name: a device writing as another.
    Spoofed,
    /// The payload is not JSON, or not a reading or batch.
    MalformedJson,
    /// More records in one message than `MAX_BATCH_RECORDS`.
    BatchTooLarge,
    /// The enriched record is over Kinesis' 1 MiB.
    TooLarge,
    /// The event has no thing name, so the sender's identity is unknown (a rule without
    /// `topic(2) AS thing_name`).
    MissingThingName,
    /// The stream refused the record after every retry in the budget.
    SinkUnavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Validation => "validation",
            Reason::Spoofed => "spoofed",
            Reason::MalformedJson => "malformed_json",
            Reason::BatchTooLarge => "batch_too_large",
            Reason::TooLarge => "too_large",
            Reason::MissingThingName => "missing_thing_name",
            Reason::SinkUnavailable => "sink_unavailable",
        }
    }
}

/// What one invocation did, logged and returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestSummary {
    pub received: usize,
    pub accepted: usize,
    pub rejected: BTreeMap<&'static str, usize>,
    /// Record sends beyond the first.
    pub retried: usize,
    pub dead_lettered: usize,
    pub stream_calls: usize,
    /// Records the stream refused after every retry, by the stream's error code
    /// (`ProvisionedThroughputExceededException`, `InternalFailure`, a timeout...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stream_errors: BTreeMap<String, usize>,
}

/// The invocation failed and must be retried by Lambda.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("dead-letter queue unavailable, {count} rejected records not stored: {source}")]
    DeadLetterUnavailable { count: usize, source: StoreError },
}

impl From<IngestError> for lambda_runtime::Diagnostic {
    fn from(error: IngestError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "DeadLetterUnavailable".into(),
            error_message: error.to_string(),
        }
    }
}

/// The ingest core: a stream, a dead-letter queue and the settings, built once at init.
pub struct Ingest<S, D> {
    sink: S,
    dead_letters: D,
    max_batch: usize,
    limits: TimestampLimits,
    source: &'static str,
}

/// What to do with a valid record the stream still refuses after the retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFailures {
    /// Keep it in the dead-letter queue (an IoT rule cannot answer its device).
    DeadLetter,
    /// Report it unstored, so the caller sends it again (an HTTPS request's 503).
    Report,
}

/// What became of one record of a message, in the message's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(flatten)]
    pub status: RecordStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RecordStatus {
    /// Written to the stream.
    Accepted,
    /// Refused for good, and kept in the dead-letter queue with the reason.
    Rejected { reason: Reason, errors: Vec<String> },
    /// Valid but not stored: the stream refused it; send it again.
    Unavailable { errors: Vec<String> },
}

/// One message's summary and each record's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub summary: IngestSummary,
    pub records: Vec<RecordResult>,
}

/// A record judged: on its way to the stream, or rejected.
enum Verdict {
    /// With its `record_id`.
    Accepted(StreamRecord, String),
    Rejected(Reason, Box<DeadLetter>),
}

impl<S: StreamSink, D: DeadLetterSink> Ingest<S, D> {
    pub fn new(sink: S, dead_letters: D, config: &IngestConfig) -> Self {
        Ingest {
            sink,
            dead_letters,
            max_batch: config.max_batch,
            limits: config.limits,
            source: SOURCE,
        }
    }

    /// The stream records are written to.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The dead-letter queue rejects are kept in.
    pub fn dead_letters(&self) -> &D {
        &self.dead_letters
    }

    /// The name dead letters carry as their source (the entry point's).
    pub fn with_source(mut self, source: &'static str) -> Self {
        self.source = source;
        self
    }

    /// Judges every record of one message, writes the valid ones to the stream and keeps
    /// the rejected ones in the dead-letter queue; says what became of each.
    pub async fn ingest(
        &self,
        envelope: &Envelope,
        now: OffsetDateTime,
        sink_failures: SinkFailures,
    ) -> Result<Outcome, IngestError> {
        let verdicts = self.judge(envelope, now);
        let mut summary = IngestSummary {
            received: verdicts.len(),
            ..IngestSummary::default()
        };

        let mut accepted = Vec::new();
        let mut accepted_ids = Vec::new();
        let mut accepted_at = Vec::new();
        let mut letters = Vec::new();
        let mut records = Vec::with_capacity(verdicts.len());
        for (index, verdict) in verdicts.into_iter().enumerate() {
            match verdict {
                Verdict::Accepted(record, record_id) => {
                    records.push(RecordResult {
                        index,
                        device_id: Some(record.partition_key.clone()),
                        status: RecordStatus::Accepted,
                    });
                    accepted_at.push(index);
                    accepted.push(record);
                    accepted_ids.push(record_id);
                }
                Verdict::Rejected(reason, letter) => {
                    *summary.rejected.entry(reason.as_str()).or_default() += 1;
                    records.push(RecordResult {
                        index,
                        device_id: letter.device_id.clone(),
                        status: RecordStatus::Rejected {
                            reason,
                            errors: letter.errors.clone(),
                        },
                    });
                    letters.push(*letter);
                }
            }
        }

        let report = self.sink.put_records(&accepted).await;
        summary.accepted = report.delivered;
        summary.retried = report.retried;
        summary.stream_calls = report.calls;
        for failure in &report.failed {
            let record = &accepted[failure.index];
            let error = format!("{}: {}", failure.error_code, failure.message);
            *summary
                .stream_errors
                .entry(failure.error_code.clone())
                .or_default() += 1;
            *summary
                .rejected
                .entry(Reason::SinkUnavailable.as_str())
                .or_default() += 1;
            let result = &mut records[accepted_at[failure.index]];
            match sink_failures {
                SinkFailures::Report => {
                    result.status = RecordStatus::Unavailable {
                        errors: vec![error],
                    };
                }
                SinkFailures::DeadLetter => {
                    result.status = RecordStatus::Rejected {
                        reason: Reason::SinkUnavailable,
                        errors: vec![error.clone()],
                    };
                    letters.push(DeadLetter {
                        reason: Reason::SinkUnavailable.as_str().into(),
                        errors: vec![error],
                        source: self.source.into(),
                        device_id: Some(record.partition_key.clone()),
                        topic: envelope.topic(),
                        caller: envelope.caller(),
                        received_at: Some(envelope.received_at),
                        rejected_at: now,
                        payload: serde_json::from_slice(&record.data).unwrap_or(Value::Null),
                        payload_base64: None,
                    });
                }
            }
        }

        // One line per reading refused, with its device: Logs Insights finds which devices
        // send invalid data without reading the queue.
        for letter in &letters {
            tracing::warn!(
                device_id = letter.device_id.as_deref().unwrap_or("-"),
                reason = %letter.reason,
                errors = %letter.errors.join("; "),
                "reading dead-lettered"
            );
        }
        if !letters.is_empty() {
            self.dead_letters.send(&letters).await.map_err(|source| {
                IngestError::DeadLetterUnavailable {
                    count: letters.len(),
                    source,
                }
            })?;
            summary.dead_lettered = letters.len();
        }
        let sender = envelope.sender.as_ref().map_or("-", Sender::name);
        // The ids of the readings the stream took: the stream processor logs the same ids,
        // so one Logs Insights query follows a reading from here to its batch.
        let failed: std::collections::HashSet<usize> =
            report.failed.iter().map(|f| f.index).collect();
        let delivered_ids: Vec<&str> = accepted_ids
            .iter()
            .enumerate()
            .filter(|(i, _)| !failed.contains(i))
            .map(|(_, id)| id.as_str())
            .collect();
        tracing::info!(
            sender,
            record_ids = %delivered_ids.join(","),
            received = summary.received,
            accepted = summary.accepted,
            rejected = ?summary.rejected,
            retried = summary.retried,
            dead_lettered = summary.dead_lettered,
            stream_calls = summary.stream_calls,
            "telemetry ingested"
        );
        metrics::count(metrics::name::READINGS_ACCEPTED, summary.accepted as u64);
        for (reason, n) in &summary.rejected {
            metrics::count_by(
                metrics::name::READINGS_REJECTED,
                "Reason",
                *reason,
                *n as u64,
            );
        }
        metrics::count(
            metrics::name::READINGS_DEAD_LETTERED,
            summary.dead_lettered as u64,
        );
        metrics::count(metrics::name::PUT_RECORDS_RETRIED, summary.retried as u64);
        if !summary.stream_errors.is_empty() {
            tracing::warn!(
                sender,
                refused = ?summary.stream_errors,
                "the stream refused records after every retry"
            );
        }
        Ok(Outcome { summary, records })
    }

    fn judge(&self, envelope: &Envelope, now: OffsetDateTime) -> Vec<Verdict> {
        let reject = |reason: Reason,
                      errors: Vec<String>,
                      payload: Value,
                      payload_base64: Option<String>| {
            Verdict::Rejected(
                reason,
                Box::new(DeadLetter {
                    reason: reason.as_str().into(),
                    errors,
                    source: self.source.into(),
                    device_id: payload
                        .get("device_id")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    topic: envelope.topic(),
                    caller: envelope.caller(),
                    received_at: Some(envelope.received_at),
                    rejected_at: now,
                    payload,
                    payload_base64,
                }),
            )
        };
        match &envelope.body {
            Body::NotJson { base64, problem } => {
                vec![reject(
                    Reason::MalformedJson,
                    vec![problem.clone()],
                    Value::Null,
                    Some(base64.clone()),
                )]
            }
            Body::Malformed { payload, problem } => vec![reject(
                Reason::MalformedJson,
                vec![problem.clone()],
                payload.clone(),
                None,
            )],
            Body::Batch(records) if records.len() > self.max_batch => {
                let problem = format!(
                    "batch of {} records; at most {} per message",
                    records.len(),
                    self.max_batch
                );
                records
                    .iter()
                    .map(|r| {
                        reject(
                            Reason::BatchTooLarge,
                            vec![problem.clone()],
                            r.clone(),
                            None,
                        )
                    })
                    .collect()
            }
            Body::Batch(records) => records
                .iter()
                .map(|r| self.judge_one(envelope, r, now, &reject))
                .collect(),
            Body::Single(record) => vec![self.judge_one(envelope, record, now, &reject)],
        }
    }

    fn judge_one(
        &self,
        envelope: &Envelope,
        value: &Value,
        now: OffsetDateTime,
        reject: &impl Fn(Reason, Vec<String>, Value, Option<String>) -> Verdict,
    ) -> Verdict {
        let Some(sender) = envelope.sender.as_ref() else {
            let problem =
                "the event carries no thing_name: the rule must select topic(2) AS thing_name"
                    .to_string();
            return reject(Reason::MissingThingName, vec![problem], value.clone(), None);
        };
        let spoof = value
            .get("device_id")
            .and_then(Value::as_str)
            .and_then(|claimed| sender.refuses(claimed));
        let validated = TelemetryRecord::validate(value, now, &self.limits);
        match (spoof, validated) {
            (Some(spoof), Ok(_)) => reject(Reason::Spoofed, vec![spoof], value.clone(), None),
            (Some(spoof), Err(invalid)) => {
                let errors = std::iter::once(spoof)
                    .chain(invalid.errors.iter().map(ToString::to_string))
                    .collect();
                reject(Reason::Spoofed, errors, value.clone(), None)
            }
            (None, Err(invalid)) => reject(
                Reason::Validation,
                invalid.errors.iter().map(ToString::to_string).collect(),
                value.clone(),
                None,
            ),
            (None, Ok(reading)) => {
                let partition_key = reading.device_id.to_string();
                let enriched = EnrichedRecord::new(reading, envelope.received_at);
                let record_id = enriched.record_id.clone();
                let data = match serde_json::to_vec(&enriched) {
                    Ok(data) => data,
                    Err(e) => {
                        return reject(
                            Reason::Validation,
                            vec![e.to_string()],
                            value.clone(),
                            None,
                        );
                    }
                };
                if data.len() + partition_key.len() > MAX_RECORD_BYTES {
                    let problem = format!(
                        "enriched record is {} bytes; Kinesis takes at most {MAX_RECORD_BYTES}",
                        data.len()
                    );
                    return reject(Reason::TooLarge, vec![problem], value.clone(), None);
                }
                Verdict::Accepted(
                    StreamRecord {
                        partition_key,
                        data,
                    },
                    record_id,
                )
            }
        }
    }
}
