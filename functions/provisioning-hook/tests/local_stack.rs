//! The hook against DynamoDB Local (through the real adapter), and the built binary under
//! `cargo lambda watch` answering every file of `events/provisioning-hook/` as expected.
//! Run by `scripts/test` after `scripts/stack up`; without the stack they fail saying so.

use std::sync::Arc;
use std::time::Duration;

use fleetwire::adapters::{DynamoDeviceState, DynamoRegistry};
use fleetwire::domain::registry::{Registry, RegistryEntry, RegistryStatus, RevokeOutcome, Serial};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::testing::{START_HINT, run_id, stack_var as var};
use provisioning_hook::{HookConfig, HookResponse, ProvisioningHook};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

fn event(name: &str) -> Value {
    fleetwire::testing::event("provisioning-hook", name)
}

async fn registry() -> DynamoRegistry {
    let config = load_sdk_config(&SdkSettings {
        max_attempts: 2,
        ..SdkSettings::default()
    })
    .await;
    DynamoRegistry::new(
        aws_sdk_dynamodb::Client::new(&config),
        var("REGISTRY_TABLE"),
    )
}

async fn state() -> DynamoDeviceState {
    let config = load_sdk_config(&SdkSettings {
        max_attempts: 2,
        ..SdkSettings::default()
    })
    .await;
    DynamoDeviceState::new(aws_sdk_dynamodb::Client::new(&config), var("STATE_TABLE"))
}

fn config(lock_after: u32) -> HookConfig {
    HookConfig {
        registry_table: var("REGISTRY_TABLE"),
        state_table: var("STATE_TABLE"),
        serial_parameter: "SerialNumber".into(),
        budget: Duration::from_secs(3),
        lock_after,
    }
}

fn request(serial: &Serial, certificate_id: &str) -> Value {
    let mut request = event("allowed.json");
    request["parameters"]["SerialNumber"] = json!(serial.as_str());
    request["certificateId"] = json!(certificate_id);
    request
}

async fn allowed_serial(registry: &DynamoRegistry) -> Serial {
    let serial = Serial::parse(&format!("SN-IT-{}", run_id())).unwrap();
    registry
        .add(&RegistryEntry::allowed(
            serial.clone(),
            "sensor-v2",
            format!("thing-{serial}"),
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{START_HINT}"));
    serial
}

#[tokio::test]
async fn fifty_concurrent_requests_for_one_allowed_serial_allow_exactly_one() {
    let registry = registry().await;
    let serial = allowed_serial(&registry).await;
    let hook = Arc::new(ProvisioningHook::new(
        registry,
        state().await,
        config(1_000),
    ));
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let hook = Arc::clone(&hook);
            let request = request(&serial, &format!("certificate-{n}"));
            tokio::spawn(async move { hook.handle(&request).await })
        })
        .collect();
    let mut allowed = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        if answer.allow_provisioning {
            allowed.push(answer);
        }
    }
    assert_eq!(
        allowed.len(),
        1,
        "exactly one of 50 concurrent requests is allowed"
    );
    assert_eq!(
        allowed[0].parameter_overrides["ThingName"],
        format!("thing-{serial}")
    );
}

#[tokio::test]
async fn replay_with_another_certificate_is_denied_and_a_retry_is_not() {
    let registry = registry().await;
    let serial = allowed_serial(&registry).await;
    let hook = ProvisioningHook::new(registry, state().await, config(5));
    assert!(
        hook.handle(&request(&serial, "cert-first"))
            .await
            .allow_provisioning
    );
    assert!(
        hook.handle(&request(&serial, "cert-first"))
            .await
            .allow_provisioning,
        "IoT Core retrying"
    );
    assert_eq!(
        hook.handle(&request(&serial, "cert-replay")).await,
        HookResponse::deny()
    );
}

#[tokio::test]
async fn revoked_serial_is_denied() {
    let registry = registry().await;
    let serial = allowed_serial(&registry).await;
    assert!(matches!(
        registry.revoke(&serial, OffsetDateTime::now_utc()).await,
        Ok(RevokeOutcome::Revoked(_))
    ));
    let hook = ProvisioningHook::new(registry, state().await, config(5));
    assert_eq!(
        hook.handle(&request(&serial, "cert")).await,
        HookResponse::deny()
    );
}

#[tokio::test]
async fn denied_attempts_are_counted_and_lock_the_serial() {
    let registry = registry().await;
    let serial = allowed_serial(&registry).await;
    let check = registry.clone();
    let hook = ProvisioningHook::new(registry, state().await, config(3));
    assert!(
        hook.handle(&request(&serial, "cert-owner"))
            .await
            .allow_provisioning
    );
    for attempt in 1..=3u32 {
        assert!(
            !hook
                .handle(&request(&serial, &format!("cert-clone-{attempt}")))
                .await
                .allow_provisioning
        );
        let entry = check.get(&serial).await.unwrap().unwrap();
        assert_eq!(entry.denied_attempts, attempt);
    }
    let locked = check.get(&serial).await.unwrap().unwrap();
    assert_eq!(locked.status, RegistryStatus::Locked);
    assert!(
        !hook
            .handle(&request(&serial, "cert-owner"))
            .await
            .allow_provisioning,
        "locked until an operator acts"
    );
}

#[derive(Deserialize)]
struct Expected {
    event: String,
    why: String,
    response: HookResponse,
}

/// Loads `events/provisioning-hook/registry.json` into the table, replacing earlier runs' rows.
async fn load_fixture_registry() {
    let config = load_sdk_config(&SdkSettings::default()).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = var("REGISTRY_TABLE");
    let entries: Vec<RegistryEntry> = serde_json::from_value(event("registry.json")).unwrap();
    let registry = DynamoRegistry::new(client.clone(), &table);
    for entry in entries {
        client
            .delete_item()
            .table_name(&table)
            .key(
                "serial",
                aws_sdk_dynamodb::types::AttributeValue::S(entry.serial.to_string()),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}\n{START_HINT}"));
        registry.add(&entry).await.unwrap();
    }
}

/// Invokes the function under `cargo lambda watch` with the sample event `name`.
fn invoke_under_watch(name: &str) -> Value {
    fleetwire::testing::invoke_under_watch("provisioning-hook", &event(name))
}

#[tokio::test]
async fn binary_under_cargo_lambda_watch_answers_every_sample_event_as_expected() {
    load_fixture_registry().await;
    let expected: Vec<Expected> = serde_json::from_value(event("expected.json")).unwrap();
    for case in expected {
        let answer = invoke_under_watch(&case.event);
        let answer: HookResponse =
            serde_json::from_value(answer.clone()).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(answer, case.response, "{}: {}", case.event, case.why);
    }
}
