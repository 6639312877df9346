//! The channel to devices (the IoT data plane), recording what would be published.

use std::sync::Mutex;

use crate::runtime::error::StoreError;
use crate::testing::{Behaviour, lock};

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

impl crate::domain::ota::DeviceChannel for RecordingChannel {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let value = serde_json::from_slice(&payload)
            .map_err(|e| StoreError::corrupt("RecordingChannel", e.to_string()))?;
        lock(&self.published).push((topic.to_owned(), value));
        Ok(())
    }
}
