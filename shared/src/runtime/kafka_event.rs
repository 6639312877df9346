//! The Kafka event Lambda sends a function from an Amazon MSK mapping (AWS Lambda developer
//! guide, "Using Lambda with Amazon MSK", example event): what the local runner's mapping
//! delivers and what `fleetctl failed redrive` sends again, written once.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// One record as read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp, in milliseconds since the epoch.
    pub timestamp_millis: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, Vec<u8>>,
}

impl KafkaRecord {
    /// The event's key for the record's partition: `<topic>-<partition>`.
    pub fn partition_key(&self) -> String {
        partition_key(&self.topic, self.partition)
    }
}

/// The event's key for a partition, and the `partition` of a Kafka partial batch response.
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// One record of the event: key and value in base64, each header's value as signed bytes.
pub fn kafka_event_record(record: &KafkaRecord) -> Value {
    json!({
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_millis,
        "timestampType": "CREATE_TIME",
        "key": record.key.as_deref().map(|k| BASE64.encode(k)),
        "value": record.value.as_deref().map(|v| BASE64.encode(v)),
        "headers": record
            .headers
            .iter()
            .map(|(k, v)| json!({k: v.iter().map(|b| *b as i8).collect::<Vec<i8>>()}))
            .collect::<Vec<_>>(),
    })
}

/// The whole event: records grouped under their partition's key, in the order given.
pub fn kafka_event(cluster_arn: &str, bootstrap_servers: &str, records: &[Value]) -> Value {
    let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in records {
        let key = format!(
            "{}-{}",
            record["topic"].as_str().unwrap_or_default(),
            record["partition"]
        );
        grouped.entry(key).or_default().push(record.clone());
    }
    json!({
        "eventSource": "aws:kafka",
        "eventSourceArn": cluster_arn,
        "bootstrapServers": bootstrap_servers,
        "records": grouped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::kafka::KafkaEvent;

    #[test]
    fn an_event_of_two_partitions_reads_back_with_the_lambda_events_types() {
        let record = |partition, offset| KafkaRecord {
            topic: "fleet-telemetry".into(),
            partition,
            offset,
            timestamp_millis: 1_765_000_000_000,
            key: Some(b"car-0001".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: BTreeMap::from([("h".to_string(), vec![0xff, 0x01])]),
        };
        let records: Vec<Value> = [record(0, 7), record(1, 3), record(0, 8)]
            .iter()
            .map(kafka_event_record)
            .collect();
        let event = kafka_event("arn:aws:kafka:us-east-1:1:cluster/c/x", "b:9098", &records);
        let parsed: KafkaEvent = serde_json::from_value(event.clone()).unwrap();
        assert_eq!(parsed.records["fleet-telemetry-0"].len(), 2);
        assert_eq!(parsed.records["fleet-telemetry-1"][0].offset, 3);
        assert_eq!(
            event["records"]["fleet-telemetry-0"][0]["headers"][0]["h"],
            json!([-1, 1])
        );
    }
}
