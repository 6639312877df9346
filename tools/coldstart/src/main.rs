//! `coldstart`: fresh starts of one Lambda function process under a Runtime API on
//! loopback; prints one JSON line of medians and percentiles on stdout.
//!
//! ```text
//! coldstart --name provisioning-hook --event events/provisioning-hook/unknown-serial.json \
//!     --starts 10 --warm 100 --env-file .local/run/stack.env -- target/release/provisioning-hook
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use coldstart::measure::{Events, Target, measure};
use coldstart::runtime_api::RuntimeApi;

#[derive(Parser, Debug)]
#[command(about = "Cold start, warm latency and peak memory of a Lambda function process")]
struct Args {
    /// The function's name (AWS_LAMBDA_FUNCTION_NAME, and the report's label).
    #[arg(long)]
    name: String,
    /// The event (a JSON file); given more than once, invocations get them in turn.
    #[arg(long, required = true)]
    event: Vec<PathBuf>,
    /// Fresh starts (the report gives their medians).
    #[arg(long, default_value_t = 10)]
    starts: usize,
    /// Warm invocations after the first one of each start.
    #[arg(long, default_value_t = 100)]
    warm: usize,
    /// AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
    #[arg(long, default_value_t = 128)]
    memory: u32,
    /// KEY=VALUE lines added to the function's environment (blank lines and # comments
    /// skipped), such as the local stack's `stack.env`.
    #[arg(long)]
    env_file: Vec<PathBuf>,
    /// KEY=VALUE added to the function's environment after the files.
    #[arg(long = "env", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// The working directory of the function process.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Appends the function's stdout and stderr here (discarded otherwise).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Seconds to wait for the function at each step before giving up.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// The function process: a `bootstrap`, or `python -m awslambdaric module.handler`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn key_value(pair: &str) -> Result<(String, String), String> {
    pair.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {pair:?}"))
}

fn read_env_file(path: &PathBuf) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| key_value(line.strip_prefix("export ").unwrap_or(line)))
        .collect()
}

async fn run(args: Args) -> Result<String, String> {
    let mut list = Vec::with_capacity(args.event.len());
    for path in &args.event {
        let event = std::fs::read(path)
            .map_err(|e| format!("cannot read the event {}: {e}", path.display()))?;
        serde_json::from_slice::<serde_json::Value>(&event)
            .map_err(|e| format!("the event {} is not JSON: {e}", path.display()))?;
        list.push(Bytes::from(event));
    }
    let mut events = Events::new(list).ok_or("no event given")?;
    let mut env = Vec::new();
    for file in &args.env_file {
        env.extend(read_env_file(file)?);
    }
    env.extend(args.env);
    let target = Target {
        name: args.name,
        command: args.command,
        cwd: args.cwd,
        env,
        memory_mb: args.memory,
        log: args.log,
    };
    let mut api = RuntimeApi::start()
        .await
        .map_err(|e| format!("cannot serve the runtime API on loopback: {e}"))?;
    api.timeout = Duration::from_secs(args.timeout);
    let summary = measure(
        &mut api,
        &target,
        &mut events,
        args.starts.max(1),
        args.warm,
    )
    .await
    .map_err(|e| format!("{}: {e}", target.name))?;
    eprintln!(
        "{}: cold start {:.1} ms (init {:.1} + first {:.1}), warm p50 {:.2} ms p99 {:.2} ms, peak RSS {} MiB, {} errors",
        summary.name,
        summary.cold_start_ms,
        summary.init_ms,
        summary.first_invocation_ms,
        summary.warm_p50_ms,
        summary.warm_p99_ms,
        summary
            .peak_rss_mib
            .map_or("?".into(), |m| format!("{m:.1}")),
        summary.errors
    );
    serde_json::to_string(&summary).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("coldstart: {message}");
            ExitCode::from(2)
        }
    }
}
