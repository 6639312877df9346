use super::*;

const MINUTE: i64 = 60_000;
const CERTIFICATE: &str = "c0ffee";

fn bound() -> PresenceState {
    PresenceState {
        certificate_id: Some(CERTIFICATE.into()),
        ..PresenceState::default()
    }
}

pub(crate) fn connect(session: &str, version: i64, at: i64) -> LifecycleEvent {
    LifecycleEvent {
        client_id: "car-1".into(),
        timestamp: at,
        event_type: LifecycleType::Connected,
        session_identifier: session.into(),
        principal_identifier: Some(CERTIFICATE.into()),
        version_number: version,
        client_initiated_disconnect: None,
        disconnect_reason: None,
    }
}

pub(crate) fn disconnect(session: &str, version: i64, at: i64, reason: &str) -> LifecycleEvent {
    LifecycleEvent {
        event_type: LifecycleType::Disconnected,
        disconnect_reason: Some(reason.into()),
        client_initiated_disconnect: Some(reason == "CLIENT_INITIATED_DISCONNECT"),
        ..connect(session, version, at)
    }
}

fn run(events: &[LifecycleEvent]) -> (PresenceState, Vec<PresenceOutcome>) {
    let mut state = bound();
    let outcomes = events.iter().map(|e| state.apply(e)).collect();
    (state, outcomes)
}

#[test]
fn connect_then_disconnect() {
    let (state, outcomes) = run(&[
        connect("s1", 0, 10),
        disconnect("s1", 0, 20, "CONNECTION_LOST"),
    ]);
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
        connect("s1", 0, 10),
        connect("s1", 0, 10),
        disconnect("s1", 0, 20, "X"),
        disconnect("s1", 0, 20, "X"),
    ]);
    assert_eq!(outcomes[1], PresenceOutcome::Ignored);
    assert_eq!(outcomes[3], PresenceOutcome::Ignored);
    assert!(!state.online);
}

#[test]
fn a_reconnect_stamped_before_the_old_connect_still_wins_and_the_kick_cannot_end_it() {
    // IoT Core's clock is good to ±2 minutes: the reconnect (version 1) may carry an
    // earlier timestamp than the connection it replaces (version 0), and the old
    // connection's DUPLICATE_CLIENTID disconnect a later one than both.
    let (state, outcomes) = run(&[
        connect("s1", 0, 10 * MINUTE),
        connect("s2", 1, 10 * MINUTE - 90_000),
        disconnect("s1", 0, 10 * MINUTE + 500, "DUPLICATE_CLIENTID"),
    ]);
    assert_eq!(
        outcomes,
        vec![
            PresenceOutcome::Connected,
            PresenceOutcome::Connected,
            PresenceOutcome::Ignored
        ]
    );
    assert!(state.online);
    assert_eq!(state.session_id.as_deref(), Some("s2"));
}

#[test]
fn the_kicked_connections_disconnect_first_does_not_hide_the_reconnect() {
    let (state, _) = run(&[
        connect("s1", 0, 10),
        disconnect("s1", 0, 31, "DUPLICATE_CLIENTID"),
        connect("s2", 1, 30),
    ]);
    assert!(state.online, "version 1 is after version 0");
    assert_eq!(state.session_id.as_deref(), Some("s2"));
}

#[test]
fn a_late_connect_of_an_older_connection_is_ignored_whatever_its_timestamp() {
    let (state, outcomes) = run(&[connect("s2", 3, 30), connect("s1", 2, 90_000)]);
    assert_eq!(outcomes[1], PresenceOutcome::Ignored);
    assert_eq!(state.session_id.as_deref(), Some("s2"));
}

#[test]
fn a_persistent_session_is_told_apart_by_its_version_numbers() {
    // A persistent session keeps its session id across connections.
    let (state, outcomes) = run(&[
        connect("s1", 4, 10),
        disconnect("s1", 5, 40, "CONNECTION_LOST"),
        disconnect("s1", 4, 20, "CONNECTION_LOST"),
        connect("s1", 5, 30),
    ]);
    assert_eq!(
        outcomes,
        vec![
            PresenceOutcome::Connected,
            PresenceOutcome::DisconnectHeld,
            PresenceOutcome::Disconnected,
            PresenceOutcome::ConnectedAndEnded
        ]
    );
    assert_eq!((state.online, state.disconnected_at), (false, Some(40)));
}

#[test]
fn version_numbers_that_start_again_after_an_hour_disconnected_are_a_new_history() {
    let reset = 2 * 60 * MINUTE;
    let (state, outcomes) = run(&[
        connect("s1", 7, 0),
        disconnect("s1", 7, 10 * MINUTE, "CONNECTION_LOST"),
        connect("s2", 0, reset),
        // A late duplicate of the old connection's events changes nothing.
        connect("s1", 7, 0),
        disconnect("s1", 7, 10 * MINUTE, "CONNECTION_LOST"),
    ]);
    assert_eq!(outcomes[2], PresenceOutcome::Connected);
    assert_eq!(
        outcomes[3..],
        [PresenceOutcome::Ignored, PresenceOutcome::Ignored]
    );
    assert!(state.online);
    assert_eq!(state.session_id.as_deref(), Some("s2"));
}

#[test]
fn a_disconnect_before_its_connect_ends_the_connection_when_the_connect_comes() {
    let (state, outcomes) = run(&[
        disconnect("s1", 0, 20, "CONNECTION_LOST"),
        connect("s1", 0, 10),
    ]);
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
fn a_reconnect_clears_the_previous_disconnect() {
    let (state, _) = run(&[
        connect("s1", 0, 10),
        disconnect("s1", 0, 20, "X"),
        connect("s2", 1, 30),
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
fn only_the_things_own_certificate_moves_its_presence() {
    let intruder = |e: LifecycleEvent| LifecycleEvent {
        principal_identifier: Some("claim-certificate".into()),
        ..e
    };
    let (state, outcomes) = run(&[
        connect("s1", 0, 10),
        intruder(connect("s2", 1, 20)),
        intruder(disconnect("s1", 0, 30, "CONNECTION_LOST")),
    ]);
    assert_eq!(
        outcomes,
        vec![
            PresenceOutcome::Connected,
            PresenceOutcome::Refused,
            PresenceOutcome::Refused
        ]
    );
    assert!(state.online);
    assert_eq!(state.session_id.as_deref(), Some("s1"));
    let mut unbound = PresenceState::default();
    assert_eq!(
        unbound.apply(&connect("s1", 0, 10)),
        PresenceOutcome::Refused
    );
    assert_eq!(unbound, PresenceState::default());
}

#[test]
fn marks_order_by_version_near_in_time_and_by_timestamp_far_apart() {
    let mark = |version, at| Mark { version, at };
    assert!(mark(2, 0).is_after(&mark(1, 5 * MINUTE)));
    assert!(!mark(1, 5 * MINUTE).is_after(&mark(2, 0)));
    assert!(!mark(1, 0).is_after(&mark(1, 0)), "the same connection");
    assert!(mark(0, RESET_GAP_MS).is_after(&mark(9, 0)), "after a reset");
    assert!(!mark(9, 0).is_after(&mark(0, RESET_GAP_MS)));
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
    use crate::testing::lifecycle::lifecycle_history;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_delivery_order_with_duplicates_ends_in_the_last_connections_presence(
            seed in any::<u64>(),
            duplicates in proptest::collection::vec(any::<proptest::sample::Index>(), 0..6),
        ) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let history = lifecycle_history("car-1", &mut rng);
            let run = |events: &[LifecycleEvent]| {
                let mut state = PresenceState {
                    certificate_id: Some(history.certificate_id.clone()),
                    ..PresenceState::default()
                };
                for e in events {
                    state.apply(e);
                }
                state.view()
            };
            prop_assert_eq!(run(&history.events), history.expected.clone());
            let mut delivered = history.events.clone();
            for d in &duplicates {
                delivered.push(history.events[d.index(history.events.len())].clone());
            }
            rng.shuffle(&mut delivered);
            prop_assert_eq!(run(&delivered), history.expected);
        }
    }
}

/// The parser against anything the presence rule could pass on: AWS's documented events
/// with one part changed into any JSON, and any JSON at all.
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::fuzz::{assert_names_the_field, json_value, near};

    proptest! {
        #[test]
        fn a_changed_connect_event_parses_or_names_what_is_wrong(
            (event, keys) in near(crate::testing::event("aws-examples", "lifecycle-connected.json"))
        ) {
            if let Err(error) = LifecycleEvent::parse(&event) {
                assert_names_the_field(&error, &keys);
            }
        }

        #[test]
        fn a_changed_disconnect_event_parses_or_names_what_is_wrong(
            (event, keys) in near(crate::testing::event("aws-examples", "lifecycle-disconnected.json"))
        ) {
            if let Err(error) = LifecycleEvent::parse(&event) {
                assert_names_the_field(&error, &keys);
            }
        }

        #[test]
        fn any_json_is_parsed_or_refused_without_a_panic(event in json_value()) {
            let _ = LifecycleEvent::parse(&event);
        }
    }
}
