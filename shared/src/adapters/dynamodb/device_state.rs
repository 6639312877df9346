//! The presence rules of [`crate::domain::presence`] on the State table, each step one conditional
//! UpdateItem, so concurrent or repeated events never move presence backwards. A failed
//! condition is read from the write's own `ALL_OLD` image to choose the next step.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::conditional::conditional_update;
use super::item::{Item, ItemReader, json_to_attribute, n, s};
use crate::domain::device_state::{DeviceState, DeviceStateStore, WriteOutcome};
use crate::domain::presence::{
    LifecycleEvent, LifecycleType, PendingDisconnect, PresenceOutcome, PresenceState, PresenceStore,
};
use crate::domain::telemetry::{DeviceId, TelemetryRecord};
use crate::runtime::error::StoreError;

/// The State table (key `device_id`).
#[derive(Debug, Clone)]
pub struct DynamoDeviceState {
    pub(crate) client: Client,
    pub(crate) table: String,
}

impl DynamoDeviceState {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDeviceState {
            client,
            table: table.into(),
        }
    }
}

impl DeviceStateStore for DynamoDeviceState {
    async fn get(&self, device_id: &DeviceId) -> Result<Option<DeviceState>, StoreError> {
        const CALL: &str = "DynamoDB.GetItem";
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("device_id", s(device_id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(CALL, e))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let r = ItemReader { call: CALL, item };
        Ok(Some(DeviceState {
            device_id: device_id.clone(),
            last_telemetry: r.json("last_telemetry"),
            last_telemetry_at: r.number("last_telemetry_at")?,
            version: r.number("version")?.unwrap_or(0),
        }))
    }

    async fn record_telemetry(
        &self,
        reading: &TelemetryRecord,
    ) -> Result<WriteOutcome, StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        let json =
            serde_json::to_value(reading).map_err(|e| StoreError::corrupt(CALL, e.to_string()))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("device_id", s(reading.device_id.as_str()))
            .update_expression(
                "SET last_telemetry = :reading, last_telemetry_at = :at, version = if_not_exists(version, :zero) + :one",
            )
            .condition_expression("attribute_not_exists(last_telemetry_at) OR last_telemetry_at < :at")
            .expression_attribute_values(":reading", json_to_attribute(&json))
            .expression_attribute_values(":at", AttributeValue::N(reading.timestamp_ms().to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        conditional_update(CALL, result)
    }
}

const CALL: &str = "DynamoDB.UpdateItem";
/// Rounds of the step machine before giving up on a device under heavy concurrent writes.
const MAX_ROUNDS: usize = 6;

fn reason(event: &LifecycleEvent) -> AttributeValue {
    event
        .disconnect_reason
        .as_deref()
        .map_or(AttributeValue::Null(true), s)
}

/// A step's result: applied, or refused with the row as it was.
enum Step {
    Applied,
    Refused(Item),
}

fn presence_of(item: &Item) -> Result<PresenceState, StoreError> {
    let r = ItemReader { call: CALL, item };
    let pending = match (
        r.optional_string("pending_session")?,
        r.number::<i64>("pending_at")?,
    ) {
        (Some(session_id), Some(at)) => Some(PendingDisconnect {
            session_id,
            at,
            reason: r.optional_string("pending_reason")?,
        }),
        _ => None,
    };
    Ok(PresenceState {
        online: matches!(item.get("online"), Some(AttributeValue::Bool(true))),
        session_id: r.optional_string("session_id")?,
        connected_at: r.number("connected_at")?,
        disconnected_at: r.number("disconnected_at")?,
        disconnect_reason: r.optional_string("disconnect_reason")?,
        pending_disconnect: pending,
    })
}

impl DynamoDeviceState {
    async fn step(
        &self,
        device: &DeviceId,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Step, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("device_id", s(device.as_str()))
            .update_expression(update)
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        // `online` is a DynamoDB reserved word.
        if update.contains("#online") || condition.contains("#online") {
            request = request.expression_attribute_names("#online", "online");
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(Step::Applied),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Step::Refused(failed.item().cloned().unwrap_or_default()))
                }
                _ => Err(StoreError::from_sdk(CALL, err)),
            },
        }
    }

    async fn connect(
        &self,
        device: &DeviceId,
        event: &LifecycleEvent,
    ) -> Result<PresenceOutcome, StoreError> {
        let newer = "(attribute_not_exists(connected_at) OR connected_at < :t)";
        let ended = "(pending_session = :s AND pending_at >= :t)";
        for _ in 0..MAX_ROUNDS {
            let values = || {
                vec![
                    (":s", s(&event.session_identifier)),
                    (":t", n(event.timestamp)),
                ]
            };
            let mut online = values();
            online.push((":on", AttributeValue::Bool(true)));
            let stays_online = self
                .step(
                    device,
                    "SET #online = :on, session_id = :s, connected_at = :t REMOVE disconnected_at, disconnect_reason",
                    &format!("{newer} AND NOT {ended}"),
                    online,
                )
                .await?;
            let old = match stays_online {
                Step::Applied => return Ok(PresenceOutcome::Connected),
                Step::Refused(old) => presence_of(&old)?,
            };
            if old.connected_at.is_some_and(|at| at >= event.timestamp) {
                return Ok(PresenceOutcome::Ignored);
            }
            // Its disconnect came first: the session starts and ends in one write.
            let mut offline = values();
            offline.push((":off", AttributeValue::Bool(false)));
            let ends = self
                .step(
                    device,
                    "SET #online = :off, session_id = :s, connected_at = :t, disconnected_at = pending_at, \
                     disconnect_reason = pending_reason REMOVE pending_session, pending_at, pending_reason",
                    &format!("{newer} AND {ended}"),
                    offline,
                )
                .await?;
            if let Step::Applied = ends {
                return Ok(PresenceOutcome::ConnectedAndEnded);
            }
        }
        Err(StoreError::Unavailable {
            call: CALL.into(),
            message: format!("presence of {device}: too many concurrent writes"),
        })
    }

    async fn disconnect(
        &self,
        device: &DeviceId,
        event: &LifecycleEvent,
    ) -> Result<PresenceOutcome, StoreError> {
        for _ in 0..MAX_ROUNDS {
            let values = || {
                vec![
                    (":s", s(&event.session_identifier)),
                    (":t", n(event.timestamp)),
                    (":r", reason(event)),
                ]
            };
            let mut current = values();
            current.push((":on", AttributeValue::Bool(true)));
            current.push((":off", AttributeValue::Bool(false)));
            let ends_current = self
                .step(
                    device,
                    "SET #online = :off, disconnected_at = :t, disconnect_reason = :r",
                    "session_id = :s AND #online = :on AND connected_at <= :t",
                    current,
                )
                .await?;
            let old = match ends_current {
                Step::Applied => return Ok(PresenceOutcome::Disconnected),
                Step::Refused(old) => presence_of(&old)?,
            };
            if old.session_id.as_deref() == Some(event.session_identifier.as_str()) {
                return Ok(PresenceOutcome::Ignored);
            }
            if old
                .pending_disconnect
                .as_ref()
                .is_some_and(|p| p.at >= event.timestamp)
            {
                return Ok(PresenceOutcome::Ignored);
            }
            let held = self
                .step(
                    device,
                    "SET pending_session = :s, pending_at = :t, pending_reason = :r",
                    "(attribute_not_exists(session_id) OR session_id <> :s) \
                     AND (attribute_not_exists(pending_at) OR pending_at < :t)",
                    values(),
                )
                .await?;
            if let Step::Applied = held {
                return Ok(PresenceOutcome::DisconnectHeld);
            }
        }
        Err(StoreError::Unavailable {
            call: CALL.into(),
            message: format!("presence of {device}: too many concurrent writes"),
        })
    }
}

impl PresenceStore for DynamoDeviceState {
    async fn apply_presence(
        &self,
        device: &DeviceId,
        event: &LifecycleEvent,
    ) -> Result<PresenceOutcome, StoreError> {
        match event.event_type {
            LifecycleType::Connected => self.connect(device, event).await,
            LifecycleType::Disconnected => self.disconnect(device, event).await,
        }
    }

    async fn presence(&self, device: &DeviceId) -> Result<Option<PresenceState>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("device_id", s(device.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("DynamoDB.GetItem", e))?;
        output
            .item()
            .filter(|item| item.contains_key("session_id") || item.contains_key("pending_session"))
            .map(presence_of)
            .transpose()
    }
}
