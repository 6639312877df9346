//! The charts of a report: every row becomes a bar of its kind, and the SVG holds them.

use serde_json::json;

use super::*;

fn report() -> Value {
    json!({
        "date": "2026-12-07",
        "machine": "test cpu, 2 cores, x86_64",
        "cold_start": [
            {"name": "sdk-floor", "cold_start_ms": 42.5, "peak_rss_mib": 20.2},
            {"name": "provisioning-hook", "cold_start_ms": 32.8, "peak_rss_mib": 20.4},
            {"name": "provisioning-hook-python", "cold_start_ms": 264.7, "peak_rss_mib": 48.7},
        ],
        "throughput": {
            "ingest_e2e_records_per_second": 2298.6,
            "ingest_e2e_floor_records_per_second": 2831.6,
            "ingest_e2e_python_records_per_second": null,
            "stream_processor_records_per_second": 750.3,
            "stream_processor_floor_records_per_second": 3816.9,
        },
    })
}

#[test]
fn each_row_is_a_bar_of_its_kind() {
    let charts = from_report(&report()).unwrap();
    let files: Vec<_> = charts.iter().map(|c| c.file).collect();
    assert_eq!(
        files,
        [
            "bench-cold-start.svg",
            "bench-memory.svg",
            "bench-throughput.svg"
        ]
    );
    let kinds: Vec<_> = charts[0]
        .bars
        .iter()
        .map(|b| (b.label.as_str(), b.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("sdk-floor", Kind::Floor),
            ("provisioning-hook", Kind::Fleetwire),
            ("provisioning-hook-python", Kind::Python)
        ]
    );
    assert_eq!(charts[1].bars[2].value, 48.7);
    assert_eq!(
        charts[2].bars.len(),
        4,
        "a throughput the run did not measure has no bar"
    );
}

#[test]
fn the_svg_draws_every_bar_with_its_value_and_the_legend() {
    let charts = from_report(&report()).unwrap();
    let svg = render_svg(&charts[0]).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
    for text in [
        "provisioning-hook-python",
        "265 ms",
        "32.8 ms",
        "SDK-only floor",
        "Python 3.11 + boto3 peer",
        "Cold start",
    ] {
        assert!(svg.contains(text), "{text} is not in the chart");
    }
    // One filled rectangle per bar, in its kind's colour.
    assert_eq!(
        svg.matches("fill=\"#2F5BD3\"").count(),
        2,
        "one bar and its legend key"
    );
}

#[test]
fn a_report_without_rows_is_refused_by_name() {
    let error = from_report(&json!({"throughput": {}})).unwrap_err();
    assert!(error.contains("cold_start"), "{error}");
    let empty = Chart {
        file: "x.svg",
        title: "t".into(),
        unit: "ms",
        bars: vec![],
    };
    assert!(render_svg(&empty).unwrap_err().contains("nothing to draw"));
}

#[test]
fn figures_keep_three_significant_digits_and_group_thousands() {
    assert_eq!(figure(3816.94), "3,817");
    assert_eq!(figure(264.7), "265");
    assert_eq!(figure(42.49), "42.5");
    assert_eq!(figure(1.234), "1.23");
}
