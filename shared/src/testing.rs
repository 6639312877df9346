//! In-memory implementations of the ports, for unit tests of the functions. They apply
//! the same rules as the AWS adapters (conditions, ordering) and can be told to fail or
//! to be slow, so a handler's error and timeout paths are testable without a network.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::device_state::{DeviceState, DeviceStateStore, WriteOutcome};
use crate::error::StoreError;
use crate::presence::{LifecycleEvent, PresenceOutcome, PresenceState, PresenceStore};
use crate::processing::{
    AlertSink, Anomaly, CommitOutcome, HourCommit, HourlySummary, ProcessingStore, StoredStats,
};
use crate::registry::{
    AddOutcome, ClaimOutcome, Denial, DenialOutcome, ProvisioningClaim, ProvisioningRecord,
    Registry, RegistryEntry, RegistryStatus, RevokeOutcome, Serial, admits, counts_denials,
};
use crate::stream::{DeliveryReport, FailedRecord, StreamRecord, StreamSink};
use crate::telemetry::{DeviceId, TelemetryRecord};

/// How a fake behaves on each call.
#[derive(Debug, Clone, Default)]
pub enum Behaviour {
    #[default]
    Normal,
    /// Sleep this long before answering normally.
    Slow(Duration),
    /// Fail every call with this error.
    Failing(StoreError),
}

impl Behaviour {
    async fn apply(&self) -> Result<(), StoreError> {
        match self {
            Behaviour::Normal => Ok(()),
            Behaviour::Slow(delay) => {
                tokio::time::sleep(*delay).await;
                Ok(())
            }
            Behaviour::Failing(error) => Err(error.clone()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A Registry in a map.
#[derive(Debug, Default)]
pub struct InMemoryRegistry {
    entries: Mutex<HashMap<Serial, RegistryEntry>>,
    behaviour: Mutex<Behaviour>,
}

impl InMemoryRegistry {
    pub fn with_entries(entries: impl IntoIterator<Item = RegistryEntry>) -> Self {
        let registry = InMemoryRegistry::default();
        lock(&registry.entries).extend(entries.into_iter().map(|e| (e.serial.clone(), e)));
        registry
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    pub fn entry(&self, serial: &str) -> Option<RegistryEntry> {
        Serial::parse(serial)
            .ok()
            .and_then(|s| lock(&self.entries).get(&s).cloned())
    }

    async fn behave(&self) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await
    }
}

impl Registry for InMemoryRegistry {
    async fn add(&self, entry: &RegistryEntry) -> Result<AddOutcome, StoreError> {
        self.behave().await?;
        let mut entries = lock(&self.entries);
        if let Some(existing) = entries.get(&entry.serial) {
            return Ok(AddOutcome::AlreadyPresent(Box::new(existing.clone())));
        }
        entries.insert(entry.serial.clone(), entry.clone());
        Ok(AddOutcome::Added)
    }

    async fn get(&self, serial: &Serial) -> Result<Option<RegistryEntry>, StoreError> {
        self.behave().await?;
        Ok(lock(&self.entries).get(serial).cloned())
    }

    async fn find_by_thing(&self, thing_name: &str) -> Result<Option<RegistryEntry>, StoreError> {
        self.behave().await?;
        Ok(lock(&self.entries)
            .values()
            .find(|e| e.thing_name == thing_name)
            .cloned())
    }

    async fn claim(&self, claim: &ProvisioningClaim) -> Result<ClaimOutcome, StoreError> {
        self.behave().await?;
        let mut entries = lock(&self.entries);
        match entries.get_mut(&claim.serial) {
            Some(entry) if admits(entry, &claim.record) => {
                // A retry keeps the first provisioning time, as the DynamoDB adapter does.
                let at = entry
                    .provisioning
                    .as_ref()
                    .map_or(claim.record.at, |p| p.at);
                entry.status = RegistryStatus::Provisioned;
                entry.provisioning = Some(ProvisioningRecord {
                    at,
                    ..claim.record.clone()
                });
                Ok(ClaimOutcome::Provisioned(entry.clone()))
            }
            current => Ok(ClaimOutcome::Refused {
                current: current.map(|e| e.clone()),
            }),
        }
    }

    async fn record_denial(&self, denial: &Denial) -> Result<DenialOutcome, StoreError> {
        self.behave().await?;
        let mut entries = lock(&self.entries);
        let Some(entry) = entries
            .get_mut(&denial.serial)
            .filter(|e| counts_denials(e.status))
        else {
            return Ok(DenialOutcome::NotCounted);
        };
        entry.denied_attempts += 1;
        let attempts = entry.denied_attempts;
        if attempts >= denial.lock_after {
            entry.status = RegistryStatus::Locked;
            return Ok(DenialOutcome::Locked { attempts });
        }
        Ok(DenialOutcome::Counted { attempts })
    }

    async fn revoke(
        &self,
        serial: &Serial,
        _at: time::OffsetDateTime,
    ) -> Result<RevokeOutcome, StoreError> {
        self.behave().await?;
        let mut entries = lock(&self.entries);
        match entries.get_mut(serial) {
            None => Ok(RevokeOutcome::Unknown),
            Some(entry) => {
                let before = entry.clone();
                entry.status = RegistryStatus::Revoked;
                Ok(RevokeOutcome::Revoked(Box::new(before)))
            }
        }
    }
}

/// A State table in a map, newer-wins like the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct InMemoryDeviceState {
    states: Mutex<HashMap<DeviceId, DeviceState>>,
    presence: Mutex<HashMap<DeviceId, PresenceState>>,
    behaviour: Mutex<Behaviour>,
}

impl InMemoryDeviceState {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }
}

impl PresenceStore for InMemoryDeviceState {
    async fn apply_presence(
        &self,
        device: &DeviceId,
        event: &LifecycleEvent,
    ) -> Result<PresenceOutcome, StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        Ok(lock(&self.presence)
            .entry(device.clone())
            .or_default()
            .apply(event))
    }

    async fn presence(&self, device: &DeviceId) -> Result<Option<PresenceState>, StoreError> {
        Ok(lock(&self.presence).get(device).cloned())
    }
}

impl DeviceStateStore for InMemoryDeviceState {
    async fn get(&self, device_id: &DeviceId) -> Result<Option<DeviceState>, StoreError> {
        Ok(lock(&self.states).get(device_id).cloned())
    }

    async fn record_telemetry(
        &self,
        reading: &TelemetryRecord,
    ) -> Result<WriteOutcome, StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let at = reading.timestamp_ms();
        let mut states = lock(&self.states);
        let state = states
            .entry(reading.device_id.clone())
            .or_insert_with(|| DeviceState {
                device_id: reading.device_id.clone(),
                last_telemetry: None,
                last_telemetry_at: None,
                version: 0,
            });
        if state.last_telemetry_at.is_some_and(|stored| stored >= at) {
            return Ok(WriteOutcome::Stale);
        }
        state.last_telemetry = serde_json::to_value(reading).ok();
        state.last_telemetry_at = Some(at);
        state.version += 1;
        Ok(WriteOutcome::Applied)
    }
}

/// A stream that records what it receives; records whose partition key is listed in
/// `failing_keys` fail, as throttled entries of PutRecords do.
#[derive(Debug, Default)]
pub struct RecordingStream {
    pub records: Mutex<Vec<StreamRecord>>,
    failing_keys: Mutex<Vec<String>>,
}

impl RecordingStream {
    pub fn fail_partition_key(&self, key: &str) {
        lock(&self.failing_keys).push(key.to_string());
    }

    pub fn delivered(&self) -> Vec<StreamRecord> {
        lock(&self.records).clone()
    }
}

impl StreamSink for RecordingStream {
    async fn put_records(&self, records: &[StreamRecord]) -> DeliveryReport {
        let failing = lock(&self.failing_keys).clone();
        let mut report = DeliveryReport {
            calls: 1,
            ..DeliveryReport::default()
        };
        let mut stored = lock(&self.records);
        for (index, record) in records.iter().enumerate() {
            if failing.contains(&record.partition_key) {
                report.failed.push(FailedRecord {
                    index,
                    error_code: "ProvisionedThroughputExceededException".into(),
                    message: "rate exceeded for shard".into(),
                    transient: true,
                });
            } else {
                stored.push(record.clone());
                report.delivered += 1;
            }
        }
        report
    }
}

/// A dead-letter queue that keeps what it is sent, or fails every send.
#[derive(Debug, Default)]
pub struct RecordingDeadLetters {
    pub letters: Mutex<Vec<DeadLetter>>,
    behaviour: Mutex<Behaviour>,
}

impl RecordingDeadLetters {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    pub fn sent(&self) -> Vec<DeadLetter> {
        lock(&self.letters).clone()
    }
}

impl DeadLetterSink for RecordingDeadLetters {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        lock(&self.letters).extend_from_slice(letters);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn claim(serial: &str, certificate_id: &str) -> ProvisioningClaim {
        ProvisioningClaim {
            serial: Serial::parse(serial).unwrap(),
            record: ProvisioningRecord {
                certificate_id: certificate_id.into(),
                claim_certificate_id: "claim".into(),
                client_id: "client".into(),
                at: datetime!(2026-11-25 12:00:00 UTC),
            },
        }
    }

    #[tokio::test]
    async fn fake_registry_claims_once_per_certificate() {
        let registry = InMemoryRegistry::with_entries([RegistryEntry::allowed(
            Serial::parse("SN1").unwrap(),
            "m",
            "t",
        )]);
        assert!(matches!(
            registry.claim(&claim("SN1", "cert-1")).await,
            Ok(ClaimOutcome::Provisioned(_))
        ));
        assert!(
            matches!(
                registry.claim(&claim("SN1", "cert-1")).await,
                Ok(ClaimOutcome::Provisioned(_))
            ),
            "retry"
        );
        let Ok(ClaimOutcome::Refused {
            current: Some(current),
        }) = registry.claim(&claim("SN1", "cert-2")).await
        else {
            panic!("a claim with another certificate must be refused with the current entry")
        };
        assert_eq!(current.status, RegistryStatus::Provisioned);
        assert!(matches!(
            registry.claim(&claim("SN2", "cert-1")).await,
            Ok(ClaimOutcome::Refused { current: None })
        ));
    }

    #[tokio::test]
    async fn fake_registry_locks_at_the_limit_and_never_creates_unknown_serials() {
        let registry = InMemoryRegistry::with_entries([RegistryEntry::allowed(
            Serial::parse("SN1").unwrap(),
            "m",
            "t",
        )]);
        let denial = |serial: &str| Denial {
            serial: Serial::parse(serial).unwrap(),
            reason: "wrong-claim-certificate".into(),
            at: datetime!(2026-11-25 12:00:00 UTC),
            lock_after: 2,
        };
        assert_eq!(
            registry.record_denial(&denial("SN1")).await,
            Ok(DenialOutcome::Counted { attempts: 1 })
        );
        assert_eq!(
            registry.record_denial(&denial("SN1")).await,
            Ok(DenialOutcome::Locked { attempts: 2 })
        );
        assert_eq!(
            registry.record_denial(&denial("SN1")).await,
            Ok(DenialOutcome::NotCounted)
        );
        assert_eq!(
            registry.record_denial(&denial("SN9")).await,
            Ok(DenialOutcome::NotCounted)
        );
        assert!(registry.entry("SN9").is_none());
    }

    #[tokio::test]
    async fn failing_behaviour_is_returned() {
        let registry = InMemoryRegistry::default();
        let error = StoreError::Unavailable {
            call: "x".into(),
            message: "down".into(),
        };
        registry.set_behaviour(Behaviour::Failing(error.clone()));
        assert_eq!(
            registry.get(&Serial::parse("SN1").unwrap()).await,
            Err(error)
        );
    }
}

/// The processor's tables in maps, committing all or nothing like the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct InMemoryProcessing {
    /// record_id to the alerts not yet published.
    seen: Mutex<HashMap<String, Vec<Anomaly>>>,
    stats: Mutex<HashMap<DeviceId, StoredStats>>,
    summaries: Mutex<HashMap<(DeviceId, String), HourlySummary>>,
    behaviour: Mutex<Behaviour>,
}

impl InMemoryProcessing {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    pub fn pending_alerts(&self) -> usize {
        lock(&self.seen).values().map(Vec::len).sum()
    }

    async fn behave(&self) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await
    }
}

impl ProcessingStore for InMemoryProcessing {
    async fn load_stats(&self, device: &DeviceId) -> Result<StoredStats, StoreError> {
        self.behave().await?;
        Ok(lock(&self.stats).get(device).cloned().unwrap_or_default())
    }

    async fn commit(&self, commit: &HourCommit) -> Result<CommitOutcome, StoreError> {
        self.behave().await?;
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
        self.behave().await?;
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

/// An alert topic that keeps what it is sent, or fails every publish.
#[derive(Debug, Default)]
pub struct RecordingAlerts {
    pub published: Mutex<Vec<Anomaly>>,
    behaviour: Mutex<Behaviour>,
}

impl RecordingAlerts {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    pub fn sent(&self) -> Vec<Anomaly> {
        lock(&self.published).clone()
    }
}

impl AlertSink for RecordingAlerts {
    async fn publish(&self, anomalies: &[Anomaly]) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        lock(&self.published).extend_from_slice(anomalies);
        Ok(())
    }
}

/// Every record's data in a Kinesis stream, shard by shard from the oldest, in each
/// shard's order: what integration tests read back after writing.
pub async fn read_stream(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<Vec<u8>>, String> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| format!("ListShards: {e:?}"))?;
    let mut data = Vec::new();
    for shard in shards.shards() {
        let iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| format!("GetShardIterator: {e:?}"))?;
        let mut next = iterator.shard_iterator().map(str::to_string);
        let mut failures = 0;
        while let Some(current) = next.take() {
            // Pages of 1,000: a page of 10,000 records takes kinesis-mock longer than a
            // client's attempt timeout on a busy machine. Reads are limited per shard
            // (five a second), so a refused read is waited out and asked again.
            let page = match client
                .get_records()
                .shard_iterator(&current)
                .limit(1_000)
                .send()
                .await
            {
                Ok(page) => page,
                Err(e) if failures < 10 => {
                    failures += 1;
                    tracing::debug!(error = ?e, "GetRecords failed; asking again");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    next = Some(current);
                    continue;
                }
                Err(e) => return Err(format!("GetRecords: {e:?}")),
            };
            data.extend(page.records().iter().map(|r| r.data().as_ref().to_vec()));
            // An open shard always has a next iterator; stop at the first empty page.
            if !page.records().is_empty() {
                next = page.next_shard_iterator().map(str::to_string);
            }
        }
    }
    Ok(data)
}

#[derive(Debug, Clone)]
struct FlagRow {
    device_id: String,
    request_id: String,
    reason: String,
    alert_pending: bool,
    lease_until: i64,
}

/// The OTA tables in maps, with the DynamoDB adapter's rules: outcomes counted once per
/// device and request, pause only from ACTIVE, flags once.
#[derive(Debug, Default)]
pub struct InMemoryOta {
    releases: Mutex<Vec<crate::ota::Release>>,
    rollouts: Mutex<Vec<crate::ota::RolloutState>>,
    offers: Mutex<Vec<crate::ota::OfferRecord>>,
    progress: Mutex<Vec<(String, crate::ota::StatusReport)>>,
    outcomes: Mutex<Vec<crate::ota::OutcomeRecord>>,
    flags: Mutex<Vec<FlagRow>>,
    /// Pause-alert leases by rollout id.
    pause_leases: Mutex<HashMap<String, i64>>,
    behaviour: Mutex<Behaviour>,
}

impl InMemoryOta {
    pub fn new(
        releases: impl IntoIterator<Item = crate::ota::Release>,
        rollouts: impl IntoIterator<Item = crate::ota::Rollout>,
    ) -> Self {
        let ota = Self::default();
        lock(&ota.releases).extend(releases);
        lock(&ota.rollouts).extend(
            rollouts
                .into_iter()
                .map(|rollout| crate::ota::RolloutState {
                    rollout,
                    pause_alert_pending: false,
                    pause_reason: None,
                    prior_successes: 0,
                    prior_failures: 0,
                }),
        );
        ota
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    pub fn rollout_state(&self, rollout_id: &str) -> Option<crate::ota::RolloutState> {
        lock(&self.rollouts)
            .iter()
            .find(|r| r.rollout.rollout_id == rollout_id)
            .cloned()
    }

    pub fn offers(&self) -> Vec<crate::ota::OfferRecord> {
        lock(&self.offers).clone()
    }

    pub fn outcomes(&self) -> Vec<crate::ota::OutcomeRecord> {
        lock(&self.outcomes).clone()
    }

    pub fn progress(&self) -> Vec<(String, crate::ota::StatusReport)> {
        lock(&self.progress).clone()
    }

    /// `(device_id, request_id, reason)` of every flag.
    pub fn flags(&self) -> Vec<(String, String, String)> {
        lock(&self.flags)
            .iter()
            .map(|f| (f.device_id.clone(), f.request_id.clone(), f.reason.clone()))
            .collect()
    }

    async fn behave(&self) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await
    }
}

impl crate::ota::FirmwareCatalog for InMemoryOta {
    async fn rollouts_of_model(&self, model: &str) -> Result<Vec<crate::ota::Rollout>, StoreError> {
        self.behave().await?;
        Ok(lock(&self.rollouts)
            .iter()
            .filter(|r| r.rollout.model == model)
            .map(|r| r.rollout.clone())
            .collect())
    }

    async fn release(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<crate::ota::Release>, StoreError> {
        self.behave().await?;
        Ok(lock(&self.releases)
            .iter()
            .find(|r| r.model == model && r.version == version)
            .cloned())
    }
}

impl crate::ota::OtaLedger for InMemoryOta {
    async fn record_offer(&self, offer: &crate::ota::OfferRecord) -> Result<(), StoreError> {
        self.behave().await?;
        let mut offers = lock(&self.offers);
        offers.retain(|o| !(o.device_id == offer.device_id && o.request_id == offer.request_id));
        offers.push(offer.clone());
        Ok(())
    }

    async fn offer(
        &self,
        device_id: &str,
        request_id: &str,
    ) -> Result<Option<crate::ota::OfferRecord>, StoreError> {
        self.behave().await?;
        Ok(lock(&self.offers)
            .iter()
            .find(|o| o.device_id == device_id && o.request_id == request_id)
            .cloned())
    }

    async fn record_progress(
        &self,
        device_id: &str,
        report: &crate::ota::StatusReport,
        _at: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.behave().await?;
        let mut progress = lock(&self.progress);
        progress.retain(|(d, r)| {
            !(d == device_id && r.request_id == report.request_id && r.status == report.status)
        });
        progress.push((device_id.to_owned(), report.clone()));
        Ok(())
    }

    async fn record_outcome(
        &self,
        outcome: &crate::ota::OutcomeRecord,
    ) -> Result<crate::ota::CountOutcome, StoreError> {
        self.behave().await?;
        let mut outcomes = lock(&self.outcomes);
        if outcomes
            .iter()
            .any(|o| o.device_id == outcome.device_id && o.request_id == outcome.request_id)
        {
            return Ok(crate::ota::CountOutcome::Duplicate);
        }
        let mut rollouts = lock(&self.rollouts);
        let Some(state) = rollouts
            .iter_mut()
            .find(|r| r.rollout.rollout_id == outcome.rollout_id)
        else {
            return Err(StoreError::corrupt(
                "InMemoryOta",
                "rollout no longer exists",
            ));
        };
        match outcome.phase.outcome() {
            Some(crate::ota::Outcome::Success) => state.rollout.successes += 1,
            _ => state.rollout.failures += 1,
        }
        outcomes.push(outcome.clone());
        Ok(crate::ota::CountOutcome::Counted)
    }

    async fn rollout(
        &self,
        rollout_id: &str,
    ) -> Result<Option<crate::ota::RolloutState>, StoreError> {
        self.behave().await?;
        Ok(self.rollout_state(rollout_id))
    }

    async fn pause(
        &self,
        rollout_id: &str,
        reason: &str,
        _at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.behave().await?;
        let mut rollouts = lock(&self.rollouts);
        match rollouts
            .iter_mut()
            .find(|r| r.rollout.rollout_id == rollout_id)
        {
            Some(state) if state.rollout.status == crate::ota::RolloutStatus::Active => {
                state.rollout.status = crate::ota::RolloutStatus::Paused;
                state.pause_alert_pending = true;
                state.pause_reason = Some(reason.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_pause_alert(
        &self,
        rollout_id: &str,
        now: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.behave().await?;
        let owed = self
            .rollout_state(rollout_id)
            .is_some_and(|r| r.pause_alert_pending);
        let mut leases = lock(&self.pause_leases);
        let free = leases
            .get(rollout_id)
            .is_none_or(|until| *until < now.unix_timestamp());
        if owed && free {
            leases.insert(
                rollout_id.to_owned(),
                now.unix_timestamp() + crate::ota::ALERT_LEASE_SECONDS,
            );
        }
        Ok(owed && free)
    }

    async fn clear_pause_alert(&self, rollout_id: &str) -> Result<(), StoreError> {
        self.behave().await?;
        if let Some(state) = lock(&self.rollouts)
            .iter_mut()
            .find(|r| r.rollout.rollout_id == rollout_id)
        {
            state.pause_alert_pending = false;
        }
        lock(&self.pause_leases).remove(rollout_id);
        Ok(())
    }

    async fn flag_unoffered(
        &self,
        report: &crate::ota::StatusReport,
        reason: &str,
        at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.behave().await?;
        let now = at.unix_timestamp();
        let lease_until = now + crate::ota::ALERT_LEASE_SECONDS;
        let mut flags = lock(&self.flags);
        let found = flags
            .iter_mut()
            .find(|f| f.device_id == report.thing_name && f.request_id == report.request_id);
        match found {
            Some(flag) if flag.alert_pending && flag.lease_until < now => {
                flag.lease_until = lease_until;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                flags.push(FlagRow {
                    device_id: report.thing_name.clone(),
                    request_id: report.request_id.clone(),
                    reason: reason.to_owned(),
                    alert_pending: true,
                    lease_until,
                });
                Ok(true)
            }
        }
    }

    async fn clear_flag_alert(&self, device_id: &str, request_id: &str) -> Result<(), StoreError> {
        self.behave().await?;
        for flag in lock(&self.flags).iter_mut() {
            if flag.device_id == device_id && flag.request_id == request_id {
                flag.alert_pending = false;
            }
        }
        Ok(())
    }
}

/// Records what would be published to devices.
#[derive(Debug, Default)]
pub struct RecordingChannel {
    published: Mutex<Vec<(String, serde_json::Value)>>,
    behaviour: Mutex<Behaviour>,
}

impl RecordingChannel {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    /// `(topic, payload as JSON)` of every message, in order.
    pub fn published(&self) -> Vec<(String, serde_json::Value)> {
        lock(&self.published).clone()
    }
}

impl crate::ota::DeviceChannel for RecordingChannel {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let value = serde_json::from_slice(&payload)
            .map_err(|e| StoreError::corrupt("RecordingChannel", e.to_string()))?;
        lock(&self.published).push((topic.to_owned(), value));
        Ok(())
    }
}

/// Records OTA alerts.
#[derive(Debug, Default)]
pub struct RecordingOtaAlerts {
    sent: Mutex<Vec<crate::ota::OtaAlert>>,
    behaviour: Mutex<Behaviour>,
}

impl RecordingOtaAlerts {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    pub fn sent(&self) -> Vec<crate::ota::OtaAlert> {
        lock(&self.sent).clone()
    }
}

impl crate::ota::OtaAlerts for RecordingOtaAlerts {
    async fn alert(&self, alert: &crate::ota::OtaAlert) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        lock(&self.sent).push(alert.clone());
        Ok(())
    }
}

/// An idempotency table in a map, with the adapter's claim rules (free when unused,
/// expired, or claimed before `stale_before`), and a switchable failure.
#[derive(Debug, Default)]
pub struct InMemoryIdempotency {
    /// key -> (fingerprint, claimed_at, answer, expires_at)
    rows: Mutex<HashMap<String, IdempotencyRow>>,
    behaviour: Mutex<Behaviour>,
}

#[derive(Debug, Clone)]
struct IdempotencyRow {
    fingerprint: String,
    claimed_at: time::OffsetDateTime,
    response: Option<crate::idempotency::StoredResponse>,
    expires_at: time::OffsetDateTime,
}

impl InMemoryIdempotency {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    /// The keys that hold a row (claimed or answered).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = lock(&self.rows).keys().cloned().collect();
        keys.sort();
        keys
    }
}

impl crate::idempotency::IdempotencyStore for InMemoryIdempotency {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        now: time::OffsetDateTime,
        stale_before: time::OffsetDateTime,
        expires_at: time::OffsetDateTime,
    ) -> Result<crate::idempotency::Claim, StoreError> {
        use crate::idempotency::Claim;
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let mut rows = lock(&self.rows);
        if let Some(row) = rows.get(key) {
            let free =
                row.expires_at < now || (row.response.is_none() && row.claimed_at < stale_before);
            if !free {
                return Ok(match &row.response {
                    Some(response) => Claim::Completed {
                        fingerprint: row.fingerprint.clone(),
                        response: response.clone(),
                    },
                    None => Claim::InProgress {
                        fingerprint: row.fingerprint.clone(),
                    },
                });
            }
        }
        rows.insert(
            key.to_string(),
            IdempotencyRow {
                fingerprint: fingerprint.to_string(),
                claimed_at: now,
                response: None,
                expires_at,
            },
        );
        Ok(Claim::Claimed)
    }

    async fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        response: &crate::idempotency::StoredResponse,
        expires_at: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let mut rows = lock(&self.rows);
        let claimed_at = rows
            .get(key)
            .map_or(time::OffsetDateTime::UNIX_EPOCH, |row| row.claimed_at);
        rows.insert(
            key.to_string(),
            IdempotencyRow {
                fingerprint: fingerprint.to_string(),
                claimed_at,
                response: Some(response.clone()),
                expires_at,
            },
        );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let mut rows = lock(&self.rows);
        if rows.get(key).is_some_and(|row| row.response.is_none()) {
            rows.remove(key);
        }
        Ok(())
    }
}

/// A rate counter in a map, with the adapter's rule (count unless `limit` are counted)
/// and a switchable failure.
#[derive(Debug, Default)]
pub struct InMemoryRateCounter {
    /// key -> (count, expires_at)
    rows: Mutex<HashMap<String, (u32, time::OffsetDateTime)>>,
    behaviour: Mutex<Behaviour>,
}

impl InMemoryRateCounter {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    /// Every count: (key, count, expires_at), by key.
    pub fn counts(&self) -> Vec<(String, u32, time::OffsetDateTime)> {
        let mut counts: Vec<_> = lock(&self.rows)
            .iter()
            .map(|(key, (count, expires_at))| (key.clone(), *count, *expires_at))
            .collect();
        counts.sort_by(|a, b| a.0.cmp(&b.0));
        counts
    }
}

impl crate::rate_limit::RateCounter for InMemoryRateCounter {
    async fn try_take(
        &self,
        key: &str,
        limit: u32,
        expires_at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let mut rows = lock(&self.rows);
        let row = rows.entry(key.to_string()).or_insert((0, expires_at));
        if row.0 >= limit {
            return Ok(false);
        }
        *row = (row.0 + 1, expires_at);
        Ok(true)
    }
}

/// Invokes a function the way a developer would, `cargo lambda invoke`, against the
/// `cargo lambda watch` that `scripts/stack up` starts (`CARGO_LAMBDA` names the binary,
/// `FLEETWIRE_LAMBDA_PORT` the port), and returns its JSON answer.
pub fn invoke_under_watch(function: &str, payload: &serde_json::Value) -> serde_json::Value {
    let cargo_lambda = std::env::var("CARGO_LAMBDA").unwrap_or_else(|_| "cargo-lambda".into());
    let port = std::env::var("FLEETWIRE_LAMBDA_PORT").unwrap_or_else(|_| "9000".into());
    let output = std::process::Command::new(&cargo_lambda)
        .args([
            "lambda",
            "invoke",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port,
        ])
        .arg(function)
        .arg("--data-ascii")
        .arg(payload.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo_lambda}: {e}; run scripts/setup"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo lambda invoke {function} failed ({}): {}{}\nis `cargo lambda watch` running? scripts/stack up starts it",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not a JSON answer ({e}): {stdout}"))
}

/// The telemetry records in a Kinesis stream whose `device_id` starts with `prefix`, as
/// JSON, in [`read_stream`]'s order: one test's records among every earlier run's.
pub async fn read_stream_devices(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    prefix: &str,
) -> Vec<serde_json::Value> {
    read_stream(client, stream)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{START_HINT}"))
        .iter()
        .filter_map(|data| serde_json::from_slice::<serde_json::Value>(data).ok())
        .filter(|value| {
            value["device_id"]
                .as_str()
                .is_some_and(|d| d.starts_with(prefix))
        })
        .collect()
}

/// What a `local_stack` test says when the stack it needs is not there.
pub const START_HINT: &str =
    "the local stack is not up: run `scripts/stack up` (or `scripts/test`, which starts it)";

/// A variable of `stack.env` (names of tables, queues, streams, ports), or a panic that
/// says how to start the stack.
pub fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set; {START_HINT}"))
}

/// A suffix that keeps one test run's keys apart from earlier runs against the same stack:
/// milliseconds since the epoch and four random digits.
pub fn run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{millis}{:04}", fastrand::u16(..10_000))
}
