//! Helpers for the `local_stack` tests, which run against `scripts/stack up`: the stack's
//! variables, reading a Kinesis stream back, invoking a function under `cargo lambda watch`.

/// What a `local_stack` test says when the stack it needs is not there.
pub const START_HINT: &str =
    "the local stack is not up: run `scripts/stack up` (or `scripts/test`, which starts it)";

/// A variable of `stack.env` (names of tables, queues, streams, ports), or a panic that
/// says how to start the stack.
pub fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set; {START_HINT}"))
}

/// Every record's data in a Kinesis stream, shard by shard from the oldest, in each
/// shard's order: what integration tests read back after writing.
pub async fn read_stream(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<Vec<u8>>, String> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| format!("ListShards: {e:?}"))?;
    let mut data = Vec::new();
    for shard in shards.shards() {
        let iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| format!("GetShardIterator: {e:?}"))?;
        let mut next = iterator.shard_iterator().map(str::to_string);
        let mut failures = 0;
        while let Some(current) = next.take() {
            // Pages of 1,000: a page of 10,000 records takes kinesis-mock longer than a
            // client's attempt timeout on a busy machine. Reads are limited per shard
            // (five a second), so a refused read is waited out and asked again.
            let page = match client
                .get_records()
                .shard_iterator(&current)
                .limit(1_000)
                .send()
                .await
            {
                Ok(page) => page,
                Err(e) if failures < 10 => {
                    failures += 1;
                    tracing::debug!(error = ?e, "GetRecords failed; asking again");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    next = Some(current);
                    continue;
                }
                Err(e) => return Err(format!("GetRecords: {e:?}")),
            };
            data.extend(page.records().iter().map(|r| r.data().as_ref().to_vec()));
            // An open shard always has a next iterator; stop at the first empty page.
            if !page.records().is_empty() {
                next = page.next_shard_iterator().map(str::to_string);
            }
        }
    }
    Ok(data)
}

/// The telemetry records in a Kinesis stream whose `device_id` starts with `prefix`, as
/// JSON, in [`read_stream`]'s order: one test's records among every earlier run's.
pub async fn read_stream_devices(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    prefix: &str,
) -> Vec<serde_json::Value> {
    read_stream(client, stream)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{START_HINT}"))
        .iter()
        .filter_map(|data| serde_json::from_slice::<serde_json::Value>(data).ok())
        .filter(|value| {
            value["device_id"]
                .as_str()
                .is_some_and(|d| d.starts_with(prefix))
        })
        .collect()
}

/// Invokes a function the way a developer would, `cargo lambda invoke`, against the
/// `cargo lambda watch` that `scripts/stack up` starts (`CARGO_LAMBDA` names the binary,
/// `FLEETWIRE_LAMBDA_PORT` the port), and returns its JSON answer.
pub fn invoke_under_watch(function: &str, payload: &serde_json::Value) -> serde_json::Value {
    let cargo_lambda = std::env::var("CARGO_LAMBDA").unwrap_or_else(|_| "cargo-lambda".into());
    let port = std::env::var("FLEETWIRE_LAMBDA_PORT").unwrap_or_else(|_| "9000".into());
    let output = std::process::Command::new(&cargo_lambda)
        .args([
            "lambda",
            "invoke",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port,
        ])
        .arg(function)
        .arg("--data-ascii")
        .arg(payload.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo_lambda}: {e}; run scripts/setup"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo lambda invoke {function} failed ({}): {}{}\nis `cargo lambda watch` running? scripts/stack up starts it",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not a JSON answer ({e}): {stdout}"))
}
