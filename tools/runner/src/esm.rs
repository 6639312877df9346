//! Event source mappings, as Lambda runs them: each Kinesis shard (or Kafka partition)
//! polled in order, records batched up to `BatchSize` or `MaximumBatchingWindowInSeconds`,
//! and the function invoked with Lambda's event shape.
//!
//! Kinesis: with `ReportBatchItemFailures`, a response naming failed records retries the
//! batch from the first of them (what succeeded before it is not sent again); a function
//! error retries the whole batch, split in halves first with `BisectBatchOnFunctionError`.
//! After `MaximumRetryAttempts` (or when its records are older than
//! `MaximumRecordAgeInSeconds`) a batch goes to the OnFailure destination as Lambda's
//! `KinesisBatchInfo` record, and the shard moves on. Kafka (MSK): the whole batch is
//! retried, as MSK mappings do; with a finite `MaximumRetryAttempts`, then the destination.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::lambda::{Invoked, Invoker};
use crate::queues::Queues;
use crate::wiring::{Function, Mapping, Source};

/// Where a mapping starts reading when the runner starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Only what arrives from now on (the local stream is shared by tests and runs).
    Latest,
    /// Everything the stream still holds.
    TrimHorizon,
}

/// One shard's or partition's progress, for `/runner/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollerStatus {
    pub mapping: String,
    pub source: String,
    pub records_delivered: u64,
    pub batches: u64,
    pub retries: u64,
    pub batches_to_destination: u64,
    /// Caught up: the last read returned nothing new and no batch is pending.
    pub idle: bool,
    pub position: Option<String>,
}

/// Every poller's status.
#[derive(Clone, Default)]
pub struct EsmStatus(Arc<Mutex<BTreeMap<String, PollerStatus>>>);

impl EsmStatus {
    fn update(&self, key: &str, change: impl FnOnce(&mut PollerStatus)) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        change(all.entry(key.to_owned()).or_default());
    }

    pub fn snapshot(&self) -> Value {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::to_value(all.values().collect::<Vec<_>>()).unwrap_or(Value::Null)
    }
}

/// The template's event source mappings and whether they run: like a mapping's
/// `Enabled`, a disabled one reads nothing, and one enabled for the first time starts at
/// its starting position then.
pub struct MappingControl {
    esm: Esm,
    mappings: Vec<(Mapping, Function)>,
    kinesis: aws_sdk_kinesis::Client,
    kafka_bootstrap: Option<String>,
    start: StartAt,
    started: tokio::sync::Mutex<bool>,
}

impl MappingControl {
    pub fn new(
        esm: Esm,
        mappings: Vec<(Mapping, Function)>,
        kinesis: aws_sdk_kinesis::Client,
        kafka_bootstrap: Option<String>,
        start: StartAt,
    ) -> Self {
        Self {
            esm,
            mappings,
            kinesis,
            kafka_bootstrap,
            start,
            started: tokio::sync::Mutex::new(false),
        }
    }

    /// Starts every mapping's pollers; a second call changes nothing.
    pub async fn enable(&self) -> Result<(), String> {
        let mut started = self.started.lock().await;
        if *started {
            return Ok(());
        }
        for (mapping, function) in &self.mappings {
            match &mapping.source {
                Source::Kinesis { .. } => {
                    self.esm
                        .start_kinesis(
                            self.kinesis.clone(),
                            mapping.clone(),
                            function.clone(),
                            self.start,
                        )
                        .await?;
                }
                Source::Kafka { .. } => {
                    let bootstrap = self.kafka_bootstrap.as_deref().ok_or(
                        "the MSK mapping needs the Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or --kafka-bootstrap",
                    )?;
                    self.esm
                        .start_kafka(bootstrap, mapping.clone(), function.clone(), self.start)
                        .await?;
                }
            }
        }
        *started = true;
        Ok(())
    }

    pub async fn enabled(&self) -> bool {
        *self.started.lock().await
    }

    pub fn status(&self) -> Value {
        self.esm.status.snapshot()
    }
}

/// How a source turns records into an event and a failed batch into its destination
/// record, and whether it honours per-record failures.
pub struct BatchShape<'a> {
    event_of: &'a (dyn Fn(&[Item]) -> Value + Send + Sync),
    failure_info: &'a (dyn Fn(&[Item], u32) -> Value + Send + Sync),
    per_record_failures: bool,
}

/// A record of either source, as the batch logic needs it.
#[derive(Debug, Clone)]
struct Item {
    /// Kinesis sequence number, or Kafka offset.
    position: String,
    event: Value,
    arrived: OffsetDateTime,
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

impl Esm {
    /// Starts polling every shard of a Kinesis mapping.
    pub async fn start_kinesis(
        &self,
        kinesis: aws_sdk_kinesis::Client,
        mapping: Mapping,
        function: Function,
        start: StartAt,
    ) -> Result<(), String> {
        let Source::Kinesis { stream, arn } = mapping.source.clone() else {
            return Err("not a Kinesis mapping".into());
        };
        let mut shards = Vec::new();
        let mut next = None;
        loop {
            let mut request = kinesis.list_shards();
            request = match &next {
                Some(token) => request.next_token(token),
                None => request.stream_name(&stream),
            };
            let page = request.send().await.map_err(|e| {
                format!(
                    "ListShards {stream}: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(e)
                )
            })?;
            shards.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        for shard in shards {
            let poller = KinesisPoller {
                esm: self.clone(),
                kinesis: kinesis.clone(),
                mapping: mapping.clone(),
                function: function.clone(),
                stream: stream.clone(),
                stream_arn: arn.clone(),
                shard,
            };
            tokio::spawn(async move { poller.run(start).await });
        }
        Ok(())
    }

    /// Starts polling every partition of the Kafka mapping's topics.
    pub async fn start_kafka(
        &self,
        bootstrap: &str,
        mapping: Mapping,
        function: Function,
        start: StartAt,
    ) -> Result<(), String> {
        let Source::Kafka { topics, arn } = mapping.source.clone() else {
            return Err("not a Kafka mapping".into());
        };
        let client = rskafka::client::ClientBuilder::new(vec![bootstrap.to_owned()])
            .build()
            .await
            .map_err(|e| format!("Kafka {bootstrap}: {e}"))?;
        let listed = client
            .list_topics()
            .await
            .map_err(|e| format!("Kafka {bootstrap}: {e}"))?;
        for topic in topics {
            let Some(found) = listed.iter().find(|t| t.name == topic) else {
                return Err(format!("Kafka topic {topic} does not exist on {bootstrap}"));
            };
            for partition in &found.partitions {
                let partition_client = client
                    .partition_client(
                        topic.clone(),
                        *partition,
                        rskafka::client::partition::UnknownTopicHandling::Retry,
                    )
                    .await
                    .map_err(|e| format!("Kafka {topic}-{partition}: {e}"))?;
                let poller = KafkaPoller {
                    esm: self.clone(),
                    client: partition_client,
                    mapping: mapping.clone(),
                    function: function.clone(),
                    cluster_arn: arn.clone(),
                    bootstrap: bootstrap.to_owned(),
                };
                tokio::spawn(async move { poller.run(start).await });
            }
        }
        Ok(())
    }

    /// Invokes `function` for `items` until they are handled, following the mapping's
    /// failure settings; returns when the batch is done (delivered or sent on).
    async fn deliver(
        &self,
        key: &str,
        mapping: &Mapping,
        function: &Function,
        items: Vec<Item>,
        shape: &BatchShape<'_>,
    ) {
        // Batches still to deliver, each with its failed attempts so far.
        let mut queue: Vec<(Vec<Item>, u32)> = vec![(items, 0)];
        while let Some((mut batch, mut failures)) = queue.pop() {
            loop {
                if batch.is_empty() {
                    break;
                }
                let too_old = mapping.maximum_record_age_seconds >= 0
                    && batch.first().is_some_and(|item| {
                        (OffsetDateTime::now_utc() - item.arrived).whole_seconds()
                            > mapping.maximum_record_age_seconds
                    });
                let retries_left = mapping.maximum_retry_attempts < 0
                    || i64::from(failures) <= mapping.maximum_retry_attempts;
                if too_old || !retries_left {
                    self.to_destination(
                        key,
                        mapping,
                        function,
                        &batch,
                        failures,
                        shape.failure_info,
                    )
                    .await;
                    break;
                }
                self.status.update(key, |s| {
                    s.batches += 1;
                    if failures > 0 {
                        s.retries += 1;
                    }
                });
                match self
                    .invoker
                    .invoke(&function.binary, &(shape.event_of)(&batch))
                    .await
                {
                    Invoked::Returned(response) => {
                        let failed =
                            if shape.per_record_failures && mapping.report_batch_item_failures {
                                first_failed(&response, &batch)
                            } else {
                                None
                            };
                        match failed {
                            None => {
                                self.status.update(key, |s| {
                                    s.records_delivered += batch.len() as u64;
                                    s.position = batch.last().map(|i| i.position.clone());
                                });
                                break;
                            }
                            Some(index) => {
                                self.status
                                    .update(key, |s| s.records_delivered += index as u64);
                                tracing::warn!(key, failed_from = %batch[index].position, "batch item failures: retrying from the first failed record");
                                batch.drain(..index);
                                failures += 1;
                            }
                        }
                    }
                    Invoked::FunctionError { response } => {
                        tracing::warn!(key, error = %response, size = batch.len(), "function error on a batch");
                        if mapping.bisect_on_error && batch.len() > 1 {
                            // Splitting costs no retry: each half gets the failures so
                            // far, so a poison record ends up alone and the records
                            // beside it are delivered. The first half goes first.
                            let second = batch.split_off(batch.len() / 2);
                            queue.push((second, failures));
                            queue.push((batch, failures));
                            break;
                        }
                        failures += 1;
                    }
                    Invoked::Unreachable(why) => {
                        tracing::warn!(key, error = %why, "cannot invoke the function; retrying");
                        failures += 1;
                    }
                }
                tokio::time::sleep(self.retry_wait).await;
            }
        }
    }

    async fn to_destination(
        &self,
        key: &str,
        mapping: &Mapping,
        function: &Function,
        batch: &[Item],
        failures: u32,
        failure_info: &(dyn Fn(&[Item], u32) -> Value + Send + Sync),
    ) {
        self.status.update(key, |s| {
            s.batches_to_destination += 1;
            s.position = batch.last().map(|i| i.position.clone());
        });
        let Some(queue) = &mapping.on_failure_queue else {
            tracing::error!(
                key,
                records = batch.len(),
                "retries exhausted and no OnFailure destination: the batch is skipped, as Lambda would"
            );
            return;
        };
        let mut record = json!({
            "requestContext": {
                "requestId": crate::random_hex(16),
                "functionArn": format!("{}:$LATEST", function.arn),
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": failures,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": now_rfc3339(),
        });
        if let Value::Object(info) = failure_info(batch, failures)
            && let Value::Object(map) = &mut record
        {
            map.extend(info);
        }
        tracing::error!(
            key,
            records = batch.len(),
            queue,
            "batch sent to the OnFailure destination"
        );
        if let Err(e) = self.queues.send(queue, &record.to_string()).await {
            tracing::error!(key, error = %e, "cannot send to the OnFailure destination");
        }
    }
}

/// The index of the first record a partial batch response names, if any. An identifier
/// that is missing or names no record of the batch fails the whole batch, as Lambda
/// treats it.
fn first_failed(response: &Value, batch: &[Item]) -> Option<usize> {
    let failures = response.get("batchItemFailures")?.as_array()?;
    let mut first: Option<usize> = None;
    for failure in failures {
        let index = failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .and_then(|id| batch.iter().position(|item| item.position == id));
        match index {
            Some(index) => first = Some(first.map_or(index, |f| f.min(index))),
            None => return Some(0),
        }
    }
    first
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Where Kinesis records come from, as Lambda's event names it.
struct KinesisSource<'a> {
    shard: &'a str,
    stream_arn: &'a str,
    region: &'a str,
    function_name: &'a str,
}

impl KinesisSource<'_> {
    /// One record of a Kinesis event, as Lambda shapes it.
    fn item(
        &self,
        sequence: &str,
        partition_key: &str,
        data: &[u8],
        arrived: OffsetDateTime,
    ) -> Item {
        // Seconds with milliseconds, as Lambda sends it (event parsers read the fraction
        // as milliseconds).
        let arrival_seconds = (arrived.unix_timestamp_nanos() / 1_000_000) as f64 / 1000.0;
        Item {
            position: sequence.to_owned(),
            event: json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": partition_key,
                    "sequenceNumber": sequence,
                    "data": BASE64.encode(data),
                    "approximateArrivalTimestamp": arrival_seconds,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{}:{sequence}", self.shard),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": format!("arn:aws:iam::{}:role/{}", fleetwire_stack::LOCAL_ACCOUNT, self.function_name),
                "awsRegion": self.region,
                "eventSourceARN": self.stream_arn,
            }),
            arrived,
        }
    }
}

/// One record of a Kafka (MSK) event, as Lambda shapes it: key and value in base64,
/// header values as signed bytes.
fn kafka_item(
    topic: &str,
    partition: i32,
    offset: i64,
    millis: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &BTreeMap<String, Vec<u8>>,
) -> Item {
    Item {
        position: offset.to_string(),
        event: json!({
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "timestamp": millis,
            "timestampType": "CREATE_TIME",
            "key": key.map(|k| BASE64.encode(k)),
            "value": value.map(|v| BASE64.encode(v)),
            "headers": headers
                .iter()
                .map(|(k, v)| json!({k: v.iter().map(|b| *b as i8).collect::<Vec<i8>>()}))
                .collect::<Vec<_>>(),
        }),
        arrived: OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .unwrap_or_else(|_| OffsetDateTime::now_utc()),
    }
}

struct KinesisPoller {
    esm: Esm,
    kinesis: aws_sdk_kinesis::Client,
    mapping: Mapping,
    function: Function,
    stream: String,
    stream_arn: String,
    shard: String,
}

impl KinesisPoller {
    async fn run(self, start: StartAt) {
        let key = format!("{}/{}", self.mapping.logical_id, self.shard);
        self.esm.status.update(&key, |s| {
            s.mapping = self.mapping.logical_id.clone();
            s.source = format!("{}/{}", self.stream, self.shard);
        });
        let kind = match start {
            StartAt::Latest => aws_sdk_kinesis::types::ShardIteratorType::Latest,
            StartAt::TrimHorizon => aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon,
        };
        let mut iterator = loop {
            match self
                .kinesis
                .get_shard_iterator()
                .stream_name(&self.stream)
                .shard_id(&self.shard)
                .shard_iterator_type(kind.clone())
                .send()
                .await
            {
                Ok(out) => break out.shard_iterator().map(str::to_owned),
                Err(e) => {
                    tracing::warn!(key, error = %aws_sdk_kinesis::error::DisplayErrorContext(e), "GetShardIterator failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let window = Duration::from_secs(self.mapping.batching_window_seconds);
        let mut pending: Vec<Item> = Vec::new();
        let mut window_started: Option<tokio::time::Instant> = None;
        while let Some(current) = iterator.clone() {
            let limit = (self.mapping.batch_size - pending.len()).clamp(1, 10_000) as i32;
            let out = match self
                .kinesis
                .get_records()
                .shard_iterator(&current)
                .limit(limit)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    tracing::warn!(key, error = %aws_sdk_kinesis::error::DisplayErrorContext(e), "GetRecords failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            iterator = out.next_shard_iterator().map(str::to_owned);
            for record in out.records() {
                pending.push(self.item(record));
            }
            if !pending.is_empty() && window_started.is_none() {
                window_started = Some(tokio::time::Instant::now());
            }
            let full = pending.len() >= self.mapping.batch_size;
            let window_over = window_started.is_some_and(|t| t.elapsed() >= window);
            if !pending.is_empty() && (full || window_over) {
                self.esm.status.update(&key, |s| s.idle = false);
                let batch = std::mem::take(&mut pending);
                window_started = None;
                let event_of = |items: &[Item]| self.event(items);
                let info = |items: &[Item], _| self.batch_info(items);
                self.esm
                    .deliver(
                        &key,
                        &self.mapping,
                        &self.function,
                        batch,
                        &BatchShape {
                            event_of: &event_of,
                            failure_info: &info,
                            per_record_failures: true,
                        },
                    )
                    .await;
                continue;
            }
            if out.records().is_empty() {
                self.esm
                    .status
                    .update(&key, |s| s.idle = pending.is_empty());
                // Lambda polls a shard about once a second (Kinesis allows five reads).
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        tracing::info!(key, "shard closed");
    }

    fn item(&self, record: &aws_sdk_kinesis::types::Record) -> Item {
        let arrived = record
            .approximate_arrival_timestamp()
            .and_then(|t| OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        let source = KinesisSource {
            shard: &self.shard,
            stream_arn: &self.stream_arn,
            region: &self.esm.region,
            function_name: &self.function.name,
        };
        source.item(
            record.sequence_number(),
            record.partition_key().unwrap_or_default(),
            record.data().as_ref(),
            arrived,
        )
    }

    fn event(&self, items: &[Item]) -> Value {
        json!({"Records": items.iter().map(|i| i.event.clone()).collect::<Vec<_>>()})
    }

    fn batch_info(&self, items: &[Item]) -> Value {
        let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        json!({"KinesisBatchInfo": {
            "shardId": self.shard,
            "startSequenceNumber": items.first().map(|i| i.position.clone()),
            "endSequenceNumber": items.last().map(|i| i.position.clone()),
            "approximateArrivalOfFirstRecord": items.first().map(|i| time(i.arrived)),
            "approximateArrivalOfLastRecord": items.last().map(|i| time(i.arrived)),
            "batchSize": items.len(),
            "streamArn": self.stream_arn,
        }})
    }
}

struct KafkaPoller {
    esm: Esm,
    client: rskafka::client::partition::PartitionClient,
    mapping: Mapping,
    function: Function,
    cluster_arn: String,
    bootstrap: String,
}

impl KafkaPoller {
    async fn run(self, start: StartAt) {
        let topic = self.client.topic().to_owned();
        let partition = self.client.partition();
        let key = format!("{}/{topic}-{partition}", self.mapping.logical_id);
        self.esm.status.update(&key, |s| {
            s.mapping = self.mapping.logical_id.clone();
            s.source = format!("{topic}-{partition}");
        });
        // Fetch's high watermark is the end of the partition (ListOffsets(Latest) is off
        // by a batch on some brokers).
        let mut offset = match start {
            StartAt::TrimHorizon => 0,
            StartAt::Latest => loop {
                match self.client.fetch_records(0, 1..1, 0).await {
                    Ok((_, high)) => break high,
                    Err(e) => {
                        tracing::warn!(key, error = %e, "cannot read the partition's end; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            },
        };
        loop {
            let max_wait = (self.mapping.batching_window_seconds.max(1) * 1000).min(10_000) as i32;
            let (records, high) = match self
                .client
                .fetch_records(offset, 1..4 * 1024 * 1024, max_wait)
                .await
            {
                Ok(fetched) => fetched,
                Err(e) => {
                    tracing::warn!(key, error = %e, "Kafka fetch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if records.is_empty() {
                self.esm.status.update(&key, |s| s.idle = offset >= high);
                continue;
            }
            self.esm.status.update(&key, |s| s.idle = false);
            let items: Vec<Item> = records
                .into_iter()
                .take(self.mapping.batch_size)
                .map(|r| self.item(&topic, partition, &r))
                .collect();
            offset = items
                .last()
                .and_then(|i| i.position.parse::<i64>().ok())
                .unwrap_or(offset)
                + 1;
            let event_of = |items: &[Item]| self.event(&topic, partition, items);
            let info = |items: &[Item], _| {
                json!({"KafkaBatchInfo": {
                    "batchSize": items.len(),
                    "topic": topic,
                    "partition": partition,
                    "firstOffset": items.first().map(|i| i.position.clone()),
                    "lastOffset": items.last().map(|i| i.position.clone()),
                    "eventSourceArn": self.cluster_arn,
                }})
            };
            self.esm
                .deliver(
                    &key,
                    &self.mapping,
                    &self.function,
                    items,
                    &BatchShape {
                        event_of: &event_of,
                        failure_info: &info,
                        per_record_failures: false,
                    },
                )
                .await;
        }
    }

    fn item(&self, topic: &str, partition: i32, record: &rskafka::record::RecordAndOffset) -> Item {
        kafka_item(
            topic,
            partition,
            record.offset,
            record.record.timestamp.timestamp_millis(),
            record.record.key.as_deref(),
            record.record.value.as_deref(),
            &record.record.headers,
        )
    }

    fn event(&self, topic: &str, partition: i32, items: &[Item]) -> Value {
        json!({
            "eventSource": "aws:kafka",
            "eventSourceArn": self.cluster_arn,
            "bootstrapServers": self.bootstrap,
            "records": {format!("{topic}-{partition}"): items.iter().map(|i| i.event.clone()).collect::<Vec<_>>()},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn items(positions: &[&str]) -> Vec<Item> {
        positions
            .iter()
            .map(|p| Item {
                position: p.to_string(),
                event: Value::Null,
                arrived: OffsetDateTime::now_utc(),
            })
            .collect()
    }

    #[test]
    fn kinesis_events_parse_as_lambdas_own_event_type() {
        let source = KinesisSource {
            shard: "shardId-000000000000",
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            region: "us-east-1",
            function_name: "f",
        };
        let arrived = OffsetDateTime::from_unix_timestamp_nanos(1_796_114_069_216_123_456).unwrap();
        let item = source.item("4968", "car-1", b"{}", arrived);
        let event: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_value(json!({"Records": [item.event]})).unwrap();
        let record = &event.records[0];
        assert_eq!(record.kinesis.partition_key, "car-1");
        assert_eq!(record.kinesis.data.0, b"{}");
        assert_eq!(
            record
                .kinesis
                .approximate_arrival_timestamp
                .0
                .timestamp_millis(),
            1_796_114_069_216
        );
    }

    #[test]
    fn kafka_events_parse_as_lambdas_own_event_type() {
        let headers = BTreeMap::from([("trace".to_string(), vec![1u8, 200])]);
        let item = kafka_item(
            "t",
            2,
            15,
            1_796_114_069_216,
            Some(b"car-1"),
            Some(b"{}"),
            &headers,
        );
        let event: aws_lambda_events::event::kafka::KafkaEvent = serde_json::from_value(json!({
            "eventSource": "aws:kafka", "eventSourceArn": "arn", "bootstrapServers": "b:9092",
            "records": {"t-2": [item.event]}
        }))
        .unwrap();
        let record = &event.records["t-2"][0];
        assert_eq!(record.offset, 15);
        assert_eq!(record.value.as_deref(), Some("e30="));
        assert_eq!(item.position, "15");
    }

    /// A stand-in for `cargo lambda watch` in these unit tests: records every batch of
    /// sequence numbers it is invoked with and answers with `answer(batch)`.
    async fn fake_lambda(
        answer: impl Fn(&[String]) -> (u16, Value) + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
        use http_body_util::{BodyExt, Full};
        let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let answer = Arc::new(answer);
        let seen = calls.clone();
        tokio::spawn(crate::http_endpoints::serve(listener, move |request, _| {
            let answer = answer.clone();
            let seen = seen.clone();
            async move {
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let event: Value = serde_json::from_slice(&body).unwrap();
                let batch: Vec<String> = event["Records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["kinesis"]["sequenceNumber"].as_str().unwrap().to_owned())
                    .collect();
                seen.lock().unwrap().push(batch.clone());
                let (status, value) = answer(&batch);
                http::Response::builder()
                    .status(status)
                    .body(Full::new(bytes::Bytes::from(value.to_string())))
                    .unwrap()
            }
        }));
        (format!("http://{address}"), calls)
    }

    /// An SQS client that knows one queue and keeps what is sent to it.
    fn recording_queue() -> (Queues, Arc<Mutex<Vec<String>>>) {
        use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput;
        use aws_sdk_sqs::operation::send_message::SendMessageOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let sent: Arc<Mutex<Vec<String>>> = Arc::default();
        let url = mock!(aws_sdk_sqs::Client::get_queue_url).then_output(|| {
            GetQueueUrlOutput::builder()
                .queue_url("http://sqs/failed")
                .build()
        });
        let keep = sent.clone();
        let send = mock!(aws_sdk_sqs::Client::send_message)
            .match_requests(move |input| {
                keep.lock()
                    .unwrap()
                    .push(input.message_body().unwrap_or_default().to_owned());
                true
            })
            .then_output(|| SendMessageOutput::builder().build());
        (
            Queues::new(mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &send])),
            sent,
        )
    }

    fn mapping(bisect: bool, retries: i64) -> Mapping {
        Mapping {
            logical_id: "M".into(),
            function: "F".into(),
            source: Source::Kinesis {
                stream: "s".into(),
                arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s".into(),
            },
            batch_size: 100,
            batching_window_seconds: 0,
            report_batch_item_failures: true,
            bisect_on_error: bisect,
            maximum_retry_attempts: retries,
            maximum_record_age_seconds: -1,
            on_failure_queue: Some("failed".into()),
        }
    }

    async fn deliver(
        lambda: &str,
        queues: Queues,
        mapping: &Mapping,
        positions: &[&str],
    ) -> EsmStatus {
        let esm = Esm {
            invoker: Invoker::new(lambda, Duration::from_secs(5), 1),
            queues,
            status: EsmStatus::default(),
            region: "us-east-1".into(),
            retry_wait: Duration::from_millis(1),
        };
        let function = Function {
            logical_id: "F".into(),
            binary: "f".into(),
            name: "f".into(),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            async_retries: 2,
            on_failure_queue: None,
        };
        let source = KinesisSource {
            shard: "shardId-000000000000",
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            region: "us-east-1",
            function_name: "f",
        };
        let items: Vec<Item> = positions
            .iter()
            .map(|p| source.item(p, "car-1", b"{}", OffsetDateTime::now_utc()))
            .collect();
        let event_of = |items: &[Item]| json!({"Records": items.iter().map(|i| i.event.clone()).collect::<Vec<_>>()});
        let info = |items: &[Item], _| json!({"KinesisBatchInfo": {"batchSize": items.len(), "startSequenceNumber": items[0].position}});
        esm.deliver(
            "M/shard",
            mapping,
            &function,
            items,
            &BatchShape {
                event_of: &event_of,
                failure_info: &info,
                per_record_failures: true,
            },
        )
        .await;
        esm.status
    }

    fn seqs(batches: &[Vec<String>]) -> Vec<Vec<&str>> {
        batches
            .iter()
            .map(|b| b.iter().map(String::as_str).collect())
            .collect()
    }

    #[tokio::test]
    async fn a_partial_batch_response_retries_from_the_first_failed_record_only() {
        let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (lambda, calls) = fake_lambda(move |_| {
            if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                (200, json!({"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": "12"}]}))
            } else {
                (200, json!({"batchItemFailures": []}))
            }
        })
        .await;
        let (queues, sent) = recording_queue();
        let status = deliver(
            &lambda,
            queues,
            &mapping(true, 3),
            &["10", "11", "12", "13"],
        )
        .await;
        assert_eq!(
            seqs(&calls.lock().unwrap()),
            [vec!["10", "11", "12", "13"], vec!["12", "13"]]
        );
        assert!(sent.lock().unwrap().is_empty());
        let snapshot = status.snapshot();
        assert_eq!(snapshot[0]["records_delivered"], 4);
        assert_eq!(snapshot[0]["retries"], 1);
    }

    #[tokio::test]
    async fn a_function_error_bisects_until_the_poison_record_is_alone_then_sends_it_on() {
        let (lambda, calls) = fake_lambda(|batch| {
            if batch.iter().any(|s| s == "12") {
                (
                    200,
                    json!({"errorType": "Poison", "errorMessage": "cannot decode 12"}),
                )
            } else {
                (200, json!({"batchItemFailures": []}))
            }
        })
        .await;
        let (queues, sent) = recording_queue();
        let status = deliver(
            &lambda,
            queues,
            &mapping(true, 1),
            &["10", "11", "12", "13"],
        )
        .await;
        assert_eq!(
            seqs(&calls.lock().unwrap()),
            [
                vec!["10", "11", "12", "13"],
                vec!["10", "11"],
                vec!["12", "13"],
                vec!["12"],
                vec!["12"],
                vec!["13"],
            ],
            "halves first in order, the poison record retried once, its neighbour delivered"
        );
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 1, "{sent:?}");
        let record: Value = serde_json::from_str(&sent[0]).unwrap();
        assert_eq!(
            record["requestContext"]["condition"],
            "RetryAttemptsExhausted"
        );
        assert_eq!(record["KinesisBatchInfo"]["startSequenceNumber"], "12");
        assert_eq!(status.snapshot()[0]["records_delivered"], 3);
        assert_eq!(status.snapshot()[0]["batches_to_destination"], 1);
    }

    #[tokio::test]
    async fn without_bisect_the_whole_batch_goes_on_after_its_retries() {
        let (lambda, calls) =
            fake_lambda(|_| (500, json!({"errorType": "Down", "errorMessage": "no"}))).await;
        let (queues, sent) = recording_queue();
        deliver(&lambda, queues, &mapping(false, 2), &["10", "11"]).await;
        assert_eq!(
            calls.lock().unwrap().len(),
            3,
            "the first attempt and two retries"
        );
        assert_eq!(sent.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_earliest_failed_record_is_where_a_retry_starts() {
        let batch = items(&["10", "11", "12", "13"]);
        let response =
            json!({"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": "11"}]});
        assert_eq!(first_failed(&response, &batch), Some(1));
        assert_eq!(
            first_failed(&json!({"batchItemFailures": []}), &batch),
            None
        );
        assert_eq!(first_failed(&json!({"result": "ok"}), &batch), None);
        assert_eq!(
            first_failed(
                &json!({"batchItemFailures": [{"itemIdentifier": "99"}]}),
                &batch
            ),
            Some(0),
            "an identifier outside the batch fails the whole batch"
        );
    }
}
