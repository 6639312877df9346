//! The Kinesis mapping: every shard polled in order, its records in Lambda's Kinesis event.

use std::time::Duration;

use fleetwire::runtime::kinesis_event::{KinesisEventSource, kinesis_event_record};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::wiring::{Function, Mapping, Source};

use super::{BatchShape, Esm, Item, ItemNaming, StartAt};

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
}

/// Where Kinesis records come from, as Lambda's event names it.
pub(crate) struct KinesisSource<'a> {
    pub(crate) shard: &'a str,
    pub(crate) stream_arn: &'a str,
    pub(crate) region: &'a str,
    pub(crate) function_name: &'a str,
}

impl KinesisSource<'_> {
    /// One record of a Kinesis event, as Lambda shapes it.
    pub(crate) fn item(
        &self,
        sequence: &str,
        partition_key: &str,
        data: &[u8],
        arrived: OffsetDateTime,
    ) -> Item {
        // Seconds with milliseconds, as Lambda sends it.
        let arrival_seconds = (arrived.unix_timestamp_nanos() / 1_000_000) as f64 / 1000.0;
        let role = format!(
            "arn:aws:iam::{}:role/{}",
            stack::LOCAL_ACCOUNT,
            self.function_name
        );
        let source = KinesisEventSource {
            shard: self.shard,
            stream_arn: self.stream_arn,
            region: self.region,
            invoke_identity_arn: Some(&role),
        };
        Item {
            position: sequence.to_owned(),
            event: kinesis_event_record(&source, sequence, partition_key, data, arrival_seconds),
            arrived,
        }
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
                            naming: ItemNaming::Sequence,
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

    pub(crate) fn item(&self, record: &aws_sdk_kinesis::types::Record) -> Item {
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
