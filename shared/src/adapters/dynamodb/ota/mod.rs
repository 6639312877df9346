//! DynamoDB adapter of the OTA ports: Firmware (`model`, `version`), Rollouts
//! (`rollout_id`, index `model-index`) and OtaHistory (`device_id`, `at`).
//!
//! OtaHistory sort keys are deterministic so retries and duplicates land on the same item:
//! `offer#<request_id>`, `status#<request_id>#<phase>`, `outcome#<request_id>` and
//! `flag#<request_id>`; the time of each event is an attribute. Items expire through the
//! table's TTL attribute `expires_at` after [`HISTORY_RETENTION_DAYS`].

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

mod item;

use super::conditional::{conditional, conditional_update, transaction};
use super::item::{Item, ItemReader, n, rfc3339, s};
use crate::domain::device_state::WriteOutcome;
use crate::domain::ota::{
    ALERT_LEASE_SECONDS, CountOutcome, FirmwareCatalog, OfferRecord, OtaLedger, Outcome,
    OutcomeRecord, Release, Rollout, RolloutState, RolloutStatus, StatusReport,
};
use crate::runtime::error::StoreError;
pub(crate) use item::{history_item, release, release_item, rollout_item, rollout_state};

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

impl DynamoOta {
    /// Writes one item as it is.
    pub(crate) async fn put(&self, table: &str, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("DynamoDB.PutItem", e))?;
        Ok(())
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
        let Some(canceled) = transaction(CALL, result)? else {
            return Ok(CountOutcome::Counted);
        };
        if canceled.refused_by_condition(0) {
            return Ok(CountOutcome::Duplicate);
        }
        if canceled.refused_by_condition(1) {
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
