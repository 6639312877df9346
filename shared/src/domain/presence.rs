//! Device presence from IoT Core lifecycle events, right under late, duplicate and
//! reordered delivery and under IoT Core's approximate clock.
//!
//! What AWS promises (AWS IoT Core developer guide, "Lifecycle events",
//! <https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html>):
//! lifecycle messages "might be sent out of order" and duplicated; `timestamp` is "an
//! approximation of when the event occurred", accurate to ±2 minutes; `versionNumber` is
//! "a monotonically increasing long integer value for each client ID connection" that a
//! subscriber uses "to infer the order of lifecycle events": a connection's connect and
//! disconnect carry the same number, and it starts again from 0 once the client id has
//! been disconnected for about an hour.
//!
//! So events are ordered by their [`Mark`]: by version number, unless their timestamps
//! lie [`RESET_GAP_MS`] or more apart, when only the timestamps can order them (a reset may
//! lie between them, and no clock error is that large). The rules, applied by the pure
//! [`PresenceState::apply`] and by the DynamoDB adapter in single conditional writes:
//! - a connect applies when it is after the current connection's connect; it makes the
//!   device online and clears the previous connection's disconnect;
//! - a disconnect applies only to the current connection (same version and session);
//! - a disconnect of a connection after the current one is remembered (the latest one),
//!   so when that connection's connect comes it applies and the device is offline at once;
//! - anything else (older, duplicate, another connection's disconnect) changes nothing.
//!
//! When a device reconnects, IoT Core ends the old connection (`DUPLICATE_CLIENTID`); that
//! disconnect carries the old connection's version, so it can never end the new one,
//! whatever the timestamps say.
//!
//! Before any of that, an event counts only when its `principalIdentifier` (for a mutual
//! TLS connection, the certificate id) is the thing's own certificate, the one the
//! provisioning hook bound to the thing: a connection made with another certificate (a
//! leaked claim certificate, say) under the device's client id changes nothing and is
//! [`PresenceOutcome::Refused`]. A thing with no bound certificate refuses every event.

use serde::{Deserialize, Serialize};

use crate::domain::telemetry::DeviceId;

/// Timestamps this far apart order two events by themselves. Half an hour: far more than
/// twice IoT Core's ±2 minutes, far less than the hour of disconnection after which version
/// numbers start again.
pub const RESET_GAP_MS: i64 = 30 * 60 * 1000;

/// One lifecycle event, as IoT Core publishes it on `$aws/events/presence/<type>/<clientId>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEvent {
    pub client_id: String,
    /// Milliseconds since the epoch, ±2 minutes.
    pub timestamp: i64,
    pub event_type: LifecycleType,
    pub session_identifier: String,
    #[serde(default)]
    pub principal_identifier: Option<String>,
    /// The connection's number for this client id; what orders events.
    pub version_number: i64,
    #[serde(default)]
    pub client_initiated_disconnect: Option<bool>,
    #[serde(default)]
    pub disconnect_reason: Option<String>,
}

impl LifecycleEvent {
    /// Reads the event the presence rule passes on, or says which field is wrong.
    pub fn parse(event: &serde_json::Value) -> Result<Self, String> {
        crate::runtime::json::from_value(event)
    }

    pub fn mark(&self) -> Mark {
        Mark {
            version: self.version_number,
            at: self.timestamp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleType {
    Connected,
    Disconnected,
}

/// Where an event stands in a client id's history: its version number and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub version: i64,
    pub at: i64,
}

impl Mark {
    /// Whether this event happened after `other`: by timestamp when they lie
    /// [`RESET_GAP_MS`] or more apart, otherwise by version number.
    pub fn is_after(&self, other: &Mark) -> bool {
        other.at <= self.at - RESET_GAP_MS
            || (other.at < self.at + RESET_GAP_MS && other.version < self.version)
    }
}

/// A disconnect whose connect has not been applied yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PendingDisconnect {
    pub session_id: String,
    pub version: i64,
    pub at: i64,
    pub reason: Option<String>,
}

impl PendingDisconnect {
    fn mark(&self) -> Mark {
        Mark {
            version: self.version,
            at: self.at,
        }
    }

    /// Whether this is the disconnect of the connection `connect` starts.
    fn ends(&self, connect: &LifecycleEvent) -> bool {
        self.version == connect.version_number
            && self.session_id == connect.session_identifier
            && self.at > connect.timestamp - RESET_GAP_MS
    }
}

/// The presence part of a device's State row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresenceState {
    pub online: bool,
    pub session_id: Option<String>,
    /// The version number of the current connection.
    pub session_version: Option<i64>,
    pub connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
    pub disconnect_reason: Option<String>,
    pub pending_disconnect: Option<PendingDisconnect>,
    /// The thing's own certificate, bound at provisioning.
    pub certificate_id: Option<String>,
}

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceOutcome {
    /// The device is online in a new session.
    Connected,
    /// A connect whose disconnect had already arrived: the session is over.
    ConnectedAndEnded,
    Disconnected,
    /// A disconnect remembered until its session's connect arrives.
    DisconnectHeld,
    /// Older, duplicate, or another session's: nothing changed.
    Ignored,
    /// Not made with the thing's own certificate: nothing changed; a security event.
    Refused,
}

/// What operators read: the presence fields that must not depend on delivery order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceView {
    pub online: bool,
    pub session_id: Option<String>,
    pub connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
    pub disconnect_reason: Option<String>,
}

impl PresenceState {
    pub fn view(&self) -> PresenceView {
        PresenceView {
            online: self.online,
            session_id: self.session_id.clone(),
            connected_at: self.connected_at,
            disconnected_at: self.disconnected_at,
            disconnect_reason: self.disconnect_reason.clone(),
        }
    }

    /// The current connection's connect.
    fn connection(&self) -> Option<Mark> {
        Some(Mark {
            version: self.session_version?,
            at: self.connected_at?,
        })
    }

    /// Whether `event` belongs to the current connection: the same version number and
    /// session, and not stamped long before the connect.
    fn is_current(&self, event: &LifecycleEvent) -> bool {
        self.session_version == Some(event.version_number)
            && self.session_id.as_deref() == Some(event.session_identifier.as_str())
            && self
                .connected_at
                .is_some_and(|at| at < event.timestamp + RESET_GAP_MS)
    }

    /// Whether `event` was made with the thing's own certificate.
    pub fn is_own(&self, event: &LifecycleEvent) -> bool {
        self.certificate_id.is_some()
            && event.principal_identifier.as_deref() == self.certificate_id.as_deref()
    }

    /// Applies one event by the rules of this module.
    pub fn apply(&mut self, event: &LifecycleEvent) -> PresenceOutcome {
        if !self.is_own(event) {
            return PresenceOutcome::Refused;
        }
        match event.event_type {
            LifecycleType::Connected => self.connect(event),
            LifecycleType::Disconnected => self.disconnect(event),
        }
    }

    fn connect(&mut self, event: &LifecycleEvent) -> PresenceOutcome {
        if self
            .connection()
            .is_some_and(|current| !event.mark().is_after(&current))
        {
            return PresenceOutcome::Ignored;
        }
        self.session_id = Some(event.session_identifier.clone());
        self.session_version = Some(event.version_number);
        self.connected_at = Some(event.timestamp);
        match self.pending_disconnect.take_if(|p| p.ends(event)) {
            Some(pending) => {
                self.online = false;
                self.disconnected_at = Some(pending.at);
                self.disconnect_reason = pending.reason;
                PresenceOutcome::ConnectedAndEnded
            }
            None => {
                self.online = true;
                self.disconnected_at = None;
                self.disconnect_reason = None;
                PresenceOutcome::Connected
            }
        }
    }

    fn disconnect(&mut self, event: &LifecycleEvent) -> PresenceOutcome {
        if self.is_current(event) {
            if self.online {
                self.online = false;
                self.disconnected_at = Some(event.timestamp);
                self.disconnect_reason = event.disconnect_reason.clone();
                return PresenceOutcome::Disconnected;
            }
            if self
                .disconnected_at
                .is_some_and(|at| at > event.timestamp - RESET_GAP_MS)
            {
                return PresenceOutcome::Ignored;
            }
        }
        let mark = event.mark();
        let later_than_connection = self.connection().is_none_or(|c| mark.is_after(&c));
        let later_than_pending = self
            .pending_disconnect
            .as_ref()
            .is_none_or(|p| mark.is_after(&p.mark()));
        if !(later_than_connection && later_than_pending) {
            return PresenceOutcome::Ignored;
        }
        self.pending_disconnect = Some(PendingDisconnect {
            session_id: event.session_identifier.clone(),
            version: event.version_number,
            at: event.timestamp,
            reason: event.disconnect_reason.clone(),
        });
        PresenceOutcome::DisconnectHeld
    }
}

/// The device a lifecycle event is about, or why it is ignored (a client id that is not a
/// thing name cannot be a provisioned device).
pub fn device_of(event: &LifecycleEvent) -> Result<DeviceId, String> {
    DeviceId::parse(&event.client_id)
        .map_err(|e| format!("client id {:?} is not a thing name: {e}", event.client_id))
}

/// Where a thing's own certificate is bound, at provisioning: the State table's row.
pub trait CertificateBinding: Send + Sync {
    /// Binds `certificate_id` to `device`; a later binding replaces it (a device
    /// provisioned again with a new certificate).
    fn bind_certificate(
        &self,
        device: &DeviceId,
        certificate_id: &str,
    ) -> impl std::future::Future<Output = Result<(), crate::runtime::error::StoreError>> + Send;
}

/// Where presence is kept: the State table, one row per device.
pub trait PresenceStore: Send + Sync {
    /// Applies `event` to `device`'s presence by the rules of this module, atomically.
    fn apply_presence(
        &self,
        device: &DeviceId,
        event: &LifecycleEvent,
    ) -> impl std::future::Future<
        Output = Result<PresenceOutcome, crate::runtime::error::StoreError>,
    > + Send;

    fn presence(
        &self,
        device: &DeviceId,
    ) -> impl std::future::Future<
        Output = Result<Option<PresenceState>, crate::runtime::error::StoreError>,
    > + Send;
}

#[cfg(test)]
mod tests;
