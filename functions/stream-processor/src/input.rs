//! The two event source mappings' events, reduced to what the processor needs.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    /// The shard (Kinesis) or topic-partition (Kafka): order holds within it.
    pub group: String,
    /// What a partial batch response names for this record.
    pub item_id: ItemIdentifier,
    pub data: Vec<u8>,
}

/// A record as a partial batch response names it, in each mapping's own shape.
///
/// Kinesis: the record's sequence number, a string (AWS Lambda developer guide,
/// "Configuring partial batch response with Kinesis Data Streams and Lambda").
/// Kafka (MSK and self-managed): an object of the topic-partition key of the event's
/// `records` map and the record's offset, `{"partition": "fleet-telemetry-0", "offset": 15}`
/// (AWS Lambda developer guide, "Configuring error handling controls for Kafka event
/// sources", partial batch response; the same shape in Powertools for AWS Lambda's Kafka
/// batch processor and aws-lambda-rust-runtime's `KafkaEventResponse`). Lambda resumes
/// each named partition from the named offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ItemIdentifier {
    Sequence(String),
    Kafka { partition: String, offset: i64 },
}

impl ItemIdentifier {
    /// An identifier Lambda would take as a complete failure of the batch (an empty
    /// sequence number).
    pub fn is_blank(&self) -> bool {
        matches!(self, ItemIdentifier::Sequence(s) if s.is_empty())
    }
}

impl fmt::Display for ItemIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemIdentifier::Sequence(sequence) => f.write_str(sequence),
            ItemIdentifier::Kafka { partition, offset } => write!(f, "{partition}@{offset}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Kinesis,
    Kafka,
}

/// A Kinesis event as Lambda sends it (AWS Lambda developer guide, "Using Lambda with
/// Kinesis Data Streams", example event), with only what the processor reads: each
/// record's `eventID` (its shard), sequence number and base64 data. The rest is not read,
/// on purpose: `aws_lambda_events` parses `approximateArrivalTimestamp` with an arithmetic
/// overflow that panics (a debug build) or wraps (a release one) on a timestamp far out of
/// range, which would take the whole batch down with it.
#[derive(Deserialize)]
struct KinesisEvent {
    #[serde(rename = "Records")]
    records: Vec<KinesisEventRecord>,
}

#[derive(Deserialize)]
struct KinesisEventRecord {
    #[serde(rename = "eventID", default)]
    event_id: Option<String>,
    kinesis: KinesisData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KinesisData {
    sequence_number: String,
    data: String,
}

/// An MSK event as Lambda sends it (AWS Lambda developer guide, "Using Lambda with Amazon
/// MSK", example event), with only what the processor reads: `records` by topic-partition,
/// each record's offset and base64 value. Headers are not read, on purpose:
/// `aws_lambda_events` types them as required signed bytes, so a record without headers,
/// or with a header byte above 127 (any UTF-8 beyond ASCII), would fail the whole batch.
#[derive(Deserialize)]
struct KafkaEvent {
    records: BTreeMap<String, Vec<KafkaRecord>>,
}

#[derive(Deserialize)]
struct KafkaRecord {
    offset: i64,
    #[serde(default)]
    value: Option<String>,
}

/// Reads a Kinesis or an MSK (Kafka) event, told apart by its shape.
pub fn from_event(event: &Value) -> Result<(Source, Vec<InputRecord>), String> {
    if event.get("Records").is_some() {
        let kinesis: KinesisEvent = fleetwire::runtime::json::from_value(event)
            .map_err(|e| format!("Kinesis event: {e}"))?;
        let mut records = Vec::with_capacity(kinesis.records.len());
        for (i, r) in kinesis.records.into_iter().enumerate() {
            let data = base64::engine::general_purpose::STANDARD
                .decode(&r.kinesis.data)
                .map_err(|e| {
                    format!("Kinesis event: Records[{i}].kinesis.data: not base64 ({e})")
                })?;
            records.push(InputRecord {
                group: r
                    .event_id
                    .as_deref()
                    .and_then(|id| id.split(':').next())
                    .unwrap_or("shard")
                    .to_string(),
                item_id: ItemIdentifier::Sequence(r.kinesis.sequence_number),
                data,
            });
        }
        return Ok((Source::Kinesis, records));
    }
    if event.get("records").is_some_and(Value::is_object) {
        let kafka: KafkaEvent =
            fleetwire::runtime::json::from_value(event).map_err(|e| format!("Kafka event: {e}"))?;
        let mut records = Vec::new();
        for (group, batch) in kafka.records {
            for r in batch {
                let data = match r.value.as_deref() {
                    Some(encoded) => base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .unwrap_or_else(|_| encoded.as_bytes().to_vec()),
                    None => Vec::new(),
                };
                records.push(InputRecord {
                    item_id: ItemIdentifier::Kafka {
                        partition: group.clone(),
                        offset: r.offset,
                    },
                    group: group.clone(),
                    data,
                });
            }
        }
        return Ok((Source::Kafka, records));
    }
    Err(
        "neither a Kinesis event (an array `Records`) nor a Kafka event (an object `records`)"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinesis_records_keep_shard_and_sequence_number() {
        let event = json!({"Records": [{
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "car-1", "sequenceNumber": "4959",
                        "data": "eyJhIjoxfQ==", "approximateArrivalTimestamp": 1545084650.987},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": "shardId-000000000006:4959",
            "eventName": "aws:kinesis:record", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s"
        }]});
        let (source, records) = from_event(&event).unwrap();
        assert_eq!(source, Source::Kinesis);
        assert_eq!(
            records,
            vec![InputRecord {
                group: "shardId-000000000006".into(),
                item_id: ItemIdentifier::Sequence("4959".into()),
                data: br#"{"a":1}"#.to_vec()
            }]
        );
    }

    #[test]
    fn kafka_records_keep_partition_and_offset() {
        let event = json!({"eventSource": "aws:kafka", "bootstrapServers": "b-1:9098", "records": {
            "fleet-telemetry-0": [{"topic": "fleet-telemetry", "partition": 0, "offset": 15, "timestamp": 1545084650987_i64,
                "timestampType": "CREATE_TIME", "key": "Y2FyLTE=", "value": "eyJhIjoxfQ==", "headers": []}]
        }});
        let (source, records) = from_event(&event).unwrap();
        assert_eq!(source, Source::Kafka);
        assert_eq!(
            serde_json::to_value(&records[0].item_id).unwrap(),
            json!({"partition": "fleet-telemetry-0", "offset": 15})
        );
        assert_eq!(records[0].data, br#"{"a":1}"#.to_vec());
    }

    #[test]
    fn other_shapes_are_refused() {
        assert!(from_event(&json!({"hello": 1})).is_err());
    }
}

/// The parser against anything a mapping could be made to deliver: AWS's documented
/// Kinesis and MSK events with one part changed into any JSON, and any JSON at all.
#[cfg(test)]
mod fuzz {
    use fleetwire::testing::fuzz::{assert_names_the_field, json_value, near};
    use proptest::prelude::*;

    use super::*;

    fn example(name: &str) -> Value {
        fleetwire::testing::event("aws-examples", name)
    }

    proptest! {
        #[test]
        fn a_changed_kinesis_event_parses_or_names_what_is_wrong((event, keys) in near(example("kinesis.json"))) {
            if let Err(error) = from_event(&event) {
                assert_names_the_field(&error, &keys);
            }
        }

        #[test]
        fn a_changed_msk_event_parses_or_names_what_is_wrong((event, keys) in near(example("msk.json"))) {
            if let Err(error) = from_event(&event) {
                assert_names_the_field(&error, &keys);
            }
        }

        #[test]
        fn any_json_is_parsed_or_refused_without_a_panic(event in json_value()) {
            let _ = from_event(&event);
        }
    }
}
