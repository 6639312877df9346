//! stream-processor: the consumer of the telemetry stream (Kinesis or MSK).
//!
//! Per record: decode; drop it if its `record_id` was processed before; score it against
//! the device's running statistics; add it to the device's hourly summary; keep the newest
//! reading as the device's state. Each run of one device's readings within one hour is
//! committed atomically (seen-marks, summary, statistics), so a retried or re-split batch
//! changes nothing. Devices share no item, so up to [`DEVICES_AT_ONCE`] of them are
//! processed at once; one device's readings are always processed in stream order.
//! Anomalies are kept with their record until published to the alert topic, so none is
//! lost to a crash. A record that cannot be decoded goes to the dead-letter queue and is
//! not reported as failed: it would fail forever.

pub mod config;
pub mod input;

use std::collections::BTreeMap;

use base64::Engine;
use fleetwire::domain::dead_letter::{DeadLetter, DeadLetterSink};
use fleetwire::domain::device_state::DeviceStateStore;
use fleetwire::domain::processing::{
    AlertSink, Anomaly, AnomalyRules, CommitOutcome, HourCommit, HourlySummary, ProcessingStore,
    assess, data_quality, hour_key,
};
use fleetwire::domain::telemetry::{DeviceId, EnrichedRecord};
use fleetwire::runtime::error::StoreError;
use fleetwire::runtime::metrics;
use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

pub use config::ProcessorConfig;
pub use input::{InputRecord, ItemIdentifier, Source, from_event};

pub const SOURCE: &str = "stream-processor";
/// Readings per atomic commit: DynamoDB transactions take 100 items, two of which are
/// the summary and the statistics.
pub const MAX_RUN: usize = 90;
const MAX_COMMIT_ROUNDS: usize = 8;
/// Devices of one batch processed concurrently: each is a few sequential round trips
/// (statistics, state, range, commit), so a batch of many devices waits on the slowest
/// few instead of on the sum of them all.
pub const DEVICES_AT_ONCE: usize = 16;

/// The answer to the event source mapping: the first failed record of each shard or
/// partition, from which Lambda retries it (`ReportBatchItemFailures` is on for both
/// mappings). An empty list is a complete success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    pub item_identifier: ItemIdentifier,
}

/// Counts for the invocation's log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    pub received: usize,
    pub applied: usize,
    pub duplicates: usize,
    pub undecodable: usize,
    pub anomalies: usize,
    pub failed_groups: usize,
}

pub struct Processor<P, A, D, S> {
    store: P,
    alerts: A,
    dead_letters: D,
    state: S,
    rules: AnomalyRules,
}

/// A device's readings in stream order, with their position in the batch.
type DeviceRecords = Vec<(usize, EnrichedRecord)>;

impl<P: ProcessingStore, A: AlertSink, D: DeadLetterSink, S: DeviceStateStore>
    Processor<P, A, D, S>
{
    pub fn new(store: P, alerts: A, dead_letters: D, state: S, rules: AnomalyRules) -> Self {
        Processor {
            store,
            alerts,
            dead_letters,
            state,
            rules,
        }
    }

    /// Processes one batch. `Err` only when an undecodable record could not be
    /// dead-lettered: then the whole batch must come again.
    pub async fn process(
        &self,
        records: &[InputRecord],
    ) -> Result<(BatchResponse, BatchSummary), StoreError> {
        let mut summary = BatchSummary {
            received: records.len(),
            ..BatchSummary::default()
        };
        let mut letters = Vec::new();
        let mut by_device: BTreeMap<DeviceId, DeviceRecords> = BTreeMap::new();
        // The batch's record ids, in its order: the ingest logs the same ids, so one
        // Logs Insights query follows a reading from its rule's invocation to this one.
        let mut record_ids = Vec::with_capacity(records.len());
        for (position, record) in records.iter().enumerate() {
            match serde_json::from_slice::<EnrichedRecord>(&record.data) {
                Ok(reading) => {
                    record_ids.push(reading.record_id.clone());
                    by_device
                        .entry(reading.reading.device_id.clone())
                        .or_default()
                        .push((position, reading))
                }
                Err(e) => letters.push(undecodable(record, &e.to_string())),
            }
        }
        summary.undecodable = letters.len();
        if !letters.is_empty() {
            self.dead_letters.send(&letters).await?;
        }

        // The earliest failed position of each group (shard or partition).
        let mut first_failure: BTreeMap<&str, usize> = BTreeMap::new();
        let mut devices = futures::stream::iter(by_device)
            .map(|(device, readings)| async move {
                let outcome = self.process_device(&device, readings).await;
                (device, outcome)
            })
            .buffer_unordered(DEVICES_AT_ONCE);
        while let Some((device, outcome)) = devices.next().await {
            summary.applied += outcome.applied;
            summary.duplicates += outcome.duplicates;
            summary.anomalies += outcome.anomalies;
            if let Some((position, error)) = outcome.failed {
                tracing::error!(device_id = %device, error = %error, "device's readings not processed; reported for retry");
                let group = records[position].group.as_str();
                let earliest = first_failure.entry(group).or_insert(position);
                *earliest = (*earliest).min(position);
            }
        }
        summary.failed_groups = first_failure.len();
        let batch_item_failures = first_failure
            .values()
            .map(|&position| ItemFailure {
                item_identifier: records[position].item_id.clone(),
            })
            .filter(|failure| !failure.item_identifier.is_blank())
            .collect();
        tracing::info!(
            received = summary.received,
            applied = summary.applied,
            duplicates = summary.duplicates,
            undecodable = summary.undecodable,
            anomalies = summary.anomalies,
            failed_groups = summary.failed_groups,
            record_ids = %record_ids.join(","),
            "batch processed"
        );
        metrics::count(metrics::name::RECORDS_PROCESSED, summary.applied as u64);
        metrics::count(metrics::name::DUPLICATES_SKIPPED, summary.duplicates as u64);
        metrics::count(metrics::name::ANOMALIES_RAISED, summary.anomalies as u64);
        Ok((
            BatchResponse {
                batch_item_failures,
            },
            summary,
        ))
    }

    async fn process_device(&self, device: &DeviceId, readings: DeviceRecords) -> DeviceOutcome {
        let mut outcome = DeviceOutcome::default();
        // Repeats inside one batch are duplicates too.
        let mut seen_here = std::collections::HashSet::new();
        let mut readings: DeviceRecords = readings
            .into_iter()
            .filter(|(_, r)| seen_here.insert(r.record_id.clone()))
            .collect();
        let first_position = readings.first().map_or(0, |(p, _)| *p);
        let mut stored = match self.store.load_stats(device).await {
            Ok(stored) => stored,
            Err(error) => {
                outcome.failed = Some((first_position, error));
                return outcome;
            }
        };
        while !readings.is_empty() {
            let hour = hour_key(&readings[0].1);
            let cut = readings
                .iter()
                .take(MAX_RUN)
                .take_while(|(_, r)| hour_key(r) == hour)
                .count();
            let run: DeviceRecords = readings.drain(..cut).collect();
            let run_start = run[0].0;
            match self.commit_run(device, &hour, run, &mut stored).await {
                Ok((applied, duplicates, anomalies)) => {
                    outcome.applied += applied;
                    outcome.duplicates += duplicates;
                    outcome.anomalies += anomalies;
                }
                Err(error) => {
                    outcome.failed = Some((run_start, error));
                    return outcome;
                }
            }
        }
        outcome
    }

    /// Commits one run, dropping records already processed, then publishes its alerts.
    async fn commit_run(
        &self,
        device: &DeviceId,
        hour: &str,
        mut run: DeviceRecords,
        stored: &mut fleetwire::domain::processing::StoredStats,
    ) -> Result<(usize, usize, usize), StoreError> {
        // Newer-wins and idempotent: done before the commit, so that a retry whose records
        // all turn out to be duplicates still leaves the newest reading in the state.
        if let Some((_, newest)) = run.iter().max_by_key(|(_, r)| r.reading.timestamp) {
            self.state.record_telemetry(&newest.reading).await?;
        }
        let mut duplicates = 0;
        let mut unpublished: Vec<(String, Vec<Anomaly>)> = Vec::new();
        for _ in 0..MAX_COMMIT_ROUNDS {
            if run.is_empty() {
                break;
            }
            let mut stats = stored.stats.clone();
            let mut summary = HourlySummary::default();
            let mut records = Vec::with_capacity(run.len());
            for (_, reading) in &run {
                let anomalies = assess(&mut stats, reading, &self.rules);
                let quality = data_quality(reading, !anomalies.is_empty());
                summary.add(reading.reading.temperature, !anomalies.is_empty(), quality);
                records.push((reading.record_id.clone(), anomalies));
            }
            if let (Some(min), Some(max)) = (summary.min_temperature, summary.max_temperature) {
                // Idempotent, so safe before the commit and on every retry.
                self.store.widen_range(device, hour, min, max).await?;
            }
            let commit = HourCommit {
                device_id: device.clone(),
                hour: hour.to_string(),
                records,
                summary,
                stats: stats.clone(),
                expected_version: stored.version,
            };
            match self.store.commit(&commit).await? {
                CommitOutcome::Committed => {
                    *stored = fleetwire::domain::processing::StoredStats {
                        stats,
                        version: stored.version + 1,
                    };
                    let applied = run.len();
                    unpublished.extend(commit.records.into_iter().filter(|(_, a)| !a.is_empty()));
                    let anomalies = self.publish(&unpublished).await?;
                    return Ok((applied, duplicates, anomalies));
                }
                CommitOutcome::Duplicates(seen) => {
                    duplicates += seen.len();
                    run.retain(|(_, r)| !seen.iter().any(|(id, _)| *id == r.record_id));
                    // Alerts a crash left unpublished go out now.
                    unpublished.extend(seen.into_iter().filter(|(_, a)| !a.is_empty()));
                }
                CommitOutcome::StatsMoved => *stored = self.store.load_stats(device).await?,
            }
        }
        if !run.is_empty() {
            return Err(StoreError::Unavailable {
                call: "ProcessingStore.commit".into(),
                message: format!("{device} {hour}: no commit after {MAX_COMMIT_ROUNDS} rounds"),
            });
        }
        self.publish(&unpublished).await?;
        Ok((0, duplicates, 0))
    }

    /// Publishes, then forgets, these records' alerts. A failure leaves them pending.
    async fn publish(&self, records: &[(String, Vec<Anomaly>)]) -> Result<usize, StoreError> {
        let anomalies: Vec<Anomaly> = records
            .iter()
            .flat_map(|(_, a)| a.iter().cloned())
            .collect();
        if anomalies.is_empty() {
            return Ok(0);
        }
        self.alerts.publish(&anomalies).await?;
        let ids: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
        self.store.alerts_published(&ids).await?;
        Ok(anomalies.len())
    }
}

#[derive(Default)]
struct DeviceOutcome {
    applied: usize,
    duplicates: usize,
    anomalies: usize,
    failed: Option<(usize, StoreError)>,
}

fn undecodable(record: &InputRecord, problem: &str) -> DeadLetter {
    let (payload, payload_base64) = match serde_json::from_slice(&record.data) {
        Ok(value) => (value, None),
        Err(_) => (
            serde_json::Value::Null,
            Some(base64::engine::general_purpose::STANDARD.encode(&record.data)),
        ),
    };
    DeadLetter {
        reason: "undecodable".into(),
        errors: vec![format!(
            "{problem} (item {} of {})",
            record.item_id, record.group
        )],
        source: SOURCE.into(),
        device_id: None,
        topic: Some(record.group.clone()),
        caller: None,
        received_at: None,
        rejected_at: OffsetDateTime::now_utc(),
        payload,
        payload_base64,
    }
}

/// Why an invocation failed as a whole, so Lambda retries the batch.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Neither a Kinesis nor an MSK event: nothing of it can be processed.
    #[error("{0}")]
    Event(String),
    /// An undecodable record could not be dead-lettered.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<HandleError> for lambda_runtime::Diagnostic {
    fn from(error: HandleError) -> Self {
        let error_type = match error {
            HandleError::Event(_) => "InvalidEvent",
            HandleError::Store(_) => "DeadLetterUnavailable",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// Handles one event of either mapping, answering a partial batch response in the
/// mapping's own shape: each failed shard or partition is retried from its first failed
/// record, and what succeeded beside it is not sent again.
pub async fn handle<P, A, D, S>(
    processor: &Processor<P, A, D, S>,
    event: &serde_json::Value,
) -> Result<BatchResponse, HandleError>
where
    P: ProcessingStore,
    A: AlertSink,
    D: DeadLetterSink,
    S: DeviceStateStore,
{
    let (_, records) = from_event(event).map_err(HandleError::Event)?;
    let (response, _) = processor.process(&records).await?;
    Ok(response)
}

#[cfg(test)]
mod tests;
