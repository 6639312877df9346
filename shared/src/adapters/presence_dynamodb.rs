//! The presence rules of [`crate::presence`] on the State table, each step one conditional
//! UpdateItem, so concurrent or repeated events never move presence backwards. A failed
//! condition is read from the write's own `ALL_OLD` image to choose the next step.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::dynamodb::DynamoDeviceState;
use super::item::{Item, ItemReader, n, s};
use crate::error::StoreError;
use crate::presence::{
    LifecycleEvent, LifecycleType, PendingDisconnect, PresenceOutcome, PresenceState, PresenceStore,
};
use crate::telemetry::DeviceId;

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
