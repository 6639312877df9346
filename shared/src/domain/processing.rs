//! The stream processor's domain: running statistics per device and metric, anomaly
//! scores, the data quality of a reading, and hourly summaries.
//!
//! Everything here is deterministic. [`DeviceLedger`] applies readings in stream order and
//! drops any `record_id` it has seen, so replaying a batch, or splitting the same readings
//! into other batches, gives exactly the same summaries and statistics. The stores keep
//! the same ledger: a seen-set, the statistics and the summaries.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::domain::telemetry::EnrichedRecord;

/// Welford's running mean and variance of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricStats {
    pub count: u64,
    pub mean: f64,
    /// Sum of squared distances from the mean.
    pub m2: f64,
}

impl MetricStats {
    pub fn push(&mut self, value: f64) {
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
    }

    /// Sample standard deviation; `None` before two samples.
    pub fn std_dev(&self) -> Option<f64> {
        (self.count >= 2).then(|| (self.m2 / (self.count - 1) as f64).sqrt())
    }

    /// How many standard deviations `value` lies from the mean so far.
    pub fn z_score(&self, value: f64) -> Option<f64> {
        let sd = self.std_dev()?;
        if sd > f64::EPSILON {
            Some((value - self.mean).abs() / sd)
        } else if (value - self.mean).abs() > f64::EPSILON {
            // Every sample so far was identical: any change is infinitely unusual.
            Some(f64::INFINITY)
        } else {
            Some(0.0)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Temperature,
    Humidity,
    Pressure,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Temperature, Metric::Humidity, Metric::Pressure];

    pub fn of(self, record: &EnrichedRecord) -> f64 {
        match self {
            Metric::Temperature => record.reading.temperature,
            Metric::Humidity => record.reading.humidity,
            Metric::Pressure => record.reading.pressure,
        }
    }
}

/// The running statistics of one device, kept in its State row.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceStats {
    pub temperature: MetricStats,
    pub humidity: MetricStats,
    pub pressure: MetricStats,
}

impl DeviceStats {
    pub fn metric(&self, metric: Metric) -> &MetricStats {
        match metric {
            Metric::Temperature => &self.temperature,
            Metric::Humidity => &self.humidity,
            Metric::Pressure => &self.pressure,
        }
    }

    fn metric_mut(&mut self, metric: Metric) -> &mut MetricStats {
        match metric {
            Metric::Temperature => &mut self.temperature,
            Metric::Humidity => &mut self.humidity,
            Metric::Pressure => &mut self.pressure,
        }
    }
}

/// When a value is an anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyRules {
    /// Flag past this many standard deviations from the device's own mean...
    pub z_threshold: f64,
    /// ...once the device has at least this many samples of the metric.
    pub min_samples: u64,
    /// Values outside these bounds are anomalies whatever the statistics say.
    pub bounds: BTreeMap<Metric, (f64, f64)>,
}

impl Default for AnomalyRules {
    fn default() -> Self {
        AnomalyRules {
            z_threshold: 3.0,
            min_samples: 30,
            // Beyond an automotive cabin's operating range; 0 % or 100 % humidity is a
            // sensor fault or condensation; a pressure swing beyond weather's range.
            bounds: BTreeMap::from([
                (Metric::Temperature, (-40.0, 85.0)),
                (Metric::Humidity, (1.0, 99.0)),
                (Metric::Pressure, (870.0, 1085.0)),
            ]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Far from the device's own history.
    ZScore,
    /// Outside the fixed bounds.
    Bounds,
}

/// One anomalous value, as published to the alert topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub device_id: String,
    pub record_id: String,
    pub metric: Metric,
    pub value: f64,
    /// The z-score against the device's statistics before this reading (0 when unknown).
    pub score: f64,
    pub kind: AnomalyKind,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

impl Anomaly {
    /// Stable across retries: consumers drop repeated alerts by it.
    pub fn alert_id(&self) -> String {
        format!("{}:{:?}", self.record_id, self.metric).to_lowercase()
    }
}

/// Scores `record` against `stats` (the device's history before it), then adds it.
pub fn assess(
    stats: &mut DeviceStats,
    record: &EnrichedRecord,
    rules: &AnomalyRules,
) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    for metric in Metric::ALL {
        let value = metric.of(record);
        let history = stats.metric(metric);
        let score = history
            .z_score(value)
            .filter(|_| history.count >= rules.min_samples);
        let outside = rules
            .bounds
            .get(&metric)
            .is_some_and(|(min, max)| value < *min || value > *max);
        let kind = if outside {
            Some(AnomalyKind::Bounds)
        } else if score.is_some_and(|z| z > rules.z_threshold) {
            Some(AnomalyKind::ZScore)
        } else {
            None
        };
        if let Some(kind) = kind {
            anomalies.push(Anomaly {
                device_id: record.reading.device_id.to_string(),
                record_id: record.record_id.clone(),
                metric,
                value,
                score: score.filter(|z| z.is_finite()).unwrap_or(0.0),
                kind,
                at: record.reading.timestamp,
            });
        }
        stats.metric_mut(metric).push(value);
    }
    anomalies
}

/// How late a reading may arrive and still count as timely.
pub const TIMELY_SECONDS: i64 = 300;

/// A reading's data quality, 0 to 1: the share of four checks it passes.
/// - complete: it has a location;
/// - traceable: its metadata names firmware version and source;
/// - timely: IoT Core received it within 5 minutes of its timestamp;
/// - plausible: no metric was an anomaly.
pub fn data_quality(record: &EnrichedRecord, anomalous: bool) -> f64 {
    let reading = &record.reading;
    let traceable = reading
        .metadata
        .as_ref()
        .is_some_and(|m| m.version.is_some() && m.source.is_some());
    let timely = (record.received_at - reading.timestamp).whole_seconds() <= TIMELY_SECONDS;
    let checks = [reading.location.is_some(), traceable, timely, !anomalous];
    checks.iter().filter(|passed| **passed).count() as f64 / checks.len() as f64
}

/// The hour a reading belongs to, `YYYY-MM-DDTHH` in UTC: the Summaries sort key.
pub fn hour_key(record: &EnrichedRecord) -> String {
    let at = record.reading.timestamp;
    format!(
        "{:04}-{:02}-{:02}T{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour()
    )
}

/// One device-hour, stored as sums so that adding readings is order-independent in
/// meaning; derived values are computed when read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HourlySummary {
    pub record_count: u64,
    pub temperature_sum: f64,
    pub temperature_sum_squares: f64,
    pub min_temperature: Option<f64>,
    pub max_temperature: Option<f64>,
    pub anomaly_count: u64,
    pub quality_sum: f64,
}

impl HourlySummary {
    pub fn add(&mut self, temperature: f64, anomalous: bool, quality: f64) {
        self.record_count += 1;
        self.temperature_sum += temperature;
        self.temperature_sum_squares += temperature * temperature;
        self.min_temperature = Some(
            self.min_temperature
                .map_or(temperature, |m| m.min(temperature)),
        );
        self.max_temperature = Some(
            self.max_temperature
                .map_or(temperature, |m| m.max(temperature)),
        );
        self.anomaly_count += u64::from(anomalous);
        self.quality_sum += quality;
    }

    pub fn avg_temperature(&self) -> Option<f64> {
        (self.record_count > 0).then(|| self.temperature_sum / self.record_count as f64)
    }

    /// Population standard deviation of the hour's temperatures.
    pub fn temp_stddev(&self) -> Option<f64> {
        let mean = self.avg_temperature()?;
        let variance = self.temperature_sum_squares / self.record_count as f64 - mean * mean;
        Some(variance.max(0.0).sqrt())
    }

    /// The mean data quality of the hour's readings (see [`data_quality`]).
    pub fn data_quality_score(&self) -> Option<f64> {
        (self.record_count > 0).then(|| self.quality_sum / self.record_count as f64)
    }
}

/// What one reading contributes, decided once, when it is first seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub hour: String,
    pub anomalies: Vec<Anomaly>,
    pub quality: f64,
}

/// One device's processing state: records seen, statistics, summaries. The in-memory
/// form of what the State and Summaries tables hold for the device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceLedger {
    pub seen: HashSet<String>,
    pub stats: DeviceStats,
    pub summaries: BTreeMap<String, HourlySummary>,
}

impl DeviceLedger {
    /// Applies `record` unless its `record_id` was seen: `None` for a duplicate.
    pub fn apply(&mut self, record: &EnrichedRecord, rules: &AnomalyRules) -> Option<Contribution> {
        if !self.seen.insert(record.record_id.clone()) {
            return None;
        }
        let anomalies = assess(&mut self.stats, record, rules);
        let quality = data_quality(record, !anomalies.is_empty());
        let hour = hour_key(record);
        self.summaries.entry(hour.clone()).or_default().add(
            record.reading.temperature,
            !anomalies.is_empty(),
            quality,
        );
        Some(Contribution {
            hour,
            anomalies,
            quality,
        })
    }
}

#[cfg(test)]
mod tests;

/// A device's statistics as stored, with the version that guards their update.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredStats {
    pub stats: DeviceStats,
    pub version: u64,
}

/// One atomic step of the processor: a run of one device's readings within one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct HourCommit {
    pub device_id: crate::domain::telemetry::DeviceId,
    pub hour: String,
    /// Each reading's record_id and the anomalies it raised (kept until published).
    pub records: Vec<(String, Vec<Anomaly>)>,
    /// What the run adds to the hour's summary.
    pub summary: HourlySummary,
    /// The device's statistics after the run, stored only if still at `expected_version`.
    pub stats: DeviceStats,
    pub expected_version: u64,
}

/// The result of a commit: the business answer, not an error.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitOutcome {
    /// Everything stored; the statistics are now at `expected_version + 1`.
    Committed,
    /// Nothing stored: these records were already processed (with the alerts still to be
    /// published for them, if any). Commit the rest again without them.
    Duplicates(Vec<(String, Vec<Anomaly>)>),
    /// Nothing stored: the statistics moved; reload them and commit again.
    StatsMoved,
}

/// Where the processor keeps what it knows: records seen, statistics, summaries.
pub trait ProcessingStore: Send + Sync {
    fn load_stats(
        &self,
        device: &crate::domain::telemetry::DeviceId,
    ) -> impl std::future::Future<Output = Result<StoredStats, crate::runtime::error::StoreError>> + Send;

    /// Marks every record seen, adds the summary and stores the statistics, all or nothing.
    fn commit(
        &self,
        commit: &HourCommit,
    ) -> impl std::future::Future<Output = Result<CommitOutcome, crate::runtime::error::StoreError>> + Send;

    /// Widens the hour's min/max temperature to include `min` and `max` (idempotent).
    fn widen_range(
        &self,
        device: &crate::domain::telemetry::DeviceId,
        hour: &str,
        min: f64,
        max: f64,
    ) -> impl std::future::Future<Output = Result<(), crate::runtime::error::StoreError>> + Send;

    /// Forgets the alerts of these records once published.
    fn alerts_published(
        &self,
        record_ids: &[String],
    ) -> impl std::future::Future<Output = Result<(), crate::runtime::error::StoreError>> + Send;

    fn summary(
        &self,
        device: &crate::domain::telemetry::DeviceId,
        hour: &str,
    ) -> impl std::future::Future<
        Output = Result<Option<HourlySummary>, crate::runtime::error::StoreError>,
    > + Send;
}

/// Where anomalies are announced (the SNS alert topic).
pub trait AlertSink: Send + Sync {
    fn publish(
        &self,
        anomalies: &[Anomaly],
    ) -> impl std::future::Future<Output = Result<(), crate::runtime::error::StoreError>> + Send;
}
