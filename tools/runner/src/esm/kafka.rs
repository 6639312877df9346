//! The MSK (Kafka) mapping: every partition polled in order, its records in Lambda's
//! Kafka event.

use std::time::Duration;

use fleetwire::runtime::kafka_event::{
    KafkaRecord, kafka_event, kafka_event_record, partition_key,
};
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
        for topic in topics {
            for partition_client in partition_clients(bootstrap, &topic).await? {
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

/// A client of every partition of `topic` on the local broker: what the mappings and the
/// archive each read a topic with.
pub(crate) async fn partition_clients(
    bootstrap: &str,
    topic: &str,
) -> Result<Vec<rskafka::client::partition::PartitionClient>, String> {
    let client = rskafka::client::ClientBuilder::new(vec![bootstrap.to_owned()])
        .build()
        .await
        .map_err(|e| format!("Kafka {bootstrap}: {e}"))?;
    let listed = client
        .list_topics()
        .await
        .map_err(|e| format!("Kafka {bootstrap}: {e}"))?;
    let Some(found) = listed.iter().find(|t| t.name == topic) else {
        return Err(format!("Kafka topic {topic} does not exist on {bootstrap}"));
    };
    let mut clients = Vec::with_capacity(found.partitions.len());
    for partition in &found.partitions {
        clients.push(
            client
                .partition_client(
                    topic.to_owned(),
                    *partition,
                    rskafka::client::partition::UnknownTopicHandling::Retry,
                )
                .await
                .map_err(|e| format!("Kafka {topic}-{partition}: {e}"))?,
        );
    }
    Ok(clients)
}

/// One record of a Kafka (MSK) event, as Lambda shapes it.
pub(crate) fn kafka_item(record: &KafkaRecord) -> Item {
    Item {
        position: record.offset.to_string(),
        event: kafka_event_record(record),
        arrived: OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(record.timestamp_millis) * 1_000_000,
        )
        .unwrap_or_else(|_| OffsetDateTime::now_utc()),
    }
}

/// What Lambda writes to an SQS or SNS on-failure destination about a Kafka batch it gave
/// up on (AWS Lambda developer guide, "Capturing discarded batches for Amazon MSK and
/// self-managed Apache Kafka event sources", SNS and SQS example invocation record): the
/// batch's partitions under `recordsInfo`, each with its first and last offset (as
/// strings) and timestamp, not the records.
pub(crate) fn kafka_failure_info(
    cluster_arn: &str,
    bootstrap: &str,
    partition: &str,
    items: &[Item],
    payload_size: usize,
) -> Value {
    let stamp = |item: Option<&Item>| item.map(|i| rfc3339_millis(i.arrived));
    json!({"KafkaBatchInfo": {
        "batchSize": items.len(),
        "eventSourceArn": cluster_arn,
        "bootstrapServers": bootstrap,
        "payloadSize": payload_size,
        "recordsInfo": {partition: {
            "firstRecordOffset": items.first().map(|i| i.position.clone()),
            "lastRecordOffset": items.last().map(|i| i.position.clone()),
            "firstRecordTimestamp": stamp(items.first()),
            "lastRecordTimestamp": stamp(items.last()),
        }},
    }})
}

/// `2019-11-14T00:38:04.835Z`, as the invocation record writes its timestamps.
fn rfc3339_millis(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
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
            let event_of = |items: &[Item]| self.event(items);
            let partition_name = partition_key(&topic, partition);
            let info = |items: &[Item], _| {
                let payload_size = event_of(items).to_string().len();
                kafka_failure_info(
                    &self.cluster_arn,
                    &self.bootstrap,
                    &partition_name,
                    items,
                    payload_size,
                )
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
                            partition: partition_name.clone(),
                        },
                    },
                )
                .await;
        }
    }

    fn item(&self, topic: &str, partition: i32, record: &rskafka::record::RecordAndOffset) -> Item {
        kafka_item(&KafkaRecord {
            topic: topic.to_owned(),
            partition,
            offset: record.offset,
            timestamp_millis: record.record.timestamp.timestamp_millis(),
            key: record.record.key.clone(),
            value: record.record.value.clone(),
            headers: record.record.headers.clone(),
        })
    }

    fn event(&self, items: &[Item]) -> Value {
        let records: Vec<Value> = items.iter().map(|i| i.event.clone()).collect();
        kafka_event(&self.cluster_arn, &self.bootstrap, &records)
    }
}
