//! Presence on DynamoDB Local: the conditional writes give, for any delivery order and any
//! concurrency, the state that in-order delivery gives under the pure rules.
//! Run by `scripts/test` after `scripts/stack up`; without the stack they fail saying so.

use std::sync::Arc;

use fleetwire::adapters::DynamoDeviceState;
use fleetwire::domain::presence::{
    LifecycleEvent, LifecycleType, PresenceState, PresenceStore, PresenceView,
};
use fleetwire::domain::telemetry::DeviceId;
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::testing::{START_HINT, stack_var};
use presence::Presence;
use time::OffsetDateTime;

async fn store() -> DynamoDeviceState {
    let table = stack_var("STATE_TABLE");
    let sdk = load_sdk_config(&SdkSettings {
        max_attempts: 2,
        ..SdkSettings::default()
    })
    .await;
    DynamoDeviceState::new(aws_sdk_dynamodb::Client::new(&sdk), table)
}

fn event(device: &str, kind: LifecycleType, session: usize, at: i64) -> LifecycleEvent {
    LifecycleEvent {
        client_id: device.into(),
        timestamp: at,
        event_type: kind,
        session_identifier: format!("session-{session}"),
        principal_identifier: None,
        version_number: Some(session as i64),
        client_initiated_disconnect: None,
        disconnect_reason: (kind == LifecycleType::Disconnected)
            .then(|| "CONNECTION_LOST".to_string()),
    }
}

/// A real history: connects in order, each session ending after it began and in order,
/// some ending after the next began (kicked); the last session may be open.
fn history(device: &str, rng: &mut fastrand::Rng) -> Vec<LifecycleEvent> {
    let sessions = rng.usize(1..6);
    let mut events = Vec::new();
    let mut last_end = 0;
    for i in 0..sessions {
        let start = 1_000 * (i as i64 + 1);
        events.push(event(device, LifecycleType::Connected, i, start));
        if i + 1 == sessions && rng.bool() {
            break;
        }
        let end = (start + rng.i64(1..1_300) * 2 - 1).max(last_end + 2) | 1;
        last_end = end;
        events.push(event(device, LifecycleType::Disconnected, i, end));
    }
    events
}

fn in_order(events: &[LifecycleEvent]) -> PresenceView {
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|e| e.timestamp);
    let mut state = PresenceState::default();
    for e in &sorted {
        state.apply(e);
    }
    state.view()
}

fn device(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000,
        fastrand::u32(..)
    )
}

#[tokio::test]
async fn any_delivery_order_with_duplicates_ends_like_in_order_delivery() {
    let store = store().await;
    let mut rng = fastrand::Rng::with_seed(20261125);
    for _ in 0..25 {
        let id = device("presence-order");
        let events = history(&id, &mut rng);
        let mut delivered = events.clone();
        for _ in 0..rng.usize(0..4) {
            delivered.push(events[rng.usize(..events.len())].clone());
        }
        rng.shuffle(&mut delivered);
        let device = DeviceId::parse(&id).unwrap();
        for e in &delivered {
            store
                .apply_presence(&device, e)
                .await
                .unwrap_or_else(|err| panic!("{err}\n{START_HINT}"));
        }
        let stored = store
            .presence(&device)
            .await
            .unwrap()
            .expect("presence stored");
        assert_eq!(
            stored.view(),
            in_order(&events),
            "{id}: delivered {delivered:#?}"
        );
    }
}

#[tokio::test]
async fn concurrent_writers_for_one_device_never_move_presence_backwards() {
    let store = Arc::new(Presence::new(store().await));
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..10 {
        let id = device("presence-concurrent");
        let events = history(&id, &mut rng);
        // Every event twice, all at once.
        let tasks: Vec<_> = events
            .iter()
            .chain(events.iter())
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
        assert_eq!(stored.view(), in_order(&events), "{id}");
    }
}
