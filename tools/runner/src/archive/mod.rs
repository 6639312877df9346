//! The local archive: the runner playing Firehose's delivery from the Kinesis stream or the
//! MSK topic with record format conversion, as the template declares it. Like Firehose it
//! reads the stream (or topic) as a consumer of its own, buffers by size and time (the delivery's `BufferingHints`), then
//! writes one Parquet object of the buffer's records under the evaluated `Prefix`, with
//! the records that failed conversion as JSON documents under the `ErrorOutputPrefix`
//! (Amazon Data Firehose developer guide: "Configure buffering hints", "Understand custom
//! prefixes for Amazon S3 objects", "Handling errors for data format conversion"). An S3
//! write that fails keeps the buffer for the next try, as Firehose retries.
//!
//! `POST /runner/archive/flush` writes the buffer at once, so a test or the demo need not
//! wait out the interval.

pub mod convert;
pub mod prefix;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::esm::StartAt;
use crate::wiring::{Delivery, DeliverySource};
use convert::Converter;

/// A record read from the stream, waiting for the next object.
struct Pending {
    data: Vec<u8>,
    arrived: OffsetDateTime,
    sequence: String,
}

#[derive(Default)]
struct Buffer {
    records: Vec<Pending>,
    bytes: usize,
    since: Option<Instant>,
}

/// What the archive has done, for `/runner/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveStatus {
    pub delivery: String,
    pub records_read: u64,
    pub records_archived: u64,
    pub records_failed: u64,
    pub objects_written: u64,
    pub buffered: usize,
    pub last_object: Option<String>,
    pub last_error: Option<String>,
}

/// What one flush wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Flushed {
    pub delivery: String,
    pub records: usize,
    pub failed: usize,
    pub object: Option<String>,
    pub error_object: Option<String>,
}

#[derive(Clone)]
pub struct Archive {
    inner: Arc<Inner>,
}

struct Inner {
    delivery: Delivery,
    converter: Converter,
    s3: aws_sdk_s3::Client,
    region: String,
    buffer: Mutex<Buffer>,
    status: Mutex<ArchiveStatus>,
    /// One flush at a time: a timed one and an asked one never split a buffer.
    writing: tokio::sync::Mutex<()>,
}

impl Archive {
    pub fn new(delivery: Delivery, s3: aws_sdk_s3::Client, region: String) -> Result<Self, String> {
        let converter = Converter::new(delivery.columns.clone())
            .map_err(|e| format!("{}: {e}", delivery.logical_id))?;
        let status = ArchiveStatus {
            delivery: delivery.name.clone(),
            ..ArchiveStatus::default()
        };
        Ok(Archive {
            inner: Arc::new(Inner {
                delivery,
                converter,
                s3,
                region,
                buffer: Mutex::default(),
                status: Mutex::new(status),
                writing: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub fn status(&self) -> ArchiveStatus {
        let mut status = self.inner.status.lock().expect("status lock").clone();
        status.buffered = self.inner.buffer.lock().expect("buffer lock").records.len();
        status
    }

    /// Reads every shard of the stream (or partition of the topic, on the Kafka broker at
    /// `kafka_bootstrap`) and writes the buffer when its interval passes or its size is
    /// reached.
    pub async fn start(
        &self,
        kinesis: aws_sdk_kinesis::Client,
        kafka_bootstrap: Option<&str>,
        start: StartAt,
    ) -> Result<(), String> {
        match &self.inner.delivery.source {
            DeliverySource::Kinesis { stream } => {
                let shards = kinesis
                    .list_shards()
                    .stream_name(stream)
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "ListShards {stream}: {}",
                            aws_sdk_kinesis::error::DisplayErrorContext(e)
                        )
                    })?;
                for shard in shards.shards() {
                    let archive = self.clone();
                    let kinesis = kinesis.clone();
                    let shard = shard.shard_id().to_owned();
                    tokio::spawn(async move { archive.read_shard(kinesis, shard, start).await });
                }
            }
            DeliverySource::Kafka { topic } => {
                let bootstrap = kafka_bootstrap.ok_or_else(|| {
                    format!(
                        "{}: reads Kafka topic {topic}, and no broker is given (--kafka-bootstrap)",
                        self.inner.delivery.logical_id
                    )
                })?;
                for partition_client in
                    crate::esm::kafka::partition_clients(bootstrap, topic).await?
                {
                    let archive = self.clone();
                    tokio::spawn(
                        async move { archive.read_partition(partition_client, start).await },
                    );
                }
            }
        }
        let archive = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if archive.due()
                    && let Err(e) = archive.flush().await
                {
                    tracing::warn!(error = %e, "archive: cannot write the buffer; retrying");
                }
            }
        });
        Ok(())
    }

    fn due(&self) -> bool {
        let buffer = self.inner.buffer.lock().expect("buffer lock");
        let delivery = &self.inner.delivery;
        buffer.bytes >= delivery.buffer_bytes
            || buffer
                .since
                .is_some_and(|t| t.elapsed() >= Duration::from_secs(delivery.buffer_seconds))
    }

    async fn read_shard(&self, kinesis: aws_sdk_kinesis::Client, shard: String, start: StartAt) {
        let DeliverySource::Kinesis { stream } = self.inner.delivery.source.clone() else {
            return;
        };
        let kind = match start {
            StartAt::Latest => aws_sdk_kinesis::types::ShardIteratorType::Latest,
            StartAt::TrimHorizon => aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon,
        };
        let mut iterator = loop {
            match kinesis
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(&shard)
                .shard_iterator_type(kind.clone())
                .send()
                .await
            {
                Ok(out) => break out.shard_iterator().map(str::to_owned),
                Err(e) => {
                    tracing::warn!(shard, error = %aws_sdk_kinesis::error::DisplayErrorContext(e), "archive: GetShardIterator failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        while let Some(current) = iterator.clone() {
            let out = match kinesis.get_records().shard_iterator(&current).send().await {
                Ok(out) => out,
                Err(e) => {
                    tracing::warn!(shard, error = %aws_sdk_kinesis::error::DisplayErrorContext(e), "archive: GetRecords failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            iterator = out.next_shard_iterator().map(str::to_owned);
            if out.records().is_empty() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            self.buffer(
                out.records()
                    .iter()
                    .map(|record| Pending {
                        data: record.data().as_ref().to_vec(),
                        arrived: record
                            .approximate_arrival_timestamp()
                            .and_then(|t| {
                                OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok()
                            })
                            .unwrap_or_else(OffsetDateTime::now_utc),
                        sequence: record.sequence_number().to_owned(),
                    })
                    .collect(),
            );
        }
    }

    async fn read_partition(
        &self,
        client: rskafka::client::partition::PartitionClient,
        start: StartAt,
    ) {
        let key = format!("{}-{}", client.topic(), client.partition());
        // Fetch's high watermark is where the partition ends now.
        let mut offset = match start {
            StartAt::TrimHorizon => 0,
            StartAt::Latest => loop {
                match client.fetch_records(0, 1..1, 0).await {
                    Ok((_, high)) => break high,
                    Err(e) => {
                        tracing::warn!(key, error = %e, "archive: cannot read the partition's end; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            },
        };
        loop {
            let records = match client.fetch_records(offset, 1..4 * 1024 * 1024, 1000).await {
                Ok((records, _)) => records,
                Err(e) => {
                    tracing::warn!(key, error = %e, "archive: Kafka fetch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut read = Vec::new();
            let from = offset;
            for found in records.into_iter().filter(|r| r.offset >= from) {
                offset = found.offset + 1;
                let arrived = OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(found.record.timestamp.timestamp_millis()) * 1_000_000,
                )
                .unwrap_or_else(|_| OffsetDateTime::now_utc());
                read.push(Pending {
                    data: found.record.value.unwrap_or_default(),
                    arrived,
                    sequence: found.offset.to_string(),
                });
            }
            self.buffer(read);
        }
    }

    /// Adds records read from the source to the buffer.
    fn buffer(&self, records: Vec<Pending>) {
        if records.is_empty() {
            return;
        }
        let read = records.len() as u64;
        let mut buffer = self.inner.buffer.lock().expect("buffer lock");
        buffer.bytes += records.iter().map(|r| r.data.len()).sum::<usize>();
        buffer.records.extend(records);
        buffer.since.get_or_insert_with(Instant::now);
        drop(buffer);
        self.inner.status.lock().expect("status lock").records_read += read;
    }

    /// Writes the buffer now: the Parquet object, then the error documents. On a failed
    /// write the records go back to the front of the buffer.
    pub async fn flush(&self) -> Result<Flushed, String> {
        let _writing = self.inner.writing.lock().await;
        let records = {
            let mut buffer = self.inner.buffer.lock().expect("buffer lock");
            buffer.bytes = 0;
            buffer.since = None;
            std::mem::take(&mut buffer.records)
        };
        let delivery = &self.inner.delivery;
        let mut flushed = Flushed {
            delivery: delivery.name.clone(),
            ..Flushed::default()
        };
        if records.is_empty() {
            return Ok(flushed);
        }
        match self.write(&records, &mut flushed).await {
            Ok(()) => {
                let mut status = self.inner.status.lock().expect("status lock");
                status.records_archived += flushed.records as u64;
                status.records_failed += flushed.failed as u64;
                status.objects_written +=
                    u64::from(flushed.object.is_some()) + u64::from(flushed.error_object.is_some());
                status.last_object = flushed.object.clone().or(status.last_object.clone());
                status.last_error = None;
                Ok(flushed)
            }
            Err(e) => {
                let mut buffer = self.inner.buffer.lock().expect("buffer lock");
                buffer.bytes += records.iter().map(|r| r.data.len()).sum::<usize>();
                let newer = std::mem::replace(&mut buffer.records, records);
                buffer.records.extend(newer);
                buffer.since.get_or_insert_with(Instant::now);
                self.inner.status.lock().expect("status lock").last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn write(&self, records: &[Pending], flushed: &mut Flushed) -> Result<(), String> {
        let delivery = &self.inner.delivery;
        let data: Vec<&[u8]> = records.iter().map(|r| r.data.as_slice()).collect();
        let convert::Converted { parquet, failed } = self.inner.converter.convert(&data)?;
        let now = OffsetDateTime::now_utc();
        if let Some(bytes) = parquet {
            // Timestamps of the prefix: the oldest record's arrival (the records that
            // converted); the suffix: the write (S3 object name format).
            let oldest = records
                .iter()
                .enumerate()
                .filter(|(i, _)| !failed.iter().any(|(f, _)| f == i))
                .map(|(_, r)| r.arrived)
                .min()
                .unwrap_or(now);
            let key = format!(
                "{}{}",
                prefix::evaluate(&delivery.prefix, oldest, "")?,
                self.object_name(now)
            );
            self.put(&key, bytes).await?;
            flushed.records = records.len() - failed.len();
            flushed.object = Some(key);
        }
        if !failed.is_empty() {
            let oldest = failed
                .iter()
                .map(|(i, _)| records[*i].arrived)
                .min()
                .unwrap_or(now);
            let mut body = Vec::new();
            for (index, error) in &failed {
                let record = &records[*index];
                let document = json!({
                    "attemptsMade": 1,
                    "arrivalTimestamp": record.arrived.unix_timestamp_nanos() / 1_000_000,
                    "ErrorCode": "DataFormatConversion.MalformedData",
                    "ErrorMessage": error.0,
                    "attemptEndingTimestamp": now.unix_timestamp_nanos() / 1_000_000,
                    "rawData": BASE64.encode(&record.data),
                    "sequenceNumber": record.sequence,
                    "subSequenceNumber": 0,
                    "dataCatalogTable": {
                        "catalogId": stack::LOCAL_ACCOUNT,
                        "databaseName": delivery.database,
                        "tableName": delivery.table,
                        "region": self.inner.region,
                        "versionId": "LATEST",
                        "catalogArn": format!("arn:aws:glue:{}:{}:catalog", self.inner.region, stack::LOCAL_ACCOUNT),
                    },
                });
                body.extend(document.to_string().into_bytes());
                body.push(b'\n');
            }
            let key = format!(
                "{}{}",
                prefix::evaluate(
                    &delivery.error_prefix,
                    oldest,
                    prefix::FORMAT_CONVERSION_FAILED
                )?,
                self.object_name(now)
            );
            self.put(&key, body).await?;
            flushed.failed = failed.len();
            flushed.error_object = Some(key);
        }
        Ok(())
    }

    /// `<stream name>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>` (Amazon Data Firehose
    /// developer guide, "Configure Amazon S3 object name format"); version 1, as a stream
    /// never reconfigured.
    fn object_name(&self, at: OffsetDateTime) -> String {
        let stamp =
            prefix::evaluate("!{timestamp:yyyy-MM-dd-HH-mm-ss}", at, "").unwrap_or_default();
        let id = crate::random_hex(16);
        format!(
            "{}-1-{stamp}-{}-{}-{}-{}-{}",
            self.inner.delivery.name,
            &id[..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..32]
        )
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), String> {
        self.inner
            .s3
            .put_object()
            .bucket(&self.inner.delivery.bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "S3.PutObject {}/{key}: {}",
                    self.inner.delivery.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })
    }
}

#[cfg(test)]
mod tests;
