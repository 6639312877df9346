//! How the overview prints: a table per models and rollouts, or JSON.

use fleetwire::domain::fleet::{FleetOverview, ModelRow, RolloutRow};

use super::*;

#[test]
fn the_overview_prints_as_tables_or_json() {
    let fleet = FleetOverview {
        models: vec![
            ModelRow {
                model: "gateway-y".into(),
                revoked: 1,
                ..ModelRow::default()
            },
            ModelRow {
                model: "sensor-x".into(),
                provisioned: 2,
                online: 1,
                offline: 1,
                with_state: 2,
                ..ModelRow::default()
            },
        ],
        rollouts: vec![RolloutRow {
            rollout_id: "r-15".into(),
            model: "sensor-x".into(),
            version: "1.5.0".into(),
            percentage: 25.0,
            status: "PAUSED",
            succeeded: 7,
            failed: 3,
        }],
        online: 2,
        offline: 2,
        unregistered_with_state: 1,
    };
    let text = render(&fleet, false).unwrap().text;
    assert!(
        text.starts_with("devices online 2, offline 2 (1 with State but not in the Registry)"),
        "{text}"
    );
    assert!(text.contains("r-15"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&render(&fleet, true).unwrap().text).unwrap();
    assert_eq!(json["models"][0]["model"], "gateway-y");
}
