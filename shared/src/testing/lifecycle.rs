//! Lifecycle histories as IoT Core produces them, for the presence rules' property tests,
//! pure and on DynamoDB Local: connections numbered per client id, some kicked by the next
//! (`DUPLICATE_CLIENTID`, stamped after the next connect), some persistent sessions that
//! keep their session id across connections, version numbers that start again from 0 after
//! more than an hour disconnected, connections that last hours, and every timestamp off by
//! up to ±2 minutes, as AWS documents for lifecycle events.

use crate::domain::presence::{LifecycleEvent, LifecycleType, PresenceView};

/// IoT Core's documented timestamp accuracy.
pub const CLOCK_ERROR_MS: i64 = 2 * 60 * 1000;

/// One client id's history and the presence it must end in.
#[derive(Debug, Clone)]
pub struct LifecycleHistory {
    /// The thing's own certificate, which every event of the history was made with.
    pub certificate_id: String,
    /// Every event once, in the order the connections happened.
    pub events: Vec<LifecycleEvent>,
    /// What any delivery of `events` must leave: the last connection, online unless its
    /// disconnect is among the events.
    pub expected: PresenceView,
}

/// A history for `client_id`, drawn from `rng`.
pub fn lifecycle_history(client_id: &str, rng: &mut fastrand::Rng) -> LifecycleHistory {
    let certificate_id = format!("{client_id}-certificate");
    let event = |kind, session: &str, version, at, reason: Option<&str>| LifecycleEvent {
        client_id: client_id.into(),
        timestamp: at + rng_skew(at),
        event_type: kind,
        session_identifier: session.into(),
        principal_identifier: Some(certificate_id.clone()),
        version_number: version,
        client_initiated_disconnect: reason.map(|r| r == "CLIENT_INITIATED_DISCONNECT"),
        disconnect_reason: reason.map(str::to_string),
    };
    let mut events = Vec::new();
    let mut at = 1_795_593_600_000_i64;
    let epochs = rng.usize(1..=2);
    let mut sessions = 0;
    let mut session = String::new();
    let mut expected = None;
    for epoch in 0..epochs {
        let first_version = if epoch == 0 { rng.i64(0..5) } else { 0 };
        let connections = rng.usize(1..=4);
        for (i, version) in (0..connections).zip(first_version..) {
            if i == 0 || rng.u8(..4) != 0 {
                sessions += 1;
                session = format!("{client_id}-session-{sessions}");
            }
            let connect = event(LifecycleType::Connected, &session, version, at, None);
            let last_of_epoch = i + 1 == connections;
            if last_of_epoch && epoch + 1 == epochs && rng.bool() {
                expected = Some(PresenceView {
                    online: true,
                    session_id: Some(session.clone()),
                    connected_at: Some(connect.timestamp),
                    disconnected_at: None,
                    disconnect_reason: None,
                });
                events.push(connect);
                break;
            }
            let lasted = rng.i64(1_000..3 * 3_600_000);
            let kicked = !last_of_epoch && rng.u8(..4) == 0;
            let (ended_at, reason, next_at) = if kicked {
                // The next connection takes the client id; IoT Core ends this one after it.
                let next_at = at + lasted;
                (next_at + rng.i64(10..2_000), "DUPLICATE_CLIENTID", next_at)
            } else {
                let ended_at = at + lasted;
                let reason = [
                    "CONNECTION_LOST",
                    "CLIENT_INITIATED_DISCONNECT",
                    "MQTT_KEEP_ALIVE_TIMEOUT",
                ][rng.usize(..3)];
                let gap = if last_of_epoch {
                    // Version numbers start again after about an hour disconnected.
                    rng.i64(61 * 60_000..3 * 3_600_000)
                } else {
                    rng.i64(100..50 * 60_000)
                };
                (ended_at, reason, ended_at + gap)
            };
            let disconnect = event(
                LifecycleType::Disconnected,
                &session,
                version,
                ended_at,
                Some(reason),
            );
            expected = Some(PresenceView {
                online: false,
                session_id: Some(session.clone()),
                connected_at: Some(connect.timestamp),
                disconnected_at: Some(disconnect.timestamp),
                disconnect_reason: Some(reason.into()),
            });
            events.push(connect);
            events.push(disconnect);
            at = next_at;
        }
    }
    LifecycleHistory {
        certificate_id,
        events,
        expected: expected.expect("every history has a connection"),
    }
}

/// A clock error within IoT Core's ±2 minutes, the same for the same instant.
fn rng_skew(at: i64) -> i64 {
    let mut rng = fastrand::Rng::with_seed(at as u64);
    rng.i64(-CLOCK_ERROR_MS..=CLOCK_ERROR_MS)
}
