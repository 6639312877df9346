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
//! - `FLOOR_TRANSACT_TABLE` set: the event's Kinesis `Records` marked as seen in that
//!   table, one `TransactWriteItems` per 100 records, each mark a conditional `Put`
//!   (`record_id` = the record's `eventID`, if not there yet), as the stream processor
//!   marks its records: the floor of the stream processor's warm call and throughput. A
//!   transaction canceled by marks already there is the answer, not an error (a repeated
//!   event is all duplicates, for the floor as for the processor).
//! - None of them: the event echoed back.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use fleetwire::domain::telemetry::rule;
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::runtime::config::Env;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// Kinesis takes at most this many records in one PutRecords.
const MAX_PUT_RECORDS: usize = 500;
/// DynamoDB takes at most this many items in one TransactWriteItems.
const MAX_TRANSACT_ITEMS: usize = 100;
/// How long a floor's seen-mark is kept (TTL): the processor's default for its own marks
/// (`REMEMBER_RECORDS_DAYS`, 8 days).
const MARK_TTL_SECONDS: i64 = 8 * 24 * 3600;

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
    Marks {
        client: aws_sdk_dynamodb::Client,
        table: String,
    },
}

impl Floor {
    async fn from_env(env: &Env) -> Result<Floor, Error> {
        let settings =
            fleetwire::runtime::init::or_report(SdkSettings::from_env(env, SdkSettings::default()))
                .await?;
        let sdk = load_sdk_config(&settings).await;
        if let Some(stream) = env.optional("FLOOR_STREAM") {
            return Ok(Floor::Stream {
                client: aws_sdk_kinesis::Client::new(&sdk),
                stream,
            });
        }
        if let Some(table) = env.optional("FLOOR_TRANSACT_TABLE") {
            return Ok(Floor::Marks {
                client: aws_sdk_dynamodb::Client::new(&sdk),
                table,
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
            Floor::Marks { client, table } => mark_seen(client, table, &event).await,
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

/// The `eventID` of each of a Kinesis event's `Records`, in order.
fn kinesis_event_ids(event: &Value) -> Result<Vec<&str>, Error> {
    let records = event["Records"]
        .as_array()
        .ok_or("the event has no Kinesis Records array")?;
    records
        .iter()
        .map(|record| {
            record["eventID"]
                .as_str()
                .ok_or_else(|| Error::from("a Kinesis record without an eventID"))
        })
        .collect()
}

/// Marks the event's records as seen, a transaction per 100; says how many marks were new,
/// how many were there already, and in how many calls.
async fn mark_seen(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    event: &Value,
) -> Result<Value, Error> {
    let ids = kinesis_event_ids(event)?;
    let expires = AttributeValue::N(
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64
            + MARK_TTL_SECONDS)
            .to_string(),
    );
    let (mut written, mut duplicates, mut calls) = (0, 0, 0);
    for chunk in ids.chunks(MAX_TRANSACT_ITEMS) {
        let items = chunk
            .iter()
            .map(|id| {
                let put = Put::builder()
                    .table_name(table)
                    .item("record_id", AttributeValue::S(format!("floor:{id}")))
                    .item("expires_at", expires.clone())
                    .condition_expression("attribute_not_exists(record_id)")
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .build()?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let result = client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        calls += 1;
        match result {
            Ok(_) => written += chunk.len(),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => {
                    let already = canceled
                        .cancellation_reasons()
                        .iter()
                        .filter(|r| r.code() == Some("ConditionalCheckFailed"))
                        .count();
                    if already == 0 {
                        return Err(format!("transaction canceled: {canceled}").into());
                    }
                    duplicates += already;
                }
                _ => return Err(err.into()),
            },
        }
    }
    Ok(json!({ "written": written, "duplicates": duplicates, "transact_calls": calls }))
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
    fleetwire::runtime::logging::init("sdk-floor");
    let floor = Floor::from_env(&Env::process()).await?;
    let floor = &floor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        floor.handle(event.payload).await
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kinesis_event_gives_its_event_ids_in_order() {
        let event = json!({ "Records": [
            { "eventID": "shardId-000000000000:1", "kinesis": {} },
            { "eventID": "shardId-000000000000:2", "kinesis": {} },
        ]});
        assert_eq!(
            kinesis_event_ids(&event).unwrap(),
            ["shardId-000000000000:1", "shardId-000000000000:2"]
        );
    }

    #[test]
    fn an_event_that_is_not_a_kinesis_batch_is_refused_with_why() {
        let no_records = kinesis_event_ids(&json!({ "thing_name": "car-1" })).unwrap_err();
        assert!(no_records.to_string().contains("Records"), "{no_records}");
        let no_id = kinesis_event_ids(&json!({ "Records": [{ "kinesis": {} }] })).unwrap_err();
        assert!(no_id.to_string().contains("eventID"), "{no_id}");
    }
}
