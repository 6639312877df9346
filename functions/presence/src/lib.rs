//! presence: the target of the `$aws/events/presence/+/+` IoT rule.
//!
//! Each lifecycle event is applied to the device's State row by the rules of
//! `fleetwire::domain::presence` (events ordered by IoT Core's version numbers, not its
//! approximate clock; a disconnect of the current connection only; a disconnect that
//! arrives before its connect held until it comes), so late, duplicate and reordered
//! events never show a device offline that is online.

pub mod config;

use fleetwire::domain::presence::{
    LifecycleEvent, LifecycleType, PresenceOutcome, PresenceStore, device_of,
};
use fleetwire::runtime::error::StoreError;
use fleetwire::runtime::metrics;
use serde::Serialize;
use serde_json::Value;

pub use config::PresenceConfig;

/// What the function did with one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Handled {
    Applied {
        device_id: String,
        outcome: &'static str,
    },
    /// Not a lifecycle event of a device: logged and dropped, as retrying cannot help.
    Ignored { reason: String },
}

pub fn outcome_name(outcome: PresenceOutcome) -> &'static str {
    match outcome {
        PresenceOutcome::Connected => "connected",
        PresenceOutcome::ConnectedAndEnded => "connected_and_ended",
        PresenceOutcome::Disconnected => "disconnected",
        PresenceOutcome::DisconnectHeld => "disconnect_held",
        PresenceOutcome::Ignored => "ignored",
        PresenceOutcome::Refused => "refused",
    }
}

pub struct Presence<S> {
    store: S,
}

impl<S: PresenceStore> Presence<S> {
    pub fn new(store: S) -> Self {
        Presence { store }
    }

    /// Applies one event. A store failure is an error, so Lambda retries the event and
    /// finally keeps it in the failed-events queue.
    pub async fn handle(&self, event: &Value) -> Result<Handled, StoreError> {
        let lifecycle = match LifecycleEvent::parse(event) {
            Ok(lifecycle) => lifecycle,
            Err(e) => {
                let reason = format!("not a lifecycle event: {e}");
                tracing::warn!(reason = %reason, "presence event ignored");
                return Ok(Handled::Ignored { reason });
            }
        };
        let device = match device_of(&lifecycle) {
            Ok(device) => device,
            Err(reason) => {
                tracing::info!(client_id = %lifecycle.client_id, reason = %reason, "presence event ignored");
                return Ok(Handled::Ignored { reason });
            }
        };
        let outcome = self.store.apply_presence(&device, &lifecycle).await?;
        if outcome == PresenceOutcome::Refused {
            // A connection under the device's client id with a certificate that is not
            // the thing's own: a leaked claim certificate, or a cloned device.
            tracing::warn!(
                security_event = "presence_principal_refused",
                device_id = %device,
                principal = lifecycle.principal_identifier.as_deref().unwrap_or("-"),
                event_type = ?lifecycle.event_type,
                session = %lifecycle.session_identifier,
                "lifecycle event refused: not the thing's own certificate"
            );
            metrics::count(metrics::name::PRESENCE_SPOOFED, 1);
        }
        tracing::info!(
            device_id = %device,
            event_type = ?lifecycle.event_type,
            session = %lifecycle.session_identifier,
            version = lifecycle.version_number,
            timestamp = lifecycle.timestamp,
            outcome = outcome_name(outcome),
            "presence event applied"
        );
        metrics::count_by(
            metrics::name::PRESENCE_EVENTS,
            "Event",
            match lifecycle.event_type {
                LifecycleType::Connected => "connected",
                LifecycleType::Disconnected => "disconnected",
            },
            1,
        );
        Ok(Handled::Applied {
            device_id: device.to_string(),
            outcome: outcome_name(outcome),
        })
    }
}

#[cfg(test)]
mod tests;
