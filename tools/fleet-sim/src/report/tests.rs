//! The report's tallies, its invariants and how it prints.

use super::*;
use serde_json::json;
use std::time::Instant;

fn sent(seq: u64, thing: &str, kind: Kind, temperature: f64) -> Sent {
    Sent {
        seq,
        thing: thing.into(),
        kind,
        timestamp_ms: 1_796_115_600_000 + seq as i64,
        temperature,
        spike: false,
        published: Instant::now(),
    }
}

#[test]
fn readings_are_matched_with_the_stream_and_the_dead_letter_queue() {
    let sent = vec![
        sent(1, "sim-a", Kind::Valid, 20.0),
        sent(2, "sim-a", Kind::Valid, 22.0),
        sent(3, "sim-a", Kind::Invalid, 999.0),
        sent(4, "sim-a", Kind::Spoofed, 21.0),
        sent(5, "sim-a", Kind::Valid, 21.0),
    ];
    let stream = vec![json!({"seq": 1}), json!({"seq": 2})];
    let letters = vec![
        json!({"reason": "validation", "payload": {"seq": 3}}),
        json!({"reason": "spoofed", "payload": {"seq": 4}}),
    ];
    let summaries = vec![SummaryRow {
        device: "sim-a".into(),
        hour: "2026-12-01T09".into(),
        count: 2,
        sum: 42.0,
        min: Some(20.0),
        max: Some(22.0),
    }];
    let state = HashMap::from([(
        "sim-a".to_string(),
        StateRow {
            online: true,
            last_telemetry_at: Some(1),
        },
    )]);
    let mut report = Report::default();
    report.tally(&Inputs {
        outcomes: &[
            (
                true,
                Outcome {
                    provisioned: true,
                    ..Outcome::default()
                },
            ),
            (
                false,
                Outcome {
                    denied: true,
                    ..Outcome::default()
                },
            ),
        ],
        sent: &sent,
        stream: &stream,
        dead_letters: &letters,
        state: &state,
        summaries: &summaries,
        provisioned_things: &["sim-a".to_string()],
    });
    let t = &report.telemetry;
    assert_eq!((t.sent, t.accepted, t.rejected, t.in_dlq), (5, 2, 2, 2));
    assert_eq!(t.lost, 1, "seq 5 is nowhere");
    assert_eq!(t.misjudged, 0);
    assert_eq!(report.summaries.mismatches, 0);
    assert_eq!(
        (report.devices.denied, report.devices.denied_expected),
        (1, 1)
    );
    assert_eq!(report.state.online_at_end, 1);
    assert!(
        report
            .violations()
            .iter()
            .any(|v| v.contains("1 readings lost"))
    );
}

#[test]
fn a_summary_off_by_one_reading_is_a_mismatch() {
    let sent = vec![
        sent(1, "d", Kind::Valid, 20.0),
        sent(2, "d", Kind::Valid, 30.0),
    ];
    let accepted = HashSet::from([1, 2]);
    let expected = expected_summaries(&sent, &accepted);
    let row = |count, sum| SummaryRow {
        device: "d".into(),
        hour: "2026-12-01T09".into(),
        count,
        sum,
        min: Some(20.0),
        max: Some(30.0),
    };
    assert_eq!(mismatches(&expected, &[row(2, 50.0)]), 0);
    assert_eq!(mismatches(&expected, &[row(1, 20.0)]), 1);
    assert_eq!(mismatches(&expected, &[]), 1, "a missing row");
}

#[test]
fn the_report_prints_as_a_table_in_the_fields_order_with_aligned_values() {
    let report = Report {
        run: "abc123".into(),
        backend: "kinesis".into(),
        duration_s: 15.2,
        devices: Devices {
            requested: 20,
            provisioned: 18,
            denied: 2,
            ..Devices::default()
        },
        latency_ms: Latency {
            p50: Some(812.25),
            p95: None,
            p99: Some(1200.0),
            samples: 40,
        },
        ..Report::default()
    };
    let text = report.render();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "fleet-sim run abc123 (kinesis, 15 s)");
    let rows: Vec<&str> = lines[2..]
        .iter()
        .copied()
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        rows[0].starts_with("SECTION") && rows[0].ends_with("VALUE"),
        "{text}"
    );
    let width = rows[0].len();
    assert!(
        rows.iter().all(|r| r.len() == width),
        "every row ends in one column:\n{text}"
    );
    let figures: Vec<(&str, &str)> = rows[1..]
        .iter()
        .map(|r| {
            let mut words = r.split_whitespace().rev();
            let value = words.next().unwrap();
            (words.next().unwrap(), value)
        })
        .collect();
    assert_eq!(
        &figures[..3],
        [("requested", "20"), ("provisioned", "18"), ("denied", "2")],
        "the struct's order, not the alphabet's"
    );
    assert!(figures.contains(&("p50", "812.2")) || figures.contains(&("p50", "812.3")));
    assert!(figures.contains(&("p95", "-")), "no figure is shown as -");
    assert!(rows.iter().any(|r| r.starts_with("throughput")), "{text}");
}

#[test]
fn quantiles_by_nearest_rank() {
    let mut samples: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(quantile(&mut samples, 0.5), Some(50.0));
    assert_eq!(quantile(&mut samples, 0.99), Some(99.0));
    assert_eq!(quantile(&mut [], 0.5), None);
}

/// A report whose every other invariant holds, run under `profile`.
fn under_faults(profile: &str, injected: &[(&str, u64)], retries: u64) -> Report {
    let mut report = Report {
        drained: true,
        faults: Some(FaultsReport {
            profile: profile.into(),
            injected_by_kind: injected
                .iter()
                .map(|(k, n)| ((*k).to_owned(), *n))
                .collect(),
            functions: crate::chaos::log::Met {
                invocations: 1,
                retries,
                errors_by_code: [("ServiceUnavailable".to_owned(), 2)].into_iter().collect(),
                hook_decisions: 20,
                hook_slowest_ms: 400,
            },
            hook_budget_ms: 3_000,
            ..FaultsReport::default()
        }),
        ..Report::default()
    };
    report.ota.rollouts_paused = 1;
    report
}

#[test]
fn a_hook_decision_past_its_budget_breaks_the_run() {
    let mut slow = under_faults("latency", &[("dynamodb delayed calls", 9)], 0);
    if let Some(faults) = &mut slow.faults {
        faults.functions.hook_decisions = 20;
        faults.functions.hook_slowest_ms = 3_200;
    }
    assert_eq!(
        slow.violations(),
        ["the provisioning hook took 3200 ms to decide, past its budget of 3000 ms"]
    );
}

#[test]
fn a_run_under_faults_must_have_met_them() {
    let held = under_faults(
        "throttle",
        &[("dynamodb ServiceUnavailable (HTTP 503)", 3)],
        2,
    );
    assert!(held.violations().is_empty(), "{:?}", held.violations());

    let nothing_injected = under_faults("latency", &[], 0);
    assert_eq!(
        nothing_injected.violations(),
        ["profile latency: nothing was injected or killed"]
    );
    let never_retried = under_faults(
        "throttle",
        &[("kinesis InternalServerError (HTTP 500)", 1)],
        0,
    );
    assert_eq!(
        never_retried.violations(),
        ["profile throttle: no function retried an AWS call"]
    );
    let never_killed = under_faults("kills", &[], 0);
    assert_eq!(
        never_killed.violations(),
        [
            "profile kills: nothing was injected or killed",
            "profile kills: 0 kills and 0 restarts, at least one of each expected"
        ]
    );
}

#[test]
fn the_faults_print_below_the_figures() {
    let report = under_faults(
        "throttle",
        &[("dynamodb ServiceUnavailable (HTTP 503)", 3)],
        2,
    );
    let table = report.render();
    let faults: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("faults"))
        .collect();
    assert_eq!(faults.len(), 9, "{table}");
    assert!(faults[0].ends_with("throttle"));
    assert!(
        faults[1].contains("injected: dynamodb ServiceUnavailable (HTTP 503)")
            && faults[1].ends_with('3')
    );
    assert!(faults[4].contains("freezes"));
    assert!(faults[6].contains("functions: SDK retries") && faults[6].ends_with('2'));
    assert!(faults[7].contains("hook: slowest decision (ms)"));
    assert!(faults[8].contains("functions: ServiceUnavailable"));
}

#[test]
fn a_connected_device_offline_in_state_is_presence_gone_wrong() {
    let mut report = under_faults("latency", &[("dynamodb delayed calls", 9)], 0);
    report.state.offline_at_end = 1;
    assert_eq!(
        report.violations(),
        ["1 connected devices are not online in State: presence did not converge"]
    );
    report.devices.failed = 1;
    report.errors.push("sim-x: no firmware answer".into());
    assert!(
        report.violations().iter().all(|v| !v.contains("presence")),
        "{:?}",
        report.violations()
    );
}
