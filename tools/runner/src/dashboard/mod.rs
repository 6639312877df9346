//! The fleet on the local stack, as a page: `GET /` serves a dashboard that asks
//! `GET /runner/fleet` every two seconds for the fleet's figures, built from what AWS's
//! console would show: the functions' business metrics as CloudWatch extracts them from
//! their EMF log lines ([`emf`]), the tables `fleetctl fleet status` reads (Registry,
//! State, Rollouts, Summaries), and the runner's own counters (rules, mappings, archive).
//! The page is one file with its script and styles inline: no CDN, no build step.

pub mod emf;

use std::collections::BTreeMap;

use fleetwire::adapters::dynamodb::fleet::{scan_anomalous_hours, scan_presence};
use fleetwire::adapters::dynamodb::{DynamoOta, DynamoOtaAdmin, DynamoRegistry};
use fleetwire::domain::fleet::{latest_anomalies, overview};
use fleetwire::runtime::metrics::name;
use serde_json::{Value, json};

use emf::MetricTotals;

/// The page, as served.
pub const PAGE: &str = include_str!("page.html");

/// Anomalous device-hours the page lists.
const LATEST_ANOMALIES: usize = 10;

/// Seconds the readings-per-second figure averages over.
const RATE_WINDOW_SECONDS: i64 = 10;

/// The tables the overview joins, by their deployed names.
#[derive(Debug, Clone)]
pub struct FleetTables {
    pub registry: String,
    pub state: String,
    pub summaries: String,
    pub firmware: String,
    pub rollouts: String,
    pub ota_history: String,
}

#[derive(Clone)]
pub struct Dashboard {
    pub metrics: MetricTotals,
    dynamodb: aws_sdk_dynamodb::Client,
    tables: Option<FleetTables>,
}

impl Dashboard {
    pub fn new(
        metrics: MetricTotals,
        dynamodb: aws_sdk_dynamodb::Client,
        tables: Option<FleetTables>,
    ) -> Self {
        Self {
            metrics,
            dynamodb,
            tables,
        }
    }

    /// Every figure of the page; `runner` is what `/runner/status` says.
    pub async fn fleet(&self, runner: Value, now_ms: i64) -> Value {
        let mut figures = self.figures(now_ms);
        figures["runner"] = runner;
        figures["tables"] = match self.tables().await {
            Ok(tables) => tables,
            Err(e) => json!({ "error": e }),
        };
        figures
    }

    /// The business metrics' part: sums since the functions' log began.
    pub fn figures(&self, now_ms: i64) -> Value {
        let m = &self.metrics;
        let total = |metric: &str| m.total(metric) as u64;
        let by = |metric: &str| -> BTreeMap<String, u64> {
            m.by_dimension(metric)
                .into_iter()
                .map(|(k, v)| (k, v as u64))
                .collect()
        };
        let decisions = by(name::PROVISIONING_DECISIONS);
        let allowed = decisions.get("allowed").copied().unwrap_or(0);
        let denied: BTreeMap<_, _> = decisions
            .into_iter()
            .filter(|(reason, _)| reason != "allowed")
            .collect();
        let presence = by(name::PRESENCE_EVENTS);
        let (documents, refused, last_refusal) = m.documents();
        json!({
            "provisioning": {
                "allowed": allowed,
                "denied_total": denied.values().sum::<u64>(),
                "denied": denied,
            },
            "telemetry": {
                "accepted": total(name::READINGS_ACCEPTED),
                "readings_per_second": m.rate(name::READINGS_ACCEPTED, now_ms, RATE_WINDOW_SECONDS),
                "rejected_total": total(name::READINGS_REJECTED),
                "rejected": by(name::READINGS_REJECTED),
                "dead_lettered": total(name::READINGS_DEAD_LETTERED),
                "put_records_retried": total(name::PUT_RECORDS_RETRIED),
                "http_answers": by(name::HTTP_ANSWERS),
            },
            "stream": {
                "processed": total(name::RECORDS_PROCESSED),
                "duplicates_skipped": total(name::DUPLICATES_SKIPPED),
                "anomalies_raised": total(name::ANOMALIES_RAISED),
            },
            "presence": {
                "connected": presence.get("connected").copied().unwrap_or(0),
                "disconnected": presence.get("disconnected").copied().unwrap_or(0),
                "refused": total(name::PRESENCE_SPOOFED),
            },
            "firmware": {
                "offers": by(name::FIRMWARE_OFFERS),
                "ota_outcomes": by(name::OTA_OUTCOMES),
                "rollouts_paused": total(name::ROLLOUTS_PAUSED),
            },
            "cold_starts": total(name::COLD_START),
            "metrics_log": {
                "documents": documents,
                "refused": refused,
                "last_refusal": last_refusal,
            },
        })
    }

    /// The tables' part: devices by model, rollouts, the latest anomalous hours.
    async fn tables(&self) -> Result<Value, String> {
        let Some(tables) = &self.tables else {
            return Err("the runner was not given the fleet's tables (REGISTRY_TABLE, STATE_TABLE, SUMMARIES_TABLE, FIRMWARE_TABLE, ROLLOUTS_TABLE, OTA_HISTORY_TABLE)".into());
        };
        let registry = DynamoRegistry::new(self.dynamodb.clone(), &tables.registry);
        let ota = DynamoOtaAdmin::new(DynamoOta::new(
            self.dynamodb.clone(),
            &tables.firmware,
            &tables.rollouts,
            &tables.ota_history,
        ));
        let (entries, states, rollouts, anomalous) = tokio::try_join!(
            registry.list(None),
            scan_presence(&self.dynamodb, &tables.state),
            ota.list_rollouts(None),
            scan_anomalous_hours(&self.dynamodb, &tables.summaries),
        )
        .map_err(|e| e.to_string())?;
        let fleet = overview(&entries, &states, &rollouts);
        Ok(json!({
            "devices": {
                "online": fleet.online,
                "offline": fleet.offline,
                "unregistered_with_state": fleet.unregistered_with_state,
                "models": fleet.models,
            },
            "rollouts": fleet.rollouts,
            "anomalies": latest_anomalies(anomalous, LATEST_ANOMALIES),
        }))
    }
}

#[cfg(test)]
mod tests;
