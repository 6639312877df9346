//! The fleet at a glance, joined from its tables: per model, the serials the Registry holds
//! by status, the devices with State and how many are online; every rollout with its reach,
//! outcomes and status; the latest device-hours with anomalies. `fleetctl fleet status` and
//! the local stack's dashboard both show it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::ota::RolloutState;
use crate::domain::registry::{RegistryEntry, RegistryStatus};

/// A device's row of the State table, as far as the overview needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub device_id: String,
    pub online: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModelRow {
    pub model: String,
    pub allowed: usize,
    pub provisioned: usize,
    pub locked: usize,
    pub revoked: usize,
    /// Devices of the model that have a State row (they connected or reported).
    pub with_state: usize,
    pub online: usize,
    pub offline: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutRow {
    pub rollout_id: String,
    pub model: String,
    pub version: String,
    pub percentage: f64,
    pub status: &'static str,
    /// Outcomes in all, across resumes.
    pub succeeded: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FleetOverview {
    pub models: Vec<ModelRow>,
    pub rollouts: Vec<RolloutRow>,
    pub online: usize,
    pub offline: usize,
    /// State rows of no Registry thing (a device registered another way, or removed).
    pub unregistered_with_state: usize,
}

/// Joins the three tables: a State row belongs to the model of the Registry entry whose
/// thing it is.
pub fn overview(
    entries: &[RegistryEntry],
    states: &[DeviceState],
    rollouts: &[RolloutState],
) -> FleetOverview {
    let mut models: BTreeMap<String, ModelRow> = BTreeMap::new();
    let mut model_of: BTreeMap<&str, &str> = BTreeMap::new();
    for entry in entries {
        model_of.insert(entry.thing_name.as_str(), entry.model.as_str());
        let row = models
            .entry(entry.model.clone())
            .or_insert_with(|| ModelRow {
                model: entry.model.clone(),
                ..ModelRow::default()
            });
        match entry.status {
            RegistryStatus::Allowed => row.allowed += 1,
            RegistryStatus::Provisioned => row.provisioned += 1,
            RegistryStatus::Locked => row.locked += 1,
            RegistryStatus::Revoked => row.revoked += 1,
        }
    }
    let mut fleet = FleetOverview::default();
    for state in states {
        if state.online {
            fleet.online += 1;
        } else {
            fleet.offline += 1;
        }
        let Some(model) = model_of.get(state.device_id.as_str()) else {
            fleet.unregistered_with_state += 1;
            continue;
        };
        if let Some(row) = models.get_mut(*model) {
            row.with_state += 1;
            if state.online {
                row.online += 1;
            } else {
                row.offline += 1;
            }
        }
    }
    fleet.models = models.into_values().collect();
    fleet.rollouts = rollouts
        .iter()
        .map(|state| RolloutRow {
            rollout_id: state.rollout.rollout_id.clone(),
            model: state.rollout.model.clone(),
            version: state.rollout.version.clone(),
            percentage: state.rollout.percentage,
            status: state.rollout.status.as_str(),
            succeeded: state.rollout.successes + state.prior_successes,
            failed: state.rollout.failures + state.prior_failures,
        })
        .collect();
    fleet
}

/// A device-hour of the Summaries table that raised anomalies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnomalousHour {
    pub device_id: String,
    /// The hour, as the Summaries table keys it (`2026-12-07T14`).
    pub hour: String,
    pub anomalies: u64,
    pub readings: u64,
}

/// The `limit` most recent anomalous hours, newest first (ties by device id).
pub fn latest_anomalies(mut hours: Vec<AnomalousHour>, limit: usize) -> Vec<AnomalousHour> {
    hours.sort_by(|a, b| {
        b.hour
            .cmp(&a.hour)
            .then_with(|| a.device_id.cmp(&b.device_id))
    });
    hours.truncate(limit);
    hours
}

#[cfg(test)]
mod tests;
