//! The reads behind the fleet overview: every State row's presence, and the Summaries
//! table's anomalous device-hours. Both are Scans of a few attributes, fine for an
//! operator's look (a few MB at 20,000 devices), not for a function's hot path.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::item::ItemReader;
use crate::domain::fleet::{AnomalousHour, DeviceState};
use crate::runtime::error::StoreError;

/// Every State row's device and whether it is online.
pub async fn scan_presence(
    client: &Client,
    state_table: &str,
) -> Result<Vec<DeviceState>, StoreError> {
    const CALL: &str = "DynamoDB.Scan(State)";
    let mut states = Vec::new();
    let mut pages = client
        .scan()
        .table_name(state_table)
        .projection_expression("device_id, #online")
        .expression_attribute_names("#online", "online")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::from_sdk(CALL, e))?;
        for item in page.items() {
            let r = ItemReader { call: CALL, item };
            states.push(DeviceState {
                device_id: r.string("device_id")?,
                online: r.boolean("online")?.unwrap_or(false),
            });
        }
    }
    Ok(states)
}

/// Every device-hour of the Summaries table with at least one anomaly.
pub async fn scan_anomalous_hours(
    client: &Client,
    summaries_table: &str,
) -> Result<Vec<AnomalousHour>, StoreError> {
    const CALL: &str = "DynamoDB.Scan(Summaries)";
    let mut hours = Vec::new();
    let mut pages = client
        .scan()
        .table_name(summaries_table)
        .projection_expression("device_id, #hour, anomaly_count, record_count")
        .filter_expression("anomaly_count > :none")
        .expression_attribute_names("#hour", "hour")
        .expression_attribute_values(":none", AttributeValue::N("0".into()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::from_sdk(CALL, e))?;
        for item in page.items() {
            let r = ItemReader { call: CALL, item };
            hours.push(AnomalousHour {
                device_id: r.string("device_id")?,
                hour: r.string("hour")?,
                anomalies: r.number("anomaly_count")?.unwrap_or(0),
                readings: r.number("record_count")?.unwrap_or(0),
            });
        }
    }
    Ok(hours)
}
