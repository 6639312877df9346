//! What the system made of the run, read back from where it keeps it: the stream
//! (Kinesis or Kafka), the dead-letter queue, the State and Summaries tables, the rollouts,
//! and the runner's status (to know when everything sent has been handled).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use fleetwire::domain::dead_letter::caller;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

use crate::exchange::exchange;

/// The runner answers its status at once; longer means it is stuck or gone.
const RUNNER_ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// One Summaries row.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    pub device: String,
    pub hour: String,
    pub count: u64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// One State row, as far as the report needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateRow {
    pub online: bool,
    pub last_telemetry_at: Option<i64>,
}

fn number(item: &HashMap<String, AttributeValue>, key: &str) -> Option<f64> {
    match item.get(key)? {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

fn text(item: &HashMap<String, AttributeValue>, key: &str) -> Option<String> {
    match item.get(key)? {
        AttributeValue::S(s) => Some(s.clone()),
        _ => None,
    }
}

/// Every record in the Kinesis stream whose device id starts with `prefix`.
pub async fn kinesis_records(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    prefix: &str,
) -> Result<Vec<Value>, String> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| {
            format!(
                "ListShards: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(e)
            )
        })?;
    let mut found = Vec::new();
    for shard in shards.shards() {
        let iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "GetShardIterator: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(e)
                )
            })?;
        let mut next = iterator.shard_iterator().map(str::to_owned);
        let mut failures = 0;
        while let Some(current) = next.clone() {
            // Kinesis reads are limited (5 calls and 2 MiB a second per shard): pace them.
            tokio::time::sleep(Duration::from_millis(250)).await;
            let page = match client
                .get_records()
                .shard_iterator(&current)
                .limit(1000)
                .send()
                .await
            {
                Ok(page) => page,
                Err(e) if failures < 20 => {
                    failures += 1;
                    tracing::debug!(error = %aws_sdk_kinesis::error::DisplayErrorContext(e), "GetRecords throttled; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    return Err(format!(
                        "GetRecords: {}",
                        aws_sdk_kinesis::error::DisplayErrorContext(e)
                    ));
                }
            };
            for record in page.records() {
                if let Ok(value) = serde_json::from_slice::<Value>(record.data().as_ref())
                    && value["device_id"]
                        .as_str()
                        .is_some_and(|d| d.starts_with(prefix))
                {
                    found.push(value);
                }
            }
            next = if page.records().is_empty()
                || page.millis_behind_latest() == Some(0) && page.records().len() < 1000
            {
                None
            } else {
                page.next_shard_iterator().map(str::to_owned)
            };
        }
    }
    Ok(found)
}

/// Every record in the Kafka topic whose device id starts with `prefix`.
pub async fn kafka_records(
    bootstrap: &str,
    topic: &str,
    prefix: &str,
) -> Result<Vec<Value>, String> {
    let client = rskafka::client::ClientBuilder::new(vec![bootstrap.to_owned()])
        .build()
        .await
        .map_err(|e| format!("Kafka {bootstrap}: {e}"))?;
    let topics = client.list_topics().await.map_err(|e| e.to_string())?;
    let partitions = topics
        .iter()
        .find(|t| t.name == topic)
        .map(|t| t.partitions.clone())
        .ok_or_else(|| format!("no Kafka topic {topic}"))?;
    let mut found = Vec::new();
    for partition in partitions {
        let partition_client = client
            .partition_client(
                topic,
                partition,
                rskafka::client::partition::UnknownTopicHandling::Retry,
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut offset = 0;
        loop {
            let (records, high) = partition_client
                .fetch_records(offset, 1..4 * 1024 * 1024, 500)
                .await
                .map_err(|e| e.to_string())?;
            for record in &records {
                if let Some(value) = record
                    .record
                    .value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice::<Value>(v).ok())
                    && value["device_id"]
                        .as_str()
                        .is_some_and(|d| d.starts_with(prefix))
                {
                    found.push(value);
                }
            }
            offset = records.last().map_or(offset, |r| r.offset + 1);
            if records.is_empty() || offset >= high {
                break;
            }
        }
    }
    Ok(found)
}

/// The dead letters of devices of `prefix`, known by their caller: the thing over MQTT,
/// `token:<thing>` over HTTPS (each simulated device holds a token for itself). Messages
/// are only received, never deleted: the queue stays as it is for operators.
pub async fn dead_letters(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    prefix: &str,
) -> Result<Vec<Value>, String> {
    let mut found = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        let page = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "ReceiveMessage: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        if page.messages().is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        for message in page.messages() {
            if let Ok(letter) = serde_json::from_str::<Value>(message.body().unwrap_or_default())
                && letter["caller"]
                    .as_str()
                    .is_some_and(|name| caller::subject(name).starts_with(prefix))
            {
                found.push(letter);
            }
        }
    }
    Ok(found)
}

/// The State rows of `devices` (BatchGetItem, 100 keys a call: far cheaper than a scan
/// of a table that holds every earlier run's devices too).
pub async fn state_rows(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    devices: &[String],
) -> Result<HashMap<String, StateRow>, String> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let mut rows = HashMap::new();
    for chunk in devices.chunks(100) {
        let mut keys: Vec<HashMap<String, AttributeValue>> = chunk
            .iter()
            .map(|d| HashMap::from([("device_id".to_string(), AttributeValue::S(d.clone()))]))
            .collect();
        let mut rounds = 0;
        while !keys.is_empty() && rounds < 20 {
            rounds += 1;
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .build()
                .map_err(|e| e.to_string())?;
            let page = dynamodb
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "BatchGetItem {table}: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    )
                })?;
            for item in page
                .responses()
                .and_then(|r| r.get(table))
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if let Some(device) = text(item, "device_id") {
                    rows.insert(
                        device,
                        StateRow {
                            online: matches!(item.get("online"), Some(AttributeValue::Bool(true))),
                            last_telemetry_at: number(item, "last_telemetry_at").map(|n| n as i64),
                        },
                    );
                }
            }
            if let Some(left) = page.unprocessed_keys().and_then(|u| u.get(table)) {
                keys = left.keys().to_vec();
            }
        }
    }
    Ok(rows)
}

/// The Summaries rows of `devices`.
pub async fn summary_rows(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    devices: &[String],
) -> Result<Vec<SummaryRow>, String> {
    let mut rows = Vec::new();
    for device in devices {
        let page = dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("device_id = :d")
            .expression_attribute_values(":d", AttributeValue::S(device.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "Query {table}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
            })?;
        for item in page.items() {
            rows.push(SummaryRow {
                device: device.clone(),
                hour: text(item, "hour").unwrap_or_default(),
                count: number(item, "record_count").unwrap_or(0.0) as u64,
                sum: number(item, "temperature_sum").unwrap_or(0.0),
                min: number(item, "min_temperature"),
                max: number(item, "max_temperature"),
            });
        }
    }
    Ok(rows)
}

/// The runner's status endpoint.
#[derive(Clone)]
pub struct Runner {
    pub url: String,
    pub http: Client<HttpConnector, Empty<Bytes>>,
}

impl Runner {
    async fn call(&self, method: http::Method, path: &str) -> Result<Value, String> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let (_, body) = exchange(&self.http, request, RUNNER_ANSWER_LIMIT)
            .await
            .map_err(|e| format!("the runner does not answer ({e}): is the stack up?"))?;
        serde_json::from_slice(&body).map_err(|e| format!("runner status is not JSON: {e}"))
    }

    pub async fn status(&self) -> Result<Value, String> {
        self.call(http::Method::GET, "/runner/status").await
    }

    pub async fn enable_mappings(&self) -> Result<(), String> {
        self.call(http::Method::POST, "/runner/mappings/enable")
            .await
            .map(|_| ())
    }

    /// Waits until no rule action is in flight and every mapping is idle with nothing
    /// delivered since the last look, twice in a row; `false` on timeout.
    pub async fn drained(&self, timeout: Duration) -> Result<bool, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut quiet = 0;
        let mut last: Option<(u64, u64)> = None;
        while tokio::time::Instant::now() < deadline {
            let status = self.status().await?;
            let in_flight: u64 = status["rules"]
                .as_array()
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| r["in_flight"].as_u64().unwrap_or(0))
                        .sum()
                })
                .unwrap_or(0);
            let mappings = status["mappings"].as_array().cloned().unwrap_or_default();
            let idle = mappings
                .iter()
                .all(|m| m["idle"].as_bool().unwrap_or(false));
            let delivered: u64 = mappings
                .iter()
                .map(|m| m["records_delivered"].as_u64().unwrap_or(0))
                .sum();
            let matched: u64 = status["rules"]
                .as_array()
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| r["matched"].as_u64().unwrap_or(0))
                        .sum()
                })
                .unwrap_or(0);
            let now = (delivered, matched);
            if in_flight == 0 && idle && last == Some(now) {
                quiet += 1;
                if quiet >= 2 {
                    return Ok(true);
                }
            } else {
                quiet = 0;
            }
            last = Some(now);
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        Ok(false)
    }
}
