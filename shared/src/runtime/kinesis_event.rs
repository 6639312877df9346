//! A record of the Kinesis event Lambda sends a function (AWS Lambda developer guide,
//! "Using Lambda with Kinesis Data Streams", example event): what the local runner's
//! mapping delivers and what `fleetctl failed redrive` sends again, written once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// The shard and stream a record comes from, as the event names them.
pub struct KinesisEventSource<'a> {
    pub shard: &'a str,
    pub stream_arn: &'a str,
    pub region: &'a str,
    /// The mapping's execution role; absent when no mapping invokes (a re-drive).
    pub invoke_identity_arn: Option<&'a str>,
}

/// One record of the event: `data` in base64, the arrival time in seconds since the epoch
/// (event parsers read the fraction as milliseconds).
pub fn kinesis_event_record(
    source: &KinesisEventSource,
    sequence: &str,
    partition_key: &str,
    data: &[u8],
    arrival_seconds: f64,
) -> Value {
    let mut record = json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence,
            "data": BASE64.encode(data),
            "approximateArrivalTimestamp": arrival_seconds,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{}:{sequence}", source.shard),
        "eventName": "aws:kinesis:record",
        "awsRegion": source.region,
        "eventSourceARN": source.stream_arn,
    });
    if let Some(role) = source.invoke_identity_arn {
        record["invokeIdentityArn"] = json!(role);
    }
    record
}
