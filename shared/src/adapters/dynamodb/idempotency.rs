//! [`IdempotencyStore`] on a DynamoDB table keyed by `key`, with a TTL on `expires_at`.
//! A claim is one conditional PutItem whose refusal carries the row it lost to.
//!
//! Each claim writes a token of its own: when the SDK retries a claim whose first attempt
//! was written but answered with an error (a 500 "may or may not have succeeded", an
//! answer lost with its connection), the retry's condition fails on that very row, and
//! the token says the row is this claim's, not another request's.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use time::OffsetDateTime;

use super::item::{Item, ItemReader, n, s};
use crate::adapters::dynamodb::conditional::conditional;
use crate::domain::idempotency::{Claim, IdempotencyStore, StoredResponse};
use crate::runtime::error::StoreError;

const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";

/// The Idempotency table.
#[derive(Clone)]
pub struct DynamoIdempotency {
    client: Client,
    table: String,
}

impl DynamoIdempotency {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoIdempotency {
            client,
            table: table.into(),
        }
    }
}

fn claim_of(item: &Item, token: &str) -> Result<Claim, StoreError> {
    let r = ItemReader {
        call: "DynamoDB.PutItem",
        item,
    };
    let fingerprint = r.string("fingerprint")?;
    let state = r.string("state")?;
    if state == IN_PROGRESS && r.optional_string("claim_token")?.as_deref() == Some(token) {
        // Our own earlier attempt of this very claim.
        return Ok(Claim::Claimed);
    }
    match state.as_str() {
        COMPLETED => Ok(Claim::Completed {
            fingerprint,
            response: StoredResponse {
                status: r.number("status")?.unwrap_or(500),
                body: r.optional_string("body")?.unwrap_or_default(),
            },
        }),
        _ => Ok(Claim::InProgress { fingerprint }),
    }
}

impl IdempotencyStore for DynamoIdempotency {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        stale_before: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        // Free when never used, expired (TTL deletes lazily), or claimed and abandoned.
        let token = format!("{:032x}", fastrand::u128(..));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("key", s(key))
            .item("fingerprint", s(fingerprint))
            .item("state", s(IN_PROGRESS))
            .item("claim_token", s(&token))
            .item("claimed_at", n(now.unix_timestamp()))
            .item("expires_at", n(expires_at.unix_timestamp()))
            .condition_expression(
                "attribute_not_exists(#key) OR expires_at < :now \
                 OR (#state = :in_progress AND claimed_at < :stale)",
            )
            .expression_attribute_names("#key", "key")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .expression_attribute_values(":stale", n(stale_before.unix_timestamp()))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Claimed),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item() {
                        Some(item) => claim_of(item, &token),
                        None => Err(StoreError::corrupt(
                            "DynamoDB.PutItem",
                            "condition failed without the item that failed it",
                        )),
                    }
                }
                _ => Err(StoreError::from_sdk("DynamoDB.PutItem", err)),
            },
        }
    }

    async fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        response: &StoredResponse,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("key", s(key))
            .item("fingerprint", s(fingerprint))
            .item("state", s(COMPLETED))
            .item("status", n(i64::from(response.status)))
            .item("body", s(&response.body))
            .item("expires_at", n(expires_at.unix_timestamp()))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("DynamoDB.PutItem", e))?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        // Only our own unfinished claim: never an answer another request stored.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("key", s(key))
            .condition_expression("#state = :in_progress")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        match conditional("DynamoDB.DeleteItem", result)? {
            Some(_) => Ok(()),
            None => Ok(()),
        }
    }
}
