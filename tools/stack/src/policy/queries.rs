//! The Athena named queries against the files they are written in.
//!
//! Each `AWS::Athena::NamedQuery` names its file in `Metadata.QueryFile` (relative to the
//! template), and its `QueryString` is that file word for word: the same SQL is what the
//! local archive's checks run with DuckDB, so a query edited in one place only would be
//! tested in a form that is never deployed. Every file of the queries' folder has its
//! named query.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::template::Template;

/// Each problem as (resource or file, problem).
pub(super) fn query_drift(template: &Template, base: &Path) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut folders = BTreeSet::new();
    let mut named = BTreeSet::new();
    for query in template
        .resources
        .iter()
        .filter(|r| r.kind == "AWS::Athena::NamedQuery")
    {
        let id = query.logical_id.clone();
        let Some(file) = query.metadata.get("QueryFile").and_then(Value::as_str) else {
            problems.push((id, "names no Metadata.QueryFile".into()));
            continue;
        };
        let path = base.join(file);
        if let Some(folder) = path.parent() {
            folders.insert(folder.to_path_buf());
        }
        named.insert(path.clone());
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                problems.push((id, format!("cannot read {file}: {e}")));
                continue;
            }
        };
        match query.properties.get("QueryString").and_then(Value::as_str) {
            Some(sql) if sql == text => {}
            Some(_) => problems.push((id, format!("QueryString is not {file} word for word"))),
            None => problems.push((id, "QueryString is not a literal string".into())),
        }
    }
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "sql") && !named.contains(&path) {
                problems.push((
                    path.display().to_string(),
                    "no AWS::Athena::NamedQuery deploys this query".into(),
                ));
            }
        }
    }
    problems
}
