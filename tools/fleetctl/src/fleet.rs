//! `fleetctl fleet status`: the fleet at a glance, from its tables. Per model: the serials
//! the Registry holds by status, the devices with State, and how many are online now;
//! then every rollout with its reach, its outcomes and its status. Rates over time
//! (readings per second, rejections, denials) are the dashboard's, from the functions'
//! metrics; this is the state of things now.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use fleetwire::domain::ota::RolloutState;
use fleetwire::domain::registry::{RegistryEntry, RegistryStatus};
use serde::Serialize;

use crate::error::sdk_failure;
use crate::output::Table;
use crate::{Answer, Failure};

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

pub fn render(fleet: &FleetOverview, json: bool) -> Result<Answer, Failure> {
    if json {
        return crate::output::json(fleet).map(Answer::ok);
    }
    let mut text = format!(
        "devices online {}, offline {}{}\n\n",
        fleet.online,
        fleet.offline,
        if fleet.unregistered_with_state > 0 {
            format!(
                " ({} with State but not in the Registry)",
                fleet.unregistered_with_state
            )
        } else {
            String::new()
        }
    );
    let mut models = Table::new([
        "MODEL",
        "ALLOWED",
        "PROVISIONED",
        "LOCKED",
        "REVOKED",
        "ONLINE",
        "OFFLINE",
    ]);
    for row in &fleet.models {
        models.row([
            row.model.clone(),
            row.allowed.to_string(),
            row.provisioned.to_string(),
            row.locked.to_string(),
            row.revoked.to_string(),
            row.online.to_string(),
            row.offline.to_string(),
        ]);
    }
    text.push_str(&models.render());
    if fleet.rollouts.is_empty() {
        text.push_str("\nno rollouts\n");
    } else {
        let mut rollouts = Table::new([
            "ROLLOUT",
            "MODEL",
            "VERSION",
            "REACH",
            "STATUS",
            "SUCCEEDED",
            "FAILED",
        ]);
        for row in &fleet.rollouts {
            rollouts.row([
                row.rollout_id.clone(),
                row.model.clone(),
                row.version.clone(),
                format!("{} %", row.percentage),
                row.status.to_string(),
                row.succeeded.to_string(),
                row.failed.to_string(),
            ]);
        }
        text.push('\n');
        text.push_str(&rollouts.render());
    }
    Ok(Answer::ok(text.trim_end().to_string()))
}

/// Every State row's device and whether it is online (a Scan of two attributes: fine for
/// an operator, a few MB at 20,000 devices).
pub async fn scan_states(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<DeviceState>, Failure> {
    let mut states = Vec::new();
    let mut pages = client
        .scan()
        .table_name(table)
        .projection_expression("device_id, #online")
        .expression_attribute_names("#online", "online")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_failure("DynamoDB.Scan", e))?;
        for item in page.items() {
            let Some(AttributeValue::S(device_id)) = item.get("device_id") else {
                continue;
            };
            states.push(DeviceState {
                device_id: device_id.clone(),
                online: matches!(item.get("online"), Some(AttributeValue::Bool(true))),
            });
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests;
