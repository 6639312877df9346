//! What operators do to the Registry in bulk or by hand (fleetctl): batch reads and
//! writes, listing, and re-arming a serial. The functions never need these.

use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, ReturnValue, WriteRequest,
};
use time::OffsetDateTime;

use super::dynamodb::{DynamoRegistry, conditional_update, registry_entry, registry_item, rfc3339};
use super::item::{Item, s};
use crate::adapters::conditional::conditional;
use crate::device_state::WriteOutcome;
use crate::error::StoreError;
use crate::registry::{RegistryEntry, RegistryStatus, Serial};
use crate::retry::RetryPolicy;

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
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|serial| [("serial".to_string(), s(serial.as_str()))].into())
                .collect();
            let started = tokio::time::Instant::now();
            let mut attempt = 0;
            while !keys.is_empty() {
                if attempt > 0 {
                    let wait = retry.next_wait(attempt, started.elapsed()).ok_or_else(|| {
                        StoreError::Throttled {
                            call: CALL.into(),
                            message: format!(
                                "{} keys still unprocessed after {attempt} attempts",
                                keys.len()
                            ),
                        }
                    })?;
                    tokio::time::sleep(wait).await;
                }
                attempt += 1;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
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
                if let Some(items) = output.responses().and_then(|r| r.get(&self.table)) {
                    for item in items {
                        found.push(registry_entry(CALL, item)?);
                    }
                }
                if let Some(left) = output.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    keys = left.keys().to_vec();
                }
            }
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
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|entry| {
                    let put = PutRequest::builder()
                        .set_item(Some(registry_item(entry)))
                        .build()
                        .map_err(|e| StoreError::corrupt(CALL, e.to_string()))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<_, StoreError>>()?;
            let started = tokio::time::Instant::now();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    let wait = retry.next_wait(attempt, started.elapsed()).ok_or_else(|| {
                        StoreError::Throttled {
                            call: CALL.into(),
                            message: format!(
                                "{} items still unprocessed after {attempt} attempts",
                                pending.len()
                            ),
                        }
                    })?;
                    tokio::time::sleep(wait).await;
                }
                attempt += 1;
                calls += 1;
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk(CALL, e))?;
                if let Some(left) = output.unprocessed_items().and_then(|u| u.get(&self.table)) {
                    pending = left.clone();
                }
            }
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
                let exists = crate::registry::Registry::get(self, serial)
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
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use std::time::Duration;

    fn entry(n: usize) -> RegistryEntry {
        RegistryEntry::allowed(
            Serial::parse(&format!("SN-{n}")).unwrap(),
            "sensor-x",
            format!("car-{n}"),
        )
    }

    fn quick_retry() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            budget: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn unprocessed_items_are_sent_again_until_none_is_left() {
        let entries: Vec<RegistryEntry> = (0..3).map(entry).collect();
        let left = vec![
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(registry_item(&entries[2])))
                        .build()
                        .unwrap(),
                )
                .build(),
        ];
        let throttled = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .match_requests(|r| r.request_items().is_some_and(|m| m["registry"].len() == 3))
            .then_output(move || {
                BatchWriteItemOutput::builder()
                    .unprocessed_items("registry", left.clone())
                    .build()
            });
        let rest = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .match_requests(|r| r.request_items().is_some_and(|m| m["registry"].len() == 1))
            .then_output(|| BatchWriteItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled, &rest]);
        let registry = DynamoRegistry::new(client, "registry");
        let calls = registry.batch_put(&entries, &quick_retry()).await.unwrap();
        assert_eq!(calls, 2);
        assert_eq!(throttled.num_calls(), 1);
        assert_eq!(
            rest.num_calls(),
            1,
            "only the unprocessed item was sent again"
        );
    }

    #[tokio::test]
    async fn gives_up_when_the_retries_run_out() {
        let entries = vec![entry(1)];
        let left = vec![
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(registry_item(&entries[0])))
                        .build()
                        .unwrap(),
                )
                .build(),
        ];
        let always = mock!(aws_sdk_dynamodb::Client::batch_write_item).then_output(move || {
            BatchWriteItemOutput::builder()
                .unprocessed_items("registry", left.clone())
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&always]);
        let registry = DynamoRegistry::new(client, "registry");
        let err = registry
            .batch_put(&entries, &quick_retry())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Throttled { .. }), "{err}");
        assert_eq!(always.num_calls(), 5);
    }
}
