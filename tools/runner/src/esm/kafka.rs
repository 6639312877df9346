//! The MSK (Kafka) mapping: every partition polled in order, its records in Lambda's
//! Kafka event.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::wiring::{Function, Mapping, Source};

use super::{BatchShape, Esm, Item, ItemNaming, StartAt};

impl Esm {
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
}

/// One record of a Kafka (MSK) event, as Lambda shapes it: key and value in base64,
/// header values as signed bytes.
pub(crate) fn kafka_item(
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
                        naming: ItemNaming::KafkaOffset {
                            partition: format!("{topic}-{partition}"),
                        },
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
