//! The presence rules of [`crate::domain::presence`] on the State table, each step one conditional
//! UpdateItem, so concurrent or repeated events never move presence backwards. A failed
//! condition is read from the write's own `ALL_OLD` image to choose the next step.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::conditional::conditional_update;
use super::item::{Item, ItemReader, json_to_attribute, n, s};
use crate::domain::device_state::{DeviceState, DeviceStateStore, WriteOutcome};
use crate::domain::presence::{
    CertificateBinding, LifecycleEvent, LifecycleType, PendingDisconnect, PresenceOutcome,
    PresenceState, PresenceStore, RESET_GAP_MS,
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
        r.number::<i64>("pending_version")?,
        r.number::<i64>("pending_at")?,
    ) {
        (Some(session_id), Some(version), Some(at)) => Some(PendingDisconnect {
            session_id,
            version,
            at,
            reason: r.optional_string("pending_reason")?,
        }),
        _ => None,
    };
    Ok(PresenceState {
        online: matches!(item.get("online"), Some(AttributeValue::Bool(true))),
        session_id: r.optional_string("session_id")?,
        session_version: r.number("session_version")?,
        connected_at: r.number("connected_at")?,
        disconnected_at: r.number("disconnected_at")?,
        disconnect_reason: r.optional_string("disconnect_reason")?,
        pending_disconnect: pending,
        certificate_id: r.optional_string("certificate_id")?,
    })
}

/// The rules' comparisons as condition expressions, over `:v` (the event's version), `:s`
/// (its session), `:lo` and `:hi` (its timestamp ∓ [`RESET_GAP_MS`]).
mod condition {
    /// The event is after the current connection's connect ([`Mark::is_after`]).
    ///
    /// [`Mark::is_after`]: crate::domain::presence::Mark::is_after
    pub const AFTER_CONNECTION: &str = "(attribute_not_exists(session_version) OR connected_at <= :lo \
         OR (connected_at < :hi AND session_version < :v))";
    /// The event is after the held disconnect, or none is held.
    pub const AFTER_PENDING: &str = "(attribute_not_exists(pending_version) OR pending_at <= :lo \
         OR (pending_at < :hi AND pending_version < :v))";
    /// The held disconnect is the one of the connection this connect starts.
    pub const ENDS: &str = "(pending_version = :v AND pending_session = :s AND pending_at > :lo)";
    /// The event belongs to the current connection.
    pub const CURRENT: &str = "(session_version = :v AND session_id = :s AND connected_at < :hi)";
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

    /// Applies `event` in at most two conditional writes a round: the common case first;
    /// when its condition fails, the pure rules on the row as it was (the write's own
    /// `ALL_OLD` image) choose the other write, or say that nothing changes. A round lost
    /// to a concurrent writer is played again.
    async fn apply(
        &self,
        device: &DeviceId,
        event: &LifecycleEvent,
    ) -> Result<PresenceOutcome, StoreError> {
        use condition::{AFTER_CONNECTION, AFTER_PENDING, CURRENT, ENDS};
        // Only the thing's own certificate moves its presence: every write is guarded by it.
        let Some(principal) = event.principal_identifier.as_deref() else {
            return Ok(PresenceOutcome::Refused);
        };
        let own = |condition: String| format!("certificate_id = :p AND {condition}");
        let values = |extra: &[(&'static str, AttributeValue)]| {
            let mut values = vec![
                (":p", s(principal)),
                (":s", s(&event.session_identifier)),
                (":v", n(event.version_number)),
                (":t", n(event.timestamp)),
                (":hi", n(event.timestamp + RESET_GAP_MS)),
            ];
            values.extend(extra.iter().cloned());
            values
        };
        let lo = || (":lo", n(event.timestamp - RESET_GAP_MS));
        let (on, off) = (
            (":on", AttributeValue::Bool(true)),
            (":off", AttributeValue::Bool(false)),
        );
        let connect = "session_id = :s, session_version = :v, connected_at = :t";
        for _ in 0..MAX_ROUNDS {
            let (first, first_outcome) = match event.event_type {
                LifecycleType::Connected => (
                    self.step(
                        device,
                        &format!(
                            "SET #online = :on, {connect} REMOVE disconnected_at, disconnect_reason"
                        ),
                        &own(format!("{AFTER_CONNECTION} AND NOT {ENDS}")),
                        values(&[on.clone(), lo()]),
                    )
                    .await?,
                    PresenceOutcome::Connected,
                ),
                LifecycleType::Disconnected => (
                    self.step(
                        device,
                        "SET #online = :off, disconnected_at = :t, disconnect_reason = :r",
                        &own(format!("{CURRENT} AND #online = :on")),
                        values(&[on.clone(), off.clone(), (":r", reason(event))]),
                    )
                    .await?,
                    PresenceOutcome::Disconnected,
                ),
            };
            let old = match first {
                Step::Applied => return Ok(first_outcome),
                Step::Refused(old) => presence_of(&old)?,
            };
            let second = match old.clone().apply(event) {
                outcome @ (PresenceOutcome::Ignored | PresenceOutcome::Refused) => {
                    return Ok(outcome);
                }
                outcome if outcome == first_outcome => continue,
                PresenceOutcome::ConnectedAndEnded => {
                    // Its disconnect came first: the connection starts and ends in one write.
                    self.step(
                        device,
                        &format!(
                            "SET #online = :off, {connect}, disconnected_at = pending_at, \
                             disconnect_reason = pending_reason \
                             REMOVE pending_session, pending_version, pending_at, pending_reason"
                        ),
                        &own(format!("{AFTER_CONNECTION} AND {ENDS}")),
                        values(&[off.clone(), lo()]),
                    )
                    .await?
                }
                _ => {
                    self.step(
                        device,
                        "SET pending_session = :s, pending_version = :v, pending_at = :t, pending_reason = :r",
                        &own(format!(
                            "NOT ({CURRENT} AND (#online = :on OR disconnected_at > :lo)) \
                             AND {AFTER_CONNECTION} AND {AFTER_PENDING}"
                        )),
                        values(&[on.clone(), lo(), (":r", reason(event))]),
                    )
                    .await?
                }
            };
            if let Step::Applied = second {
                return Ok(match event.event_type {
                    LifecycleType::Connected => PresenceOutcome::ConnectedAndEnded,
                    LifecycleType::Disconnected => PresenceOutcome::DisconnectHeld,
                });
            }
        }
        Err(StoreError::Unavailable {
            call: CALL.into(),
            message: format!("presence of {device}: too many concurrent writes"),
        })
    }
}

impl CertificateBinding for DynamoDeviceState {
    async fn bind_certificate(
        &self,
        device: &DeviceId,
        certificate_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("device_id", s(device.as_str()))
            .update_expression("SET certificate_id = :c")
            .expression_attribute_values(":c", s(certificate_id))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(CALL, e))?;
        Ok(())
    }
}

impl PresenceStore for DynamoDeviceState {
    async fn apply_presence(
        &self,
        device: &DeviceId,
        event: &LifecycleEvent,
    ) -> Result<PresenceOutcome, StoreError> {
        self.apply(device, event).await
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
            .filter(|item| {
                ["session_id", "pending_session", "certificate_id"]
                    .iter()
                    .any(|key| item.contains_key(*key))
            })
            .map(presence_of)
            .transpose()
    }
}
