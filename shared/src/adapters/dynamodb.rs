//! DynamoDB adapters of the Registry and State ports.
//!
//! Every write that can race or repeat is conditional, and a failed condition is read from
//! the failed write's own `ALL_OLD` image: one round trip, no second read that could race.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::item::{Item, ItemReader, json_to_attribute, s};
use crate::adapters::conditional::conditional;
use crate::device_state::{DeviceState, DeviceStateStore, WriteOutcome};
use crate::error::StoreError;
use crate::registry::{
    AddOutcome, ClaimOutcome, Denial, DenialOutcome, ProvisioningClaim, ProvisioningRecord,
    Registry, RegistryEntry, RegistryStatus, RevokeOutcome, Serial,
};
use crate::telemetry::{DeviceId, TelemetryRecord};

/// The Registry's global secondary index on `thing_name` (projection ALL).
pub const THING_NAME_INDEX: &str = "thing_name-index";

/// The Registry table (key `serial`).
#[derive(Debug, Clone)]
pub struct DynamoRegistry {
    pub(crate) client: Client,
    pub(crate) table: String,
}

impl DynamoRegistry {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoRegistry {
            client,
            table: table.into(),
        }
    }
}

pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

pub(crate) fn registry_item(entry: &RegistryEntry) -> Item {
    let mut item: Item = [
        ("serial".to_string(), s(entry.serial.as_str())),
        ("status".to_string(), s(entry.status.as_str())),
        ("model".to_string(), s(&entry.model)),
        ("thing_name".to_string(), s(&entry.thing_name)),
        (
            "denied_attempts".to_string(),
            AttributeValue::N(entry.denied_attempts.to_string()),
        ),
    ]
    .into();
    if !entry.claim_certificate_ids.is_empty() {
        item.insert(
            "claim_certificate_ids".into(),
            AttributeValue::Ss(entry.claim_certificate_ids.clone()),
        );
    }
    if !entry.attributes.is_empty() {
        let map = entry
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), s(v)))
            .collect();
        item.insert("attributes".into(), AttributeValue::M(map));
    }
    if let Some(p) = &entry.provisioning {
        item.insert("certificate_id".into(), s(&p.certificate_id));
        item.insert("claim_certificate_id".into(), s(&p.claim_certificate_id));
        item.insert("client_id".into(), s(&p.client_id));
        item.insert("provisioned_at".into(), s(rfc3339(p.at)));
    }
    item
}

pub(crate) fn registry_entry(call: &str, item: &Item) -> Result<RegistryEntry, StoreError> {
    let r = ItemReader { call, item };
    let serial = Serial::parse(&r.string("serial")?).map_err(|e| StoreError::corrupt(call, e))?;
    let status_name = r.string("status")?;
    let status = RegistryStatus::parse(&status_name).ok_or_else(|| {
        StoreError::corrupt(
            call,
            format!("unknown status {status_name:?} for serial {serial}"),
        )
    })?;
    let provisioning = match r.optional_string("certificate_id")? {
        None => None,
        Some(certificate_id) => {
            let at_raw = r.string("provisioned_at")?;
            let at = OffsetDateTime::parse(&at_raw, &Rfc3339).map_err(|e| {
                StoreError::corrupt(call, format!("provisioned_at {at_raw:?}: {e}"))
            })?;
            Some(ProvisioningRecord {
                certificate_id,
                claim_certificate_id: r
                    .optional_string("claim_certificate_id")?
                    .unwrap_or_default(),
                client_id: r.optional_string("client_id")?.unwrap_or_default(),
                at,
            })
        }
    };
    Ok(RegistryEntry {
        serial,
        status,
        model: r.optional_string("model")?.unwrap_or_default(),
        thing_name: r.string("thing_name")?,
        claim_certificate_ids: r.string_set("claim_certificate_ids")?,
        attributes: r
            .string_map("attributes")?
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        provisioning,
        denied_attempts: r.number("denied_attempts")?.unwrap_or(0),
    })
}

impl Registry for DynamoRegistry {
    async fn add(&self, entry: &RegistryEntry) -> Result<AddOutcome, StoreError> {
        const CALL: &str = "DynamoDB.PutItem";
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(registry_item(entry)))
            .condition_expression("attribute_not_exists(serial)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(AddOutcome::Added),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed)) => {
                    let old = failed.item().ok_or_else(|| StoreError::corrupt(CALL, "condition failed without an old item"))?;
                    Ok(AddOutcome::AlreadyPresent(Box::new(registry_entry(CALL, old)?)))
                }
                _ => Err(StoreError::from_sdk(CALL, err)),
            },
        }
    }

    async fn get(&self, serial: &Serial) -> Result<Option<RegistryEntry>, StoreError> {
        const CALL: &str = "DynamoDB.GetItem";
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("serial", s(serial.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(CALL, e))?;
        output
            .item()
            .map(|item| registry_entry(CALL, item))
            .transpose()
    }

    async fn find_by_thing(&self, thing_name: &str) -> Result<Option<RegistryEntry>, StoreError> {
        const CALL: &str = "DynamoDB.Query";
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(THING_NAME_INDEX)
            .key_condition_expression("thing_name = :thing")
            .expression_attribute_values(":thing", s(thing_name))
            .limit(2)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(CALL, e))?;
        match output.items() {
            [] => Ok(None),
            [item] => registry_entry(CALL, item).map(Some),
            _ => Err(StoreError::corrupt(
                CALL,
                format!("thing name {thing_name} belongs to more than one serial"),
            )),
        }
    }

    async fn claim(&self, claim: &ProvisioningClaim) -> Result<ClaimOutcome, StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        let record = &claim.record;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("serial", s(claim.serial.as_str()))
            // A retry by the certificate that provisioned the serial keeps the first time.
            .update_expression(
                "SET #status = :provisioned, certificate_id = :certificate, claim_certificate_id = :claim, \
                 client_id = :client, provisioned_at = if_not_exists(provisioned_at, :at)",
            )
            .condition_expression(
                "(#status = :allowed AND \
                  (attribute_not_exists(claim_certificate_ids) OR contains(claim_certificate_ids, :claim))) \
                 OR (#status = :provisioned AND certificate_id = :certificate)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":provisioned", s(RegistryStatus::Provisioned.as_str()))
            .expression_attribute_values(":allowed", s(RegistryStatus::Allowed.as_str()))
            .expression_attribute_values(":certificate", s(&record.certificate_id))
            .expression_attribute_values(":claim", s(&record.claim_certificate_id))
            .expression_attribute_values(":client", s(&record.client_id))
            .expression_attribute_values(":at", s(rfc3339(record.at)))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let item = output.attributes().ok_or_else(|| StoreError::corrupt(CALL, "no ALL_NEW image returned"))?;
                Ok(ClaimOutcome::Provisioned(registry_entry(CALL, item)?))
            }
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    // No old image means the serial was not there: the update's condition
                    // (`#status = :allowed`) fails on a missing item without creating it.
                    let current = failed.item().filter(|item| !item.is_empty()).map(|item| registry_entry(CALL, item)).transpose()?;
                    Ok(ClaimOutcome::Refused { current })
                }
                _ => Err(StoreError::from_sdk(CALL, err)),
            },
        }
    }

    async fn record_denial(&self, denial: &Denial) -> Result<DenialOutcome, StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("serial", s(denial.serial.as_str()))
            .update_expression(
                "SET denied_attempts = if_not_exists(denied_attempts, :zero) + :one, \
                 last_denied_at = :at, last_denied_reason = :reason",
            )
            // Only existing ALLOWED or PROVISIONED rows: an unknown serial is never created.
            .condition_expression("#status IN (:allowed, :provisioned)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":allowed", s(RegistryStatus::Allowed.as_str()))
            .expression_attribute_values(":provisioned", s(RegistryStatus::Provisioned.as_str()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":at", s(rfc3339(denial.at)))
            .expression_attribute_values(":reason", s(&denial.reason))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let output = match conditional(CALL, result)? {
            Some(output) => output,
            None => return Ok(DenialOutcome::NotCounted),
        };
        let attributes = output.attributes().cloned().unwrap_or_default();
        let attempts: u32 = ItemReader {
            call: CALL,
            item: &attributes,
        }
        .number("denied_attempts")?
        .unwrap_or(1);
        if attempts < denial.lock_after {
            return Ok(DenialOutcome::Counted { attempts });
        }
        self.lock_if_over(denial, attempts).await
    }

    async fn revoke(
        &self,
        serial: &Serial,
        at: OffsetDateTime,
    ) -> Result<RevokeOutcome, StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("serial", s(serial.as_str()))
            .update_expression("SET #status = :revoked, revoked_at = :at")
            .condition_expression("attribute_exists(serial)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":revoked", s(RegistryStatus::Revoked.as_str()))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let Some(output) = conditional(CALL, result)? else {
            return Ok(RevokeOutcome::Unknown);
        };
        let item = output
            .attributes()
            .ok_or_else(|| StoreError::corrupt(CALL, "no ALL_OLD image returned"))?;
        Ok(RevokeOutcome::Revoked(Box::new(registry_entry(
            CALL, item,
        )?)))
    }
}

impl DynamoRegistry {
    /// Second step of [`Registry::record_denial`]: lock when the count reached the limit,
    /// unless an operator changed the status meanwhile.
    async fn lock_if_over(
        &self,
        denial: &Denial,
        attempts: u32,
    ) -> Result<DenialOutcome, StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("serial", s(denial.serial.as_str()))
            .update_expression("SET #status = :locked, locked_at = :at")
            .condition_expression(
                "#status IN (:allowed, :provisioned) AND denied_attempts >= :limit",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":locked", s(RegistryStatus::Locked.as_str()))
            .expression_attribute_values(":allowed", s(RegistryStatus::Allowed.as_str()))
            .expression_attribute_values(":provisioned", s(RegistryStatus::Provisioned.as_str()))
            .expression_attribute_values(":limit", AttributeValue::N(denial.lock_after.to_string()))
            .expression_attribute_values(":at", s(rfc3339(denial.at)))
            .send()
            .await;
        match conditional(CALL, result)? {
            Some(_) => Ok(DenialOutcome::Locked { attempts }),
            None => Ok(DenialOutcome::Counted { attempts }),
        }
    }
}

/// A conditional UpdateItem's result: a failed condition is [`WriteOutcome::Stale`], a
/// business answer, not an error.
pub(crate) fn conditional_update<O, R: std::fmt::Debug>(
    call: &str,
    result: Result<
        O,
        aws_smithy_runtime_api::client::result::SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
            R,
        >,
    >,
) -> Result<WriteOutcome, StoreError> {
    match conditional(call, result)? {
        Some(_) => Ok(WriteOutcome::Applied),
        None => Ok(WriteOutcome::Stale),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn registry_entry_survives_a_round_trip_through_an_item() {
        let mut entry =
            RegistryEntry::allowed(Serial::parse("SN-1").unwrap(), "model-x", "car-SN-1");
        entry.claim_certificate_ids = vec!["claim-a".into(), "claim-b".into()];
        entry.attributes.insert("Fleet".into(), "seoul".into());
        entry.status = RegistryStatus::Provisioned;
        entry.denied_attempts = 2;
        entry.provisioning = Some(ProvisioningRecord {
            certificate_id: "cert".into(),
            claim_certificate_id: "claim-a".into(),
            client_id: "client".into(),
            at: datetime!(2026-11-25 10:00:00 UTC),
        });
        assert_eq!(registry_entry("t", &registry_item(&entry)).unwrap(), entry);
    }

    #[test]
    fn unknown_status_in_the_table_is_corrupt_not_allowed() {
        let mut item = registry_item(&RegistryEntry::allowed(
            Serial::parse("SN-1").unwrap(),
            "m",
            "t",
        ));
        item.insert("status".into(), s("MAYBE"));
        let err = registry_entry("DynamoDB.GetItem", &item).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
