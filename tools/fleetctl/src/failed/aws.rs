//! The queue, the stream and the function, on AWS (or the local stack).

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_lambda::primitives::Blob;
use serde_json::Value;

use aws_config::SdkConfig;
use fleetwire::adapters::{KafkaAuth, KafkaReader};
use fleetwire::runtime::kafka_event::KafkaRecord;
use fleetwire::runtime::retry::RetryPolicy;

use super::record::{KafkaBatch, PartitionSpan, StreamBatch};
use super::stream::{StreamedRecord, sequence_cmp};
use super::{FailedQueue, FunctionInvoker, QueuedMessage, StreamReader, TopicReader};
use crate::Failure;
use crate::error::sdk_failure;

/// SQS answers at most ten messages per ReceiveMessage (SQS API reference,
/// `MaxNumberOfMessages`).
const RECEIVE_MAX: i32 = 10;
/// Receives before `receive_all` stops: a queue of more than 1,000 failures is re-driven
/// in rounds.
const RECEIVE_ROUNDS: usize = 100;

pub struct SqsFailedQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsFailedQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> Self {
        Self { client, url }
    }
}

impl FailedQueue for SqsFailedQueue {
    async fn receive_all(&self, hold: Duration) -> Result<Vec<QueuedMessage>, Failure> {
        let mut messages = Vec::new();
        let mut seen = BTreeSet::new();
        let mut empty_answers = 0;
        for _ in 0..RECEIVE_ROUNDS {
            let received = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(RECEIVE_MAX)
                .visibility_timeout(hold.as_secs() as i32)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| sdk_failure("SQS.ReceiveMessage", e))?;
            // A short poll samples some of SQS's servers: an empty answer can come while
            // messages remain, so stop only on an empty answer after a second try.
            let batch = received.messages.unwrap_or_default();
            if batch.is_empty() {
                empty_answers += 1;
                if empty_answers == 2 {
                    break;
                }
                continue;
            }
            empty_answers = 0;
            for message in batch {
                let id = message.message_id.unwrap_or_default();
                if seen.insert(id.clone()) {
                    messages.push(QueuedMessage {
                        id,
                        receipt: message.receipt_handle.unwrap_or_default(),
                        body: message.body.unwrap_or_default(),
                    });
                }
            }
        }
        Ok(messages)
    }

    async fn delete(&self, receipt: &str) -> Result<(), Failure> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| sdk_failure("SQS.DeleteMessage", e))?;
        Ok(())
    }

    async fn release(&self, receipt: &str) -> Result<(), Failure> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| sdk_failure("SQS.ChangeMessageVisibility", e))?;
        Ok(())
    }
}

/// GetRecords calls per batch before giving up: a shard iterator walks empty stretches of
/// the shard one call at a time.
const READ_CALLS: usize = 200;

pub struct KinesisStreamReader {
    client: aws_sdk_kinesis::Client,
}

impl KinesisStreamReader {
    pub fn new(client: aws_sdk_kinesis::Client) -> Self {
        Self { client }
    }
}

impl StreamReader for KinesisStreamReader {
    /// From an AT_SEQUENCE_NUMBER iterator (Kinesis API reference, GetShardIterator) to the
    /// batch's last sequence number, its size, or the shard's end.
    async fn read(&self, batch: &StreamBatch) -> Result<Vec<StreamedRecord>, Failure> {
        let (stream, _) = batch.stream().map_err(Failure::Failed)?;
        let iterator = self
            .client
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(&batch.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(&batch.start_sequence_number)
            .send()
            .await
            .map_err(|e| sdk_failure("Kinesis.GetShardIterator", e))?;
        let mut iterator = iterator.shard_iterator;
        let mut records = Vec::new();
        for _ in 0..READ_CALLS {
            let Some(current) = iterator.take() else {
                break; // the shard is closed and read to its end
            };
            let page = self
                .client
                .get_records()
                .shard_iterator(current)
                .limit((batch.batch_size - records.len()).clamp(1, 10_000) as i32)
                .send()
                .await
                .map_err(|e| sdk_failure("Kinesis.GetRecords", e))?;
            let caught_up = page.millis_behind_latest == Some(0);
            let empty = page.records.is_empty();
            for record in page.records {
                if sequence_cmp(&record.sequence_number, &batch.end_sequence_number).is_gt() {
                    return Ok(records);
                }
                records.push(StreamedRecord {
                    arrived: record
                        .approximate_arrival_timestamp
                        .map_or(0.0, |t| t.as_secs_f64()),
                    sequence_number: record.sequence_number,
                    partition_key: record.partition_key.unwrap_or_default(),
                    data: record.data.into_inner(),
                });
            }
            if records.len() >= batch.batch_size || (empty && caught_up) {
                break;
            }
            iterator = page.next_shard_iterator;
        }
        Ok(records)
    }
}

/// The cluster a Kafka batch's record names (`bootstrapServers`), reached as `auth` says.
pub struct KafkaTopicReader {
    sdk: SdkConfig,
    auth: KafkaAuth,
}

impl KafkaTopicReader {
    pub fn new(sdk: SdkConfig, auth: KafkaAuth) -> Self {
        Self { sdk, auth }
    }
}

impl TopicReader for KafkaTopicReader {
    async fn read(
        &self,
        batch: &KafkaBatch,
        span: &PartitionSpan,
    ) -> Result<Vec<KafkaRecord>, Failure> {
        let servers: Vec<String> = batch
            .bootstrap_servers
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(Failure::Failed(
                "the record names no bootstrap server".into(),
            ));
        }
        let reader = KafkaReader::connect(
            servers,
            self.auth.clone(),
            &self.sdk,
            RetryPolicy::default(),
        )
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
        reader
            .read(&span.topic, span.partition, span.first, span.last)
            .await
            .map_err(|e| Failure::Failed(e.to_string()))
    }
}

pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
}

impl LambdaInvoker {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

impl FunctionInvoker for LambdaInvoker {
    /// A RequestResponse Invoke: a function error comes back as `X-Amz-Function-Error` with
    /// the error document as the payload (Lambda API reference, Invoke).
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, String> {
        let answer = self
            .client
            .invoke()
            .function_name(function)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| sdk_failure("Lambda.Invoke", e).to_string())?;
        let body = answer.payload.map(Blob::into_inner).unwrap_or_default();
        if let Some(kind) = answer.function_error {
            return Err(format!("{kind}: {}", String::from_utf8_lossy(&body)));
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| {
            format!(
                "answered what is not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        })
    }
}
