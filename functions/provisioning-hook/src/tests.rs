//! Every decision of the hook, with the in-memory Registry.

use std::sync::Arc;
use std::time::Duration;

use fleetwire::domain::registry::RegistryEntry;
use fleetwire::testing::{Behaviour, InMemoryDeviceState, InMemoryRegistry};
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;

fn event(name: &str) -> Value {
    fleetwire::testing::event("provisioning-hook", name)
}

#[derive(Deserialize)]
struct Expected {
    event: String,
    why: String,
    response: HookResponse,
}

fn config() -> HookConfig {
    HookConfig {
        registry_table: "registry".into(),
        state_table: "state".into(),
        serial_parameter: "SerialNumber".into(),
        budget: Duration::from_secs(3),
        lock_after: 5,
    }
}

fn fixture() -> InMemoryRegistry {
    let entries: Vec<RegistryEntry> = serde_json::from_value(event("registry.json")).unwrap();
    InMemoryRegistry::with_entries(entries)
}

type TestHook = ProvisioningHook<InMemoryRegistry, InMemoryDeviceState>;

fn hook(registry: InMemoryRegistry) -> TestHook {
    ProvisioningHook::new(registry, InMemoryDeviceState::default(), config())
}

fn with_certificate(mut request: Value, certificate_id: &str) -> Value {
    request["certificateId"] = json!(certificate_id);
    request
}

#[tokio::test]
async fn every_sample_event_gets_its_expected_answer_in_order() {
    let hook = hook(fixture());
    let expected: Vec<Expected> = serde_json::from_value(event("expected.json")).unwrap();
    assert!(expected.len() >= 10);
    for case in expected {
        let answer = hook.handle(&event(&case.event)).await;
        assert_eq!(answer, case.response, "{}: {}", case.event, case.why);
    }
}

#[tokio::test]
async fn allowed_serial_becomes_provisioned_with_the_request_recorded() {
    let registry = fixture();
    let hook = hook(registry);
    assert!(hook.handle(&event("allowed.json")).await.allow_provisioning);
    let entry = hook.registry.entry("SN-ALLOWED-0001").unwrap();
    assert_eq!(entry.status, RegistryStatus::Provisioned);
    let record = entry.provisioning.unwrap();
    assert_eq!(
        record.certificate_id,
        event("allowed.json")["certificateId"]
    );
    assert_eq!(record.client_id, "SN-ALLOWED-0001");
}

#[tokio::test]
async fn fifty_concurrent_requests_for_one_serial_allow_exactly_one() {
    let hook = Arc::new(hook(fixture()));
    let requests = (0..50).map(|n| {
        let hook = Arc::clone(&hook);
        tokio::spawn(async move {
            hook.handle(&with_certificate(
                event("allowed.json"),
                &format!("certificate-{n}"),
            ))
            .await
            .allow_provisioning
        })
    });
    let allowed = futures_count(requests).await;
    assert_eq!(allowed, 1);
}

async fn futures_count(handles: impl Iterator<Item = tokio::task::JoinHandle<bool>>) -> usize {
    let mut allowed = 0;
    for handle in handles {
        allowed += usize::from(handle.await.unwrap());
    }
    allowed
}

#[tokio::test(start_paused = true)]
async fn slow_registry_is_denied_at_the_budget() {
    let registry = fixture();
    registry.set_behaviour(Behaviour::Slow(Duration::from_secs(30)));
    let hook = hook(registry);
    let started = tokio::time::Instant::now();
    let answer = hook.handle(&event("allowed.json")).await;
    assert_eq!(answer, HookResponse::deny());
    // The clock is paused: the answer comes exactly at the budget, not at the registry's 30 s.
    assert_eq!(started.elapsed(), config().budget);
}

#[tokio::test]
async fn failing_registry_is_denied() {
    let registry = fixture();
    registry.set_behaviour(Behaviour::Failing(StoreError::Unavailable {
        call: "DynamoDB.UpdateItem".into(),
        message: "connection refused".into(),
    }));
    assert_eq!(
        hook(registry).handle(&event("allowed.json")).await,
        HookResponse::deny()
    );
}

#[test]
fn store_errors_map_to_deny_reasons() {
    let timeout = StoreError::Timeout {
        call: "c".into(),
        message: "m".into(),
    };
    assert_eq!(store_reason(timeout), DenyReason::RegistryTimeout);
    let throttled = StoreError::Throttled {
        call: "c".into(),
        message: "m".into(),
    };
    assert_eq!(store_reason(throttled).code(), "registry-unavailable");
}

#[test]
fn refusals_are_explained_from_the_old_row() {
    let entry = |status| {
        let mut e = RegistryEntry::allowed(Serial::parse("SN1").unwrap(), "m", "t");
        e.status = status;
        e
    };
    assert_eq!(DenyReason::from_refusal(None), DenyReason::UnknownSerial);
    assert_eq!(
        DenyReason::from_refusal(Some(&entry(RegistryStatus::Provisioned))),
        DenyReason::AlreadyProvisioned
    );
    assert_eq!(
        DenyReason::from_refusal(Some(&entry(RegistryStatus::Revoked))),
        DenyReason::Revoked
    );
    assert_eq!(
        DenyReason::from_refusal(Some(&entry(RegistryStatus::Locked))),
        DenyReason::Locked
    );
    assert_eq!(
        DenyReason::from_refusal(Some(&entry(RegistryStatus::Allowed))),
        DenyReason::WrongClaimCertificate
    );
}

#[tokio::test]
async fn repeated_denials_lock_the_serial_until_an_operator_acts() {
    let hook = hook(fixture());
    for attempt in 1..=5 {
        assert!(
            !hook
                .handle(&event("wrong-claim-certificate.json"))
                .await
                .allow_provisioning
        );
        assert_eq!(
            hook.registry
                .entry("SN-BATCH-0001")
                .unwrap()
                .denied_attempts,
            attempt
        );
    }
    assert_eq!(
        hook.registry.entry("SN-BATCH-0001").unwrap().status,
        RegistryStatus::Locked
    );
    // Even the right claim certificate is refused now.
    let mut right = event("wrong-claim-certificate.json");
    right["claimCertificateId"] = event("allowed.json")["claimCertificateId"].clone();
    assert!(!hook.handle(&right).await.allow_provisioning);
}

#[tokio::test]
async fn unknown_and_revoked_serials_are_not_counted() {
    let hook = hook(fixture());
    for _ in 0..6 {
        hook.handle(&event("revoked.json")).await;
        hook.handle(&event("unknown-serial.json")).await;
    }
    let revoked = hook.registry.entry("SN-REVOKED-0001").unwrap();
    assert_eq!(
        (revoked.status, revoked.denied_attempts),
        (RegistryStatus::Revoked, 0)
    );
    assert!(hook.registry.entry("SN-UNKNOWN-9999").is_none());
}

#[tokio::test]
async fn malformed_requests_never_reach_the_registry() {
    let registry = fixture();
    // A registry that fails every call: a malformed request must be denied before any I/O.
    registry.set_behaviour(Behaviour::Failing(StoreError::Rejected {
        call: "x".into(),
        message: "must not be called".into(),
    }));
    let hook = hook(registry);
    for name in [
        "missing-serial.json",
        "malformed-not-object.json",
        "malformed-wrong-types.json",
        "oversized-serial.json",
    ] {
        assert_eq!(
            hook.handle(&event(name)).await,
            HookResponse::deny(),
            "{name}"
        );
    }
    let mut bad_characters = event("allowed.json");
    bad_characters["parameters"]["SerialNumber"] = json!("SN 0001; DROP");
    assert_eq!(hook.handle(&bad_characters).await, HookResponse::deny());
    let mut empty = event("allowed.json");
    empty["parameters"]["SerialNumber"] = json!("");
    assert_eq!(hook.handle(&empty).await, HookResponse::deny());
}

#[tokio::test]
async fn thing_name_comes_from_the_registry_even_over_an_attribute() {
    let mut entry =
        RegistryEntry::allowed(Serial::parse("SN-ATTR-1").unwrap(), "m", "fleet-thing-1");
    entry.attributes.insert("ThingName".into(), "sneaky".into());
    let hook = hook(InMemoryRegistry::with_entries([entry]));
    let mut request = event("allowed.json");
    request["parameters"] = json!({"SerialNumber": "SN-ATTR-1", "ThingName": "admin"});
    let answer = hook.handle(&request).await;
    assert!(answer.allow_provisioning);
    assert_eq!(answer.parameter_overrides["ThingName"], "fleet-thing-1");
}

#[tokio::test]
async fn serial_parameter_name_is_configurable() {
    let mut config = config();
    config.serial_parameter = "DeviceSerial".into();
    let hook = ProvisioningHook::new(fixture(), InMemoryDeviceState::default(), config);
    let mut request = event("allowed.json");
    request["parameters"] = json!({"DeviceSerial": "SN-ALLOWED-0001"});
    let answer = hook.handle(&request).await;
    assert!(answer.allow_provisioning);
    assert_eq!(
        answer.parameter_overrides["DeviceSerial"],
        "SN-ALLOWED-0001"
    );
    assert!(
        !hook.handle(&event("allowed.json")).await.allow_provisioning,
        "SerialNumber is not read any more"
    );
}

/// AWS's documented hook input (`events/aws-examples/SOURCES.md`) parses with the hook's
/// own request type; without a serial it is denied as such, and with an allowlisted one
/// it is allowed.
#[tokio::test]
async fn aws_documented_hook_input_gets_a_decision() {
    let example = fleetwire::testing::event("aws-examples", "pre-provisioning-hook.json");
    let request = request::HookRequest::parse(&example).expect("AWS's example parses");
    assert_eq!(request.client_id, "221a6d10-9c7f-42f1-9153-e52e6fc869c1");
    let hook = hook(fixture());
    assert!(!hook.handle(&example).await.allow_provisioning);
    let mut with_serial = example.clone();
    with_serial["parameters"]["SerialNumber"] = json!("SN-ALLOWED-0001");
    assert!(hook.handle(&with_serial).await.allow_provisioning);
}

/// A Registry row whose thing name is in the claimants' client-id space is never
/// provisioned: a device of that name could be impersonated by any claim certificate.
#[tokio::test]
async fn a_thing_name_in_the_claimants_space_is_denied() {
    let entry = |serial: &str, thing: &str| {
        RegistryEntry::allowed(
            fleetwire::domain::registry::Serial::parse(serial).unwrap(),
            "sensor-v2",
            thing,
        )
    };
    let hook = hook(InMemoryRegistry::with_entries(vec![
        entry("SN-CLAIMSPACE-1", "claim-car-0001"),
        entry("SN-CLAIMSPACE-2", "car-0099"),
    ]));
    let answer = |serial: &str| {
        let mut request = event("allowed.json");
        request["parameters"]["SerialNumber"] = json!(serial);
        request
    };
    assert!(
        !hook
            .handle(&answer("SN-CLAIMSPACE-1"))
            .await
            .allow_provisioning
    );
    assert!(
        hook.handle(&answer("SN-CLAIMSPACE-2"))
            .await
            .allow_provisioning
    );
}

/// An allowed device's certificate is bound to its thing, so presence takes only its
/// events; the binding failing denies (fail closed), and the retry binds.
#[tokio::test]
async fn allowing_binds_the_things_certificate_and_fails_closed_without_it() {
    use fleetwire::domain::presence::PresenceStore;
    let hook = hook(fixture());
    let request = event("allowed.json");
    hook.binding.set_behaviour(Behaviour::Failing(
        fleetwire::runtime::error::StoreError::Throttled {
            call: "DynamoDB.UpdateItem".into(),
            message: "slow down".into(),
        },
    ));
    assert!(!hook.handle(&request).await.allow_provisioning);
    hook.binding.set_behaviour(Behaviour::Normal);
    assert!(hook.handle(&request).await.allow_provisioning, "the retry");
    let thing = fleetwire::domain::telemetry::DeviceId::parse("fleet-sensor-0001").unwrap();
    let state = hook.binding.presence(&thing).await.unwrap().unwrap();
    assert_eq!(
        state.certificate_id.as_deref(),
        request["certificateId"].as_str()
    );
}

#[tokio::test]
async fn each_decision_is_counted_and_logged_with_the_standard_keys() {
    use fleetwire::runtime::metrics::name;
    use fleetwire::testing::metrics::{counted, flushed, record};
    record();
    let logs = fleetwire::testing::logs::capture("fleetwire-test-function");
    let hook = hook(fixture());
    assert!(hook.handle(&event("allowed.json")).await.allow_provisioning);
    assert!(
        !hook
            .handle(&event("unknown-serial.json"))
            .await
            .allow_provisioning
    );
    let documents = flushed("hook-request", None);
    assert!(
        counted(
            &documents,
            name::PROVISIONING_DECISIONS,
            Some(("Reason", "allowed"))
        ) >= 1
    );
    let denied = counted(&documents, name::PROVISIONING_DECISIONS, None)
        - counted(
            &documents,
            name::PROVISIONING_DECISIONS,
            Some(("Reason", "allowed")),
        );
    assert!(
        denied >= 1,
        "the unknown serial's denial is counted: {documents:?}"
    );
    assert!(
        documents
            .iter()
            .all(|d| d["function_request_id"] == "hook-request")
    );
    let line = logs.line(
        "provisioning decision",
        Some(("device_id", "fleet-sensor-0001")),
    );
    fleetwire::testing::logs::assert_powertools_keys(&line, "fleetwire-test-function");
}
