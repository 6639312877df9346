//! The stream processor's store in maps, all or nothing like the DynamoDB adapter.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::domain::processing::{
    Anomaly, CommitOutcome, HourCommit, HourlySummary, ProcessingStore, StoredStats,
};
use crate::domain::telemetry::DeviceId;
use crate::runtime::error::StoreError;
use crate::testing::{Behaviour, lock};

/// The processor's tables in maps, committing all or nothing like the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct InMemoryProcessing {
    /// record_id to the alerts not yet published.
    seen: Mutex<HashMap<String, Vec<Anomaly>>>,
    stats: Mutex<HashMap<DeviceId, StoredStats>>,
    summaries: Mutex<HashMap<(DeviceId, String), HourlySummary>>,
    behaviour: Mutex<Behaviour>,
    /// Devices whose every call fails, as a throttled hot key would.
    failing_devices: Mutex<HashSet<DeviceId>>,
}

impl InMemoryProcessing {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    /// Every call about `device` fails as throttled from now on; other devices go on.
    pub fn fail_device(&self, device: DeviceId) {
        lock(&self.failing_devices).insert(device);
    }

    pub fn pending_alerts(&self) -> usize {
        lock(&self.seen).values().map(Vec::len).sum()
    }

    async fn behave(&self, device: &DeviceId) -> Result<(), StoreError> {
        if lock(&self.failing_devices).contains(device) {
            return Err(StoreError::Throttled {
                call: "InMemoryProcessing".into(),
                message: format!("{device} is throttled"),
            });
        }
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await
    }
}

impl ProcessingStore for InMemoryProcessing {
    async fn load_stats(&self, device: &DeviceId) -> Result<StoredStats, StoreError> {
        self.behave(device).await?;
        Ok(lock(&self.stats).get(device).cloned().unwrap_or_default())
    }

    async fn commit(&self, commit: &HourCommit) -> Result<CommitOutcome, StoreError> {
        self.behave(&commit.device_id).await?;
        let mut seen = lock(&self.seen);
        let duplicates: Vec<(String, Vec<Anomaly>)> = commit
            .records
            .iter()
            .filter_map(|(id, _)| seen.get(id).map(|pending| (id.clone(), pending.clone())))
            .collect();
        if !duplicates.is_empty() {
            return Ok(CommitOutcome::Duplicates(duplicates));
        }
        let mut stats = lock(&self.stats);
        let stored = stats.entry(commit.device_id.clone()).or_default();
        if stored.version != commit.expected_version {
            return Ok(CommitOutcome::StatsMoved);
        }
        *stored = StoredStats {
            stats: commit.stats.clone(),
            version: commit.expected_version + 1,
        };
        seen.extend(commit.records.iter().cloned());
        let mut summaries = lock(&self.summaries);
        let summary = summaries
            .entry((commit.device_id.clone(), commit.hour.clone()))
            .or_default();
        summary.record_count += commit.summary.record_count;
        summary.temperature_sum += commit.summary.temperature_sum;
        summary.temperature_sum_squares += commit.summary.temperature_sum_squares;
        summary.anomaly_count += commit.summary.anomaly_count;
        summary.quality_sum += commit.summary.quality_sum;
        Ok(CommitOutcome::Committed)
    }

    async fn widen_range(
        &self,
        device: &DeviceId,
        hour: &str,
        min: f64,
        max: f64,
    ) -> Result<(), StoreError> {
        self.behave(device).await?;
        let mut summaries = lock(&self.summaries);
        let summary = summaries
            .entry((device.clone(), hour.to_string()))
            .or_default();
        summary.min_temperature = Some(summary.min_temperature.map_or(min, |m| m.min(min)));
        summary.max_temperature = Some(summary.max_temperature.map_or(max, |m| m.max(max)));
        Ok(())
    }

    async fn alerts_published(&self, record_ids: &[String]) -> Result<(), StoreError> {
        let mut seen = lock(&self.seen);
        for id in record_ids {
            if let Some(pending) = seen.get_mut(id) {
                pending.clear();
            }
        }
        Ok(())
    }

    async fn summary(
        &self,
        device: &DeviceId,
        hour: &str,
    ) -> Result<Option<HourlySummary>, StoreError> {
        Ok(lock(&self.summaries)
            .get(&(device.clone(), hour.to_string()))
            .cloned())
    }
}
