use super::*;
use crate::domain::telemetry::{TelemetryRecord, TimestampLimits};
use serde_json::json;
use time::macros::datetime;

fn record(seconds: i64, temperature: f64, with_extras: bool) -> EnrichedRecord {
    let at = datetime!(2026-11-25 08:00 UTC) + time::Duration::seconds(seconds);
    let mut value = json!({"device_id": "car-1", "timestamp": at.unix_timestamp() * 1000,
        "temperature": temperature, "humidity": 40, "pressure": 1000});
    if with_extras {
        value["location"] = json!({"latitude": 37.5, "longitude": 127.0});
        value["metadata"] = json!({"version": "1.0", "source": "obd"});
    }
    let reading = TelemetryRecord::validate(&value, at, &TimestampLimits::default()).unwrap();
    EnrichedRecord::new(reading, at + time::Duration::seconds(2))
}

#[test]
fn welford_matches_the_textbook_formulas() {
    let mut stats = MetricStats::default();
    for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
        stats.push(x);
    }
    assert_eq!(stats.mean, 5.0);
    assert!((stats.std_dev().unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    assert!((stats.z_score(9.0).unwrap() - 4.0 / (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
}

#[test]
fn z_score_flags_only_after_enough_samples() {
    let rules = AnomalyRules {
        min_samples: 10,
        ..AnomalyRules::default()
    };
    let mut stats = DeviceStats::default();
    for n in 0..9 {
        assert!(assess(&mut stats, &record(n, 20.0 + (n % 3) as f64, true), &rules).is_empty());
    }
    // The tenth sample: only nine before it, so no z-score yet even for a jump.
    assert!(assess(&mut stats, &record(9, 60.0, true), &rules).is_empty());
    for n in 10..30 {
        assess(&mut stats, &record(n, 20.0 + (n % 3) as f64, true), &rules);
    }
    let anomalies = assess(&mut stats, &record(31, 70.0, true), &rules);
    assert_eq!(anomalies.len(), 1);
    assert_eq!(
        (anomalies[0].metric, anomalies[0].kind),
        (Metric::Temperature, AnomalyKind::ZScore)
    );
    assert!(anomalies[0].score > 3.0);
}

#[test]
fn fixed_bounds_flag_from_the_first_sample() {
    let mut stats = DeviceStats::default();
    let anomalies = assess(&mut stats, &record(0, 90.0, true), &AnomalyRules::default());
    assert_eq!(anomalies.len(), 1);
    assert_eq!(anomalies[0].kind, AnomalyKind::Bounds);
    assert_eq!(
        anomalies[0].alert_id(),
        format!("{}:temperature", anomalies[0].record_id)
    );
}

#[test]
fn data_quality_is_the_share_of_checks_passed() {
    assert_eq!(data_quality(&record(0, 20.0, true), false), 1.0);
    assert_eq!(data_quality(&record(0, 20.0, true), true), 0.75);
    assert_eq!(data_quality(&record(0, 20.0, false), false), 0.5);
    let mut late = record(0, 20.0, true);
    late.received_at = late.reading.timestamp + time::Duration::minutes(6);
    assert_eq!(data_quality(&late, false), 0.75);
}

#[test]
fn summary_derives_average_spread_and_quality() {
    let mut summary = HourlySummary::default();
    for (t, quality) in [(10.0, 1.0), (20.0, 0.5), (30.0, 0.75)] {
        summary.add(t, false, quality);
    }
    assert_eq!(summary.avg_temperature(), Some(20.0));
    assert!((summary.temp_stddev().unwrap() - (200.0f64 / 3.0).sqrt()).abs() < 1e-9);
    assert_eq!(
        (summary.min_temperature, summary.max_temperature),
        (Some(10.0), Some(30.0))
    );
    assert_eq!(summary.data_quality_score(), Some(0.75));
}

#[test]
fn hour_key_is_utc_hour() {
    assert_eq!(hour_key(&record(3599, 20.0, true)), "2026-11-25T08");
    assert_eq!(hour_key(&record(3600, 20.0, true)), "2026-11-25T09");
}

#[test]
fn a_duplicate_contributes_nothing() {
    let mut ledger = DeviceLedger::default();
    let r = record(0, 20.0, true);
    assert!(ledger.apply(&r, &AnomalyRules::default()).is_some());
    let before = ledger.clone();
    assert_eq!(ledger.apply(&r, &AnomalyRules::default()), None);
    assert_eq!(ledger, before);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any split of a reading sequence into batches, each replayed any number of
        /// times in stream order (a batch is retried before the next one is read),
        /// ends with the same summaries and statistics as one clean pass.
        #[test]
        fn batch_splits_and_replays_change_nothing(
            temperatures in proptest::collection::vec(-10.0f64..40.0, 1..120),
            cuts in proptest::collection::vec(1usize..20, 0..12),
            replays in proptest::collection::vec(0usize..3, 12),
        ) {
            let records: Vec<EnrichedRecord> = temperatures
                .iter()
                .enumerate()
                .map(|(n, t)| record(n as i64 * 97, *t, n % 4 != 0))
                .collect();
            let rules = AnomalyRules { min_samples: 5, ..AnomalyRules::default() };

            let mut clean = DeviceLedger::default();
            for r in &records {
                clean.apply(r, &rules);
            }

            let mut batched = DeviceLedger::default();
            let mut start = 0;
            for (i, size) in cuts.iter().chain(std::iter::once(&usize::MAX)).enumerate() {
                if start >= records.len() {
                    break;
                }
                let end = start.saturating_add(*size).min(records.len());
                for _ in 0..=replays[i % replays.len()] {
                    for r in &records[start..end] {
                        batched.apply(r, &rules);
                    }
                }
                // A retried batch may also be re-read after later ones (bisect).
                if replays[i % replays.len()] == 2 && start > 0 {
                    for r in &records[..start] {
                        batched.apply(r, &rules);
                    }
                }
                start = end;
            }
            prop_assert_eq!(batched.summaries, clean.summaries);
            prop_assert_eq!(batched.stats, clean.stats);
            prop_assert_eq!(batched.seen.len(), records.len());
        }
    }
}
