//! `fleetctl archive`: the archive's named queries, run where the archive is. Against AWS
//! through Athena, in the stack's workgroup (whose settings bound what a query scans and
//! encrypt its results); on the local stack with DuckDB over the Parquet objects the
//! runner's archive wrote. The SQL is the files of `analytics/queries/`, compiled in: the
//! same text the template deploys as named queries and `scripts/archive-check` proves.

pub mod athena;
pub mod devices;
pub mod duckdb;

use std::future::Future;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::output::Table;
use crate::{Answer, Failure};

/// One named query: its file's name and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedQuery {
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! query {
    ($name:literal) => {
        NamedQuery {
            name: $name,
            sql: include_str!(concat!("../../../analytics/queries/", $name, ".sql")),
        }
    };
}

/// Every file of `analytics/queries/` (a unit test keeps the list and the folder equal).
pub const QUERIES: [NamedQuery; 8] = [
    query!("hourly_device_stats"),
    query!("fleet_daily"),
    query!("fleet_daily_by_model"),
    query!("silent_devices"),
    query!("anomalies"),
    query!("late_readings"),
    query!("duplicate_readings"),
    query!("firmware_versions"),
];

impl NamedQuery {
    /// What it answers: its leading comment up to the first `: ` or `. `.
    pub fn summary(&self) -> String {
        let comment: Vec<&str> = self
            .sql
            .lines()
            .map_while(|l| l.strip_prefix("--"))
            .map(str::trim)
            .collect();
        let text = comment.join(" ");
        let end = [": ", ". "]
            .iter()
            .filter_map(|stop| text.find(stop))
            .min()
            .unwrap_or(text.len());
        text[..end].trim_end_matches('.').to_string()
    }

    /// How many `?` parameters it takes (comment lines left out).
    pub fn parameters(&self) -> usize {
        self.sql
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .map(|l| l.matches('?').count())
            .sum()
    }
}

pub fn find(name: &str) -> Result<NamedQuery, Failure> {
    QUERIES
        .iter()
        .find(|q| q.name == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = QUERIES.iter().map(|q| q.name).collect();
            Failure::usage(format!(
                "no query {name}: the queries are {}",
                names.join(", ")
            ))
        })
}

/// A query's answer: column names, and each row's values as text (None for null).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Where a query runs.
pub trait QueryEngine: Send + Sync {
    fn run(
        &self,
        query: &NamedQuery,
        parameters: &[String],
    ) -> impl Future<Output = Result<QueryResult, Failure>> + Send;
}

/// The query's parameters: `--since` (a duration back from `now` such as `6h`, `2d`,
/// `90m`, or an RFC 3339 time) as the first, then every `--param`, as many as the query
/// takes.
pub fn parameters(
    query: &NamedQuery,
    since: Option<&str>,
    params: &[String],
    now: OffsetDateTime,
) -> Result<Vec<String>, Failure> {
    let mut values = Vec::new();
    if let Some(since) = since {
        values.push(cutoff(since, now)?);
    }
    values.extend(params.iter().cloned());
    let wanted = query.parameters();
    if values.len() != wanted {
        return Err(Failure::usage(format!(
            "{} takes {wanted} parameter(s) (--since, then --param), {} given",
            query.name,
            values.len()
        )));
    }
    Ok(values)
}

/// `6h`, `2d`, `90m` back from `now`, or an RFC 3339 time, as RFC 3339 UTC to the second
/// (the form readings are archived in, so text order is time order).
fn cutoff(since: &str, now: OffsetDateTime) -> Result<String, Failure> {
    let at = if let Ok(at) = OffsetDateTime::parse(since, &Rfc3339) {
        at
    } else {
        let (number, unit) = since.split_at(since.len().saturating_sub(1));
        let amount: i64 = number.parse().map_err(|_| {
            Failure::usage(format!(
                "--since {since}: a duration such as 6h, 2d, 90m, or an RFC 3339 time"
            ))
        })?;
        let step = match unit {
            "m" => time::Duration::minutes(amount),
            "h" => time::Duration::hours(amount),
            "d" => time::Duration::days(amount),
            _ => {
                return Err(Failure::usage(format!(
                    "--since {since}: the unit is m, h or d"
                )));
            }
        };
        now - step
    };
    let at = at.to_offset(time::UtcOffset::UTC);
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    ))
}

/// `archive queries`: the names and what each answers.
pub fn list(json: bool) -> Result<Answer, Failure> {
    if json {
        let listed: Vec<_> = QUERIES
            .iter()
            .map(|q| {
                serde_json::json!({"name": q.name, "summary": q.summary(),
                    "parameters": q.parameters(), "sql": q.sql})
            })
            .collect();
        return crate::output::json(&listed).map(Answer::ok);
    }
    let mut table = Table::new(["QUERY", "PARAMETERS", "ANSWERS"]);
    for q in &QUERIES {
        table.row([q.name.to_string(), q.parameters().to_string(), q.summary()]);
    }
    Ok(Answer::ok(table.render()))
}

/// `archive query NAME`: the rows, as a table or JSON objects.
pub async fn query(
    engine: &impl QueryEngine,
    query: &NamedQuery,
    parameters: &[String],
    json: bool,
) -> Result<Answer, Failure> {
    let result = engine.run(query, parameters).await?;
    if json {
        let rows: Vec<serde_json::Map<String, serde_json::Value>> = result
            .rows
            .iter()
            .map(|row| {
                result
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| {
                        (
                            c.clone(),
                            v.clone().map_or(serde_json::Value::Null, Into::into),
                        )
                    })
                    .collect()
            })
            .collect();
        return crate::output::json(&rows).map(Answer::ok);
    }
    if result.rows.is_empty() {
        return Ok(Answer::ok(format!("{}: no rows", query.name)));
    }
    let mut table = Table::with_headers(result.columns.iter().map(|c| c.to_uppercase()).collect());
    for row in &result.rows {
        table.row(row.iter().map(|v| crate::output::or_dash(v.as_deref())));
    }
    Ok(Answer::ok(table.render()))
}

#[cfg(test)]
mod tests;
