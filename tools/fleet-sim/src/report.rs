//! The run's report: what the devices did next to what the system made of it, the
//! invariants that must hold, and how it prints.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::chaos::FaultsReport;
use crate::device::{Kind, Outcome, Sent};
use crate::observe::{StateRow, SummaryRow};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Devices {
    pub requested: usize,
    pub provisioned: usize,
    pub denied: usize,
    /// RegisterThing requests denied: a denied device asks again a few times, as a device
    /// in the field does (the hook denies when it cannot decide in time).
    pub denied_requests: usize,
    /// Devices whose serial was left off the allowlist on purpose.
    pub denied_expected: usize,
    /// Devices that could not finish their life (connection or protocol errors).
    pub failed: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Telemetry {
    /// Readings the broker acknowledged.
    pub sent: usize,
    pub sent_invalid: usize,
    pub sent_spoofed: usize,
    /// Valid readings far from their device's history: each must be a z-score anomaly
    /// (`scripts/archive-check` finds them in the Summaries' and the archive's counts).
    pub sent_spikes: usize,
    /// Found in the stream.
    pub accepted: usize,
    /// Found in the dead-letter queue as rejected by validation or anti-spoofing.
    pub rejected: usize,
    /// Found in the dead-letter queue, for any reason.
    pub in_dlq: usize,
    /// Counted in the hourly summaries by the stream processor.
    pub processed: u64,
    /// Sent, but neither in the stream nor in the dead-letter queue. Must be 0.
    pub lost: usize,
    /// Valid readings rejected, or invalid and spoofed ones accepted. Must be 0.
    pub misjudged: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StateCounts {
    pub devices_with_state: usize,
    /// Devices with accepted readings but no State row. Must be 0.
    pub devices_missing_state: usize,
    pub online_at_end: usize,
    /// Provisioned devices not online in State when the report is taken, while they are
    /// still connected. Must be 0 (unless a device failed).
    pub offline_at_end: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summaries {
    pub rows: usize,
    /// Rows differing from a recomputation from the accepted readings (count, min, max,
    /// average), or missing, or unexpected. Must be 0.
    pub mismatches: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Ota {
    pub requests: usize,
    pub urls_issued: usize,
    pub downloads_verified: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub rollouts_paused: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub samples: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    pub records_per_s: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub run: String,
    pub backend: String,
    pub duration_s: f64,
    pub devices: Devices,
    pub telemetry: Telemetry,
    pub state: StateCounts,
    pub summaries: Summaries,
    pub ota: Ota,
    /// Publish to the reading visible in State, milliseconds.
    pub latency_ms: Latency,
    pub throughput: Throughput,
    /// Whether everything sent had been handled before the report was taken.
    pub drained: bool,
    pub errors: Vec<String>,
    /// A run under a fault profile: what was injected and what the functions met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultsReport>,
}

/// Everything the report is made from.
pub struct Inputs<'a> {
    pub outcomes: &'a [(bool, Outcome)],
    pub sent: &'a [Sent],
    pub stream: &'a [Value],
    pub dead_letters: &'a [Value],
    pub state: &'a HashMap<String, StateRow>,
    pub summaries: &'a [SummaryRow],
    pub provisioned_things: &'a [String],
}

impl Report {
    /// Counts what the devices did and matches it with what the system kept.
    pub fn tally(&mut self, inputs: &Inputs<'_>) {
        let devices = &mut self.devices;
        devices.requested = inputs.outcomes.len();
        for (listed, outcome) in inputs.outcomes {
            devices.provisioned += usize::from(outcome.provisioned);
            devices.denied += usize::from(outcome.denied);
            devices.denied_requests += outcome.denials;
            devices.denied_expected += usize::from(!listed);
            devices.failed += usize::from(outcome.error.is_some());
            if let Some(e) = &outcome.error {
                self.errors.push(e.clone());
            }
            let ota = &mut self.ota;
            ota.requests += usize::from(outcome.ota_requested);
            ota.urls_issued += usize::from(outcome.url_issued);
            ota.downloads_verified += usize::from(outcome.download_verified);
            ota.succeeded += usize::from(outcome.reported_succeeded);
            ota.failed += usize::from(outcome.reported_failed);
        }

        let seq = |v: &Value| v["seq"].as_u64();
        let accepted: HashSet<u64> = inputs.stream.iter().filter_map(seq).collect();
        let mut in_dlq: HashMap<u64, String> = HashMap::new();
        for letter in inputs.dead_letters {
            if let Some(s) = seq(&letter["payload"]) {
                in_dlq.insert(s, letter["reason"].as_str().unwrap_or_default().to_owned());
            }
        }
        let t = &mut self.telemetry;
        t.sent = inputs.sent.len();
        for sent in inputs.sent {
            t.sent_spikes += usize::from(sent.spike);
            match sent.kind {
                Kind::Invalid => t.sent_invalid += 1,
                Kind::Spoofed => t.sent_spoofed += 1,
                Kind::Valid => {}
            }
            let is_accepted = accepted.contains(&sent.seq);
            let letter = in_dlq.get(&sent.seq);
            if is_accepted {
                t.accepted += 1;
            }
            if let Some(reason) = letter {
                t.in_dlq += 1;
                if reason == "validation" || reason == "spoofed" {
                    t.rejected += 1;
                }
            }
            if !is_accepted && letter.is_none() {
                t.lost += 1;
            }
            let wrong = match sent.kind {
                Kind::Valid => !is_accepted,
                Kind::Invalid | Kind::Spoofed => is_accepted,
            };
            t.misjudged += usize::from(wrong && (is_accepted || letter.is_some()));
        }

        // State: every device with an accepted reading must have one.
        let mut devices_with_readings: HashSet<&str> = HashSet::new();
        for sent in inputs.sent {
            if accepted.contains(&sent.seq) {
                devices_with_readings.insert(&sent.thing);
            }
        }
        let s = &mut self.state;
        for thing in inputs.provisioned_things {
            let row = inputs.state.get(thing);
            let has_telemetry = row.is_some_and(|r| r.last_telemetry_at.is_some());
            s.devices_with_state += usize::from(has_telemetry);
            s.devices_missing_state +=
                usize::from(devices_with_readings.contains(thing.as_str()) && !has_telemetry);
            if row.is_some_and(|r| r.online) {
                s.online_at_end += 1;
            } else {
                s.offline_at_end += 1;
            }
        }

        let expected = expected_summaries(inputs.sent, &accepted);
        self.telemetry.processed = inputs.summaries.iter().map(|r| r.count).sum();
        self.summaries.rows = inputs.summaries.len();
        self.summaries.mismatches = mismatches(&expected, inputs.summaries);
    }

    /// The invariants a run must keep; each broken one as a sentence.
    pub fn violations(&self) -> Vec<String> {
        let mut broken = Vec::new();
        let mut require = |ok: bool, what: String| {
            if !ok {
                broken.push(what);
            }
        };
        let t = &self.telemetry;
        require(self.drained, "the pipeline did not drain in time".into());
        require(
            t.lost == 0,
            format!(
                "{} readings lost (neither in the stream nor in the dead-letter queue)",
                t.lost
            ),
        );
        require(
            t.misjudged == 0,
            format!("{} readings judged wrongly", t.misjudged),
        );
        require(
            self.devices.denied == self.devices.denied_expected,
            format!(
                "{} devices denied, {} expected",
                self.devices.denied, self.devices.denied_expected
            ),
        );
        require(
            self.devices.failed == 0,
            format!(
                "{} devices failed, first: {:?}",
                self.devices.failed,
                self.errors.iter().take(3).collect::<Vec<_>>()
            ),
        );
        require(
            self.state.devices_missing_state == 0,
            format!(
                "{} devices with accepted readings have no State",
                self.state.devices_missing_state
            ),
        );
        // Every provisioned device is still connected when the report is taken (a failed
        // one may not be): after its last lifecycle event, State must say online.
        require(
            self.state.offline_at_end <= self.devices.failed,
            format!(
                "{} connected devices are not online in State: presence did not converge",
                self.state.offline_at_end
            ),
        );
        require(
            self.summaries.mismatches == 0,
            format!("{} summary rows mismatch", self.summaries.mismatches),
        );
        require(
            self.telemetry.processed == self.telemetry.accepted as u64,
            format!(
                "{} readings processed of {} accepted",
                self.telemetry.processed, self.telemetry.accepted
            ),
        );
        require(
            self.ota.downloads_verified == self.ota.urls_issued,
            format!(
                "{} downloads verified of {} URLs issued",
                self.ota.downloads_verified, self.ota.urls_issued
            ),
        );
        require(
            self.ota.rollouts_paused >= 1,
            "the rollout with forced failures did not pause".into(),
        );
        if let Some(faults) = &self.faults {
            // A run under faults proves nothing when none reached the pipeline.
            let struck = !faults.injected_by_kind.is_empty() || faults.kills > 0;
            require(
                struck,
                format!("profile {}: nothing was injected or killed", faults.profile),
            );
            // IoT Core rejects a registration whose hook has not answered in 5 s; the hook
            // answers within its own budget (DECISION_BUDGET_MS, 3 s by default) or denies.
            require(
                faults.functions.hook_slowest_ms <= faults.hook_budget_ms,
                format!(
                    "the provisioning hook took {} ms to decide, past its budget of {} ms",
                    faults.functions.hook_slowest_ms, faults.hook_budget_ms
                ),
            );
            let killing = matches!(faults.profile.as_str(), "kills" | "all");
            require(
                !killing || (faults.kills > 0 && faults.restarts > 0),
                format!(
                    "profile {}: {} kills and {} restarts, at least one of each expected",
                    faults.profile, faults.kills, faults.restarts
                ),
            );
            // Where AWS errors were injected, the functions' SDK clients must have retried.
            let errors_injected =
                matches!(faults.profile.as_str(), "throttle" | "services" | "all");
            require(
                !errors_injected || faults.functions.retries > 0,
                format!(
                    "profile {}: no function retried an AWS call",
                    faults.profile
                ),
            );
        }
        broken
    }

    /// The report as an aligned table: one row per figure, grouped by section, values
    /// right-aligned (fractions to one decimal).
    pub fn render(&self) -> String {
        // Serialized to text, the figures keep their fields' order, which a `Value` would not.
        let text = serde_json::to_string(self).unwrap_or_default();
        let value: BTreeMap<String, Ordered> = serde_json::from_str(&text).unwrap_or_default();
        let mut rows: Vec<(&str, String, String)> = Vec::new();
        for section in [
            "devices",
            "telemetry",
            "state",
            "summaries",
            "ota",
            "latency_ms",
            "throughput",
        ] {
            if let Some(Ordered(fields)) = value.get(section) {
                for (i, (name, v)) in fields.iter().enumerate() {
                    let shown = match v.as_f64() {
                        Some(f) if f.fract() != 0.0 => format!("{f:.1}"),
                        _ if v.is_null() => "-".to_owned(),
                        _ => v.to_string(),
                    };
                    rows.push((if i == 0 { section } else { "" }, name.clone(), shown));
                }
            }
        }
        if let Some(faults) = &self.faults {
            rows.extend(faults.rows());
        }
        let width = |column: fn(&(&str, String, String)) -> usize, title: &str| {
            rows.iter().map(column).max().unwrap_or(0).max(title.len())
        };
        let section_width = width(|r| r.0.len(), "SECTION");
        let name_width = width(|r| r.1.len(), "FIGURE");
        let value_width = width(|r| r.2.len(), "VALUE");
        let mut out = format!(
            "fleet-sim run {} ({}, {:.0} s)\n\n{:<section_width$}  {:<name_width$}  {:>value_width$}\n",
            self.run, self.backend, self.duration_s, "SECTION", "FIGURE", "VALUE"
        );
        for (section, name, shown) in &rows {
            out.push_str(&format!(
                "{section:<section_width$}  {name:<name_width$}  {shown:>value_width$}\n"
            ));
        }
        out
    }
}

/// A JSON object's members in the order they were written (a section of the report), or
/// nothing for any other value.
#[derive(Default)]
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Ordered, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Ordered::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                Ok(Ordered::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::default())
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::default())
            }
        }
        deserializer.deserialize_any(Members)
    }
}

/// Per device and hour: count, sum, min and max of the accepted valid readings.
fn expected_summaries(
    sent: &[Sent],
    accepted: &HashSet<u64>,
) -> BTreeMap<(String, String), (u64, f64, f64, f64)> {
    let mut expected: BTreeMap<(String, String), (u64, f64, f64, f64)> = BTreeMap::new();
    for reading in sent
        .iter()
        .filter(|s| s.kind == Kind::Valid && accepted.contains(&s.seq))
    {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(reading.timestamp_ms) * 1_000_000,
        )
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let hour = format!(
            "{:04}-{:02}-{:02}T{:02}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour()
        );
        let entry =
            expected
                .entry((reading.thing.clone(), hour))
                .or_insert((0, 0.0, f64::MAX, f64::MIN));
        entry.0 += 1;
        entry.1 += reading.temperature;
        entry.2 = entry.2.min(reading.temperature);
        entry.3 = entry.3.max(reading.temperature);
    }
    expected
}

fn mismatches(
    expected: &BTreeMap<(String, String), (u64, f64, f64, f64)>,
    rows: &[SummaryRow],
) -> usize {
    let mut seen = HashSet::new();
    let mut wrong = 0;
    for row in rows {
        let key = (row.device.clone(), row.hour.clone());
        seen.insert(key.clone());
        let Some((count, sum, min, max)) = expected.get(&key) else {
            wrong += 1;
            continue;
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        let ok = row.count == *count
            && close(row.sum / row.count.max(1) as f64, sum / *count as f64)
            && row.min.is_some_and(|m| close(m, *min))
            && row.max.is_some_and(|m| close(m, *max));
        wrong += usize::from(!ok);
    }
    wrong + expected.keys().filter(|k| !seen.contains(*k)).count()
}

/// The `q` quantile (0 to 1) of `samples`, nearest rank.
pub fn quantile(samples: &mut [f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    Some(samples[rank - 1])
}

#[cfg(test)]
mod tests;
