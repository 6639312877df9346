//! The hook's log: one structured line per decision, never the certificate PEM.
//!
//! Its own test binary on purpose: tracing caches each callsite's interest process-wide,
//! and a scoped subscriber misses events when other tests on other threads hit the same
//! callsites at the same time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetwire::domain::registry::RegistryEntry;
use fleetwire::testing::InMemoryRegistry;
use lambda_runtime::tracing::subscriber;
use provisioning_hook::{HookConfig, ProvisioningHook};
use serde_json::Value;

/// A writer that keeps what the log subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn one_log_line_per_decision_with_serial_reason_and_never_the_pem() {
    let captured = Captured::default();
    let writer = captured.clone();
    let collector = subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(collector);

    let entries: Vec<RegistryEntry> = serde_json::from_value(fleetwire::testing::event(
        "provisioning-hook",
        "registry.json",
    ))
    .unwrap();
    let config = HookConfig {
        registry_table: "registry".into(),
        state_table: "state".into(),
        serial_parameter: "SerialNumber".into(),
        budget: Duration::from_secs(3),
        lock_after: 5,
    };
    let hook = ProvisioningHook::new(
        InMemoryRegistry::with_entries(entries),
        fleetwire::testing::InMemoryDeviceState::default(),
        config,
    );
    let allowed: Value = fleetwire::testing::event("provisioning-hook", "allowed.json");
    let revoked: Value = fleetwire::testing::event("provisioning-hook", "revoked.json");
    hook.handle(&allowed).await;
    hook.handle(&revoked).await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let allow = &lines[0]["fields"];
    assert_eq!(
        (allow["serial"].as_str(), allow["decision"].as_str()),
        (Some("SN-ALLOWED-0001"), Some("allow"))
    );
    assert_eq!(allow["client_id"], "SN-ALLOWED-0001");
    assert!(
        allow["certificate_id"]
            .as_str()
            .unwrap()
            .starts_with("c0ffee")
    );
    assert!(allow["duration_ms"].is_u64());
    let deny = &lines[1]["fields"];
    assert_eq!(
        (deny["decision"].as_str(), deny["reason"].as_str()),
        (Some("deny"), Some("revoked"))
    );
    assert_eq!(deny["serial"], "SN-REVOKED-0001");
    assert!(
        !text.contains("BEGIN CERTIFICATE"),
        "the PEM must never be logged"
    );
}
