//! The overview's join of Registry, State and Rollouts, and the latest anomalies.

use crate::domain::ota::{Rollout, RolloutState, RolloutStatus};
use crate::domain::registry::{RegistryEntry, RegistryStatus, Serial};

use super::*;

fn entry(serial: &str, model: &str, thing: &str, status: RegistryStatus) -> RegistryEntry {
    let mut entry = RegistryEntry::allowed(Serial::parse(serial).unwrap(), model, thing);
    entry.status = status;
    entry
}

fn state(device: &str, online: bool) -> DeviceState {
    DeviceState {
        device_id: device.into(),
        online,
    }
}

#[test]
fn state_rows_count_under_the_model_of_their_thing() {
    let entries = [
        entry("SN-1", "sensor-x", "car-1", RegistryStatus::Provisioned),
        entry("SN-2", "sensor-x", "car-2", RegistryStatus::Provisioned),
        entry("SN-3", "sensor-x", "car-3", RegistryStatus::Allowed),
        entry("SN-4", "gateway-y", "gw-1", RegistryStatus::Revoked),
        entry("SN-5", "gateway-y", "gw-2", RegistryStatus::Locked),
    ];
    let states = [
        state("car-1", true),
        state("car-2", false),
        state("gw-1", false),
        state("stray-9", true),
    ];
    let mut paused = Rollout::active("r-15", "sensor-x", "1.5.0", 25.0, 0.2, 10);
    paused.status = RolloutStatus::Paused;
    paused.successes = 2;
    paused.failures = 3;
    let rollouts = [RolloutState {
        rollout: paused,
        pause_alert_pending: false,
        pause_reason: Some("failure rate 60 %".into()),
        prior_successes: 5,
        prior_failures: 0,
    }];
    let fleet = overview(&entries, &states, &rollouts);
    assert_eq!(
        (fleet.online, fleet.offline, fleet.unregistered_with_state),
        (2, 2, 1)
    );
    let sensor = fleet.models.iter().find(|m| m.model == "sensor-x").unwrap();
    assert_eq!(
        (
            sensor.allowed,
            sensor.provisioned,
            sensor.with_state,
            sensor.online,
            sensor.offline
        ),
        (1, 2, 2, 1, 1)
    );
    let gateway = fleet
        .models
        .iter()
        .find(|m| m.model == "gateway-y")
        .unwrap();
    assert_eq!(
        (gateway.revoked, gateway.locked, gateway.offline),
        (1, 1, 1)
    );
    assert_eq!(
        fleet.rollouts[0],
        RolloutRow {
            rollout_id: "r-15".into(),
            model: "sensor-x".into(),
            version: "1.5.0".into(),
            percentage: 25.0,
            status: "PAUSED",
            succeeded: 7,
            failed: 3,
        }
    );
}

#[test]
fn latest_anomalies_are_the_newest_hours_first() {
    let hour = |device: &str, hour: &str| AnomalousHour {
        device_id: device.into(),
        hour: hour.into(),
        anomalies: 1,
        readings: 10,
    };
    let latest = latest_anomalies(
        vec![
            hour("car-2", "2026-12-07T13"),
            hour("car-9", "2026-12-07T14"),
            hour("car-1", "2026-12-07T14"),
            hour("car-3", "2026-12-06T23"),
        ],
        3,
    );
    let order: Vec<_> = latest
        .iter()
        .map(|h| (h.device_id.as_str(), h.hour.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("car-1", "2026-12-07T14"),
            ("car-9", "2026-12-07T14"),
            ("car-2", "2026-12-07T13")
        ]
    );
}
