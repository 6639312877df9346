use fleetwire::cloudfront::{SigningKey, UrlVerifier, VerifyingKey};
use fleetwire::domain::ota::{Release, Rollout, RolloutStatus};
use fleetwire::domain::registry::{RegistryEntry, Serial};
use fleetwire::testing::{Behaviour, InMemoryOta, InMemoryRegistry, RecordingChannel};
use serde_json::json;
use time::macros::datetime;

use super::*;

const NOW: OffsetDateTime = datetime!(2026-11-25 06:00 UTC);

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../shared/tests/data/cloudfront/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn settings() -> UrlSettings {
    UrlSettings {
        download_base: "https://d111111abcdef8.cloudfront.net".into(),
        base_ttl_seconds: 900,
        slowest_bytes_per_second: 16_384,
        max_ttl_seconds: 86_400,
        bind_to_source_ip: false,
    }
}

fn entry(serial: &str, thing: &str, status: RegistryStatus) -> RegistryEntry {
    let mut entry = RegistryEntry::allowed(Serial::parse(serial).unwrap(), "sensor-x", thing);
    entry.status = status;
    entry
}

fn rollout(id: &str, version: &str, percentage: f64) -> Rollout {
    Rollout::active(id, "sensor-x", version, percentage, 0.2, 10)
}

fn release(version: &str, size: u64) -> Release {
    Release {
        model: "sensor-x".into(),
        version: version.into(),
        s3_key: format!("sensor-x/{version}/image v1.bin"),
        size,
        sha256: "9f".repeat(32),
        signature: "c2lnbmF0dXJl".into(),
        notes: None,
    }
}

type Fixture = FirmwareUrl<InMemoryRegistry, InMemoryOta, RecordingChannel>;

fn function(rollouts: Vec<Rollout>, settings: UrlSettings) -> Fixture {
    let registry = InMemoryRegistry::with_entries([
        entry("SN-1", "car-1", RegistryStatus::Provisioned),
        entry("SN-2", "car-2", RegistryStatus::Revoked),
        entry("SN-3", "car-3", RegistryStatus::Allowed),
    ]);
    let store = InMemoryOta::new(
        [release("1.5.0", 1_638_400), release("2.0.0", 10)],
        rollouts,
    );
    let signer = UrlSigner::new(
        "K2JCJMDEHXQW5F",
        SigningKey::from_pem(&key_file("rsa2048_pkcs1.pem")).unwrap(),
        None,
    )
    .unwrap();
    FirmwareUrl::new(
        registry,
        store,
        RecordingChannel::default(),
        signer,
        settings,
    )
}

fn request(thing: &str, current: &str) -> Value {
    json!({"thing_name": thing, "source_ip": "198.51.100.7", "request_id": "req-1",
           "model": "sensor-x", "current_version": current})
}

fn only_answer(f: &Fixture) -> (String, Value) {
    let published = f.channel.published();
    assert_eq!(published.len(), 1, "{published:?}");
    published.into_iter().next().unwrap()
}

#[tokio::test]
async fn offers_a_signed_url_that_cloudfront_would_accept() {
    let f = function(vec![rollout("r-15", "1.5.0", 100.0)], settings());
    let handled = f.handle(&request("car-1", "1.4.2"), NOW).await.unwrap();
    // 1,638,400 bytes at 16 KiB/s is 100 s on top of the 900 s base.
    let expires_at = NOW.unix_timestamp() + 1_000;
    assert_eq!(
        handled,
        Handled::Offered {
            thing_name: "car-1".into(),
            rollout_id: "r-15".into(),
            version: "1.5.0".into(),
            expires_at
        }
    );
    let (topic, answer) = only_answer(&f);
    assert_eq!(topic, "fleet/car-1/firmware/url");
    assert_eq!(answer["request_id"], "req-1");
    assert_eq!(answer["version"], "1.5.0");
    assert_eq!(answer["size"], 1_638_400);
    assert_eq!(answer["sha256"], "9f".repeat(32));
    assert_eq!(answer["signature"], "c2lnbmF0dXJl");
    assert_eq!(answer["expires_at"], expires_at);
    let url = answer["url"].as_str().unwrap();
    assert!(url.starts_with(
        "https://d111111abcdef8.cloudfront.net/sensor-x/1.5.0/image%20v1.bin?Expires="
    ));
    let verifier = UrlVerifier::new().trust(
        "K2JCJMDEHXQW5F",
        VerifyingKey::from_pem(&key_file("rsa2048_public.pem")).unwrap(),
    );
    assert!(
        verifier
            .verify(url, NOW.unix_timestamp() + 999, None)
            .is_ok()
    );
    assert!(
        verifier.verify(url, expires_at, None).is_err(),
        "expired at expires_at"
    );

    let offers = f.store.offers();
    assert_eq!(offers.len(), 1);
    assert_eq!(
        (
            offers[0].rollout_id.as_str(),
            offers[0].from_version.as_str()
        ),
        ("r-15", "1.4.2")
    );
}

#[tokio::test]
async fn binds_to_the_source_ip_only_when_configured() {
    let bound = UrlSettings {
        bind_to_source_ip: true,
        ..settings()
    };
    let f = function(vec![rollout("r-15", "1.5.0", 100.0)], bound);
    f.handle(&request("car-1", "1.4.2"), NOW).await.unwrap();
    let url = only_answer(&f).1["url"].as_str().unwrap().to_owned();
    assert!(url.contains("?Policy="), "custom policy: {url}");
    let verifier = UrlVerifier::new().trust(
        "K2JCJMDEHXQW5F",
        VerifyingKey::from_pem(&key_file("rsa2048_public.pem")).unwrap(),
    );
    let now = NOW.unix_timestamp() + 1;
    assert!(
        verifier
            .verify(&url, now, Some("198.51.100.7".parse().unwrap()))
            .is_ok()
    );
    assert!(
        verifier
            .verify(&url, now, Some("198.51.100.8".parse().unwrap()))
            .is_err()
    );
}

#[tokio::test]
async fn refusals_are_explicit_and_published() {
    let f = function(vec![rollout("r-15", "1.5.0", 100.0)], settings());
    let cases = [
        (request("car-2", "1.4.2"), "not_eligible", "REVOKED"),
        (request("car-3", "1.4.2"), "not_eligible", "ALLOWED"),
        (
            request("car-9", "1.4.2"),
            "not_eligible",
            "not in the Registry",
        ),
        (
            json!({"thing_name": "car-1", "request_id": "r", "model": "other", "current_version": "1.0"}),
            "not_eligible",
            "does not match",
        ),
        (
            json!({"thing_name": "car-1", "request_id": "r", "model": "sensor-x", "current_version": "v1"}),
            "not_eligible",
            "current_version",
        ),
        (
            json!({"thing_name": "car-1", "request_id": "r"}),
            "not_eligible",
            "invalid request",
        ),
        (
            json!({"thing_name": "car-1", "request_id": "a#b", "model": "sensor-x", "current_version": "1"}),
            "not_eligible",
            "request_id",
        ),
        (
            request("car-1", "1.5.0"),
            "up_to_date",
            "already on the version",
        ),
    ];
    for (event, status, reason) in cases {
        let before = f.channel.published().len();
        let handled = f.handle(&event, NOW).await.unwrap();
        assert!(matches!(handled, Handled::Answered { .. }), "{event}");
        let (topic, answer) = f.channel.published().pop().unwrap();
        assert_eq!(f.channel.published().len(), before + 1);
        assert_eq!(
            topic,
            "fleet/car-1/firmware/url".replace("car-1", event["thing_name"].as_str().unwrap())
        );
        assert_eq!(answer["status"], status, "{event}");
        assert!(
            answer["reason"].as_str().unwrap().contains(reason),
            "{event}: {answer}"
        );
    }
    assert!(
        f.store.offers().is_empty(),
        "nothing offered, nothing recorded"
    );
}

#[tokio::test]
async fn a_device_outside_the_percentage_is_up_to_date() {
    let f = function(vec![rollout("r-15", "1.5.0", 0.0)], settings());
    f.handle(&request("car-1", "1.4.2"), NOW).await.unwrap();
    let answer = only_answer(&f).1;
    assert_eq!(answer["status"], "up_to_date");
}

#[tokio::test]
async fn a_paused_rollout_is_not_offered() {
    let mut paused = rollout("r-20", "2.0.0", 100.0);
    paused.status = RolloutStatus::Paused;
    let f = function(vec![paused, rollout("r-15", "1.5.0", 100.0)], settings());
    let handled = f.handle(&request("car-1", "1.4.2"), NOW).await.unwrap();
    assert!(matches!(handled, Handled::Offered { ref version, .. } if version == "1.5.0"));
}

#[tokio::test]
async fn a_rollout_without_its_release_offers_nothing() {
    let f = function(vec![rollout("r-30", "3.0.0", 100.0)], settings());
    f.handle(&request("car-1", "1.4.2"), NOW).await.unwrap();
    let answer = only_answer(&f).1;
    assert_eq!(answer["status"], "up_to_date");
    assert!(answer["reason"].as_str().unwrap().contains("not published"));
}

#[tokio::test]
async fn events_without_a_thing_name_are_dropped_without_publishing() {
    let f = function(vec![], settings());
    for event in [json!({}), json!({"thing_name": "a/b"}), json!("text")] {
        assert!(matches!(
            f.handle(&event, NOW).await.unwrap(),
            Handled::Dropped { .. }
        ));
    }
    assert!(f.channel.published().is_empty());
}

#[tokio::test]
async fn store_and_publish_failures_are_errors_so_lambda_retries() {
    let f = function(vec![rollout("r-15", "1.5.0", 100.0)], settings());
    let down = StoreError::Unavailable {
        call: "x".into(),
        message: "down".into(),
    };
    f.channel.set_behaviour(Behaviour::Failing(down.clone()));
    assert_eq!(
        f.handle(&request("car-1", "1.4.2"), NOW).await.unwrap_err(),
        down
    );
    f.channel.set_behaviour(Behaviour::Normal);
    f.store.set_behaviour(Behaviour::Failing(down.clone()));
    assert_eq!(
        f.handle(&request("car-1", "1.4.2"), NOW).await.unwrap_err(),
        down
    );
    f.store.set_behaviour(Behaviour::Normal);
    assert!(matches!(
        f.handle(&request("car-1", "1.4.2"), NOW).await.unwrap(),
        Handled::Offered { .. }
    ));
    assert_eq!(
        f.store.offers().len(),
        1,
        "the retry overwrote the same offer"
    );
}

#[test]
fn s3_keys_are_percent_encoded_for_the_path() {
    assert_eq!(percent_encode_path("a/b c/é.bin"), "a/b%20c/%C3%A9.bin");
    assert_eq!(percent_encode_path("x?y#z"), "x%3Fy%23z");
}

fn sample(name: &str) -> Value {
    fleetwire::testing::event("firmware-url", name)
}

#[tokio::test]
async fn sample_events_give_the_expected_answers() {
    let fixtures = sample("fixtures.json");
    let registry = InMemoryRegistry::with_entries(
        serde_json::from_value::<Vec<RegistryEntry>>(fixtures["registry"].clone()).unwrap(),
    );
    let store = InMemoryOta::new(
        serde_json::from_value::<Vec<Release>>(fixtures["releases"].clone()).unwrap(),
        serde_json::from_value::<Vec<Rollout>>(fixtures["rollouts"].clone()).unwrap(),
    );
    let signer = UrlSigner::new(
        "K2JCJMDEHXQW5F",
        SigningKey::from_pem(&key_file("rsa2048_pkcs1.pem")).unwrap(),
        None,
    )
    .unwrap();
    let f = FirmwareUrl::new(
        registry,
        store,
        RecordingChannel::default(),
        signer,
        settings(),
    );
    let expected: Vec<Value> = serde_json::from_value(sample("expected.json")).unwrap();
    for case in expected {
        let event = sample(case["event"].as_str().unwrap());
        let got = serde_json::to_value(f.handle(&event, NOW).await.unwrap()).unwrap();
        for (key, want) in case["result"].as_object().unwrap() {
            assert_eq!(&got[key], want, "{}: {got}", case["event"]);
        }
        let (topic, answer) = f.channel.published().pop().unwrap();
        assert_eq!(
            topic,
            format!(
                "fleet/{}/firmware/url",
                event["thing_name"].as_str().unwrap()
            )
        );
        assert_eq!(answer["request_id"], event["request_id"], "{answer}");
    }
}

#[tokio::test]
async fn offers_are_counted_by_outcome_in_the_invocations_emf() {
    use fleetwire::runtime::metrics::name;
    use fleetwire::testing::metrics::{counted, flushed, record};
    record();
    let logs = fleetwire::testing::logs::capture("fleetwire-test-function");
    let f = function(vec![rollout("r-15", "1.5.0", 100.0)], settings());
    f.handle(&request("car-1", "1.4.2"), NOW).await.unwrap();
    f.handle(&request("car-1", "1.5.0"), NOW).await.unwrap();
    let documents = flushed("firmware-request", None);
    assert!(
        counted(
            &documents,
            name::FIRMWARE_OFFERS,
            Some(("Outcome", "offered"))
        ) >= 1
    );
    assert!(
        counted(
            &documents,
            name::FIRMWARE_OFFERS,
            Some(("Outcome", "up_to_date"))
        ) >= 1
    );
    let line = logs.line("firmware offered", Some(("device_id", "car-1")));
    fleetwire::testing::logs::assert_powertools_keys(&line, "fleetwire-test-function");
}
