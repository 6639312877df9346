//! Presence on DynamoDB Local: for histories as IoT Core produces them (version numbers,
//! kicked and persistent sessions, resets, ±2 minute clocks), the conditional writes give
//! for any delivery order and any concurrency what the pure rules give, and that is the
//! last connection's presence. Run by `scripts/test` after `scripts/stack up`; without the
//! stack they fail saying so.

use std::sync::Arc;

use fleetwire::adapters::DynamoDeviceState;
use fleetwire::domain::presence::{
    CertificateBinding, LifecycleEvent, PresenceOutcome, PresenceState, PresenceStore,
};
use fleetwire::domain::telemetry::DeviceId;
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::testing::lifecycle::lifecycle_history;
use fleetwire::testing::{START_HINT, stack_var, unique_id};
use presence::Presence;

async fn store() -> DynamoDeviceState {
    let table = stack_var("STATE_TABLE");
    let sdk = load_sdk_config(&SdkSettings {
        max_attempts: 2,
        ..SdkSettings::default()
    })
    .await;
    DynamoDeviceState::new(aws_sdk_dynamodb::Client::new(&sdk), table)
}

/// `event` as a connection with a claim certificate would make it.
fn intruder(event: &LifecycleEvent) -> LifecycleEvent {
    LifecycleEvent {
        principal_identifier: Some("claim-certificate".into()),
        ..event.clone()
    }
}

#[tokio::test]
async fn any_delivery_order_with_duplicates_agrees_with_the_pure_rules_event_by_event() {
    let store = store().await;
    let mut rng = fastrand::Rng::with_seed(20261125);
    for _ in 0..40 {
        let id = unique_id("presence-order");
        let history = lifecycle_history(&id, &mut rng);
        let mut delivered = history.events.clone();
        for _ in 0..rng.usize(0..4) {
            delivered.push(history.events[rng.usize(..history.events.len())].clone());
        }
        // An intruder with the claim certificate under the device's client id.
        for _ in 0..rng.usize(0..3) {
            delivered.push(intruder(&history.events[rng.usize(..history.events.len())]));
        }
        rng.shuffle(&mut delivered);
        let device = DeviceId::parse(&id).unwrap();
        store
            .bind_certificate(&device, &history.certificate_id)
            .await
            .unwrap_or_else(|err| panic!("{err}\n{START_HINT}"));
        let mut pure = PresenceState {
            certificate_id: Some(history.certificate_id.clone()),
            ..PresenceState::default()
        };
        for e in &delivered {
            let outcome = store
                .apply_presence(&device, e)
                .await
                .unwrap_or_else(|err| panic!("{err}\n{START_HINT}"));
            assert_eq!(outcome, pure.apply(e), "{id}: {e:?} in {delivered:#?}");
        }
        let stored = store
            .presence(&device)
            .await
            .unwrap()
            .expect("presence stored");
        assert_eq!(stored, pure, "{id}: delivered {delivered:#?}");
        assert_eq!(
            stored.view(),
            history.expected,
            "{id}: delivered {delivered:#?}"
        );
    }
}

#[tokio::test]
async fn concurrent_writers_for_one_device_never_move_presence_backwards() {
    let store = Arc::new(Presence::new(store().await));
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..10 {
        let id = unique_id("presence-concurrent");
        let history = lifecycle_history(&id, &mut rng);
        self::store()
            .await
            .bind_certificate(&DeviceId::parse(&id).unwrap(), &history.certificate_id)
            .await
            .unwrap_or_else(|err| panic!("{err}\n{START_HINT}"));
        // Every event twice, all at once.
        let tasks: Vec<_> = history
            .events
            .iter()
            .chain(history.events.iter())
            .map(|e| {
                let store = Arc::clone(&store);
                let payload = serde_json::to_value(e).unwrap();
                tokio::spawn(async move { store.handle(&payload).await })
            })
            .collect();
        for task in tasks {
            task.await
                .unwrap()
                .unwrap_or_else(|err| panic!("{err}\n{START_HINT}"));
        }
        let stored = self::store()
            .await
            .presence(&DeviceId::parse(&id).unwrap())
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(stored.view(), history.expected, "{id}");
    }
}

#[tokio::test]
async fn a_thing_without_a_bound_certificate_refuses_every_event() {
    let store = store().await;
    let id = unique_id("presence-unbound");
    let history = lifecycle_history(&id, &mut fastrand::Rng::with_seed(3));
    let device = DeviceId::parse(&id).unwrap();
    for e in &history.events {
        let outcome = store
            .apply_presence(&device, e)
            .await
            .unwrap_or_else(|err| panic!("{err}\n{START_HINT}"));
        assert_eq!(outcome, PresenceOutcome::Refused);
    }
    assert_eq!(store.presence(&device).await.unwrap(), None);
}

/// Connects to the local IoT Core as `client_id`, identified by `certificate_id` (the
/// runner reads a connection's certificate from its MQTT username), and keeps the
/// connection served until the returned task is aborted.
async fn connect(client_id: &str, certificate_id: &str) -> tokio::task::JoinHandle<()> {
    let port: u16 = stack_var("FLEETWIRE_MQTT_PORT").parse().unwrap();
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_credentials(certificate_id, "");
    options.set_keep_alive(std::time::Duration::from_secs(30));
    let (_client, mut events) = rumqttc::AsyncClient::new(options, 10);
    let (connected, mut accepted) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    let _ = connected.send(true);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    tokio::time::timeout(
        std::time::Duration::from_secs(15),
        accepted.wait_for(|c| *c),
    )
    .await
    .unwrap_or_else(|_| panic!("{client_id}: no CONNACK\n{START_HINT}"))
    .unwrap();
    task
}

/// The device's presence once `done` holds, or a panic after 30 s.
async fn presence_when(
    store: &DynamoDeviceState,
    device: &DeviceId,
    done: impl Fn(&PresenceState) -> bool,
) -> PresenceState {
    for _ in 0..300 {
        if let Some(state) = store.presence(device).await.unwrap()
            && done(&state)
        {
            return state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{device}: presence never reached the expected state\n{START_HINT}");
}

/// Through the local IoT Core, its presence rule and the function under
/// `cargo lambda watch`: a connection with a claim certificate under a provisioned
/// device's client id pushes the device off (IoT Core's `DUPLICATE_CLIENTID`), but its
/// own connect is refused, so the State row keeps the device's own session.
#[tokio::test]
async fn a_claim_certificate_under_the_devices_client_id_does_not_take_its_session() {
    let store = store().await;
    let id = unique_id("presence-intruder");
    let device = DeviceId::parse(&id).unwrap();
    let own = format!("{:064x}", fastrand::u128(..));
    let claim = format!("{:064x}", fastrand::u128(..));
    store
        .bind_certificate(&device, &own)
        .await
        .unwrap_or_else(|err| panic!("{err}\n{START_HINT}"));
    let real = connect(&id, &own).await;
    let online = presence_when(&store, &device, |s| s.online).await;
    let intruder = connect(&id, &claim).await;
    let kicked = presence_when(&store, &device, |s| !s.online).await;
    assert_eq!(
        kicked.disconnect_reason.as_deref(),
        Some("DUPLICATE_CLIENTID"),
        "the real device was pushed off"
    );
    // The intruder's connect comes after the kick; give it time to be refused.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let after = store.presence(&device).await.unwrap().unwrap();
    assert_eq!(
        after.session_id, online.session_id,
        "the device's own session stays"
    );
    assert!(!after.online, "the intruder is not the device online");
    intruder.abort();
    real.abort();
}
