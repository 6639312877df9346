//! The floor each function is measured against: lambda_runtime, the logging subscriber and
//! one SDK client built at init with the same SDK settings as ours, and per event one call
//! and nothing else. Whatever a function costs beyond this is its own code.
//!
//! - `FLOOR_TABLE` set: one DynamoDB `GetItem` per event (key `FLOOR_KEY_NAME` =
//!   `FLOOR_KEY`), the floor of every function's cold start and warm call.
//! - `FLOOR_STREAM` set: the event's `records` (or, without them, the event itself less
//!   the rule's `thing_name` and `received_at`) put to that Kinesis stream as they are,
//!   one `PutRecords` per 500, partitioned by the event's `thing_name`: the floor of
//!   telemetry-ingest's warm call and end-to-end throughput (the same records, no
//!   validation or enrichment).
//! - Neither: the event echoed back.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use fleetwire::aws::{SdkSettings, load_sdk_config};
use fleetwire::config::Env;
use fleetwire::telemetry::rule;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// Kinesis takes at most this many records in one PutRecords.
const MAX_PUT_RECORDS: usize = 500;

enum Floor {
    Echo,
    Lookup {
        client: aws_sdk_dynamodb::Client,
        table: String,
        key_name: String,
        key: String,
    },
    Stream {
        client: aws_sdk_kinesis::Client,
        stream: String,
    },
}

impl Floor {
    async fn from_env(env: &Env) -> Result<Floor, Error> {
        let settings =
            fleetwire::init::or_report(SdkSettings::from_env(env, SdkSettings::default())).await?;
        let sdk = load_sdk_config(&settings).await;
        if let Some(stream) = env.optional("FLOOR_STREAM") {
            return Ok(Floor::Stream {
                client: aws_sdk_kinesis::Client::new(&sdk),
                stream,
            });
        }
        Ok(match env.optional("FLOOR_TABLE") {
            Some(table) => Floor::Lookup {
                client: aws_sdk_dynamodb::Client::new(&sdk),
                table,
                key_name: env
                    .optional("FLOOR_KEY_NAME")
                    .unwrap_or_else(|| "serial".into()),
                key: env.optional("FLOOR_KEY").unwrap_or_else(|| "floor".into()),
            },
            None => Floor::Echo,
        })
    }

    async fn handle(&self, event: Value) -> Result<Value, Error> {
        match self {
            Floor::Echo => Ok(event),
            Floor::Lookup {
                client,
                table,
                key_name,
                key,
            } => {
                let item = client
                    .get_item()
                    .table_name(table)
                    .key(key_name, AttributeValue::S(key.clone()))
                    .send()
                    .await?;
                Ok(json!({ "found": item.item.is_some() }))
            }
            Floor::Stream { client, stream } => put_records(client, stream, &event).await,
        }
    }
}

/// Puts the event's records as they are; says how many the stream took and in how many calls.
async fn put_records(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    event: &Value,
) -> Result<Value, Error> {
    let partition_key = event[rule::THING_NAME].as_str().unwrap_or("floor");
    let single;
    let records: &[Value] = match event.get("records") {
        Some(records) => records
            .as_array()
            .ok_or("the event's records is not an array")?,
        None => {
            single = [single_reading(event)];
            &single
        }
    };
    let (mut accepted, mut calls) = (0, 0);
    for chunk in records.chunks(MAX_PUT_RECORDS) {
        let entries = chunk
            .iter()
            .map(|record| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(serde_json::to_vec(record)?))
                    .partition_key(partition_key)
                    .build()
                    .map_err(Error::from)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let output = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await?;
        calls += 1;
        accepted += chunk.len() - output.failed_record_count().unwrap_or(0) as usize;
    }
    Ok(json!({ "accepted": accepted, "stream_calls": calls }))
}

/// One reading as the IoT rule hands it over, without the fields the rule adds.
fn single_reading(event: &Value) -> Value {
    let mut reading = event.clone();
    if let Some(fields) = reading.as_object_mut() {
        for field in rule::FIELDS {
            fields.remove(field);
        }
    }
    reading
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    fleetwire::logging::init();
    let floor = Floor::from_env(&Env::process()).await?;
    let floor = &floor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        floor.handle(event.payload).await
    }))
    .await
}
