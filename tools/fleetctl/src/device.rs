//! `fleetctl device show ID`: everything the system knows about one device, for "what
//! happened to device X?": its Registry row, its State (online, last seen, firmware), its
//! latest hourly summaries and its OTA history.

use fleetwire::adapters::dynamodb::item::item_to_json;
use fleetwire::adapters::{DynamoOtaAdmin, DynamoRegistry};
use fleetwire::domain::processing::HourlySummary;
use fleetwire::domain::registry::{Registry, RegistryEntry, Serial};
use fleetwire::runtime::error::StoreError;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::output::{self, Table, fields};
use crate::registry::describe;
use crate::{Answer, Failure};

/// How many hourly summaries `device show` prints, newest first.
pub const SUMMARY_HOURS: i32 = 24;

/// The tables `device show` reads.
pub struct DeviceTables<'a> {
    pub registry: &'a DynamoRegistry,
    pub ota: &'a DynamoOtaAdmin,
    pub dynamodb: &'a aws_sdk_dynamodb::Client,
    pub state_table: &'a str,
    pub summaries_table: &'a str,
}

#[derive(Debug, Serialize)]
pub struct DeviceReport {
    /// The thing name: the device id of telemetry, state and OTA.
    pub device_id: String,
    pub registry: Option<RegistryEntry>,
    pub state: Option<Value>,
    pub summaries: Vec<Value>,
    pub ota_history: Vec<Value>,
}

/// Looks `id` up as a thing name, then as a serial.
pub async fn show(tables: &DeviceTables<'_>, id: &str, json: bool) -> Result<Answer, Failure> {
    if id.is_empty() {
        return Err(Failure::usage("give a thing name or a serial"));
    }
    let mut registry = tables.registry.find_by_thing(id).await?;
    if registry.is_none()
        && let Ok(serial) = Serial::parse(id)
    {
        registry = tables.registry.get(&serial).await?;
    }
    let device_id = registry
        .as_ref()
        .map_or_else(|| id.to_owned(), |e| e.thing_name.clone());
    let state = state(tables, &device_id).await?;
    let summaries = summaries(tables, &device_id).await?;
    let ota_history = tables.ota.history(&device_id).await?;
    if registry.is_none() && state.is_none() && summaries.is_empty() && ota_history.is_empty() {
        return Err(Failure::failed(format!(
            "nothing is known of {id:?}: no Registry row (by thing name or serial), no State, \
             no summaries, no OTA history"
        )));
    }
    let report = DeviceReport {
        device_id,
        registry,
        state,
        summaries,
        ota_history,
    };
    Ok(Answer::ok(if json {
        output::json(&report)?
    } else {
        render(&report)
    }))
}

async fn state(tables: &DeviceTables<'_>, device_id: &str) -> Result<Option<Value>, Failure> {
    let output = tables
        .dynamodb
        .get_item()
        .table_name(tables.state_table)
        .key(
            "device_id",
            aws_sdk_dynamodb::types::AttributeValue::S(device_id.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::from_sdk("DynamoDB.GetItem", e))?;
    Ok(output.item().map(item_to_json))
}

async fn summaries(tables: &DeviceTables<'_>, device_id: &str) -> Result<Vec<Value>, Failure> {
    let output = tables
        .dynamodb
        .query()
        .table_name(tables.summaries_table)
        .key_condition_expression("device_id = :d")
        .expression_attribute_values(
            ":d",
            aws_sdk_dynamodb::types::AttributeValue::S(device_id.into()),
        )
        .scan_index_forward(false)
        .limit(SUMMARY_HOURS)
        .send()
        .await
        .map_err(|e| StoreError::from_sdk("DynamoDB.Query", e))?;
    Ok(output
        .items()
        .iter()
        .map(|item| summary(&item_to_json(item)))
        .collect())
}

/// A Summaries row with the design's derived fields (average, deviation, quality) added
/// to the stored sums.
fn summary(row: &Value) -> Value {
    let number = |key: &str| row.get(key).and_then(Value::as_f64);
    let sums = HourlySummary {
        record_count: number("record_count").unwrap_or(0.0) as u64,
        temperature_sum: number("temperature_sum").unwrap_or(0.0),
        temperature_sum_squares: number("temperature_sum_squares").unwrap_or(0.0),
        min_temperature: number("min_temperature"),
        max_temperature: number("max_temperature"),
        anomaly_count: number("anomaly_count").unwrap_or(0.0) as u64,
        quality_sum: number("quality_sum").unwrap_or(0.0),
    };
    let mut out = row.clone();
    if let Value::Object(map) = &mut out {
        map.insert("avg_temperature".into(), sums.avg_temperature().into());
        map.insert("temp_stddev".into(), sums.temp_stddev().into());
        map.insert(
            "data_quality_score".into(),
            sums.data_quality_score().into(),
        );
    }
    out
}

/// Epoch milliseconds as RFC 3339, the way State stores its times.
fn millis(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_i64)
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.2}"),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// The most telling extra of a history item: the device's detail, a flag's reason, or the
/// rollout of an offer.
fn detail(item: &Value) -> String {
    if item.get("detail").is_some() {
        text(item, "detail").replace('\n', " ")
    } else if item.get("reason").is_some() {
        text(item, "reason")
    } else if item.get("rollout_id").is_some() {
        format!("rollout {}", text(item, "rollout_id"))
    } else {
        "-".into()
    }
}

fn render(report: &DeviceReport) -> String {
    let mut out = format!("device {}\n\nRegistry\n", report.device_id);
    match &report.registry {
        Some(entry) => out.push_str(&describe(entry)),
        None => out.push_str("no Registry row"),
    }
    out.push_str("\n\nState\n");
    match &report.state {
        Some(state) => {
            let reading = state.get("last_telemetry").cloned().unwrap_or(Value::Null);
            out.push_str(&fields(&[
                ("online", text(state, "online")),
                ("session", text(state, "session_id")),
                ("connected at", millis(state, "connected_at")),
                ("disconnected at", millis(state, "disconnected_at")),
                ("disconnect reason", text(state, "disconnect_reason")),
                ("last telemetry at", millis(state, "last_telemetry_at")),
                (
                    "firmware (reported)",
                    reading
                        .pointer("/metadata/version")
                        .and_then(Value::as_str)
                        .unwrap_or("-")
                        .to_string(),
                ),
                (
                    "last reading",
                    format!(
                        "{} °C, {} %, {} hPa",
                        text(&reading, "temperature"),
                        text(&reading, "humidity"),
                        text(&reading, "pressure")
                    ),
                ),
            ]));
        }
        None => out.push_str("no State row: it has not connected or sent telemetry"),
    }
    out.push_str(&format!("\n\nHourly summaries (latest {SUMMARY_HOURS})\n"));
    if report.summaries.is_empty() {
        out.push_str("none");
    } else {
        let mut table = Table::new([
            "HOUR",
            "RECORDS",
            "AVG °C",
            "MIN °C",
            "MAX °C",
            "STDDEV",
            "ANOMALIES",
            "QUALITY",
        ]);
        for s in &report.summaries {
            table.row([
                text(s, "hour"),
                text(s, "record_count"),
                text(s, "avg_temperature"),
                text(s, "min_temperature"),
                text(s, "max_temperature"),
                text(s, "temp_stddev"),
                text(s, "anomaly_count"),
                text(s, "data_quality_score"),
            ]);
        }
        out.push_str(&table.render());
    }
    out.push_str("\n\nOTA history\n");
    if report.ota_history.is_empty() {
        out.push_str("none");
    } else {
        let mut table = Table::new(["KEY", "RECORDED AT", "VERSION", "STATUS", "DETAIL"]);
        for h in &report.ota_history {
            table.row([
                text(h, "at"),
                text(h, "recorded_at"),
                text(h, "version"),
                text(h, "status"),
                detail(h),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}
