//! Kafka / Amazon MSK adapter of the stream port, for the fan-out design where many domain
//! teams consume the same topic.
//!
//! rskafka (pure Rust) produces with `acks=-1` (every in-sync replica). Records are keyed
//! by device and placed with the Java client's default partitioner (murmur2 of the key),
//! so one device's records share a partition, in order, and other producers agree on it.
//! On MSK the connection uses TLS and SASL/OAUTHBEARER with an IAM token signed locally
//! by `aws-msk-iam-sasl-signer`; a local broker is plaintext.

use std::sync::Arc;

use aws_config::SdkConfig;
use rskafka::BackoffConfig;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, OauthBearerCredentials, SaslConfig};
use rskafka::record::Record;

use crate::ingest::stream::{DeliveryReport, FailedRecord, StreamRecord, StreamSink};
use crate::runtime::error::StoreError;
use crate::runtime::kafka_event::KafkaRecord;
use crate::runtime::retry::RetryPolicy;

/// Bytes of records per produce request, under the brokers' default 1 MB `message.max.bytes`.
pub const MAX_BYTES_PER_PRODUCE: usize = 900 * 1024;

/// How to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaAuth {
    /// TLS and SASL/OAUTHBEARER with an IAM token (MSK, port 9098).
    MskIam,
    /// No TLS, no authentication: a local broker only.
    Plaintext,
}

pub struct KafkaSink {
    topic: String,
    partitions: Vec<PartitionClient>,
}

impl KafkaSink {
    /// Connects, reads the topic's partitions and opens a client for each. `retry.budget`
    /// bounds rskafka's own retries of a produce request.
    pub async fn connect(
        bootstrap_servers: Vec<String>,
        topic: &str,
        auth: KafkaAuth,
        sdk: &SdkConfig,
        retry: RetryPolicy,
    ) -> Result<Self, StoreError> {
        const CALL: &str = "Kafka.Connect";
        let client = connect(bootstrap_servers, auth, sdk, retry).await?;
        let topics = client
            .list_topics()
            .await
            .map_err(|e| unavailable("Kafka.Metadata", e))?;
        let count = topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.len())
            .filter(|n| *n > 0)
            .ok_or_else(|| StoreError::Rejected {
                call: "Kafka.Metadata".into(),
                message: format!(
                    "topic {topic} does not exist (create it with its partitions first)"
                ),
            })?;
        let mut partitions = Vec::with_capacity(count);
        for partition in 0..i32::try_from(count).unwrap_or(i32::MAX) {
            let client = client
                .partition_client(topic, partition, UnknownTopicHandling::Error)
                .await
                .map_err(|e| unavailable(CALL, e))?;
            partitions.push(client);
        }
        Ok(KafkaSink {
            topic: topic.to_string(),
            partitions,
        })
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// One partition's records, in order, in produce requests of bounded size. A request is
    /// all-or-nothing for its records.
    async fn deliver_partition(
        &self,
        partition: usize,
        records: &[StreamRecord],
        indices: Vec<usize>,
    ) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        let mut chunk: Vec<usize> = Vec::new();
        let mut bytes = 0;
        for index in indices {
            let size = records[index].data.len() + records[index].partition_key.len();
            if !chunk.is_empty() && bytes + size > MAX_BYTES_PER_PRODUCE {
                self.produce(partition, records, std::mem::take(&mut chunk), &mut report)
                    .await;
                bytes = 0;
            }
            chunk.push(index);
            bytes += size;
        }
        if !chunk.is_empty() {
            self.produce(partition, records, chunk, &mut report).await;
        }
        report
    }

    async fn produce(
        &self,
        partition: usize,
        records: &[StreamRecord],
        chunk: Vec<usize>,
        report: &mut DeliveryReport,
    ) {
        let batch: Vec<Record> = chunk
            .iter()
            .map(|&i| Record {
                key: Some(records[i].partition_key.clone().into_bytes()),
                value: Some(records[i].data.clone()),
                headers: Default::default(),
                timestamp: rskafka::chrono::Utc::now(),
            })
            .collect();
        report.calls += 1;
        match self.partitions[partition]
            .produce(batch, Compression::NoCompression)
            .await
        {
            Ok(_) => report.delivered += chunk.len(),
            Err(error) => {
                let message = format!("topic {} partition {partition}: {error}", self.topic);
                report
                    .failed
                    .extend(chunk.into_iter().map(|index| FailedRecord {
                        index,
                        error_code: "KafkaProduceFailed".into(),
                        message: message.clone(),
                        transient: true,
                    }));
            }
        }
    }
}

/// A client of the cluster: TLS and an IAM token on MSK, plaintext on a local broker.
/// `retry.budget` bounds rskafka's own retries of a request.
async fn connect(
    bootstrap_servers: Vec<String>,
    auth: KafkaAuth,
    sdk: &SdkConfig,
    retry: RetryPolicy,
) -> Result<Client, StoreError> {
    let backoff = BackoffConfig {
        init_backoff: retry.base_backoff,
        max_backoff: retry.max_backoff,
        base: 2.0,
        deadline: Some(retry.budget),
    };
    let mut builder = ClientBuilder::new(bootstrap_servers)
        .client_id("fleetwire")
        .backoff_config(backoff);
    if auth == KafkaAuth::MskIam {
        builder = builder
            .tls_config(Arc::new(tls_config()))
            .sasl_config(msk_iam_sasl(sdk)?);
    }
    builder
        .build()
        .await
        .map_err(|e| unavailable("Kafka.Connect", e))
}

/// Bytes asked for per fetch request: the brokers' default `fetch.max.bytes` is 50 MiB,
/// and a partition's answer holds at least one whole record batch whatever this says.
const FETCH_BYTES: i32 = 4 * 1024 * 1024;

/// Reads records back from the cluster by offset: what `fleetctl failed redrive` needs
/// of a Kafka batch the MSK mapping gave up on.
pub struct KafkaReader {
    client: Client,
}

impl KafkaReader {
    pub async fn connect(
        bootstrap_servers: Vec<String>,
        auth: KafkaAuth,
        sdk: &SdkConfig,
        retry: RetryPolicy,
    ) -> Result<Self, StoreError> {
        Ok(KafkaReader {
            client: connect(bootstrap_servers, auth, sdk, retry).await?,
        })
    }

    /// The records of one partition from `first` to `last` (offsets, both included), in
    /// order. Stops early at the partition's high watermark; records the partition no
    /// longer holds (retention) fail the fetch with `OffsetOutOfRange`.
    pub async fn read(
        &self,
        topic: &str,
        partition: i32,
        first: i64,
        last: i64,
    ) -> Result<Vec<KafkaRecord>, StoreError> {
        const CALL: &str = "Kafka.Fetch";
        let client = self
            .client
            .partition_client(topic, partition, UnknownTopicHandling::Error)
            .await
            .map_err(|e| unavailable(CALL, e))?;
        let mut records = Vec::new();
        let mut offset = first;
        while offset <= last {
            let (fetched, high_watermark) = client
                .fetch_records(offset, 1..FETCH_BYTES, 0)
                .await
                .map_err(|e| unavailable(CALL, e))?;
            // A fetch answers whole record batches: drop what lies before `offset`.
            let before = records.len();
            for found in fetched {
                if found.offset < offset || found.offset > last {
                    continue;
                }
                offset = found.offset + 1;
                records.push(KafkaRecord {
                    topic: topic.to_string(),
                    partition,
                    offset: found.offset,
                    timestamp_millis: found.record.timestamp.timestamp_millis(),
                    key: found.record.key,
                    value: found.record.value,
                    headers: found.record.headers,
                });
            }
            if records.len() == before && offset >= high_watermark {
                break;
            }
            if records.len() == before {
                // Only records before `offset` came back (transaction markers, compaction):
                // step over the gap.
                offset += 1;
            }
        }
        Ok(records)
    }
}

impl StreamSink for KafkaSink {
    async fn put_records(&self, records: &[StreamRecord]) -> DeliveryReport {
        let mut by_partition: Vec<Vec<usize>> = vec![Vec::new(); self.partitions.len()];
        for (index, record) in records.iter().enumerate() {
            by_partition[partition_for(record.partition_key.as_bytes(), self.partitions.len())]
                .push(index);
        }
        let deliveries = by_partition
            .into_iter()
            .enumerate()
            .filter(|(_, indices)| !indices.is_empty())
            .map(|(partition, indices)| self.deliver_partition(partition, records, indices));
        let mut report = DeliveryReport::default();
        for part in futures::future::join_all(deliveries).await {
            report.delivered += part.delivered;
            report.calls += part.calls;
            report.failed.extend(part.failed);
        }
        report.failed.sort_by_key(|f| f.index);
        report
    }
}

fn unavailable(call: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        call: call.to_string(),
        message: error.to_string(),
    }
}

fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // Named explicitly: the SDK's aws-lc-rs and rskafka's ring are both linked.
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"))
}

/// SASL/OAUTHBEARER whose token is a SigV4-presigned `kafka-cluster:Connect`, signed with
/// the function's own credentials on every (re)connection. Signing is local: no network.
fn msk_iam_sasl(sdk: &SdkConfig) -> Result<SaslConfig, StoreError> {
    let region = sdk.region().cloned().ok_or_else(|| StoreError::Rejected {
        call: "Kafka.Connect".into(),
        message: "no AWS region configured for MSK IAM authentication".into(),
    })?;
    let credentials = sdk
        .credentials_provider()
        .ok_or_else(|| StoreError::Rejected {
            call: "Kafka.Connect".into(),
            message: "no AWS credentials provider for MSK IAM authentication".into(),
        })?;
    let callback: rskafka::client::OauthCallback = Arc::new(move || {
        let region = region.clone();
        let credentials = credentials.clone();
        Box::pin(async move {
            let (token, _expires_at_ms) =
                aws_msk_iam_sasl_signer::generate_auth_token_from_credentials_provider(
                    region,
                    credentials,
                )
                .await?;
            Ok(token)
        })
    });
    Ok(SaslConfig::Oauthbearer(OauthBearerCredentials {
        callback,
        authz_id: None,
        bearer_kvs: Vec::new(),
    }))
}

/// The Java client's default partitioner: `toPositive(murmur2(key)) % partitions`.
pub fn partition_for(key: &[u8], partitions: usize) -> usize {
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    usize::try_from(positive).unwrap_or(0) % partitions.max(1)
}

/// Kafka's `Utils.murmur2` (seed 0x9747b28c), bit for bit.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Apache Kafka's UtilsTest.testMurmur2 vectors.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn one_device_always_maps_to_one_partition() {
        let first = partition_for(b"car-0001", 3);
        assert!((0..50).all(|_| partition_for(b"car-0001", 3) == first));
        assert!(first < 3);
        let spread: std::collections::HashSet<usize> = (0..100)
            .map(|n| partition_for(format!("car-{n:04}").as_bytes(), 3))
            .collect();
        assert_eq!(spread.len(), 3, "keys spread over every partition");
    }
}
