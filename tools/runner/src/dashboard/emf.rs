//! The local CloudWatch's side of the business metrics: the functions write EMF documents
//! to stdout, `cargo lambda watch` writes their stdout to its log, and this follows that
//! log as CloudWatch Logs follows a function's log group, extracting each document's
//! metrics the way the CloudWatch user guide's "Specification: Embedded metric format"
//! says: the root's `_aws.CloudWatchMetrics` is an array of directives, each naming a
//! namespace, dimension sets (arrays of root member names) and metrics (root members whose
//! value is a number or an array of up to 100 numbers). Lines that are not EMF (the
//! functions' other log lines, cargo's build output) are skipped, as CloudWatch keeps
//! them as plain log events.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// One metric value extracted from a document, under one of its dimension sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub namespace: String,
    pub name: String,
    /// Dimension name and value, in the order of the dimension set.
    pub dimensions: Vec<(String, String)>,
    pub value: f64,
    /// The document's `_aws.Timestamp`, milliseconds since the epoch.
    pub timestamp_ms: i64,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "CloudWatchMetrics")]
    directives: Vec<Directive>,
}

#[derive(Deserialize)]
struct Directive {
    #[serde(rename = "Namespace")]
    namespace: String,
    #[serde(rename = "Dimensions", default)]
    dimensions: Vec<Vec<String>>,
    #[serde(rename = "Metrics")]
    metrics: Vec<MetricDefinition>,
}

#[derive(Deserialize)]
struct MetricDefinition {
    #[serde(rename = "Name")]
    name: String,
}

/// The metrics of one log line, or why the line is not a valid EMF document. A line that is
/// not a JSON object with `_aws` is `Ok(vec![])`: an ordinary log event.
pub fn extract(line: &str) -> Result<Vec<Datum>, String> {
    let line = line.trim();
    if !line.starts_with('{') || !line.contains("\"_aws\"") {
        return Ok(Vec::new());
    }
    let Ok(root) = serde_json::from_str::<serde_json::Map<String, Value>>(line) else {
        return Ok(Vec::new());
    };
    let Some(aws) = root.get("_aws") else {
        return Ok(Vec::new());
    };
    let metadata = Metadata::deserialize(aws).map_err(|e| format!("_aws: {e}"))?;
    let mut data = Vec::new();
    for directive in &metadata.directives {
        // A directive without dimension sets is one metric without dimensions.
        let sets: Vec<&[String]> = if directive.dimensions.is_empty() {
            vec![&[]]
        } else {
            directive.dimensions.iter().map(Vec::as_slice).collect()
        };
        for metric in &directive.metrics {
            let values = match root.get(&metric.name) {
                Some(Value::Number(n)) => vec![n.as_f64().unwrap_or(0.0)],
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_f64()
                            .ok_or_else(|| format!("{}: {v} is not a number", metric.name))
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => return Err(format!("{}: {other} is not a number", metric.name)),
                None => return Err(format!("metric {} has no root member", metric.name)),
            };
            for set in &sets {
                let dimensions = set
                    .iter()
                    .map(|name| match root.get(name) {
                        Some(Value::String(value)) => Ok((name.clone(), value.clone())),
                        _ => Err(format!(
                            "dimension {name} is not a string member of the root"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                for value in &values {
                    data.push(Datum {
                        namespace: directive.namespace.clone(),
                        name: metric.name.clone(),
                        dimensions: dimensions.clone(),
                        value: *value,
                        timestamp_ms: metadata.timestamp,
                    });
                }
            }
        }
    }
    Ok(data)
}

/// Seconds of per-second sums kept for rates.
const RATE_HISTORY_SECONDS: i64 = 120;

#[derive(Default)]
struct Totals {
    /// Metric name → the value of its one dimension besides `Function` ("" when none) →
    /// sum since the log began.
    sums: BTreeMap<String, BTreeMap<String, f64>>,
    /// Metric name → (second, sum in that second), oldest first.
    per_second: BTreeMap<String, VecDeque<(i64, f64)>>,
    documents: u64,
    refused: u64,
    last_refusal: Option<String>,
}

/// Sums of every metric of one namespace, as the dashboard shows them.
#[derive(Clone)]
pub struct MetricTotals {
    namespace: String,
    totals: Arc<Mutex<Totals>>,
}

impl MetricTotals {
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            totals: Arc::default(),
        }
    }

    /// Adds one log line's metrics (nothing for a line that is not EMF).
    pub fn add_line(&self, line: &str) {
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        match extract(line) {
            Ok(data) if data.is_empty() => {}
            Ok(data) => {
                totals.documents += 1;
                for datum in data.into_iter().filter(|d| d.namespace == self.namespace) {
                    let key = datum
                        .dimensions
                        .iter()
                        .find(|(name, _)| name != "Function")
                        .map(|(_, value)| value.clone())
                        .unwrap_or_default();
                    *totals
                        .sums
                        .entry(datum.name.clone())
                        .or_default()
                        .entry(key)
                        .or_default() += datum.value;
                    let second = datum.timestamp_ms.div_euclid(1000);
                    let history = totals.per_second.entry(datum.name).or_default();
                    match history.iter_mut().rev().find(|(s, _)| *s == second) {
                        Some((_, sum)) => *sum += datum.value,
                        None => {
                            let at = history.partition_point(|(s, _)| *s < second);
                            history.insert(at, (second, datum.value));
                        }
                    }
                    while history
                        .front()
                        .is_some_and(|(s, _)| *s < second - RATE_HISTORY_SECONDS)
                    {
                        history.pop_front();
                    }
                }
            }
            Err(e) => {
                totals.refused += 1;
                totals.last_refusal = Some(e);
            }
        }
    }

    /// The sum of `metric` over every dimension value.
    pub fn total(&self, metric: &str) -> f64 {
        let totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        totals.sums.get(metric).map_or(0.0, |by| by.values().sum())
    }

    /// The sums of `metric` by the value of its own dimension.
    pub fn by_dimension(&self, metric: &str) -> BTreeMap<String, f64> {
        let totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        totals.sums.get(metric).cloned().unwrap_or_default()
    }

    /// `metric` per second over the `window` seconds before `now_ms`.
    pub fn rate(&self, metric: &str, now_ms: i64, window: i64) -> f64 {
        let totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms.div_euclid(1000);
        let sum: f64 = totals.per_second.get(metric).map_or(0.0, |history| {
            history
                .iter()
                .filter(|(s, _)| *s > now - window && *s <= now)
                .fold(0.0, |sum, (_, v)| sum + v)
        });
        sum / window as f64
    }

    /// Documents read, and lines that looked like EMF but were not valid.
    pub fn documents(&self) -> (u64, u64, Option<String>) {
        let totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        (
            totals.documents,
            totals.refused,
            totals.last_refusal.clone(),
        )
    }

    /// Follows `log` from its start until the process ends: new complete lines every
    /// `interval`; a log that shrank (rotated, truncated) is read again from its start.
    pub async fn follow(self, log: PathBuf, interval: Duration) {
        let mut offset = 0u64;
        let mut partial = Vec::new();
        loop {
            match read_from(&log, offset) {
                Ok((bytes, length)) => {
                    if length < offset {
                        offset = 0;
                        partial.clear();
                        continue;
                    }
                    offset += bytes.len() as u64;
                    partial.extend_from_slice(&bytes);
                    if let Some(end) = partial.iter().rposition(|b| *b == b'\n') {
                        let complete: Vec<u8> = partial.drain(..=end).collect();
                        for line in String::from_utf8_lossy(&complete).lines() {
                            self.add_line(line);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(log = %log.display(), error = %e, "cannot read the functions' log")
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// What `log` holds past `offset`, and its length.
fn read_from(log: &std::path::Path, offset: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut file = std::fs::File::open(log)?;
    let length = file.metadata()?.len();
    if length <= offset {
        return Ok((Vec::new(), length));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity((length - offset) as usize);
    file.take(length - offset).read_to_end(&mut bytes)?;
    Ok((bytes, length))
}
