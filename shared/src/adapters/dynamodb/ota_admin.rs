//! What operators do to releases and rollouts (fleetctl) on the OTA tables: publish a
//! release once, create a rollout, widen or narrow it, pause, resume and abort it, list
//! both tables, read a device's history. The functions never need these. Every change is
//! one conditional write, so two operators (or an operator and ota-status pausing the
//! rollout) cannot overwrite each other.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use time::OffsetDateTime;

use super::conditional::conditional;
use super::item::{Item, n, rfc3339, s};
use super::ota::{
    DynamoOta, MODEL_INDEX, release as release_row, release_item, rollout_item, rollout_state,
};
use crate::domain::ota::OtaLedger;
use crate::domain::ota::{Release, Rollout, RolloutState, RolloutStatus};
use crate::runtime::error::StoreError;

/// What publishing a release did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published,
    /// The same image (same SHA-256) was published before: nothing changed.
    AlreadyPublished,
    /// The version exists with another image; releases are immutable.
    Conflict {
        existing_sha256: String,
    },
}

/// What an operator's change to a rollout did.
#[derive(Debug, Clone, PartialEq)]
pub enum RolloutChange {
    /// Applied; the rollout as it is now.
    Applied(Box<RolloutState>),
    /// Not applied: the rollout is in a status the change does not start from.
    Refused {
        current: RolloutStatus,
    },
    Unknown,
}

/// The OTA tables as operators change them; the functions' ports are [`DynamoOta`]'s.
#[derive(Debug, Clone)]
pub struct DynamoOtaAdmin {
    ota: DynamoOta,
}

impl DynamoOtaAdmin {
    pub fn new(ota: DynamoOta) -> Self {
        Self { ota }
    }

    /// The ports' side of the same tables.
    pub fn ota(&self) -> &DynamoOta {
        &self.ota
    }

    /// A rollout as it is now (the same read ota-status does).
    pub async fn rollout(&self, rollout_id: &str) -> Result<Option<RolloutState>, StoreError> {
        self.ota.rollout(rollout_id).await
    }

    /// The release of `model` at `version`, for fleetctl (the same read firmware-url does).
    pub async fn get_release(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<Release>, StoreError> {
        crate::domain::ota::FirmwareCatalog::release(&self.ota, model, version).await
    }

    /// Adds a release row unless the version exists. A second publish of the same image
    /// (same SHA-256) is a no-op, so a publish retried after a crash succeeds.
    pub async fn publish_release(&self, release: &Release) -> Result<PublishOutcome, StoreError> {
        const CALL: &str = "DynamoDB.PutItem";
        let result = self
            .ota
            .client
            .put_item()
            .table_name(&self.ota.firmware_table)
            .set_item(Some(release_item(release)))
            .condition_expression("attribute_not_exists(model)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PublishOutcome::Published),
            Err(err) => match err.as_service_error() {
                Some(e) if e.is_conditional_check_failed_exception() => {
                    let existing = match e {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                            c.item().map(|item| release_row(CALL, item)).transpose()?
                        }
                        _ => None,
                    };
                    let existing = match existing {
                        Some(existing) => existing,
                        None => self
                            .get_release(&release.model, &release.version)
                            .await?
                            .ok_or_else(|| {
                                StoreError::corrupt(CALL, "condition failed on a missing row")
                            })?,
                    };
                    Ok(if existing.sha256 == release.sha256 {
                        PublishOutcome::AlreadyPublished
                    } else {
                        PublishOutcome::Conflict {
                            existing_sha256: existing.sha256,
                        }
                    })
                }
                _ => Err(StoreError::from_sdk(CALL, err)),
            },
        }
    }

    /// Every release, or those of `model`, ordered by model then version text.
    pub async fn list_releases(&self, model: Option<&str>) -> Result<Vec<Release>, StoreError> {
        let items = match model {
            Some(model) => {
                self.query_all(
                    &self.ota.firmware_table,
                    None,
                    "model = :m",
                    [(":m", s(model))],
                )
                .await?
            }
            None => self.scan_all(&self.ota.firmware_table).await?,
        };
        let mut releases = items
            .iter()
            .map(|item| release_row("DynamoDB.Query", item))
            .collect::<Result<Vec<_>, _>>()?;
        releases.sort_by(|a, b| (&a.model, &a.version).cmp(&(&b.model, &b.version)));
        Ok(releases)
    }

    /// Creates a rollout unless its id is taken; `false` when it is.
    pub async fn create_rollout(&self, rollout: &Rollout) -> Result<bool, StoreError> {
        const CALL: &str = "DynamoDB.PutItem";
        let result = self
            .ota
            .client
            .put_item()
            .table_name(&self.ota.rollouts_table)
            .set_item(Some(rollout_item(rollout)))
            .condition_expression("attribute_not_exists(rollout_id)")
            .send()
            .await;
        match conditional(CALL, result)? {
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// Every rollout, or those of `model`, ordered by id.
    pub async fn list_rollouts(
        &self,
        model: Option<&str>,
    ) -> Result<Vec<RolloutState>, StoreError> {
        let items = match model {
            Some(model) => {
                self.query_all(
                    &self.ota.rollouts_table,
                    Some(MODEL_INDEX),
                    "model = :m",
                    [(":m", s(model))],
                )
                .await?
            }
            None => self.scan_all(&self.ota.rollouts_table).await?,
        };
        let mut rollouts = items
            .iter()
            .map(|item| rollout_state("DynamoDB.Scan", item))
            .collect::<Result<Vec<_>, _>>()?;
        rollouts.sort_by(|a, b| a.rollout.rollout_id.cmp(&b.rollout.rollout_id));
        Ok(rollouts)
    }

    /// Sets the share of devices reached (ACTIVE or PAUSED rollouts). Raising it only adds
    /// devices; lowering it stops offering the release to the devices above the new line.
    pub async fn set_percentage(
        &self,
        rollout_id: &str,
        percentage: f64,
        at: OffsetDateTime,
    ) -> Result<RolloutChange, StoreError> {
        let update = self
            .rollout_update(rollout_id)
            .update_expression("SET percentage = :p, updated_at = :at")
            .condition_expression(EXISTS_AND_ACTIVE_OR_PAUSED)
            .expression_attribute_values(":p", n(percentage))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":active", status(RolloutStatus::Active))
            .expression_attribute_values(":paused", status(RolloutStatus::Paused));
        self.change(update).await
    }

    /// ACTIVE → PAUSED by an operator: no alert (the operator knows), `reason` kept.
    pub async fn pause_by_operator(
        &self,
        rollout_id: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<RolloutChange, StoreError> {
        let update = self
            .rollout_update(rollout_id)
            .update_expression("SET #status = :paused, pause_reason = :reason, paused_at = :at")
            .condition_expression("attribute_exists(rollout_id) AND #status = :active")
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":active", status(RolloutStatus::Active))
            .expression_attribute_values(":paused", status(RolloutStatus::Paused));
        self.change(update).await
    }

    /// PAUSED → ACTIVE. The failure rate starts a new window: the counts so far move to
    /// `prior_successes`/`prior_failures` (without that, the next report would pause the
    /// rollout again at once). An alert still owed for the pause is dropped.
    pub async fn resume(
        &self,
        rollout_id: &str,
        at: OffsetDateTime,
    ) -> Result<RolloutChange, StoreError> {
        let update = self
            .rollout_update(rollout_id)
            .update_expression(
                "SET #status = :active, resumed_at = :at, \
                 prior_successes = if_not_exists(prior_successes, :zero) + if_not_exists(successes, :zero), \
                 prior_failures = if_not_exists(prior_failures, :zero) + if_not_exists(failures, :zero), \
                 successes = :zero, failures = :zero \
                 REMOVE pause_reason, pause_alert_pending, pause_alert_lease_until",
            )
            .condition_expression("attribute_exists(rollout_id) AND #status = :paused")
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":active", status(RolloutStatus::Active))
            .expression_attribute_values(":paused", status(RolloutStatus::Paused));
        self.change(update).await
    }

    /// ACTIVE or PAUSED → ABORTED, for good: no device is offered it again.
    pub async fn abort(
        &self,
        rollout_id: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<RolloutChange, StoreError> {
        let update = self
            .rollout_update(rollout_id)
            .update_expression("SET #status = :aborted, abort_reason = :reason, aborted_at = :at")
            .condition_expression(EXISTS_AND_ACTIVE_OR_PAUSED)
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":aborted", status(RolloutStatus::Aborted))
            .expression_attribute_values(":active", status(RolloutStatus::Active))
            .expression_attribute_values(":paused", status(RolloutStatus::Paused));
        self.change(update).await
    }

    /// An UpdateItem on one existing rollout that returns the row as it is after (or, when
    /// the condition fails, as it was).
    fn rollout_update(&self, rollout_id: &str) -> UpdateItemFluentBuilder {
        self.ota
            .client
            .update_item()
            .table_name(&self.ota.rollouts_table)
            .key("rollout_id", s(rollout_id))
            .expression_attribute_names("#status", "status")
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }

    async fn change(&self, update: UpdateItemFluentBuilder) -> Result<RolloutChange, StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        match update.send().await {
            Ok(output) => {
                let item = output
                    .attributes()
                    .ok_or_else(|| StoreError::corrupt(CALL, "no ALL_NEW image returned"))?;
                Ok(RolloutChange::Applied(Box::new(rollout_state(CALL, item)?)))
            }
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    match c.item() {
                        Some(item) => Ok(RolloutChange::Refused {
                            current: rollout_state(CALL, item)?.rollout.status,
                        }),
                        None => Ok(RolloutChange::Unknown),
                    }
                }
                _ => Err(StoreError::from_sdk(CALL, err)),
            },
        }
    }

    async fn scan_all(&self, table: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .ota
                .client
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("DynamoDB.Scan", e))?;
            items.extend(output.items().iter().cloned());
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    async fn query_all<const N: usize>(
        &self,
        table: &str,
        index: Option<&str>,
        key_condition: &str,
        values: [(&str, AttributeValue); N],
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .ota
                .client
                .query()
                .table_name(table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(key_condition)
                .set_exclusive_start_key(start);
            for (name, value) in &values {
                query = query.expression_attribute_values(*name, value.clone());
            }
            let output = query
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("DynamoDB.Query", e))?;
            items.extend(output.items().iter().cloned());
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

/// An unknown id fails the condition (with no ALL_OLD image) instead of creating a row.
const EXISTS_AND_ACTIVE_OR_PAUSED: &str =
    "attribute_exists(rollout_id) AND #status IN (:active, :paused)";

impl DynamoOtaAdmin {
    /// Writes a release (for fleetctl and tests).
    pub async fn put_release(&self, release: &Release) -> Result<(), StoreError> {
        self.ota
            .put(&self.ota.firmware_table, release_item(release))
            .await
    }

    /// Writes a rollout (for fleetctl and tests).
    pub async fn put_rollout(&self, rollout: &Rollout) -> Result<(), StoreError> {
        self.ota
            .put(&self.ota.rollouts_table, rollout_item(rollout))
            .await
    }

    /// A device's OtaHistory, oldest key first (for fleetctl and tests).
    pub async fn history(&self, device_id: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        let output = self
            .ota
            .client
            .query()
            .table_name(&self.ota.history_table)
            .key_condition_expression("device_id = :d")
            .expression_attribute_values(":d", s(device_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("DynamoDB.Query", e))?;
        Ok(output
            .items()
            .iter()
            .map(super::item::item_to_json)
            .collect())
    }
}

fn status(status: RolloutStatus) -> AttributeValue {
    s(status.as_str())
}
