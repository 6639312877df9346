//! What the runner reads from the project's template and what it refuses.

use super::*;

#[test]
fn the_http_api_routes_are_played_with_their_authorization() {
    let without_issuer = project(&[("Stage", "local")]);
    let keys: Vec<&str> = without_issuer
        .http_routes
        .iter()
        .map(|r| r.route_key.as_str())
        .collect();
    assert_eq!(keys, ["POST /v1/backend/telemetry"]);
    assert_eq!(without_issuer.http_routes[0].auth, RouteAuth::Iam);

    let with_issuer = project(&[
        ("Stage", "local"),
        ("TelemetryTokenIssuer", "http://127.0.0.1:8087/runner"),
    ]);
    let device = with_issuer
        .http_routes
        .iter()
        .find(|r| r.route_key == "POST /v1/telemetry")
        .expect("the device route exists once an issuer is given");
    assert_eq!(
        (device.method.as_str(), device.path.as_str()),
        ("POST", "/v1/telemetry")
    );
    assert_eq!(device.function, "TelemetryHttpFunction");
    assert_eq!(
        device.auth,
        RouteAuth::Jwt {
            issuer: "http://127.0.0.1:8087/runner".into(),
            audiences: vec!["fleetwire-telemetry".into()],
        }
    );
    assert_eq!(
        with_issuer
            .function("TelemetryHttpFunction")
            .unwrap()
            .binary,
        "telemetry-http"
    );
}

#[test]
fn the_project_template_is_played_whole() {
    let wiring = project(&[("Stage", "local"), ("FirmwarePublicKeyPem", "local")]);
    let binaries: Vec<&str> = wiring
        .functions
        .values()
        .map(|f| f.binary.as_str())
        .collect();
    for binary in [
        "telemetry-ingest",
        "stream-processor",
        "presence",
        "provisioning-hook",
        "firmware-url",
        "ota-status",
    ] {
        assert!(binaries.contains(&binary), "{binary} in {binaries:?}");
    }
    let ingest = wiring.function("TelemetryIngestFunction").unwrap();
    assert_eq!(ingest.async_retries, 2);
    assert_eq!(
        ingest.on_failure_queue.as_deref(),
        Some("fleetwire-local-failed-events")
    );
    assert_eq!(ingest.name, "fleetwire-local-telemetry-ingest");
    let rules: Vec<(&str, &str)> = wiring
        .rules
        .iter()
        .map(|r| (r.sql.from.as_str(), r.function.as_str()))
        .collect();
    assert!(
        rules.contains(&("fleet/+/telemetry", "TelemetryIngestFunction")),
        "{rules:?}"
    );
    assert!(rules.contains(&("$aws/events/presence/+/+", "PresenceFunction")));
    assert!(rules.contains(&("fleet/+/firmware/request", "FirmwareUrlFunction")));
    assert!(rules.contains(&("fleet/+/ota/status", "OtaStatusFunction")));
    assert!(
        wiring
            .rules
            .iter()
            .all(|r| r.error_queue.as_deref() == Some("fleetwire-local-failed-events"))
    );
    let template = &wiring.provisioning[0];
    assert_eq!(template.name, "fleetwire-local-fleet");
    assert_eq!(template.hook.as_deref(), Some("ProvisioningHookFunction"));
    assert_eq!(
        template
            .body
            .pointer("/Resources/policy/Properties/PolicyName"),
        Some(&Value::from("fleetwire-local-device"))
    );
    let [mapping] = &wiring.mappings[..] else {
        panic!("{:?}", wiring.mappings)
    };
    assert_eq!(
        mapping.source,
        Source::Kinesis {
            stream: "fleetwire-local-telemetry".into(),
            arn: "arn:aws:kinesis:us-east-1:123456789012:stream/fleetwire-local-telemetry".into()
        }
    );
    assert!(mapping.report_batch_item_failures && mapping.bisect_on_error);
    assert_eq!(mapping.maximum_retry_attempts, 10);
    assert_eq!(
        mapping.on_failure_queue.as_deref(),
        Some("fleetwire-local-failed-events")
    );
}

#[test]
fn the_msk_backend_maps_the_kafka_topic_and_no_firmware_key_leaves_firmware_out() {
    let wiring = project(&[("StreamBackend", "msk")]);
    let [mapping] = &wiring.mappings[..] else {
        panic!("{:?}", wiring.mappings)
    };
    assert!(
        matches!(&mapping.source, Source::Kafka { topics, .. } if topics == &["fleet-telemetry"])
    );
    assert!(wiring.function("FirmwareUrlFunction").is_none());
    assert!(
        !wiring
            .rules
            .iter()
            .any(|r| r.sql.from == "fleet/+/firmware/request")
    );
}
