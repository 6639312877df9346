//! The Registry table (key `serial`): the hook's port, and what operators do to it in bulk
//! or by hand (fleetctl: batch reads and writes, listing, re-arming a serial).
//!
//! Every write that can race or repeat is conditional, and a failed condition is read from
//! the failed write's own `ALL_OLD` image: one round trip, no second read that could race.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use time::OffsetDateTime;

mod item;

use super::batch::until_processed;
use super::conditional::{conditional, conditional_update};
use super::item::{Item, ItemReader, rfc3339, s};
use crate::domain::device_state::WriteOutcome;
use crate::domain::registry::{
    AddOutcome, ClaimOutcome, Denial, DenialOutcome, ProvisioningClaim, Registry, RegistryEntry,
    RegistryStatus, RevokeOutcome, Serial,
};
use crate::runtime::error::StoreError;
use crate::runtime::retry::RetryPolicy;
pub(crate) use item::{registry_entry, registry_item};

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

/// Most keys one BatchGetItem takes.
pub const BATCH_GET_MAX: usize = 100;
/// Most items one BatchWriteItem takes.
pub const BATCH_WRITE_MAX: usize = 25;

/// What `allow` did.
#[derive(Debug, Clone, PartialEq)]
pub enum AllowOutcome {
    /// The serial is ALLOWED again; its row as it was before.
    Rearmed(Box<RegistryEntry>),
    /// It was ALLOWED already; nothing changed.
    AlreadyAllowed,
    Unknown,
}

impl DynamoRegistry {
    /// The rows of `serials` that exist (strongly consistent), in no particular order;
    /// keys DynamoDB leaves unprocessed are asked again under `retry`.
    pub async fn batch_get(
        &self,
        serials: &[Serial],
        retry: &RetryPolicy,
    ) -> Result<Vec<RegistryEntry>, StoreError> {
        const CALL: &str = "DynamoDB.BatchGetItem";
        let mut found = Vec::with_capacity(serials.len());
        for chunk in serials.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|serial| [("serial".to_string(), s(serial.as_str()))].into())
                .collect();
            until_processed(CALL, "keys", retry, keys, async |keys| {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::corrupt(CALL, e.to_string()))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk(CALL, e))?;
                for item in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    found.push(registry_entry(CALL, item)?);
                }
                Ok(output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|left| left.keys().to_vec())
                    .unwrap_or_default())
            })
            .await?;
        }
        Ok(found)
    }

    /// Writes `entries` (overwriting) with BatchWriteItem, 25 at a time, sending again what
    /// DynamoDB leaves unprocessed with backoff under `retry`. Returns how many calls it took.
    pub async fn batch_put(
        &self,
        entries: &[RegistryEntry],
        retry: &RetryPolicy,
    ) -> Result<usize, StoreError> {
        const CALL: &str = "DynamoDB.BatchWriteItem";
        let mut calls = 0;
        for chunk in entries.chunks(BATCH_WRITE_MAX) {
            let pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|entry| {
                    let put = PutRequest::builder()
                        .set_item(Some(registry_item(entry)))
                        .build()
                        .map_err(|e| StoreError::corrupt(CALL, e.to_string()))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<_, StoreError>>()?;
            calls += until_processed(CALL, "items", retry, pending, async |pending| {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk(CALL, e))?;
                Ok(output
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default())
            })
            .await?;
        }
        Ok(calls)
    }

    /// Overwrites a serial's row only while its status is still `expected`, so a device
    /// provisioning between an operator's read and this write is never undone.
    pub async fn replace_if_status(
        &self,
        entry: &RegistryEntry,
        expected: RegistryStatus,
    ) -> Result<WriteOutcome, StoreError> {
        const CALL: &str = "DynamoDB.PutItem";
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(registry_item(entry)))
            .condition_expression("#status = :expected")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expected", s(expected.as_str()))
            .send()
            .await;
        match conditional(CALL, result)? {
            Some(_) => Ok(WriteOutcome::Applied),
            None => Ok(WriteOutcome::Stale),
        }
    }

    /// Every row, or those with `status` (a Scan: fine for an operator, not for a function).
    pub async fn list(
        &self,
        status: Option<RegistryStatus>,
    ) -> Result<Vec<RegistryEntry>, StoreError> {
        const CALL: &str = "DynamoDB.Scan";
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let mut scan = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start);
            if let Some(status) = status {
                scan = scan
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status.as_str()));
            }
            let output = scan
                .send()
                .await
                .map_err(|e| StoreError::from_sdk(CALL, e))?;
            for item in output.items() {
                entries.push(registry_entry(CALL, item)?);
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                entries.sort_by(|a, b| a.serial.cmp(&b.serial));
                return Ok(entries);
            }
        }
    }

    /// Re-arms a LOCKED, PROVISIONED or REVOKED serial: ALLOWED again, its denial count and
    /// provisioning record cleared, so the device can provision anew.
    pub async fn allow(
        &self,
        serial: &Serial,
        at: OffsetDateTime,
    ) -> Result<AllowOutcome, StoreError> {
        const CALL: &str = "DynamoDB.UpdateItem";
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("serial", s(serial.as_str()))
            .update_expression(
                "SET #status = :allowed, denied_attempts = :zero, rearmed_at = :at \
                 REMOVE certificate_id, claim_certificate_id, client_id, provisioned_at",
            )
            .condition_expression("attribute_exists(serial) AND #status <> :allowed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":allowed", s(RegistryStatus::Allowed.as_str()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match &result {
            Ok(output) => output
                .attributes()
                .map(|item| registry_entry(CALL, item))
                .transpose()?,
            Err(_) => None,
        };
        match conditional_update(CALL, result)? {
            WriteOutcome::Applied => {
                let old =
                    old.ok_or_else(|| StoreError::corrupt(CALL, "no ALL_OLD image returned"))?;
                Ok(AllowOutcome::Rearmed(Box::new(old)))
            }
            WriteOutcome::Stale => {
                let exists = crate::domain::registry::Registry::get(self, serial)
                    .await?
                    .is_some();
                Ok(if exists {
                    AllowOutcome::AlreadyAllowed
                } else {
                    AllowOutcome::Unknown
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
