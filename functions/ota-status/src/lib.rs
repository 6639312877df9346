//! ota-status: the target of the `fleet/+/ota/status` IoT rule.
//!
//! Every report is kept in OtaHistory (the latest of each phase of each request). A
//! finished update (`succeeded`, `failed`, `rejected`) counts once against the rollout that
//! offered it, in the same transaction that records it; then, if the rollout's failure
//! rate is past its threshold after its minimum sample, the rollout moves ACTIVE → PAUSED
//! in a conditional write and an alert goes to SNS. A report of a version nobody offered
//! the device is flagged and alerted once.
//!
//! Alerts are owed, not fire-and-forget: the pause (or flag) write sets an alert-pending
//! mark that is cleared only after SNS took the alert, and every report of the rollout
//! re-checks it, so a failed publish is retried by Lambda and never lost. A crash between
//! publish and clear can send one twice; each alert has a stable `alert_id`.

pub mod config;

use fleetwire::domain::ota::{
    CountOutcome, OtaAlert, OtaAlerts, OtaLedger, OutcomeRecord, RolloutState, StatusReport,
    check_request_id,
};
use fleetwire::runtime::error::StoreError;
use fleetwire::runtime::metrics;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

pub use config::OtaStatusConfig;

/// What the function did with one report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Handled {
    /// Progress kept; nothing to count.
    Progress {
        thing_name: String,
        status: &'static str,
    },
    /// A finished update: counted now, or a duplicate of one counted before.
    Finished {
        thing_name: String,
        rollout_id: String,
        counted: bool,
        paused: bool,
    },
    /// The device reports a version no rollout offered it for this request.
    Flagged { thing_name: String, reason: String },
    /// Not a status report: logged and dropped (retrying cannot help).
    Ignored { reason: String },
}

pub struct OtaStatus<S, A> {
    store: S,
    alerts: A,
}

impl<S: OtaLedger, A: OtaAlerts> OtaStatus<S, A> {
    pub fn new(store: S, alerts: A) -> Self {
        Self { store, alerts }
    }

    /// Handles one report. Store and SNS failures are errors, so the asynchronous invoke
    /// is retried (and finally kept in the failed-events queue); every step is idempotent.
    pub async fn handle(&self, event: &Value, now: OffsetDateTime) -> Result<Handled, StoreError> {
        let report: StatusReport = match serde_json::from_value(event.clone()) {
            Ok(report) => report,
            Err(e) => return Ok(ignored(format!("not an OTA status report: {e}"))),
        };
        if report.thing_name.is_empty() || report.thing_name.contains(['/', '#', '+']) {
            return Ok(ignored(
                "no usable thing_name (the rule sets it from topic(2))".into(),
            ));
        }
        if let Err(reason) = check_request_id(&report.request_id) {
            return Ok(ignored(reason));
        }
        if report.progress.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
            return Ok(ignored(format!(
                "progress {:?} is not 0 to 100",
                report.progress
            )));
        }
        let thing = report.thing_name.as_str();
        let offer = self.store.offer(thing, &report.request_id).await?;
        let offer = match offer {
            Some(offer) if offer.version == report.version => offer,
            other => {
                let reason = match other {
                    Some(offer) => format!(
                        "reports version {} for request {}, which offered {}",
                        report.version, report.request_id, offer.version
                    ),
                    None => format!(
                        "reports version {} for request {}, which offered nothing",
                        report.version, report.request_id
                    ),
                };
                return self.flag(&report, reason, now).await;
            }
        };
        self.store.record_progress(thing, &report, now).await?;
        if report.status.outcome().is_none() {
            tracing::info!(thing_name = thing, request_id = %report.request_id, status = report.status.as_str(),
                progress = report.progress, "OTA progress recorded");
            return Ok(Handled::Progress {
                thing_name: thing.to_owned(),
                status: report.status.as_str(),
            });
        }
        let counted = self
            .store
            .record_outcome(&OutcomeRecord {
                device_id: thing.to_owned(),
                request_id: report.request_id.clone(),
                rollout_id: offer.rollout_id.clone(),
                version: report.version.clone(),
                phase: report.status,
                detail: report.detail.clone(),
                at: now,
            })
            .await?
            == CountOutcome::Counted;
        // Checked on duplicates too: a retry must finish a pause or alert left half done.
        let paused = self.enforce_threshold(&offer.rollout_id, now).await?;
        tracing::info!(thing_name = thing, request_id = %report.request_id, rollout_id = %offer.rollout_id,
            status = report.status.as_str(), counted, paused, "OTA outcome recorded");
        if counted {
            metrics::count_by(
                metrics::name::OTA_OUTCOMES,
                "Status",
                report.status.as_str(),
                1,
            );
        }
        Ok(Handled::Finished {
            thing_name: thing.to_owned(),
            rollout_id: offer.rollout_id,
            counted,
            paused,
        })
    }

    /// Pauses the rollout if it must, and sends any pause alert still owed. Returns
    /// whether this call paused it.
    async fn enforce_threshold(
        &self,
        rollout_id: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(mut state) = self.store.rollout(rollout_id).await? else {
            return Ok(false);
        };
        let mut paused = false;
        if state.rollout.must_pause() {
            let rate = state.rollout.failure_rate().unwrap_or(0.0);
            let reason = format!(
                "failure rate {:.1} % ({} failed of {}) passed the threshold {:.1} %",
                rate * 100.0,
                state.rollout.failures,
                state.rollout.failures + state.rollout.successes,
                state.rollout.failure_threshold * 100.0
            );
            paused = self.store.pause(rollout_id, &reason, now).await?;
            if paused {
                tracing::warn!(rollout_id, reason = %reason, "rollout paused");
                metrics::count(metrics::name::ROLLOUTS_PAUSED, 1);
            }
            state = match self.store.rollout(rollout_id).await? {
                Some(state) => state,
                None => return Ok(paused),
            };
        }
        if state.pause_alert_pending && self.store.claim_pause_alert(rollout_id, now).await? {
            self.alerts.alert(&pause_alert(&state)).await?;
            self.store.clear_pause_alert(rollout_id).await?;
        }
        Ok(paused)
    }

    async fn flag(
        &self,
        report: &StatusReport,
        reason: String,
        now: OffsetDateTime,
    ) -> Result<Handled, StoreError> {
        let thing = report.thing_name.as_str();
        tracing::warn!(thing_name = thing, request_id = %report.request_id, version = %report.version,
            status = report.status.as_str(), reason = %reason, "OTA report flagged");
        if self.store.flag_unoffered(report, &reason, now).await? {
            let alert = OtaAlert {
                alert_id: format!("unoffered:{thing}:{}", report.request_id),
                kind: "unoffered_version",
                message: format!("device {thing} {reason}"),
                details: json!({"thing_name": thing, "request_id": report.request_id,
                                "version": report.version, "status": report.status.as_str()}),
            };
            self.alerts.alert(&alert).await?;
            self.store
                .clear_flag_alert(thing, &report.request_id)
                .await?;
        }
        Ok(Handled::Flagged {
            thing_name: thing.to_owned(),
            reason,
        })
    }
}

fn pause_alert(state: &RolloutState) -> OtaAlert {
    let rollout = &state.rollout;
    let reason = state
        .pause_reason
        .clone()
        .unwrap_or_else(|| "paused".into());
    OtaAlert {
        alert_id: format!("rollout-paused:{}", rollout.rollout_id),
        kind: "rollout_paused",
        message: format!(
            "rollout {} of {} {} paused: {reason}",
            rollout.rollout_id, rollout.model, rollout.version
        ),
        details: json!({"rollout_id": rollout.rollout_id, "model": rollout.model, "version": rollout.version,
                        "successes": rollout.successes, "failures": rollout.failures,
                        "failure_threshold": rollout.failure_threshold, "min_sample": rollout.min_sample}),
    }
}

fn ignored(reason: String) -> Handled {
    tracing::warn!(reason = %reason, "OTA status ignored");
    Handled::Ignored { reason }
}

#[cfg(test)]
mod tests;
