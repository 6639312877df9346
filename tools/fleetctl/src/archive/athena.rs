//! The named queries in Athena: StartQueryExecution in the stack's workgroup, against the
//! archive's database, polled with GetQueryExecution until it ends, its rows read with
//! GetQueryResults (Amazon Athena API reference). Parameters go as ExecutionParameters,
//! each a string literal in single quotes, as Athena applies them to the `?` in order.

use std::time::Duration;

use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState};

use super::{NamedQuery, QueryEngine, QueryResult};
use crate::Failure;
use crate::error::sdk_failure;

pub struct Athena {
    client: aws_sdk_athena::Client,
    workgroup: String,
    database: String,
    /// How long a query may run before the command gives up on it (and cancels it).
    timeout: Duration,
}

impl Athena {
    pub fn new(
        client: aws_sdk_athena::Client,
        workgroup: String,
        database: String,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            workgroup,
            database,
            timeout,
        }
    }
}

/// A value as an Athena execution parameter: a SQL string literal.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl QueryEngine for Athena {
    async fn run(&self, query: &NamedQuery, parameters: &[String]) -> Result<QueryResult, Failure> {
        let started = self
            .client
            .start_query_execution()
            .query_string(query.sql)
            .work_group(&self.workgroup)
            .query_execution_context(
                QueryExecutionContext::builder()
                    .database(&self.database)
                    .build(),
            )
            .set_execution_parameters(
                (!parameters.is_empty()).then(|| parameters.iter().map(|p| literal(p)).collect()),
            )
            .send()
            .await
            .map_err(|e| sdk_failure("Athena.StartQueryExecution", e))?;
        let id = started.query_execution_id().unwrap_or_default().to_owned();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut wait = Duration::from_millis(250);
        loop {
            let execution = self
                .client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .map_err(|e| sdk_failure("Athena.GetQueryExecution", e))?;
            let status = execution.query_execution().and_then(|e| e.status());
            match status.and_then(|s| s.state()) {
                Some(QueryExecutionState::Succeeded) => break,
                Some(state @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => {
                    return Err(Failure::failed(format!(
                        "{} {} in Athena ({id}): {}",
                        query.name,
                        state.as_str().to_lowercase(),
                        status
                            .and_then(|s| s.state_change_reason())
                            .unwrap_or("no reason given")
                    )));
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                // Best effort: the query is abandoned either way.
                let _ = self
                    .client
                    .stop_query_execution()
                    .query_execution_id(&id)
                    .send()
                    .await;
                return Err(Failure::failed(format!(
                    "{} ran longer than {} s in Athena ({id}); stopped",
                    query.name,
                    self.timeout.as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        let mut result = QueryResult::default();
        let mut pages = self
            .client
            .get_query_results()
            .query_execution_id(&id)
            .into_paginator()
            .send();
        let mut first_page = true;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_failure("Athena.GetQueryResults", e))?;
            let Some(set) = page.result_set() else {
                continue;
            };
            if first_page {
                result.columns = set
                    .result_set_metadata()
                    .map(|m| {
                        m.column_info()
                            .iter()
                            .map(|c| c.name().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
            }
            // A SELECT's first row is its column names (Athena user guide, "Working with
            // query results").
            let skip = usize::from(first_page && !result.columns.is_empty());
            first_page = false;
            for row in set.rows().iter().skip(skip) {
                result.rows.push(
                    row.data()
                        .iter()
                        .map(|d| d.var_char_value().map(str::to_owned))
                        .collect(),
                );
            }
        }
        Ok(result)
    }
}
