//! The State table: the latest known picture of each device.
//!
//! Readings arrive late, twice and out of order; a write only lands when it is newer than
//! what is stored, so the picture never goes backwards.

use std::future::Future;

use serde_json::Value;

use crate::domain::telemetry::{DeviceId, TelemetryRecord};
use crate::runtime::error::StoreError;

/// One device's row in the State table.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceState {
    pub device_id: DeviceId,
    /// The newest reading, as stored.
    pub last_telemetry: Option<Value>,
    /// That reading's timestamp, epoch milliseconds.
    pub last_telemetry_at: Option<i64>,
    /// How many writes have landed; grows by one per applied write.
    pub version: u64,
}

/// A conditional write's result: the business answer, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Applied,
    /// Something at least as new was already stored; nothing changed.
    Stale,
}

pub trait DeviceStateStore: Send + Sync {
    fn get(
        &self,
        device_id: &DeviceId,
    ) -> impl Future<Output = Result<Option<DeviceState>, StoreError>> + Send;

    /// Stores `reading` as the device's latest unless a reading with the same or a later
    /// timestamp is already there.
    fn record_telemetry(
        &self,
        reading: &TelemetryRecord,
    ) -> impl Future<Output = Result<WriteOutcome, StoreError>> + Send;
}
