//! Firmware over the air: the messages devices exchange with firmware-url and ota-status,
//! the release catalog, staged rollouts, and the OTA history, as models and ports.
//!
//! Topics (`<thing>` is the device's thing name, which its IoT policy pins):
//! - `fleet/<thing>/firmware/request`: [`FirmwareRequest`] from the device.
//! - `fleet/<thing>/firmware/url`: [`FirmwareAnswer`] to the device (QoS 1).
//! - `fleet/<thing>/ota/status`: [`StatusReport`] from the device.

pub mod image;
mod rollout;
mod version;

use std::future::Future;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use rollout::{BUCKETS, Choice, Rollout, RolloutStatus, bucket, choose, url_lifetime};
pub use version::Version;

use crate::runtime::error::StoreError;

/// How long a claim to send an owed alert lasts before another caller may take it: longer
/// than one SNS publish may take, shorter than the minute Lambda waits before retrying a
/// failed asynchronous invoke, so the retry finds the lease expired and sends the alert.
pub const ALERT_LEASE_SECONDS: i64 = 30;

/// The topic a device's answers go to.
pub fn answer_topic(thing_name: &str) -> String {
    format!("fleet/{thing_name}/firmware/url")
}

/// Checks an id a device chose (request ids): 1 to 64 of `[A-Za-z0-9_.:-]`, so it can be
/// part of a DynamoDB sort key without ambiguity.
pub fn check_request_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err("request_id must be 1 to 64 characters".into());
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        Some(bad) => Err(format!(
            "request_id has character {bad:?} outside [A-Za-z0-9_.:-]"
        )),
        None => Ok(()),
    }
}

/// What the firmware request rule delivers: the device's message plus `thing_name`
/// (`topic(2)`) and `source_ip` (`sourceip()`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FirmwareRequest {
    pub thing_name: String,
    pub request_id: String,
    pub model: String,
    pub current_version: String,
    #[serde(default)]
    pub source_ip: Option<String>,
}

/// The answer published to `fleet/<thing>/firmware/url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FirmwareAnswer {
    /// Download `url` before `expires_at` (Unix seconds), check that the image's SHA-256 is
    /// `sha256` and that `signature` verifies it with the fleet's code-signing key, then
    /// install `version`.
    Offer {
        request_id: String,
        version: String,
        url: String,
        size: u64,
        sha256: String,
        signature: String,
        expires_at: i64,
    },
    /// Nothing to install, or not allowed to ask.
    Status {
        request_id: String,
        status: AnswerStatus,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerStatus {
    UpToDate,
    NotEligible,
}

/// One row of the Firmware table: a released image of one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub model: String,
    pub version: String,
    /// Object key in the private firmware bucket, served through CloudFront.
    pub s3_key: String,
    pub size: u64,
    /// Hex SHA-256 of the image.
    pub sha256: String,
    /// Code-signing signature of the image (base64), checked by the device before flashing.
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// What firmware-url issued, kept in OtaHistory under `offer#<request_id>`, so ota-status
/// can tell which rollout a report belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRecord {
    pub device_id: String,
    pub request_id: String,
    pub rollout_id: String,
    pub version: String,
    pub from_version: String,
    pub url_expires_at: i64,
    pub at: OffsetDateTime,
}

/// A device's progress report on `fleet/<thing>/ota/status` (plus `thing_name` from the rule).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusReport {
    pub thing_name: String,
    pub request_id: String,
    pub version: String,
    pub status: OtaPhase,
    #[serde(default)]
    pub detail: Option<String>,
    /// Percent done, 0 to 100, while downloading or installing.
    #[serde(default)]
    pub progress: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtaPhase {
    Downloading,
    Verifying,
    Installing,
    Succeeded,
    Failed,
    /// The device refused the image (hash or signature did not verify): a failure.
    Rejected,
}

impl OtaPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Downloading => "downloading",
            Self::Verifying => "verifying",
            Self::Installing => "installing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
        }
    }

    /// The outcome a finished update counts as; `None` while it is still under way.
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            Self::Succeeded => Some(Outcome::Success),
            Self::Failed | Self::Rejected => Some(Outcome::Failure),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// A finished update to count once against its rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRecord {
    pub device_id: String,
    pub request_id: String,
    pub rollout_id: String,
    pub version: String,
    pub phase: OtaPhase,
    pub detail: Option<String>,
    pub at: OffsetDateTime,
}

/// Whether an outcome was counted now or had been counted before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountOutcome {
    Counted,
    Duplicate,
}

/// A rollout as ota-status sees it: the row plus whether its pause alert is still owed.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutState {
    pub rollout: Rollout,
    /// Set in the same write that paused the rollout, cleared once SNS took the alert.
    pub pause_alert_pending: bool,
    pub pause_reason: Option<String>,
    /// Outcomes counted before the last resume: a resume starts a new failure-rate window
    /// (`rollout.successes` and `rollout.failures`), these keep the rollout's whole tally.
    pub prior_successes: u64,
    pub prior_failures: u64,
}

/// The Firmware and Rollouts tables, as firmware-url reads them.
pub trait FirmwareCatalog: Send + Sync {
    /// Every rollout of `model` (all statuses; [`choose`] filters).
    fn rollouts_of_model(
        &self,
        model: &str,
    ) -> impl Future<Output = Result<Vec<Rollout>, StoreError>> + Send;

    fn release(
        &self,
        model: &str,
        version: &str,
    ) -> impl Future<Output = Result<Option<Release>, StoreError>> + Send;
}

/// OtaHistory and the rollout counters, as firmware-url and ota-status write them.
pub trait OtaLedger: Send + Sync {
    /// Keeps what was issued (a retry of the same request overwrites it with the new URL).
    fn record_offer(
        &self,
        offer: &OfferRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn offer(
        &self,
        device_id: &str,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<OfferRecord>, StoreError>> + Send;

    /// Keeps the latest report of one phase of one request (`status#<request_id>#<phase>`).
    fn record_progress(
        &self,
        device_id: &str,
        report: &StatusReport,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records the outcome of a request and adds it to its rollout's counters in one
    /// transaction, at most once per device and request.
    fn record_outcome(
        &self,
        outcome: &OutcomeRecord,
    ) -> impl Future<Output = Result<CountOutcome, StoreError>> + Send;

    fn rollout(
        &self,
        rollout_id: &str,
    ) -> impl Future<Output = Result<Option<RolloutState>, StoreError>> + Send;

    /// ACTIVE → PAUSED with `pause_alert_pending` set, in one conditional write; `false`
    /// when the rollout was no longer ACTIVE (someone else paused it).
    fn pause(
        &self,
        rollout_id: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes the right to send a rollout's owed pause alert for [`ALERT_LEASE_SECONDS`]:
    /// `true` for exactly one caller while the alert is owed and no unexpired lease exists,
    /// so concurrent reports send it once and a crashed sender's alert is sent after the
    /// lease runs out.
    fn claim_pause_alert(
        &self,
        rollout_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Marks the pause alert as sent.
    fn clear_pause_alert(
        &self,
        rollout_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Flags a report of a version nobody offered this device (`flag#<request_id>`) and
    /// takes the right to send its alert, as [`OtaLedger::claim_pause_alert`] does: `false`
    /// when it was alerted before or another sender holds an unexpired lease.
    fn flag_unoffered(
        &self,
        report: &StatusReport,
        reason: &str,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Marks a flag's alert as sent.
    fn clear_flag_alert(
        &self,
        device_id: &str,
        request_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// An operator alert about OTA (a paused rollout, a device on an unoffered version).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OtaAlert {
    /// Stable for one event, so a subscriber can drop the rare second delivery.
    pub alert_id: String,
    /// `rollout_paused` or `unoffered_version`.
    pub kind: &'static str,
    pub message: String,
    pub details: serde_json::Value,
}

/// Where OTA alerts go (the SNS alert topic).
pub trait OtaAlerts: Send + Sync {
    fn alert(&self, alert: &OtaAlert) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Publishes to a device's MQTT topic (the IoT data plane on AWS).
pub trait DeviceChannel: Send + Sync {
    fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_ids_are_checked() {
        assert!(check_request_id("req-2026-11-25T06:00:00.1_a").is_ok());
        assert!(check_request_id("").is_err());
        assert!(check_request_id(&"a".repeat(65)).is_err());
        assert!(check_request_id("a#b").unwrap_err().contains("'#'"));
    }

    #[test]
    fn answers_have_the_documented_shapes() {
        let offer = FirmwareAnswer::Offer {
            request_id: "r1".into(),
            version: "1.5.0".into(),
            url: "https://d/x".into(),
            size: 10,
            sha256: "ab".into(),
            signature: "c2ln".into(),
            expires_at: 5,
        };
        assert_eq!(
            serde_json::to_value(&offer).unwrap(),
            json!({"request_id": "r1", "version": "1.5.0", "url": "https://d/x", "size": 10,
                   "sha256": "ab", "signature": "c2ln", "expires_at": 5})
        );
        let none = FirmwareAnswer::Status {
            request_id: "r1".into(),
            status: AnswerStatus::UpToDate,
            reason: "why".into(),
        };
        assert_eq!(
            serde_json::to_value(&none).unwrap(),
            json!({"request_id": "r1", "status": "up_to_date", "reason": "why"})
        );
    }

    #[test]
    fn phases_map_to_outcomes() {
        assert_eq!(OtaPhase::Succeeded.outcome(), Some(Outcome::Success));
        assert_eq!(OtaPhase::Rejected.outcome(), Some(Outcome::Failure));
        assert_eq!(OtaPhase::Failed.outcome(), Some(Outcome::Failure));
        assert_eq!(OtaPhase::Installing.outcome(), None);
        let report: StatusReport = serde_json::from_value(json!({
            "thing_name": "car-1", "request_id": "r1", "version": "1.5.0", "status": "downloading",
            "progress": 40.5
        }))
        .unwrap();
        assert_eq!(report.status, OtaPhase::Downloading);
        assert_eq!(report.progress, Some(40.5));
    }
}
