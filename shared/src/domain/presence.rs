//! Device presence from IoT Core lifecycle events, right under late, duplicate and
//! reordered delivery.
//!
//! The rules, applied by the pure [`PresenceState::apply`] and by the DynamoDB adapter in
//! single conditional writes:
//! - a connect applies when it is newer than the current session's connect; it makes the
//!   device online and clears the previous session's disconnect;
//! - a disconnect applies only to the current session, and not before its connect;
//! - a disconnect for a session whose connect has not arrived yet is remembered (the
//!   newest one), so when that connect comes it applies and the device is offline at once;
//! - anything else (older, duplicate, another session's disconnect) changes nothing.
//!
//! Connects are compared with the last applied *connect*, not the last event: when a device
//! reconnects, IoT Core may end the old session (DUPLICATE_CLIENTID) with a disconnect
//! timestamped after the new connect, and that must not hide the reconnect.

use serde::{Deserialize, Serialize};

use crate::domain::telemetry::DeviceId;

/// One lifecycle event, as IoT Core publishes it on `$aws/events/presence/<type>/<clientId>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEvent {
    pub client_id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub event_type: LifecycleType,
    pub session_identifier: String,
    #[serde(default)]
    pub principal_identifier: Option<String>,
    #[serde(default)]
    pub version_number: Option<i64>,
    #[serde(default)]
    pub client_initiated_disconnect: Option<bool>,
    #[serde(default)]
    pub disconnect_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleType {
    Connected,
    Disconnected,
}

/// A disconnect whose connect has not been applied yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PendingDisconnect {
    pub session_id: String,
    pub at: i64,
    pub reason: Option<String>,
}

/// The presence part of a device's State row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresenceState {
    pub online: bool,
    pub session_id: Option<String>,
    pub connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
    pub disconnect_reason: Option<String>,
    pub pending_disconnect: Option<PendingDisconnect>,
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

    /// Applies one event by the rules of this module.
    pub fn apply(&mut self, event: &LifecycleEvent) -> PresenceOutcome {
        let session = &event.session_identifier;
        match event.event_type {
            LifecycleType::Connected => {
                if self.connected_at.is_some_and(|at| at >= event.timestamp) {
                    return PresenceOutcome::Ignored;
                }
                self.session_id = Some(session.clone());
                self.connected_at = Some(event.timestamp);
                let ended = self
                    .pending_disconnect
                    .take_if(|p| p.session_id == *session && p.at >= event.timestamp);
                match ended {
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
            LifecycleType::Disconnected => {
                if self.session_id.as_ref() == Some(session) {
                    let applies =
                        self.online && self.connected_at.is_some_and(|at| at <= event.timestamp);
                    if !applies {
                        return PresenceOutcome::Ignored;
                    }
                    self.online = false;
                    self.disconnected_at = Some(event.timestamp);
                    self.disconnect_reason = event.disconnect_reason.clone();
                    return PresenceOutcome::Disconnected;
                }
                if self
                    .pending_disconnect
                    .as_ref()
                    .is_some_and(|p| p.at >= event.timestamp)
                {
                    return PresenceOutcome::Ignored;
                }
                self.pending_disconnect = Some(PendingDisconnect {
                    session_id: session.clone(),
                    at: event.timestamp,
                    reason: event.disconnect_reason.clone(),
                });
                PresenceOutcome::DisconnectHeld
            }
        }
    }
}

/// The device a lifecycle event is about, or why it is ignored (a client id that is not a
/// thing name cannot be a provisioned device).
pub fn device_of(event: &LifecycleEvent) -> Result<DeviceId, String> {
    DeviceId::parse(&event.client_id)
        .map_err(|e| format!("client id {:?} is not a thing name: {e}", event.client_id))
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
mod tests {
    use super::*;

    pub(crate) fn connect(session: &str, at: i64) -> LifecycleEvent {
        LifecycleEvent {
            client_id: "car-1".into(),
            timestamp: at,
            event_type: LifecycleType::Connected,
            session_identifier: session.into(),
            principal_identifier: None,
            version_number: None,
            client_initiated_disconnect: None,
            disconnect_reason: None,
        }
    }

    pub(crate) fn disconnect(session: &str, at: i64, reason: &str) -> LifecycleEvent {
        LifecycleEvent {
            event_type: LifecycleType::Disconnected,
            disconnect_reason: Some(reason.into()),
            client_initiated_disconnect: Some(reason == "CLIENT_INITIATED_DISCONNECT"),
            ..connect(session, at)
        }
    }

    fn run(events: &[LifecycleEvent]) -> (PresenceState, Vec<PresenceOutcome>) {
        let mut state = PresenceState::default();
        let outcomes = events.iter().map(|e| state.apply(e)).collect();
        (state, outcomes)
    }

    #[test]
    fn connect_then_disconnect() {
        let (state, outcomes) = run(&[connect("s1", 10), disconnect("s1", 20, "CONNECTION_LOST")]);
        assert_eq!(
            outcomes,
            vec![PresenceOutcome::Connected, PresenceOutcome::Disconnected]
        );
        assert!(!state.online);
        assert_eq!(
            (state.disconnected_at, state.disconnect_reason.as_deref()),
            (Some(20), Some("CONNECTION_LOST"))
        );
    }

    #[test]
    fn duplicates_change_nothing() {
        let (state, outcomes) = run(&[
            connect("s1", 10),
            connect("s1", 10),
            disconnect("s1", 20, "X"),
            disconnect("s1", 20, "X"),
        ]);
        assert_eq!(outcomes[1], PresenceOutcome::Ignored);
        assert_eq!(outcomes[3], PresenceOutcome::Ignored);
        assert!(!state.online);
    }

    #[test]
    fn old_sessions_disconnect_after_the_reconnect_keeps_the_device_online() {
        // s1 is kicked when s2 connects; its disconnect is stamped after s2's connect.
        let (state, outcomes) = run(&[
            connect("s1", 10),
            connect("s2", 30),
            disconnect("s1", 31, "DUPLICATE_CLIENTID"),
        ]);
        assert_eq!(outcomes[2], PresenceOutcome::DisconnectHeld);
        assert!(state.online);
        assert_eq!(state.session_id.as_deref(), Some("s2"));
    }

    #[test]
    fn kicked_sessions_disconnect_first_does_not_hide_the_reconnect() {
        let (state, _) = run(&[
            connect("s1", 10),
            disconnect("s1", 31, "DUPLICATE_CLIENTID"),
            connect("s2", 30),
        ]);
        assert!(
            state.online,
            "s2 connected at 30 is newer than s1's connect"
        );
        assert_eq!(state.session_id.as_deref(), Some("s2"));
    }

    #[test]
    fn late_connect_of_an_older_session_is_ignored() {
        let (state, outcomes) = run(&[connect("s2", 30), connect("s1", 10)]);
        assert_eq!(outcomes[1], PresenceOutcome::Ignored);
        assert_eq!(state.session_id.as_deref(), Some("s2"));
    }

    #[test]
    fn disconnect_before_its_connect_ends_the_session_when_the_connect_comes() {
        let (state, outcomes) = run(&[disconnect("s1", 20, "CONNECTION_LOST"), connect("s1", 10)]);
        assert_eq!(
            outcomes,
            vec![
                PresenceOutcome::DisconnectHeld,
                PresenceOutcome::ConnectedAndEnded
            ]
        );
        assert!(!state.online);
        assert_eq!(
            (state.session_id.as_deref(), state.disconnected_at),
            (Some("s1"), Some(20))
        );
        assert_eq!(state.pending_disconnect, None);
    }

    #[test]
    fn reconnect_clears_the_previous_disconnect() {
        let (state, _) = run(&[
            connect("s1", 10),
            disconnect("s1", 20, "X"),
            connect("s2", 30),
        ]);
        assert_eq!(
            state.view(),
            PresenceView {
                online: true,
                session_id: Some("s2".into()),
                connected_at: Some(30),
                disconnected_at: None,
                disconnect_reason: None
            }
        );
    }

    #[test]
    fn lifecycle_events_parse_from_aws_documented_shape() {
        let event: LifecycleEvent = serde_json::from_value(serde_json::json!({
            "clientId": "186b5", "timestamp": 1573002340451_i64, "eventType": "disconnected",
            "sessionIdentifier": "a4666d2a7d844ae4ac5d7b38c9cb7967", "principalIdentifier": "12345678901234567890123456789012",
            "clientInitiatedDisconnect": true, "disconnectReason": "CLIENT_INITIATED_DISCONNECT", "versionNumber": 0
        }))
        .unwrap();
        assert_eq!(event.event_type, LifecycleType::Disconnected);
        assert_eq!(
            event.disconnect_reason.as_deref(),
            Some("CLIENT_INITIATED_DISCONNECT")
        );
        assert!(device_of(&event).is_ok());
        let bad = LifecycleEvent {
            client_id: "iotconsole-1573002340451/x".into(),
            ..event
        };
        assert!(device_of(&bad).unwrap_err().contains("not a thing name"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A device's real history: sessions begin in order (connects increase), each ends
        /// after it began, and sessions end in the order they began, though an old session
        /// may end after the next one began (IoT Core kicking it on reconnect). The last
        /// session may still be open.
        fn history() -> impl Strategy<Value = Vec<LifecycleEvent>> {
            (
                1usize..6,
                proptest::collection::vec(1i64..1_300, 6),
                any::<bool>(),
            )
                .prop_filter_map(
                    "sessions must end in the order they began",
                    |(sessions, offsets, last_open)| {
                        let mut events = Vec::new();
                        let mut last_end = i64::MIN;
                        for (i, offset) in offsets.iter().enumerate().take(sessions) {
                            let start = 1_000 * (i as i64 + 1);
                            events.push(connect(&format!("s{i}"), start));
                            if i + 1 == sessions && last_open {
                                break;
                            }
                            // Odd offsets never collide with a connect (multiples of 1000).
                            let end = start + offset * 2 - 1;
                            if end <= last_end {
                                return None;
                            }
                            last_end = end;
                            events.push(disconnect(&format!("s{i}"), end, "CONNECTION_LOST"));
                        }
                        Some(events)
                    },
                )
        }

        fn in_order(events: &[LifecycleEvent]) -> PresenceView {
            let mut sorted = events.to_vec();
            sorted.sort_by_key(|e| e.timestamp);
            run(&sorted).0.view()
        }

        proptest! {
            #[test]
            fn any_delivery_order_with_duplicates_ends_like_in_order_delivery(
                events in history(),
                order in any::<proptest::sample::Index>(),
                duplicates in proptest::collection::vec(any::<proptest::sample::Index>(), 0..6),
                seed in any::<u64>(),
            ) {
                let expected = in_order(&events);
                let mut delivered = events.clone();
                for d in &duplicates {
                    delivered.push(events[d.index(events.len())].clone());
                }
                // A permutation chosen by the seed (Fisher-Yates with a small LCG).
                let mut state = seed ^ (order.index(usize::MAX) as u64);
                for i in (1..delivered.len()).rev() {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    delivered.swap(i, (state >> 33) as usize % (i + 1));
                }
                prop_assert_eq!(run(&delivered).0.view(), expected);
            }
        }
    }
}
