//! The OTA tables in maps, with the DynamoDB adapter's rules.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::runtime::error::StoreError;
use crate::testing::{Behaviour, lock};

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
    releases: Mutex<Vec<crate::domain::ota::Release>>,
    rollouts: Mutex<Vec<crate::domain::ota::RolloutState>>,
    offers: Mutex<Vec<crate::domain::ota::OfferRecord>>,
    progress: Mutex<Vec<(String, crate::domain::ota::StatusReport)>>,
    outcomes: Mutex<Vec<crate::domain::ota::OutcomeRecord>>,
    flags: Mutex<Vec<FlagRow>>,
    /// Pause-alert leases by rollout id.
    pause_leases: Mutex<HashMap<String, i64>>,
    behaviour: Mutex<Behaviour>,
}

impl InMemoryOta {
    pub fn new(
        releases: impl IntoIterator<Item = crate::domain::ota::Release>,
        rollouts: impl IntoIterator<Item = crate::domain::ota::Rollout>,
    ) -> Self {
        let ota = Self::default();
        lock(&ota.releases).extend(releases);
        lock(&ota.rollouts).extend(rollouts.into_iter().map(|rollout| {
            crate::domain::ota::RolloutState {
                rollout,
                pause_alert_pending: false,
                pause_reason: None,
                prior_successes: 0,
                prior_failures: 0,
            }
        }));
        ota
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    pub fn rollout_state(&self, rollout_id: &str) -> Option<crate::domain::ota::RolloutState> {
        lock(&self.rollouts)
            .iter()
            .find(|r| r.rollout.rollout_id == rollout_id)
            .cloned()
    }

    pub fn offers(&self) -> Vec<crate::domain::ota::OfferRecord> {
        lock(&self.offers).clone()
    }

    pub fn outcomes(&self) -> Vec<crate::domain::ota::OutcomeRecord> {
        lock(&self.outcomes).clone()
    }

    pub fn progress(&self) -> Vec<(String, crate::domain::ota::StatusReport)> {
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

impl crate::domain::ota::FirmwareCatalog for InMemoryOta {
    async fn rollouts_of_model(
        &self,
        model: &str,
    ) -> Result<Vec<crate::domain::ota::Rollout>, StoreError> {
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
    ) -> Result<Option<crate::domain::ota::Release>, StoreError> {
        self.behave().await?;
        Ok(lock(&self.releases)
            .iter()
            .find(|r| r.model == model && r.version == version)
            .cloned())
    }
}

impl crate::domain::ota::OtaLedger for InMemoryOta {
    async fn record_offer(
        &self,
        offer: &crate::domain::ota::OfferRecord,
    ) -> Result<(), StoreError> {
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
    ) -> Result<Option<crate::domain::ota::OfferRecord>, StoreError> {
        self.behave().await?;
        Ok(lock(&self.offers)
            .iter()
            .find(|o| o.device_id == device_id && o.request_id == request_id)
            .cloned())
    }

    async fn record_progress(
        &self,
        device_id: &str,
        report: &crate::domain::ota::StatusReport,
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
        outcome: &crate::domain::ota::OutcomeRecord,
    ) -> Result<crate::domain::ota::CountOutcome, StoreError> {
        self.behave().await?;
        let mut outcomes = lock(&self.outcomes);
        if outcomes
            .iter()
            .any(|o| o.device_id == outcome.device_id && o.request_id == outcome.request_id)
        {
            return Ok(crate::domain::ota::CountOutcome::Duplicate);
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
            Some(crate::domain::ota::Outcome::Success) => state.rollout.successes += 1,
            _ => state.rollout.failures += 1,
        }
        outcomes.push(outcome.clone());
        Ok(crate::domain::ota::CountOutcome::Counted)
    }

    async fn rollout(
        &self,
        rollout_id: &str,
    ) -> Result<Option<crate::domain::ota::RolloutState>, StoreError> {
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
            Some(state) if state.rollout.status == crate::domain::ota::RolloutStatus::Active => {
                state.rollout.status = crate::domain::ota::RolloutStatus::Paused;
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
                now.unix_timestamp() + crate::domain::ota::ALERT_LEASE_SECONDS,
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
        report: &crate::domain::ota::StatusReport,
        reason: &str,
        at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.behave().await?;
        let now = at.unix_timestamp();
        let lease_until = now + crate::domain::ota::ALERT_LEASE_SECONDS;
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
