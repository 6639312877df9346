//! The local CloudWatch's reading of EMF documents, and the figures the page shows.

use fleetwire::runtime::metrics::name;
use serde_json::json;

use super::emf::{Datum, MetricTotals, extract};
use super::*;

/// The example document of CloudWatch's "Specification: Embedded metric format", with two
/// dimension sets and a metric given as an array of values.
const SPEC_EXAMPLE: &str = r#"{
  "_aws": {
    "Timestamp": 1574109732004,
    "CloudWatchMetrics": [
      {
        "Namespace": "lambda-function-metrics",
        "Dimensions": [["functionVersion"], ["functionVersion", "requestId"]],
        "Metrics": [{ "Name": "time", "Unit": "Milliseconds", "StorageResolution": 60 }]
      }
    ]
  },
  "functionVersion": "$LATEST",
  "time": [100, 20],
  "requestId": "989ffbf8-9ace-4817-a57c-e4dd734019ee"
}"#;

#[test]
fn each_dimension_set_and_value_of_a_document_is_a_datum() {
    let line = SPEC_EXAMPLE.replace('\n', "");
    let data = extract(&line).unwrap();
    assert_eq!(data.len(), 4, "two dimension sets × two values: {data:?}");
    assert_eq!(
        data[0],
        Datum {
            namespace: "lambda-function-metrics".into(),
            name: "time".into(),
            dimensions: vec![("functionVersion".into(), "$LATEST".into())],
            value: 100.0,
            timestamp_ms: 1574109732004,
        }
    );
    assert_eq!(data[3].dimensions.len(), 2);
    assert_eq!(data[3].value, 20.0);
}

#[test]
fn plain_log_lines_are_not_metrics_and_broken_documents_are_counted_as_refused() {
    assert_eq!(extract("   Compiling fleetwire v0.1.0").unwrap(), vec![]);
    assert_eq!(
        extract(r#"{"level":"INFO","message":"reading accepted"}"#).unwrap(),
        vec![]
    );
    let undeclared = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Function"]],"Metrics":[{"Name":"X"}]}]},"Function":"f"}"#;
    assert!(
        extract(undeclared)
            .unwrap_err()
            .contains("X has no root member")
    );
    let bad_dimension = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Function"]],"Metrics":[{"Name":"X"}]}]},"Function":3,"X":1}"#;
    assert!(
        extract(bad_dimension)
            .unwrap_err()
            .contains("dimension Function")
    );

    let totals = MetricTotals::new("N");
    totals.add_line(undeclared);
    totals.add_line("not json");
    let (documents, refused, last) = totals.documents();
    assert_eq!((documents, refused), (0, 1));
    assert!(last.unwrap().contains("no root member"));
}

/// One document as `fleetwire::runtime::metrics::flush` writes it.
fn document(metric: &str, dimension: Option<(&str, &str)>, value: u64, at_ms: i64) -> String {
    let mut names = vec!["Function"];
    let mut root = json!({"Function": "fleetwire-local-telemetry-ingest", metric: value});
    if let Some((name, v)) = dimension {
        names.push(name);
        root[name] = json!(v);
    }
    root["_aws"] = json!({
        "Timestamp": at_ms,
        "CloudWatchMetrics": [{
            "Namespace": "Fleetwire",
            "Dimensions": [names],
            "Metrics": [{"Name": metric}],
        }],
    });
    root.to_string()
}

#[test]
fn figures_sum_each_metric_and_split_it_by_its_own_dimension() {
    let metrics = MetricTotals::new("Fleetwire");
    let now = 1_796_667_900_000;
    for line in [
        document(name::READINGS_ACCEPTED, None, 30, now - 4_000),
        document(name::READINGS_ACCEPTED, None, 20, now - 1_000),
        // Older than the rate's window: in the total, not in the rate.
        document(name::READINGS_ACCEPTED, None, 50, now - 60_000),
        document(name::READINGS_REJECTED, Some(("Reason", "invalid")), 3, now),
        document(name::READINGS_REJECTED, Some(("Reason", "spoofed")), 2, now),
        document(name::READINGS_REJECTED, Some(("Reason", "invalid")), 1, now),
        document(
            name::PROVISIONING_DECISIONS,
            Some(("Reason", "allowed")),
            18,
            now,
        ),
        document(
            name::PROVISIONING_DECISIONS,
            Some(("Reason", "not-allowed")),
            2,
            now,
        ),
        document(name::PRESENCE_EVENTS, Some(("Event", "connected")), 5, now),
        // Another namespace's metric with the same name is not ours.
        document(name::READINGS_ACCEPTED, None, 999, now).replace("\"Fleetwire\"", "\"Other\""),
    ] {
        metrics.add_line(&line);
    }
    let dashboard = Dashboard::new(
        metrics,
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        ),
        None,
    );
    let figures = dashboard.figures(now);
    assert_eq!(figures["telemetry"]["accepted"], 100);
    assert_eq!(figures["telemetry"]["readings_per_second"], 5.0);
    assert_eq!(figures["telemetry"]["rejected_total"], 6);
    assert_eq!(
        figures["telemetry"]["rejected"],
        json!({"invalid": 4, "spoofed": 2})
    );
    assert_eq!(figures["provisioning"]["allowed"], 18);
    assert_eq!(figures["provisioning"]["denied"], json!({"not-allowed": 2}));
    assert_eq!(figures["provisioning"]["denied_total"], 2);
    assert_eq!(figures["presence"]["connected"], 5);
    assert_eq!(figures["presence"]["disconnected"], 0);
    assert_eq!(figures["metrics_log"]["documents"], 10);
}

#[tokio::test]
async fn the_log_is_followed_as_it_grows_and_read_again_when_it_shrinks() {
    let dir = std::env::temp_dir().join(format!("fleetwire-emf-{}", crate::random_hex(6)));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("lambda.log");
    let line = |n| document(name::RECORDS_PROCESSED, None, n, 1_000) + "\n";
    std::fs::write(&log, line(2) + "   Compiling x\n" + &line(3)[..20]).unwrap();
    let metrics = MetricTotals::new("Fleetwire");
    let follower = tokio::spawn(
        metrics
            .clone()
            .follow(log.clone(), std::time::Duration::from_millis(10)),
    );
    let settled = |want: f64| {
        let metrics = metrics.clone();
        async move {
            for _ in 0..300 {
                if metrics.total(name::RECORDS_PROCESSED) == want {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            false
        }
    };
    assert!(
        settled(2.0).await,
        "the complete line is read, the partial one waits"
    );
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(&line(3).as_bytes()[20..]).unwrap();
    drop(file);
    assert!(
        settled(5.0).await,
        "the rest of the partial line completes it"
    );
    std::fs::write(&log, line(1)).unwrap();
    assert!(
        settled(6.0).await,
        "a truncated log is read again from its start"
    );
    follower.abort();
    std::fs::remove_dir_all(&dir).unwrap();
}
