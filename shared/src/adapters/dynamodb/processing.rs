//! DynamoDB adapter of the processing store: a run of one device's readings in one hour is
//! one TransactWriteItems: a seen-mark per record (conditional on being new), the hour's
//! summary sums (ADD), and the device's statistics (conditional on their version). Any
//! failed condition cancels all of it; the cancellation reasons say which records were
//! duplicates (with their unpublished alerts) or that the statistics moved.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::conditional::{conditional_update, transaction};
use super::item::{Item, ItemReader, n, s};
use crate::domain::processing::{
    Anomaly, CommitOutcome, DeviceStats, HourCommit, HourlySummary, ProcessingStore, StoredStats,
};
use crate::domain::telemetry::DeviceId;
use crate::runtime::error::StoreError;

#[derive(Debug, Clone)]
pub struct DynamoProcessing {
    client: Client,
    state_table: String,
    summaries_table: String,
    processed_table: String,
    /// How long a record id is remembered (TTL): longer than the stream's retention.
    remember: Duration,
}

fn build_error(call: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Rejected {
        call: call.into(),
        message: e.to_string(),
    }
}

impl DynamoProcessing {
    pub fn new(
        client: Client,
        state_table: impl Into<String>,
        summaries_table: impl Into<String>,
        processed_table: impl Into<String>,
        remember: Duration,
    ) -> Self {
        DynamoProcessing {
            client,
            state_table: state_table.into(),
            summaries_table: summaries_table.into(),
            processed_table: processed_table.into(),
            remember,
        }
    }

    fn seen_mark(
        &self,
        commit: &HourCommit,
        record_id: &str,
        alerts: &[Anomaly],
    ) -> Result<TransactWriteItem, StoreError> {
        const CALL: &str = "DynamoDB.TransactWriteItems";
        let expires =
            time::OffsetDateTime::now_utc().unix_timestamp() + self.remember.as_secs() as i64;
        let mut put = Put::builder()
            .table_name(&self.processed_table)
            .item("record_id", s(record_id))
            .item("device_id", s(commit.device_id.as_str()))
            .item("hour", s(&commit.hour))
            .item("expires_at", n(expires))
            .condition_expression("attribute_not_exists(record_id)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if !alerts.is_empty() {
            let json = serde_json::to_string(alerts).map_err(|e| build_error(CALL, e))?;
            put = put.item("alerts", s(&json));
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(|e| build_error(CALL, e))?)
            .build())
    }

    fn summary_sums(&self, commit: &HourCommit) -> Result<TransactWriteItem, StoreError> {
        let sums = &commit.summary;
        let update = Update::builder()
            .table_name(&self.summaries_table)
            .key("device_id", s(commit.device_id.as_str()))
            .key("hour", s(&commit.hour))
            .update_expression(
                "ADD record_count :count, temperature_sum :sum, temperature_sum_squares :squares, \
                 anomaly_count :anomalies, quality_sum :quality",
            )
            .expression_attribute_values(":count", n(sums.record_count))
            .expression_attribute_values(":sum", n(sums.temperature_sum))
            .expression_attribute_values(":squares", n(sums.temperature_sum_squares))
            .expression_attribute_values(":anomalies", n(sums.anomaly_count))
            .expression_attribute_values(":quality", n(sums.quality_sum))
            .build()
            .map_err(|e| build_error("DynamoDB.TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn statistics(&self, commit: &HourCommit) -> Result<TransactWriteItem, StoreError> {
        const CALL: &str = "DynamoDB.TransactWriteItems";
        let json = serde_json::to_string(&commit.stats).map_err(|e| build_error(CALL, e))?;
        let update = Update::builder()
            .table_name(&self.state_table)
            .key("device_id", s(commit.device_id.as_str()))
            .update_expression("SET stats = :stats, stats_version = :next")
            .condition_expression(
                "attribute_not_exists(stats_version) OR stats_version = :expected",
            )
            .expression_attribute_values(":stats", s(&json))
            .expression_attribute_values(":next", n(commit.expected_version + 1))
            .expression_attribute_values(":expected", n(commit.expected_version))
            .build()
            .map_err(|e| build_error(CALL, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

fn alerts_of(item: &Item) -> Vec<Anomaly> {
    match item.get("alerts") {
        Some(AttributeValue::S(json)) => serde_json::from_str(json).unwrap_or_default(),
        _ => Vec::new(),
    }
}

impl ProcessingStore for DynamoProcessing {
    async fn load_stats(&self, device: &DeviceId) -> Result<StoredStats, StoreError> {
        const CALL: &str = "DynamoDB.GetItem";
        let output = self
            .client
            .get_item()
            .table_name(&self.state_table)
            .key("device_id", s(device.as_str()))
            .projection_expression("stats, stats_version")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(CALL, e))?;
        let Some(item) = output.item() else {
            return Ok(StoredStats::default());
        };
        let r = ItemReader { call: CALL, item };
        let stats: DeviceStats = match r.optional_string("stats")? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::corrupt(CALL, format!("stats: {e}")))?,
            None => DeviceStats::default(),
        };
        Ok(StoredStats {
            stats,
            version: r.number("stats_version")?.unwrap_or(0),
        })
    }

    async fn commit(&self, commit: &HourCommit) -> Result<CommitOutcome, StoreError> {
        const CALL: &str = "DynamoDB.TransactWriteItems";
        let mut items = Vec::with_capacity(commit.records.len() + 2);
        for (record_id, alerts) in &commit.records {
            items.push(self.seen_mark(commit, record_id, alerts)?);
        }
        items.push(self.summary_sums(commit)?);
        items.push(self.statistics(commit)?);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Some(canceled) = transaction(CALL, result)? else {
            return Ok(CommitOutcome::Committed);
        };
        let duplicates: Vec<(String, Vec<Anomaly>)> = commit
            .records
            .iter()
            .enumerate()
            .filter(|(i, _)| canceled.refused_by_condition(*i))
            .map(|(i, (id, _))| {
                (
                    id.clone(),
                    canceled.item(i).map(alerts_of).unwrap_or_default(),
                )
            })
            .collect();
        if !duplicates.is_empty() {
            return Ok(CommitOutcome::Duplicates(duplicates));
        }
        if canceled.refused_by_condition(commit.records.len() + 1) {
            return Ok(CommitOutcome::StatsMoved);
        }
        // A concurrent transaction on the same items, or throttling: try again later.
        let codes = canceled.codes();
        Err(StoreError::Throttled {
            call: CALL.into(),
            message: format!("transaction canceled: {codes:?}"),
        })
    }

    async fn widen_range(
        &self,
        device: &DeviceId,
        hour: &str,
        min: f64,
        max: f64,
    ) -> Result<(), StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        for (attribute, value, beyond) in
            [("min_temperature", min, ">"), ("max_temperature", max, "<")]
        {
            let result = self
                .client
                .update_item()
                .table_name(&self.summaries_table)
                .key("device_id", s(device.as_str()))
                .key("hour", s(hour))
                .update_expression(format!("SET {attribute} = :v"))
                .condition_expression(format!(
                    "attribute_not_exists({attribute}) OR {attribute} {beyond} :v"
                ))
                .expression_attribute_values(":v", n(value))
                .send()
                .await;
            // Stale: the range already covers the value, or the mark is gone.
            conditional_update(CALL, result)?;
        }
        Ok(())
    }

    async fn alerts_published(&self, record_ids: &[String]) -> Result<(), StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        for record_id in record_ids {
            let result = self
                .client
                .update_item()
                .table_name(&self.processed_table)
                .key("record_id", s(record_id))
                .update_expression("REMOVE alerts")
                .condition_expression("attribute_exists(record_id)")
                .send()
                .await;
            // Stale: the range already covers the value, or the mark is gone.
            conditional_update(CALL, result)?;
        }
        Ok(())
    }

    async fn summary(
        &self,
        device: &DeviceId,
        hour: &str,
    ) -> Result<Option<HourlySummary>, StoreError> {
        const CALL: &str = "DynamoDB.GetItem";
        let output = self
            .client
            .get_item()
            .table_name(&self.summaries_table)
            .key("device_id", s(device.as_str()))
            .key("hour", s(hour))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(CALL, e))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let r = ItemReader { call: CALL, item };
        Ok(Some(HourlySummary {
            record_count: r.number("record_count")?.unwrap_or(0),
            temperature_sum: r.number("temperature_sum")?.unwrap_or(0.0),
            temperature_sum_squares: r.number("temperature_sum_squares")?.unwrap_or(0.0),
            min_temperature: r.number("min_temperature")?,
            max_temperature: r.number("max_temperature")?,
            anomaly_count: r.number("anomaly_count")?.unwrap_or(0),
            quality_sum: r.number("quality_sum")?.unwrap_or(0.0),
        }))
    }
}
