//! The template's alarms and dashboard against the metrics the functions count.
//!
//! A metric of the `Fleetwire` namespace exists only if a function counts it (its names
//! are `fleetwire::runtime::metrics::name::ALL`): an alarm on a misspelt or renamed one
//! stays in INSUFFICIENT_DATA, which `TreatMissingData: notBreaching` turns into a silent
//! OK. So every name an alarm or the dashboard reads must be one the functions write, the
//! decisions that mean an attack or a failing release must each have an alarm, and the
//! stack must have its dashboard.

use fleetwire::runtime::metrics::{NAMESPACE, name};
use serde_json::Value;

use crate::template::Template;

/// What must be alarmed on: a leaked claim certificate (denials, refused presence), the
/// telemetry being thrown away (dead letters), a release going wrong (paused rollouts).
const WATCHED: [&str; 4] = [
    name::PROVISIONING_DENIED,
    name::READINGS_DEAD_LETTERED,
    name::PRESENCE_SPOOFED,
    name::ROLLOUTS_PAUSED,
];

/// Each problem as (resource, problem).
pub(super) fn own_metric_problems(template: &Template) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut alarmed = Vec::new();
    let known = |metric: &str| name::ALL.contains(&metric);
    for alarm in template
        .resources
        .iter()
        .filter(|r| r.kind == "AWS::CloudWatch::Alarm")
    {
        let props = &alarm.properties;
        let mut metrics: Vec<(&Value, &Value)> = vec![(&props["Namespace"], &props["MetricName"])];
        if let Some(list) = props.get("Metrics").and_then(Value::as_array) {
            for metric in list {
                let stat = &metric["MetricStat"]["Metric"];
                metrics.push((&stat["Namespace"], &stat["MetricName"]));
            }
        }
        for (namespace, metric) in metrics {
            let (Some(namespace), Some(metric)) = (namespace.as_str(), metric.as_str()) else {
                continue;
            };
            if namespace != NAMESPACE {
                continue;
            }
            if known(metric) {
                alarmed.push(metric.to_owned());
            } else {
                problems.push((
                    alarm.logical_id.clone(),
                    format!("alarms on {metric}, which no function counts"),
                ));
            }
        }
    }
    for watched in WATCHED {
        if !alarmed.iter().any(|m| m == watched) {
            problems.push((
                "Resources".into(),
                format!("no alarm watches {NAMESPACE}/{watched}"),
            ));
        }
    }
    let dashboards: Vec<_> = template
        .resources
        .iter()
        .filter(|r| r.kind == "AWS::CloudWatch::Dashboard")
        .collect();
    if dashboards.is_empty() {
        problems.push(("Resources".into(), "the stack has no dashboard".into()));
    }
    for dashboard in dashboards {
        let body = match &dashboard.properties["DashboardBody"] {
            Value::String(text) => text.clone(),
            other => other["Fn::Sub"].as_str().unwrap_or_default().to_owned(),
        };
        for metric in dashboard_metrics(&body) {
            if !known(&metric) {
                problems.push((
                    dashboard.logical_id.clone(),
                    format!("shows {metric}, which no function counts"),
                ));
            }
        }
    }
    problems
}

/// The `Fleetwire` metric names a dashboard body reads: `["Fleetwire", "<name>", ...]`
/// rows, and `MetricName="<name>"` in SEARCH expressions of the namespace.
fn dashboard_metrics(body: &str) -> Vec<String> {
    let mut found = Vec::new();
    let row = format!("[\"{NAMESPACE}\", \"");
    for (at, _) in body.match_indices(&row) {
        let rest = &body[at + row.len()..];
        if let Some(end) = rest.find('"') {
            found.push(rest[..end].to_owned());
        }
    }
    let search = format!("SEARCH('{{{NAMESPACE},");
    for (at, _) in body.match_indices(&search) {
        let rest = &body[at..];
        let expression = &rest[..rest.find("')").unwrap_or(rest.len())];
        let key = "MetricName=\\\"";
        if let Some(start) = expression.find(key) {
            let value = &expression[start + key.len()..];
            if let Some(end) = value.find("\\\"") {
                found.push(value[..end].to_owned());
            }
        }
    }
    found
}
