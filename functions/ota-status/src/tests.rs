use fleetwire::domain::ota::{OfferRecord, OtaLedger, Rollout, RolloutStatus};
use fleetwire::testing::{Behaviour, InMemoryOta, RecordingOtaAlerts};
use time::macros::datetime;

use super::*;

const NOW: OffsetDateTime = datetime!(2026-11-25 07:00 UTC);

fn rollout(min_sample: u64, threshold: f64) -> Rollout {
    Rollout::active("r-15", "sensor-x", "1.5.0", 10.0, threshold, min_sample)
}

async fn function(rollout: Rollout, devices: usize) -> OtaStatus<InMemoryOta, RecordingOtaAlerts> {
    let store = InMemoryOta::new([], [rollout]);
    for i in 0..devices {
        store
            .record_offer(&OfferRecord {
                device_id: format!("car-{i}"),
                request_id: "req-1".into(),
                rollout_id: "r-15".into(),
                version: "1.5.0".into(),
                from_version: "1.4.2".into(),
                url_expires_at: 0,
                at: NOW,
            })
            .await
            .unwrap();
    }
    OtaStatus::new(store, RecordingOtaAlerts::default())
}

fn report(device: usize, status: &str) -> Value {
    json!({"thing_name": format!("car-{device}"), "request_id": "req-1", "version": "1.5.0",
           "status": status, "detail": "x", "progress": 100})
}

fn counters(f: &OtaStatus<InMemoryOta, RecordingOtaAlerts>) -> (u64, u64, RolloutStatus) {
    counters_of(f, "r-15")
}

#[tokio::test]
async fn progress_is_recorded_and_not_counted() {
    let f = function(rollout(1, 0.5), 1).await;
    for status in ["downloading", "verifying", "installing"] {
        let handled = f.handle(&report(0, status), NOW).await.unwrap();
        assert!(matches!(handled, Handled::Progress { .. }), "{handled:?}");
    }
    assert_eq!(f.store.progress().len(), 3);
    assert_eq!(counters(&f), (0, 0, RolloutStatus::Active));
}

#[tokio::test]
async fn duplicate_outcomes_count_once() {
    let f = function(rollout(100, 0.5), 2).await;
    for _ in 0..3 {
        f.handle(&report(0, "succeeded"), NOW).await.unwrap();
    }
    let again = f.handle(&report(0, "failed"), NOW).await.unwrap();
    assert!(
        matches!(again, Handled::Finished { counted: false, .. }),
        "one outcome per request"
    );
    f.handle(&report(1, "rejected"), NOW).await.unwrap();
    assert_eq!(counters(&f), (1, 1, RolloutStatus::Active));
    assert_eq!(f.store.outcomes().len(), 2);
}

#[tokio::test]
async fn pauses_once_past_the_threshold_after_the_minimum_sample_and_alerts_once() {
    // Threshold 20 %, sample 10: 7 successes then 3 failures is 30 % at the 10th report.
    let f = function(rollout(10, 0.2), 12).await;
    for device in 0..7 {
        f.handle(&report(device, "succeeded"), NOW).await.unwrap();
    }
    for device in 7..9 {
        let handled = f.handle(&report(device, "failed"), NOW).await.unwrap();
        assert!(
            matches!(handled, Handled::Finished { paused: false, .. }),
            "sample not reached"
        );
    }
    let handled = f.handle(&report(9, "failed"), NOW).await.unwrap();
    assert!(
        matches!(handled, Handled::Finished { paused: true, .. }),
        "{handled:?}"
    );
    assert_eq!(counters(&f), (7, 3, RolloutStatus::Paused));
    for device in 10..12 {
        f.handle(&report(device, "failed"), NOW).await.unwrap();
    }
    let alerts = f.alerts.sent();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, "rollout_paused");
    assert_eq!(alerts[0].alert_id, "rollout-paused:r-15");
    assert!(
        alerts[0].message.contains("30.0 %"),
        "{}",
        alerts[0].message
    );
}

#[tokio::test]
async fn a_failed_alert_is_sent_by_the_retry() {
    let f = function(rollout(1, 0.0), 1).await;
    let down = StoreError::Unavailable {
        call: "SNS.Publish".into(),
        message: "down".into(),
    };
    f.alerts.set_behaviour(Behaviour::Failing(down.clone()));
    assert_eq!(f.handle(&report(0, "failed"), NOW).await.unwrap_err(), down);
    assert_eq!(
        counters(&f).2,
        RolloutStatus::Paused,
        "paused before the alert"
    );
    f.alerts.set_behaviour(Behaviour::Normal);
    let duplicate = f.handle(&report(0, "failed"), NOW).await.unwrap();
    assert!(matches!(
        duplicate,
        Handled::Finished { counted: false, .. }
    ));
    assert!(
        f.alerts.sent().is_empty(),
        "the failed sender's lease still holds"
    );
    // Lambda retries a failed asynchronous invoke after about a minute.
    let later = NOW + time::Duration::minutes(1);
    let retried = f.handle(&report(0, "failed"), later).await.unwrap();
    assert!(matches!(
        retried,
        Handled::Finished {
            counted: false,
            paused: false,
            ..
        }
    ));
    assert_eq!(
        f.alerts.sent().len(),
        1,
        "the owed alert went out on the retry"
    );
    assert_eq!(counters(&f).1, 1, "still counted once");
    f.handle(&report(0, "failed"), later + time::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(f.alerts.sent().len(), 1, "and only once");
}

#[tokio::test]
async fn unoffered_versions_are_flagged_and_alerted_once() {
    let f = function(rollout(1, 0.5), 1).await;
    let wrong_version = json!({"thing_name": "car-0", "request_id": "req-1", "version": "9.9.9", "status": "succeeded"});
    let no_offer = json!({"thing_name": "car-5", "request_id": "req-7", "version": "1.5.0", "status": "installing"});
    for event in [&wrong_version, &wrong_version, &no_offer] {
        assert!(matches!(
            f.handle(event, NOW).await.unwrap(),
            Handled::Flagged { .. }
        ));
    }
    let flags = f.store.flags();
    assert_eq!(flags.len(), 2);
    assert!(flags[0].2.contains("which offered 1.5.0"), "{flags:?}");
    assert!(flags[1].2.contains("which offered nothing"), "{flags:?}");
    let alerts = f.alerts.sent();
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a.kind == "unoffered_version"));
    assert_eq!(
        counters(&f),
        (0, 0, RolloutStatus::Active),
        "a flagged report counts nowhere"
    );
}

#[tokio::test]
async fn bad_reports_are_ignored_with_a_reason() {
    let f = function(rollout(1, 0.5), 1).await;
    for (event, why) in [
        (json!({"thing_name": "car-0"}), "not an OTA status report"),
        (
            json!({"thing_name": "car-0", "request_id": "r", "version": "1", "status": "exploded"}),
            "not an OTA status report",
        ),
        (
            json!({"thing_name": "", "request_id": "r", "version": "1", "status": "failed"}),
            "thing_name",
        ),
        (
            json!({"thing_name": "car-0", "request_id": "a#1", "version": "1", "status": "failed"}),
            "request_id",
        ),
        (
            json!({"thing_name": "car-0", "request_id": "r", "version": "1", "status": "downloading", "progress": 140}),
            "progress",
        ),
    ] {
        match f.handle(&event, NOW).await.unwrap() {
            Handled::Ignored { reason } => assert!(reason.contains(why), "{reason}"),
            other => panic!("{event}: {other:?}"),
        }
    }
    assert!(f.alerts.sent().is_empty());
}

#[tokio::test]
async fn store_failures_are_errors_so_lambda_retries() {
    let f = function(rollout(1, 0.5), 1).await;
    let down = StoreError::Throttled {
        call: "x".into(),
        message: "slow down".into(),
    };
    f.store.set_behaviour(Behaviour::Failing(down.clone()));
    assert_eq!(
        f.handle(&report(0, "succeeded"), NOW).await.unwrap_err(),
        down
    );
    f.store.set_behaviour(Behaviour::Normal);
    f.handle(&report(0, "succeeded"), NOW).await.unwrap();
    assert_eq!(counters(&f), (1, 0, RolloutStatus::Active));
}

fn sample(name: &str) -> Value {
    fleetwire::testing::event("ota-status", name)
}

#[tokio::test]
async fn sample_events_in_sequence_give_the_expected_outcomes() {
    let fixtures = sample("fixtures.json");
    let rollouts: Vec<Rollout> = serde_json::from_value(fixtures["rollouts"].clone()).unwrap();
    let store = InMemoryOta::new([], rollouts);
    for offer in fixtures["offers"].as_array().unwrap() {
        let text = |k: &str| offer[k].as_str().unwrap().to_owned();
        store
            .record_offer(&OfferRecord {
                device_id: text("device_id"),
                request_id: text("request_id"),
                rollout_id: text("rollout_id"),
                version: text("version"),
                from_version: text("from_version"),
                url_expires_at: 0,
                at: NOW,
            })
            .await
            .unwrap();
    }
    let f = OtaStatus::new(store, RecordingOtaAlerts::default());
    let expected: Vec<Value> = serde_json::from_value(sample("expected.json")).unwrap();
    for case in expected {
        let got = serde_json::to_value(
            f.handle(&sample(case["event"].as_str().unwrap()), NOW)
                .await
                .unwrap(),
        )
        .unwrap();
        for (key, want) in case["result"].as_object().unwrap() {
            assert_eq!(&got[key], want, "{}: {got}", case["event"]);
        }
    }
    assert_eq!(
        counters_of(&f, "sensor-x-1.5.0-wave1"),
        (1, 0, RolloutStatus::Active)
    );
    assert_eq!(
        f.alerts.sent().len(),
        1,
        "the unoffered version was alerted"
    );
}

fn counters_of(
    f: &OtaStatus<InMemoryOta, RecordingOtaAlerts>,
    id: &str,
) -> (u64, u64, RolloutStatus) {
    let state = f.store.rollout_state(id).unwrap();
    (
        state.rollout.successes,
        state.rollout.failures,
        state.rollout.status,
    )
}

#[tokio::test]
async fn outcomes_and_a_pause_are_counted_in_the_invocations_emf() {
    use fleetwire::runtime::metrics::name;
    use fleetwire::testing::metrics::{counted, flushed, record};
    record();
    let logs = fleetwire::testing::logs::capture("fleetwire-test-function");
    let f = function(rollout(2, 0.2), 2).await;
    f.handle(&report(0, "failed"), NOW).await.unwrap();
    f.handle(&report(1, "failed"), NOW).await.unwrap();
    let documents = flushed("ota-request", None);
    assert!(counted(&documents, name::OTA_OUTCOMES, Some(("Status", "failed"))) >= 2);
    assert!(counted(&documents, name::ROLLOUTS_PAUSED, None) >= 1);
    let line = logs.line("OTA outcome recorded", None);
    fleetwire::testing::logs::assert_powertools_keys(&line, "fleetwire-test-function");
    assert!(line["device_id"].is_string(), "{line}");
}
