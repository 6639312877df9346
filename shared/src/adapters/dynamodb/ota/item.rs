//! How the OTA tables' rows look as DynamoDB items, both ways.

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::HISTORY_RETENTION_DAYS;
use crate::adapters::dynamodb::item::{Item, ItemReader, n, rfc3339, s};
use crate::domain::ota::{Release, Rollout, RolloutState, RolloutStatus};
use crate::runtime::error::StoreError;

/// The attributes every OtaHistory item carries.
pub(crate) fn history_item(
    device_id: &str,
    sort_key: String,
    kind: &str,
    at: OffsetDateTime,
) -> Item {
    let expires = at.unix_timestamp() + HISTORY_RETENTION_DAYS * 86_400;
    [
        ("device_id".to_string(), s(device_id)),
        ("at".to_string(), s(sort_key)),
        ("kind".to_string(), s(kind)),
        ("recorded_at".to_string(), s(rfc3339(at))),
        ("expires_at".to_string(), n(expires)),
    ]
    .into()
}

pub(crate) fn rollout_item(rollout: &Rollout) -> Item {
    [
        ("rollout_id".to_string(), s(&rollout.rollout_id)),
        ("model".to_string(), s(&rollout.model)),
        ("version".to_string(), s(&rollout.version)),
        ("percentage".to_string(), n(rollout.percentage)),
        (
            "failure_threshold".to_string(),
            n(rollout.failure_threshold),
        ),
        ("min_sample".to_string(), n(rollout.min_sample)),
        (
            "allow_downgrade".to_string(),
            AttributeValue::Bool(rollout.allow_downgrade),
        ),
        ("status".to_string(), s(rollout.status.as_str())),
        ("successes".to_string(), n(rollout.successes)),
        ("failures".to_string(), n(rollout.failures)),
    ]
    .into()
}

pub(crate) fn rollout_state(call: &str, item: &Item) -> Result<RolloutState, StoreError> {
    let r = ItemReader { call, item };
    let status = r.string("status")?;
    let rollout = Rollout {
        rollout_id: r.string("rollout_id")?,
        model: r.string("model")?,
        version: r.string("version")?,
        percentage: r.number("percentage")?.unwrap_or(0.0),
        failure_threshold: r.number("failure_threshold")?.unwrap_or(1.0),
        min_sample: r.number("min_sample")?.unwrap_or(0),
        allow_downgrade: r.boolean("allow_downgrade")?.unwrap_or(false),
        status: RolloutStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt(call, format!("rollout status {status}")))?,
        successes: r.number("successes")?.unwrap_or(0),
        failures: r.number("failures")?.unwrap_or(0),
    };
    Ok(RolloutState {
        rollout,
        pause_alert_pending: r.boolean("pause_alert_pending")?.unwrap_or(false),
        pause_reason: r.optional_string("pause_reason")?,
        prior_successes: r.number("prior_successes")?.unwrap_or(0),
        prior_failures: r.number("prior_failures")?.unwrap_or(0),
    })
}

pub(crate) fn release_item(release: &Release) -> Item {
    let mut item: Item = [
        ("model".to_string(), s(&release.model)),
        ("version".to_string(), s(&release.version)),
        ("s3_key".to_string(), s(&release.s3_key)),
        ("size".to_string(), n(release.size)),
        ("sha256".to_string(), s(&release.sha256)),
        ("signature".to_string(), s(&release.signature)),
    ]
    .into();
    if let Some(notes) = &release.notes {
        item.insert("notes".into(), s(notes));
    }
    item
}

pub(crate) fn release(call: &str, item: &Item) -> Result<Release, StoreError> {
    let r = ItemReader { call, item };
    Ok(Release {
        model: r.string("model")?,
        version: r.string("version")?,
        s3_key: r.string("s3_key")?,
        size: r.number("size")?.unwrap_or(0),
        sha256: r.string("sha256")?,
        signature: r.string("signature")?,
        notes: r.optional_string("notes")?,
    })
}
