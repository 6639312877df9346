//! SQS adapter of the dead-letter port.
//!
//! Letters go out in SendMessageBatch calls of at most 10 messages and one message's size
//! in total; entries that fail inside a successful call are resent. A letter too large for
//! one message keeps its reason and errors in full, and its payload as a prefix with the
//! full payload's size and SHA-256, so the trace survives even when the payload cannot.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::domain::dead_letter::{DeadLetter, DeadLetterSink};
use crate::runtime::error::StoreError;
use crate::runtime::retry::RetryPolicy;

pub const MAX_BATCH_ENTRIES: usize = 10;
/// SQS's long-standing message (and batch) size limit; queues may allow up to 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Room left for the envelope and message attributes.
const ENVELOPE_RESERVE: usize = 8 * 1024;

#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
    retry: RetryPolicy,
    max_message_bytes: usize,
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: impl Into<String>, retry: RetryPolicy) -> Self {
        SqsDeadLetters {
            client,
            queue_url: queue_url.into(),
            retry,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// For queues configured with a larger `MaximumMessageSize`.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes.max(ENVELOPE_RESERVE * 2);
        self
    }

    async fn send_batch(&self, batch: &[(usize, &DeadLetter, String)]) -> Result<(), StoreError> {
        const CALL: &str = "SQS.SendMessageBatch";
        let mut pending: Vec<&(usize, &DeadLetter, String)> = batch.iter().collect();
        let mut last_problem = String::new();
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            if attempt > 0 {
                let Some(wait) = self.retry.next_wait(attempt, started.elapsed()) else {
                    break;
                };
                tokio::time::sleep(wait).await;
            }
            attempt += 1;
            let entries = pending
                .iter()
                .map(|(index, letter, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{index}"))
                        .message_body(body)
                        .message_attributes("reason", string_attribute(&letter.reason)?)
                        .message_attributes("source", string_attribute(&letter.source)?)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Rejected {
                    call: CALL.into(),
                    message: e.to_string(),
                })?;
            let output = match self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => output,
                Err(err) => {
                    let err = StoreError::from_sdk(CALL, err);
                    if !err.is_transient() {
                        return Err(err);
                    }
                    last_problem = err.to_string();
                    continue;
                }
            };

            if let Some(fault) = output.failed().iter().find(|f| f.sender_fault()) {
                return Err(StoreError::Rejected {
                    call: CALL.into(),
                    message: format!("{}: {}", fault.code(), fault.message().unwrap_or_default()),
                });
            }
            let failed_ids: Vec<&str> = output.failed().iter().map(|f| f.id()).collect();
            if let Some(first) = output.failed().first() {
                last_problem = format!("{}: {}", first.code(), first.message().unwrap_or_default());
            }
            pending.retain(|(index, _, _)| failed_ids.contains(&format!("m{index}").as_str()));
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable {
            call: CALL.into(),
            message: format!(
                "{} dead letters not stored after {attempt} attempts: {last_problem}",
                pending.len()
            ),
        })
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, aws_sdk_sqs::error::BuildError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
}

/// The letter as a message body no larger than `max_bytes`.
pub fn message_body(letter: &DeadLetter, max_bytes: usize) -> String {
    let full = serde_json::to_string(letter).unwrap_or_default();
    if full.len() <= max_bytes.saturating_sub(ENVELOPE_RESERVE / 2) {
        return full;
    }
    let payload = serde_json::to_string(&letter.payload).unwrap_or_default();
    let keep = floor_char_boundary(&payload, max_bytes.saturating_sub(ENVELOPE_RESERVE));
    let mut shrunk = letter.clone();
    shrunk.payload = json!({
        "truncated": true,
        "original_bytes": payload.len(),
        "sha256": hex(&Sha256::digest(payload.as_bytes())),
        "prefix": Value::String(payload[..keep].to_string()),
    });
    serde_json::to_string(&shrunk).unwrap_or_default()
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Groups message bodies into batches of at most 10 entries and `max_bytes` in total.
fn plan_batches(sizes: &[usize], max_bytes: usize) -> Vec<Vec<usize>> {
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for (index, &size) in sizes.iter().enumerate() {
        if current.len() == MAX_BATCH_ENTRIES || (!current.is_empty() && bytes + size > max_bytes) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(index);
        bytes += size;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

impl DeadLetterSink for SqsDeadLetters {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        let bodies: Vec<String> = letters
            .iter()
            .map(|l| message_body(l, self.max_message_bytes))
            .collect();
        // Attributes count towards the size too; leave them room.
        let sizes: Vec<usize> = bodies
            .iter()
            .zip(letters)
            .map(|(b, l)| b.len() + l.reason.len() + l.source.len() + 64)
            .collect();
        for batch in plan_batches(&sizes, self.max_message_bytes) {
            let entries: Vec<(usize, &DeadLetter, String)> = batch
                .into_iter()
                .map(|i| (i, &letters[i], bodies[i].clone()))
                .collect();
            self.send_batch(&entries).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn letter(payload: Value) -> DeadLetter {
        DeadLetter {
            reason: "validation".into(),
            errors: vec!["temperature: is required".into()],
            source: "telemetry-ingest".into(),
            device_id: Some("car-1".into()),
            topic: None,
            caller: None,
            received_at: None,
            rejected_at: datetime!(2026-11-25 12:00:00 UTC),
            payload,
            payload_base64: None,
        }
    }

    #[test]
    fn small_letters_are_sent_whole() {
        let letter = letter(json!({"device_id": "car-1"}));
        let body = message_body(&letter, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(serde_json::from_str::<DeadLetter>(&body).unwrap(), letter);
    }

    #[test]
    fn oversized_payload_keeps_reason_size_and_digest() {
        let big = "é".repeat(200_000);
        let letter = letter(json!({"blob": big}));
        let body = message_body(&letter, DEFAULT_MAX_MESSAGE_BYTES);
        assert!(body.len() <= DEFAULT_MAX_MESSAGE_BYTES, "{}", body.len());
        let sent: DeadLetter = serde_json::from_str(&body).unwrap();
        assert_eq!(sent.reason, "validation");
        assert_eq!(sent.errors, letter.errors);
        assert_eq!(sent.payload["truncated"], json!(true));
        let original = serde_json::to_string(&letter.payload).unwrap();
        assert_eq!(sent.payload["original_bytes"], json!(original.len()));
        assert_eq!(
            sent.payload["sha256"],
            json!(hex(&Sha256::digest(original.as_bytes())))
        );
        assert!(original.starts_with(sent.payload["prefix"].as_str().unwrap()));
    }

    #[test]
    fn batches_respect_count_and_size() {
        assert_eq!(
            plan_batches(&[1; 23], 1000)
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            vec![10, 10, 3]
        );
        assert_eq!(
            plan_batches(&[600, 600, 300], 1000),
            vec![vec![0], vec![1, 2]]
        );
    }
}
