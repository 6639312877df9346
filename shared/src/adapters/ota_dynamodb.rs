//! DynamoDB adapter of the OTA ports: Firmware (`model`, `version`), Rollouts
//! (`rollout_id`, index `model-index`) and OtaHistory (`device_id`, `at`).
//!
//! OtaHistory sort keys are deterministic so retries and duplicates land on the same item:
//! `offer#<request_id>`, `status#<request_id>#<phase>`, `outcome#<request_id>` and
//! `flag#<request_id>`; the time of each event is an attribute. Items expire through the
//! table's TTL attribute `expires_at` after [`HISTORY_RETENTION_DAYS`].

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::dynamodb::{conditional_update, rfc3339};
use super::item::{Item, ItemReader, n, s};
use crate::adapters::conditional::conditional;
use crate::device_state::WriteOutcome;
use crate::error::StoreError;
use crate::ota::{
    ALERT_LEASE_SECONDS, CountOutcome, FirmwareCatalog, OfferRecord, OtaLedger, Outcome,
    OutcomeRecord, Release, Rollout, RolloutState, RolloutStatus, StatusReport,
};

/// The Rollouts table's index on `model`.
pub const MODEL_INDEX: &str = "model-index";
/// How long OtaHistory keeps an item.
pub const HISTORY_RETENTION_DAYS: i64 = 365;

/// The three OTA tables.
#[derive(Debug, Clone)]
pub struct DynamoOta {
    pub(crate) client: Client,
    pub(crate) firmware_table: String,
    pub(crate) rollouts_table: String,
    pub(crate) history_table: String,
}

impl DynamoOta {
    pub fn new(
        client: Client,
        firmware_table: impl Into<String>,
        rollouts_table: impl Into<String>,
        history_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            firmware_table: firmware_table.into(),
            rollouts_table: rollouts_table.into(),
            history_table: history_table.into(),
        }
    }
}

/// The attributes every OtaHistory item carries.
fn history_item(device_id: &str, sort_key: String, kind: &str, at: OffsetDateTime) -> Item {
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

impl DynamoOta {
    async fn put(&self, table: &str, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("DynamoDB.PutItem", e))?;
        Ok(())
    }

    /// Writes a release (for fleetctl and tests).
    pub async fn put_release(&self, release: &Release) -> Result<(), StoreError> {
        self.put(&self.firmware_table, release_item(release)).await
    }

    /// Writes a rollout (for fleetctl and tests).
    pub async fn put_rollout(&self, rollout: &Rollout) -> Result<(), StoreError> {
        self.put(&self.rollouts_table, rollout_item(rollout)).await
    }

    /// A device's OtaHistory, oldest key first (for fleetctl and tests).
    pub async fn history(&self, device_id: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.history_table)
            .key_condition_expression("device_id = :d")
            .expression_attribute_values(":d", s(device_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("DynamoDB.Query", e))?;
        Ok(output
            .items()
            .iter()
            .map(|item| {
                serde_json::Value::Object(
                    item.iter()
                        .map(|(k, v)| (k.clone(), super::item::attribute_to_json(v)))
                        .collect(),
                )
            })
            .collect())
    }
}

impl FirmwareCatalog for DynamoOta {
    async fn rollouts_of_model(&self, model: &str) -> Result<Vec<Rollout>, StoreError> {
        const CALL: &str = "DynamoDB.Query";
        let mut rollouts = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.rollouts_table)
                .index_name(MODEL_INDEX)
                .key_condition_expression("model = :m")
                .expression_attribute_values(":m", s(model))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::from_sdk(CALL, e))?;
            for item in output.items() {
                rollouts.push(rollout_state(CALL, item)?.rollout);
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(rollouts);
            }
        }
    }

    async fn release(&self, model: &str, version: &str) -> Result<Option<Release>, StoreError> {
        const CALL: &str = "DynamoDB.GetItem";
        let output = self
            .client
            .get_item()
            .table_name(&self.firmware_table)
            .key("model", s(model))
            .key("version", s(version))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(CALL, e))?;
        output.item().map(|item| release(CALL, item)).transpose()
    }
}

impl OtaLedger for DynamoOta {
    async fn record_offer(&self, offer: &OfferRecord) -> Result<(), StoreError> {
        let mut item = history_item(
            &offer.device_id,
            format!("offer#{}", offer.request_id),
            "offer",
            offer.at,
        );
        item.insert("request_id".into(), s(&offer.request_id));
        item.insert("rollout_id".into(), s(&offer.rollout_id));
        item.insert("version".into(), s(&offer.version));
        item.insert("from_version".into(), s(&offer.from_version));
        item.insert("url_expires_at".into(), n(offer.url_expires_at));
        self.put(&self.history_table, item).await
    }

    async fn offer(
        &self,
        device_id: &str,
        request_id: &str,
    ) -> Result<Option<OfferRecord>, StoreError> {
        const CALL: &str = "DynamoDB.GetItem";
        let output = self
            .client
            .get_item()
            .table_name(&self.history_table)
            .key("device_id", s(device_id))
            .key("at", s(format!("offer#{request_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(CALL, e))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let r = ItemReader { call: CALL, item };
        let recorded = r.string("recorded_at")?;
        Ok(Some(OfferRecord {
            device_id: device_id.to_owned(),
            request_id: request_id.to_owned(),
            rollout_id: r.string("rollout_id")?,
            version: r.string("version")?,
            from_version: r.string("from_version")?,
            url_expires_at: r.number("url_expires_at")?.unwrap_or(0),
            at: OffsetDateTime::parse(&recorded, &Rfc3339)
                .map_err(|_| StoreError::corrupt(CALL, format!("recorded_at {recorded}")))?,
        }))
    }

    async fn record_progress(
        &self,
        device_id: &str,
        report: &StatusReport,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let key = format!("status#{}#{}", report.request_id, report.status.as_str());
        let mut item = history_item(device_id, key, "status", at);
        item.insert("request_id".into(), s(&report.request_id));
        item.insert("version".into(), s(&report.version));
        item.insert("status".into(), s(report.status.as_str()));
        if let Some(detail) = &report.detail {
            item.insert("detail".into(), s(detail));
        }
        if let Some(progress) = report.progress {
            item.insert("progress".into(), n(progress));
        }
        self.put(&self.history_table, item).await
    }

    async fn record_outcome(&self, outcome: &OutcomeRecord) -> Result<CountOutcome, StoreError> {
        const CALL: &str = "DynamoDB.TransactWriteItems";
        let mut item = history_item(
            &outcome.device_id,
            format!("outcome#{}", outcome.request_id),
            "outcome",
            outcome.at,
        );
        item.insert("request_id".into(), s(&outcome.request_id));
        item.insert("rollout_id".into(), s(&outcome.rollout_id));
        item.insert("version".into(), s(&outcome.version));
        item.insert("status".into(), s(outcome.phase.as_str()));
        if let Some(detail) = &outcome.detail {
            item.insert("detail".into(), s(detail));
        }
        let put = Put::builder()
            .table_name(&self.history_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#at)")
            .expression_attribute_names("#at", "at")
            .build()
            .map_err(|e| StoreError::corrupt(CALL, e.to_string()))?;
        let counter = match outcome.phase.outcome() {
            Some(Outcome::Success) => "successes",
            _ => "failures",
        };
        let count = Update::builder()
            .table_name(&self.rollouts_table)
            .key("rollout_id", s(&outcome.rollout_id))
            .update_expression("ADD #c :one")
            .condition_expression("attribute_exists(rollout_id)")
            .expression_attribute_names("#c", counter)
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| StoreError::corrupt(CALL, e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(CountOutcome::Counted),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) =
            err.as_service_error()
        else {
            return Err(StoreError::from_sdk(CALL, err));
        };
        let failed = |i: usize| {
            canceled
                .cancellation_reasons()
                .get(i)
                .and_then(|r| r.code())
                == Some("ConditionalCheckFailed")
        };
        if failed(0) {
            return Ok(CountOutcome::Duplicate);
        }
        if failed(1) {
            return Err(StoreError::corrupt(
                CALL,
                format!(
                    "rollout {} of this offer no longer exists",
                    outcome.rollout_id
                ),
            ));
        }
        Err(StoreError::Throttled {
            call: CALL.into(),
            message: "transaction canceled by a concurrent write; retry".into(),
        })
    }

    async fn rollout(&self, rollout_id: &str) -> Result<Option<RolloutState>, StoreError> {
        const CALL: &str = "DynamoDB.GetItem";
        let output = self
            .client
            .get_item()
            .table_name(&self.rollouts_table)
            .key("rollout_id", s(rollout_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(CALL, e))?;
        output
            .item()
            .map(|item| rollout_state(CALL, item))
            .transpose()
    }

    async fn pause(
        &self,
        rollout_id: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        let result = self
            .client
            .update_item()
            .table_name(&self.rollouts_table)
            .key("rollout_id", s(rollout_id))
            .update_expression(
                "SET #status = :paused, pause_reason = :reason, paused_at = :at, pause_alert_pending = :true",
            )
            .condition_expression("#status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":paused", s(RolloutStatus::Paused.as_str()))
            .expression_attribute_values(":active", s(RolloutStatus::Active.as_str()))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        Ok(conditional_update(CALL, result)? == WriteOutcome::Applied)
    }

    async fn claim_pause_alert(
        &self,
        rollout_id: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        let result = self
            .client
            .update_item()
            .table_name(&self.rollouts_table)
            .key("rollout_id", s(rollout_id))
            .update_expression("SET pause_alert_lease_until = :until")
            .condition_expression(
                "pause_alert_pending = :true AND (attribute_not_exists(pause_alert_lease_until) OR pause_alert_lease_until < :now)",
            )
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .expression_attribute_values(":until", n(now.unix_timestamp() + ALERT_LEASE_SECONDS))
            .send()
            .await;
        Ok(conditional_update(CALL, result)? == WriteOutcome::Applied)
    }

    async fn clear_pause_alert(&self, rollout_id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.rollouts_table)
            .key("rollout_id", s(rollout_id))
            .update_expression("REMOVE pause_alert_pending, pause_alert_lease_until")
            .condition_expression("attribute_exists(rollout_id)")
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("DynamoDB.UpdateItem", e))?;
        Ok(())
    }

    async fn flag_unoffered(
        &self,
        report: &StatusReport,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const CALL: &str = "DynamoDB.PutItem";
        let mut item = history_item(
            &report.thing_name,
            format!("flag#{}", report.request_id),
            "flag",
            at,
        );
        item.insert("request_id".into(), s(&report.request_id));
        item.insert("version".into(), s(&report.version));
        item.insert("status".into(), s(report.status.as_str()));
        item.insert("reason".into(), s(reason));
        item.insert("alert_pending".into(), AttributeValue::Bool(true));
        item.insert(
            "alert_lease_until".into(),
            n(at.unix_timestamp() + ALERT_LEASE_SECONDS),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.history_table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(#at) OR (alert_pending = :true AND alert_lease_until < :now)",
            )
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(at.unix_timestamp()))
            .send()
            .await;
        match conditional(CALL, result)? {
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    async fn clear_flag_alert(&self, device_id: &str, request_id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.history_table)
            .key("device_id", s(device_id))
            .key("at", s(format!("flag#{request_id}")))
            .update_expression("REMOVE alert_pending, alert_lease_until")
            .condition_expression("attribute_exists(#at)")
            .expression_attribute_names("#at", "at")
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("DynamoDB.UpdateItem", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_survives_a_round_trip_through_an_item() {
        let rollout = Rollout {
            rollout_id: "r-1".into(),
            model: "sensor-x".into(),
            version: "1.5.0".into(),
            percentage: 12.5,
            failure_threshold: 0.1,
            min_sample: 20,
            allow_downgrade: true,
            status: RolloutStatus::Paused,
            successes: 3,
            failures: 4,
        };
        let state = rollout_state("test", &rollout_item(&rollout)).unwrap();
        assert_eq!(state.rollout, rollout);
        assert!(!state.pause_alert_pending);
    }

    #[test]
    fn release_survives_a_round_trip_through_an_item() {
        let release = Release {
            model: "sensor-x".into(),
            version: "1.5.0".into(),
            s3_key: "sensor-x/1.5.0.bin".into(),
            size: 1_048_576,
            sha256: "ab".repeat(32),
            signature: "c2ln".into(),
            notes: Some("fixes".into()),
        };
        assert_eq!(
            super::release("test", &release_item(&release)).unwrap(),
            release
        );
    }
}
