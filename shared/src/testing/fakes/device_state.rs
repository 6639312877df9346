//! The State table in a map, newer-wins like the DynamoDB adapter, for both of its ports
//! (presence and the latest reading).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::device_state::{DeviceState, DeviceStateStore, WriteOutcome};
use crate::domain::presence::{
    CertificateBinding, LifecycleEvent, PresenceOutcome, PresenceState, PresenceStore,
};
use crate::domain::telemetry::{DeviceId, TelemetryRecord};
use crate::runtime::error::StoreError;
use crate::testing::{Behaviour, lock};

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

impl CertificateBinding for InMemoryDeviceState {
    async fn bind_certificate(
        &self,
        device: &DeviceId,
        certificate_id: &str,
    ) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        lock(&self.presence)
            .entry(device.clone())
            .or_default()
            .certificate_id = Some(certificate_id.to_string());
        Ok(())
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
