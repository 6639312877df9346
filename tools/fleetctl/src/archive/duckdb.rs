//! The named queries on the local stack: DuckDB (the Python package `scripts/setup`
//! installs) over a copy of every Parquet object under `telemetry/` of the archive bucket,
//! as the table `telemetry` with the Hive partitions as columns, as Athena reads them, and
//! of `devices/` as the table `devices` (JSON lines, as the Glue table reads them).
//! The Rust DuckDB crate would compile DuckDB's C++ into fleetctl; the package is already
//! on the machine for the checks of `scripts/test`.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{NamedQuery, QueryEngine, QueryResult};
use crate::Failure;

/// Reads the query, its parameters and the bucket on stdin; writes `{columns, rows}`.
/// boto3 reaches moto's S3 through `AWS_ENDPOINT_URL_S3`, as `stack.env` sets it.
const PROGRAM: &str = r#"
import json, pathlib, sys, tempfile
import boto3, duckdb
job = json.load(sys.stdin)
s3 = boto3.client("s3")
with tempfile.TemporaryDirectory() as scratch:
    root = pathlib.Path(scratch)
    count = 0
    for prefix in ("telemetry/", "devices/"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=job["bucket"], Prefix=prefix):
            for item in page.get("Contents", []):
                path = root / item["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(job["bucket"], item["Key"], str(path))
                count += prefix == "telemetry/"
    if count == 0:
        sys.exit("the archive bucket holds no object under telemetry/ yet")
    db = duckdb.connect()
    files = str(root / "telemetry" / "**" / "*").replace("'", "''")
    db.execute(f"CREATE VIEW telemetry AS SELECT * FROM read_parquet('{files}', hive_partitioning = true)")
    columns = "thing_name VARCHAR, model VARCHAR, status VARCHAR, serial VARCHAR"
    if any((root / "devices").glob("*")):
        devices = str(root / "devices" / "*").replace("'", "''")
        db.execute(
            "CREATE VIEW devices AS SELECT * FROM read_json("
            f"'{devices}', format = 'newline_delimited', "
            "columns = {thing_name: 'VARCHAR', model: 'VARCHAR', status: 'VARCHAR', serial: 'VARCHAR'})"
        )
    else:
        # Not exported yet (fleetctl archive devices): every reading is unregistered.
        db.execute(f"CREATE TABLE devices ({columns})")
    cursor = db.execute(job["sql"], job["parameters"])
    columns = [c[0] for c in cursor.description]
    rows = [[None if v is None else str(v) for v in row] for row in cursor.fetchall()]
    json.dump({"columns": columns, "rows": rows}, sys.stdout)
"#;

pub struct LocalDuckDb {
    python: PathBuf,
    bucket: String,
}

impl LocalDuckDb {
    pub fn new(python: PathBuf, bucket: String) -> Self {
        Self { python, bucket }
    }
}

impl QueryEngine for LocalDuckDb {
    async fn run(&self, query: &NamedQuery, parameters: &[String]) -> Result<QueryResult, Failure> {
        let mut child = tokio::process::Command::new(&self.python)
            .arg("-c")
            .arg(PROGRAM)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Failure::usage(format!(
                    "cannot run {} ({e}): set FLEETWIRE_PYTHON to a Python with duckdb and boto3 (scripts/setup installs them into .local/venv)",
                    self.python.display()
                ))
            })?;
        let job = json!({"sql": query.sql, "parameters": parameters, "bucket": self.bucket});
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(job.to_string().as_bytes())
                .await
                .map_err(|e| Failure::failed(format!("cannot hand the query to DuckDB: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| Failure::failed(format!("DuckDB did not finish: {e}")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.trim().lines().last().unwrap_or("no message");
            return Err(Failure::failed(format!("{} in DuckDB: {last}", query.name)));
        }
        let answer: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| Failure::failed(format!("DuckDB answered what is not JSON: {e}")))?;
        serde_json::from_value(answer).map_err(|e| Failure::failed(format!("DuckDB's answer: {e}")))
    }
}
