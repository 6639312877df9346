//! `fleetctl rollout create | set-percent | pause | resume | abort | status | list`.
//!
//! A rollout offers one release of one model to a share of its devices. Each change is a
//! conditional write (see `fleetwire::adapters::ota_admin`), so it never overwrites a
//! pause ota-status made meanwhile; a refused change says what the rollout's status is.

use fleetwire::adapters::DynamoOtaAdmin;
use fleetwire::adapters::dynamodb::ota_admin::RolloutChange;
use fleetwire::domain::ota::{Rollout, RolloutState, Version};
use serde::Serialize;
use time::OffsetDateTime;

use crate::import::check_name;
use crate::output::{self, Table, fields, or_dash};
use crate::{Answer, Failure};

/// What `rollout create` is given.
#[derive(Debug, Clone)]
pub struct NewRollout {
    pub id: Option<String>,
    pub model: String,
    pub version: String,
    pub percent: f64,
    pub failure_threshold: f64,
    pub min_samples: u64,
    pub allow_downgrade: bool,
}

/// Checks a new rollout's numbers and names and builds it.
pub fn validate(new: &NewRollout) -> Result<Rollout, Failure> {
    check_name("--model", &new.model, 64).map_err(Failure::usage)?;
    Version::parse(&new.version).map_err(|e| Failure::usage(format!("--version: {e}")))?;
    check_percent(new.percent)?;
    if !(0.0..=1.0).contains(&new.failure_threshold) {
        return Err(Failure::usage(format!(
            "--failure-threshold {} must be a share between 0 and 1 (0.05 pauses above 5 % failures)",
            new.failure_threshold
        )));
    }
    if new.min_samples == 0 {
        return Err(Failure::usage(
            "--min-samples must be at least 1 (outcomes needed before the rate counts)",
        ));
    }
    let id = new
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", new.model, new.version));
    check_name("rollout id", &id, 64).map_err(Failure::usage)?;
    let mut rollout = Rollout::active(
        id,
        &new.model,
        &new.version,
        new.percent,
        new.failure_threshold,
        new.min_samples,
    );
    rollout.allow_downgrade = new.allow_downgrade;
    Ok(rollout)
}

pub fn check_percent(percent: f64) -> Result<(), Failure> {
    if percent.is_finite() && (0.0..=100.0).contains(&percent) {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "percent {percent} must be between 0 and 100"
        )))
    }
}

pub async fn create(ota: &DynamoOtaAdmin, new: &NewRollout, json: bool) -> Result<Answer, Failure> {
    let rollout = validate(new)?;
    if ota
        .get_release(&rollout.model, &rollout.version)
        .await?
        .is_none()
    {
        return Err(Failure::failed(format!(
            "{} {} is not published; publish it first with `fleetctl firmware publish`",
            rollout.model, rollout.version
        )));
    }
    if !ota.create_rollout(&rollout).await? {
        return Err(Failure::failed(format!(
            "rollout {} exists already; choose another with --id",
            rollout.rollout_id
        )));
    }
    let state = fetch(ota, &rollout.rollout_id).await?;
    Ok(Answer::ok(if json {
        output::json(&Status::of(&state))?
    } else {
        format!(
            "created rollout {}: {} {} to {} % of the model's devices\n{}",
            rollout.rollout_id,
            rollout.model,
            rollout.version,
            rollout.percentage,
            describe(&state)
        )
    }))
}

/// Which operator change to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    SetPercent(f64),
    Pause { reason: String },
    Resume,
    Abort { reason: String },
}

pub async fn change(
    ota: &DynamoOtaAdmin,
    rollout_id: &str,
    change: &Change,
    json: bool,
) -> Result<Answer, Failure> {
    let now = OffsetDateTime::now_utc();
    let (result, done, wants) = match change {
        Change::SetPercent(percent) => {
            check_percent(*percent)?;
            (
                ota.set_percentage(rollout_id, *percent, now).await?,
                format!("now reaches {percent} % of the model's devices"),
                "ACTIVE or PAUSED",
            )
        }
        Change::Pause { reason } => (
            ota.pause_by_operator(rollout_id, reason, now).await?,
            "paused: offered to nobody until resumed".to_string(),
            "ACTIVE",
        ),
        Change::Resume => (
            ota.resume(rollout_id, now).await?,
            "resumed: the failure rate counts afresh from now".to_string(),
            "PAUSED",
        ),
        Change::Abort { reason } => (
            ota.abort(rollout_id, reason, now).await?,
            "aborted: offered to nobody, for good".to_string(),
            "ACTIVE or PAUSED",
        ),
    };
    match result {
        RolloutChange::Applied(state) => Ok(Answer::ok(if json {
            output::json(&Status::of(&state))?
        } else {
            format!("rollout {rollout_id} {done}\n{}", describe(&state))
        })),
        RolloutChange::Refused { current } => Err(Failure::failed(format!(
            "rollout {rollout_id} is {}; this needs it {wants}",
            current.as_str()
        ))),
        RolloutChange::Unknown => Err(unknown(rollout_id)),
    }
}

/// A rollout as `status` and `list --json` show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    #[serde(flatten)]
    pub rollout: Rollout,
    /// Failures / finished since the last resume, once `min_sample` outcomes are in.
    pub failure_rate: Option<f64>,
    pub finished: u64,
    pub total_successes: u64,
    pub total_failures: u64,
    pub pause_reason: Option<String>,
    pub pause_alert_pending: bool,
}

impl Status {
    pub fn of(state: &RolloutState) -> Self {
        let r = &state.rollout;
        Self {
            rollout: r.clone(),
            failure_rate: r.failure_rate(),
            finished: r.successes + r.failures,
            total_successes: state.prior_successes + r.successes,
            total_failures: state.prior_failures + r.failures,
            pause_reason: state.pause_reason.clone(),
            pause_alert_pending: state.pause_alert_pending,
        }
    }
}

pub fn describe(state: &RolloutState) -> String {
    let status = Status::of(state);
    let r = &status.rollout;
    fields(&[
        ("rollout", r.rollout_id.clone()),
        ("release", format!("{} {}", r.model, r.version)),
        ("status", r.status.as_str().to_string()),
        (
            "reaches",
            format!("{} % of the model's devices", r.percentage),
        ),
        (
            "succeeded",
            format!("{} ({} in all)", r.successes, status.total_successes),
        ),
        (
            "failed",
            format!("{} ({} in all)", r.failures, status.total_failures),
        ),
        (
            "failure rate",
            match status.failure_rate {
                Some(rate) => format!(
                    "{:.1} % (pauses above {:.1} %)",
                    rate * 100.0,
                    r.failure_threshold * 100.0
                ),
                None => format!(
                    "not yet measured: {} of {} outcomes needed (pauses above {:.1} %)",
                    status.finished,
                    r.min_sample,
                    r.failure_threshold * 100.0
                ),
            },
        ),
        (
            "downgrades",
            if r.allow_downgrade { "allowed" } else { "no" }.into(),
        ),
        ("paused because", or_dash(status.pause_reason.as_ref())),
    ])
}

pub async fn status(ota: &DynamoOtaAdmin, rollout_id: &str, json: bool) -> Result<Answer, Failure> {
    let state = fetch(ota, rollout_id).await?;
    Ok(Answer::ok(if json {
        output::json(&Status::of(&state))?
    } else {
        describe(&state)
    }))
}

pub async fn list(
    ota: &DynamoOtaAdmin,
    model: Option<&str>,
    json: bool,
) -> Result<Answer, Failure> {
    let rollouts = ota.list_rollouts(model).await?;
    if json {
        let statuses: Vec<Status> = rollouts.iter().map(Status::of).collect();
        return Ok(Answer::ok(output::json(&statuses)?));
    }
    let mut table = Table::new([
        "ROLLOUT",
        "MODEL",
        "VERSION",
        "STATUS",
        "PERCENT",
        "OK",
        "FAILED",
        "RATE",
        "THRESHOLD",
    ]);
    for state in &rollouts {
        let s = Status::of(state);
        table.row([
            s.rollout.rollout_id.clone(),
            s.rollout.model.clone(),
            s.rollout.version.clone(),
            s.rollout.status.as_str().to_string(),
            s.rollout.percentage.to_string(),
            s.rollout.successes.to_string(),
            s.rollout.failures.to_string(),
            or_dash(s.failure_rate.map(|r| format!("{:.1} %", r * 100.0))),
            format!("{:.1} %", s.rollout.failure_threshold * 100.0),
        ]);
    }
    Ok(Answer::ok(format!(
        "{}\n{} rollout(s)",
        table.render(),
        rollouts.len()
    )))
}

async fn fetch(ota: &DynamoOtaAdmin, rollout_id: &str) -> Result<RolloutState, Failure> {
    ota.rollout(rollout_id)
        .await?
        .ok_or_else(|| unknown(rollout_id))
}

fn unknown(rollout_id: &str) -> Failure {
    Failure::failed(format!(
        "no rollout {rollout_id}; see them with `fleetctl rollout list`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwire::domain::ota::RolloutStatus;

    fn new() -> NewRollout {
        NewRollout {
            id: None,
            model: "sensor-x".into(),
            version: "1.5.0".into(),
            percent: 5.0,
            failure_threshold: 0.2,
            min_samples: 20,
            allow_downgrade: false,
        }
    }

    #[test]
    fn a_valid_rollout_gets_its_default_id_and_starts_active() {
        let rollout = validate(&new()).unwrap();
        assert_eq!(rollout.rollout_id, "sensor-x-1.5.0");
        assert_eq!(rollout.status, RolloutStatus::Active);
        assert_eq!((rollout.successes, rollout.failures), (0, 0));
    }

    #[test]
    fn numbers_out_of_range_are_usage_errors() {
        for broken in [
            NewRollout {
                percent: 100.5,
                ..new()
            },
            NewRollout {
                percent: f64::NAN,
                ..new()
            },
            NewRollout {
                failure_threshold: 1.5,
                ..new()
            },
            NewRollout {
                min_samples: 0,
                ..new()
            },
            NewRollout {
                version: "one".into(),
                ..new()
            },
            NewRollout {
                id: Some("a b".into()),
                ..new()
            },
        ] {
            let err = validate(&broken).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{err}");
        }
    }

    #[test]
    fn status_adds_the_counts_before_the_last_resume() {
        let mut rollout = validate(&new()).unwrap();
        rollout.successes = 15;
        rollout.failures = 5;
        let state = RolloutState {
            rollout,
            pause_alert_pending: false,
            pause_reason: None,
            prior_successes: 10,
            prior_failures: 30,
        };
        let status = Status::of(&state);
        assert_eq!(status.failure_rate, Some(0.25));
        assert_eq!((status.total_successes, status.total_failures), (25, 35));
        assert!(describe(&state).contains("25.0 % (pauses above 20.0 %)"));
    }
}
