//! [`RateCounter`] on a DynamoDB table keyed by `key`, with a TTL on `expires_at`: one
//! conditional UpdateItem per request, refused once the window holds its limit.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::item::n;
use crate::adapters::dynamodb::conditional::conditional;
use crate::domain::rate_limit::RateCounter;
use crate::runtime::error::StoreError;

/// The caller-rate table.
#[derive(Clone)]
pub struct DynamoRateCounter {
    client: Client,
    table: String,
}

impl DynamoRateCounter {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoRateCounter {
            client,
            table: table.into(),
        }
    }
}

impl RateCounter for DynamoRateCounter {
    async fn try_take(
        &self,
        key: &str,
        limit: u32,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // `count` is a reserved word, hence the name placeholder. A refused request
        // changes nothing, so a caller over its budget never pushes its window further.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_string()))
            .update_expression("ADD #count :one SET expires_at = :expires")
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(i64::from(limit)))
            .expression_attribute_values(":expires", n(expires_at.unix_timestamp()))
            .send()
            .await;
        match conditional("DynamoDB.UpdateItem", result)? {
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }
}
