//! The alert ports (anomalies, OTA), keeping what they are sent.

use std::sync::Mutex;

use crate::domain::processing::{AlertSink, Anomaly};
use crate::runtime::error::StoreError;
use crate::testing::{Behaviour, lock};

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

/// Records OTA alerts.
#[derive(Debug, Default)]
pub struct RecordingOtaAlerts {
    sent: Mutex<Vec<crate::domain::ota::OtaAlert>>,
    behaviour: Mutex<Behaviour>,
}

impl RecordingOtaAlerts {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    pub fn sent(&self) -> Vec<crate::domain::ota::OtaAlert> {
        lock(&self.sent).clone()
    }
}

impl crate::domain::ota::OtaAlerts for RecordingOtaAlerts {
    async fn alert(&self, alert: &crate::domain::ota::OtaAlert) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        lock(&self.sent).push(alert.clone());
        Ok(())
    }
}
