//! The presence handler with the in-memory State table.

use fleetwire::domain::presence::{CertificateBinding, PresenceState, PresenceView};
use fleetwire::domain::telemetry::DeviceId;
use fleetwire::testing::{Behaviour, InMemoryDeviceState};
use serde_json::Value;

use super::*;

/// The certificate the sample events were made with.
const CERTIFICATE: &str = "12345678901234567890123456789012";

/// A State table where `device`'s own certificate is the samples' one.
async fn bound(device: &str) -> InMemoryDeviceState {
    let store = InMemoryDeviceState::default();
    store
        .bind_certificate(&DeviceId::parse(device).unwrap(), CERTIFICATE)
        .await
        .unwrap();
    store
}

/// `device`'s presence as the store holds it.
async fn stored(presence: &Presence<InMemoryDeviceState>, device: &str) -> PresenceState {
    presence
        .store
        .presence(&DeviceId::parse(device).unwrap())
        .await
        .unwrap()
        .unwrap()
}

fn event(name: &str) -> Value {
    fleetwire::testing::event("presence", name)
}

#[tokio::test]
async fn sample_events_in_sequence_give_the_expected_outcomes() {
    let presence = Presence::new(bound("car-0001").await);
    let expected: Vec<Value> = serde_json::from_value(event("expected.json")).unwrap();
    for case in expected {
        let handled = presence
            .handle(&event(case["event"].as_str().unwrap()))
            .await
            .unwrap();
        let got = serde_json::to_value(&handled).unwrap();
        for (key, want) in case["result"].as_object().unwrap() {
            assert_eq!(&got[key], want, "{}: {got}", case["event"]);
        }
    }
    let state = stored(&presence, "car-0001").await;
    assert_eq!(
        state.view(),
        PresenceView {
            online: true,
            session_id: Some("b8d2e0c3f1a94e6b9c7d5e3f1a2b4c6d".into()),
            connected_at: Some(1795593700000),
            disconnected_at: None,
            disconnect_reason: None,
        },
        "the kicked session's late disconnect leaves the reconnected device online"
    );
}

#[tokio::test]
async fn store_failure_fails_the_invocation_for_a_retry() {
    let store = InMemoryDeviceState::default();
    store.set_behaviour(Behaviour::Failing(StoreError::Throttled {
        call: "DynamoDB.UpdateItem".into(),
        message: "slow down".into(),
    }));
    let err = Presence::new(store)
        .handle(&event("connected.json"))
        .await
        .unwrap_err();
    assert!(err.is_transient());
}

#[tokio::test]
async fn events_that_are_not_about_a_device_are_ignored_not_retried() {
    let store = InMemoryDeviceState::default();
    // Even a failing store is never called for them.
    store.set_behaviour(Behaviour::Failing(StoreError::Rejected {
        call: "x".into(),
        message: "must not be called".into(),
    }));
    let presence = Presence::new(store);
    assert!(matches!(
        presence.handle(&event("invalid-client-id.json")).await,
        Ok(Handled::Ignored { .. })
    ));
    assert!(matches!(
        presence.handle(&event("not-a-lifecycle-event.json")).await,
        Ok(Handled::Ignored { .. })
    ));
}

/// AWS's documented connect and disconnect events (`events/aws-examples/SOURCES.md`)
/// parse and apply in order.
#[tokio::test]
async fn aws_documented_lifecycle_events_are_applied() {
    let presence = Presence::new(bound("186b5").await);
    for (name, outcome) in [
        ("lifecycle-connected.json", "connected"),
        ("lifecycle-disconnected.json", "disconnected"),
    ] {
        let handled = presence
            .handle(&fleetwire::testing::event("aws-examples", name))
            .await
            .unwrap();
        assert_eq!(
            handled,
            Handled::Applied {
                device_id: "186b5".into(),
                outcome
            },
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_event_made_with_another_certificate_is_refused_and_changes_nothing() {
    let presence = Presence::new(bound("car-0001").await);
    let mut intruder = event("connected.json");
    intruder["principalIdentifier"] = "claim-certificate".into();
    let handled = presence.handle(&intruder).await.unwrap();
    assert_eq!(
        handled,
        Handled::Applied {
            device_id: "car-0001".into(),
            outcome: "refused"
        }
    );
    let state = stored(&presence, "car-0001").await;
    assert_eq!(state.session_id, None);
}

#[tokio::test]
async fn connects_and_refused_events_are_counted_in_the_invocations_emf() {
    use fleetwire::runtime::metrics::name;
    use fleetwire::testing::metrics::{counted, flushed, record};
    record();
    let logs = fleetwire::testing::logs::capture("fleetwire-test-function");
    let presence = Presence::new(bound("car-0001").await);
    presence.handle(&event("connected.json")).await.unwrap();
    let mut intruder = event("connected.json");
    intruder["principalIdentifier"] = "claim-certificate".into();
    presence.handle(&intruder).await.unwrap();
    let documents = flushed("presence-request", None);
    assert!(
        counted(
            &documents,
            name::PRESENCE_EVENTS,
            Some(("Event", "connected"))
        ) >= 1
    );
    assert!(counted(&documents, name::PRESENCE_SPOOFED, None) >= 1);
    let line = logs.line("presence event applied", Some(("device_id", "car-0001")));
    fleetwire::testing::logs::assert_powertools_keys(&line, "fleetwire-test-function");
}
