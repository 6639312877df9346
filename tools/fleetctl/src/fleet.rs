//! `fleetctl fleet status`: the fleet at a glance, from its tables. Per model: the serials
//! the Registry holds by status, the devices with State, and how many are online now;
//! then every rollout with its reach, its outcomes and its status. Rates over time
//! (readings per second, rejections, denials) are the dashboard's, from the functions'
//! metrics; this is the state of things now.

use fleetwire::domain::fleet::FleetOverview;

use crate::output::Table;
use crate::{Answer, Failure};

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

#[cfg(test)]
mod tests;
