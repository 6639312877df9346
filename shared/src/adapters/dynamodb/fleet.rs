//! The reads behind the fleet overview: every State row's presence, and the Summaries
//! table's anomalous device-hours. Both are Scans of a few attributes, fine for an
//! operator's look (a few MB at 20,000 devices), not for a function's hot path.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::item::ItemReader;
use crate::domain::fleet::{AnomalousHour, DeviceState};
use crate::runtime::error::StoreError;

/// Every item of a Scan's pages, each read by `read`.
async fn read_all<T>(
    scan: aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
    call: &'static str,
    read: impl Fn(&ItemReader<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut all = Vec::new();
    let mut pages = scan.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::from_sdk(call, e))?;
        for item in page.items() {
            all.push(read(&ItemReader { call, item })?);
        }
    }
    Ok(all)
}

/// Every State row's device and whether it is online.
pub async fn scan_presence(
    client: &Client,
    state_table: &str,
) -> Result<Vec<DeviceState>, StoreError> {
    let scan = client
        .scan()
        .table_name(state_table)
        .projection_expression("device_id, #online")
        .expression_attribute_names("#online", "online");
    read_all(scan, "DynamoDB.Scan(State)", |r| {
        Ok(DeviceState {
            device_id: r.string("device_id")?,
            online: r.boolean("online")?.unwrap_or(false),
        })
    })
    .await
}

/// Every device-hour of the Summaries table with at least one anomaly.
pub async fn scan_anomalous_hours(
    client: &Client,
    summaries_table: &str,
) -> Result<Vec<AnomalousHour>, StoreError> {
    let scan = client
        .scan()
        .table_name(summaries_table)
        .projection_expression("device_id, #hour, anomaly_count, record_count")
        .filter_expression("anomaly_count > :none")
        .expression_attribute_names("#hour", "hour")
        .expression_attribute_values(":none", AttributeValue::N("0".into()));
    read_all(scan, "DynamoDB.Scan(Summaries)", |r| {
        Ok(AnomalousHour {
            device_id: r.string("device_id")?,
            hour: r.string("hour")?,
            anomalies: r.number("anomaly_count")?.unwrap_or(0),
            readings: r.number("record_count")?.unwrap_or(0),
        })
    })
    .await
}
