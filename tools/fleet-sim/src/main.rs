//! `fleet-sim`: N virtual devices through the whole life against the local stack (or any
//! IoT Core-compatible endpoint the runner stands in for), then a report of what the
//! system made of it: printed as a table and written as JSON. With `--check`, the run
//! fails (exit 1) when an invariant is broken: nothing lost, the right devices denied,
//! State for every device that sent, summaries equal to a recomputation, every URL
//! downloaded and verified, the rigged rollout paused.

mod chaos;
mod device;
mod exchange;
mod mqtt;
mod observe;
mod report;
mod setup;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use fleetwire::domain::ota::{OtaLedger, RolloutStatus};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, watch};

use crate::device::{Behaviour, Shared};
use crate::observe::Runner;
use crate::report::{Report, quantile};
use crate::setup::{Backend, Names, Shape};

/// The claim identity the devices present: the runner's default claim certificate id.
const CLAIM_CERTIFICATE_ID: &str =
    "23d2ac0dd50cfc5687909951e5be1c1774a9b47ee8285d4f02ab1cd03c345ccd";

#[derive(Parser, Debug)]
#[command(
    about = "Drive a virtual fleet through provisioning, telemetry, flapping and firmware updates, and report"
)]
struct Cli {
    /// Virtual devices.
    #[arg(long, default_value_t = 20)]
    devices: usize,
    /// Seconds each device sends telemetry.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Readings per second per device.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Share of readings out of range (must be rejected: validation).
    #[arg(long, default_value_t = 0.05)]
    invalid_share: f64,
    /// Share of readings naming another device (must be rejected: spoofed).
    #[arg(long, default_value_t = 0.03)]
    spoofed_share: f64,
    /// Share of serials left off the allowlist (must be denied).
    #[arg(long, default_value_t = 0.1)]
    unlisted_share: f64,
    /// Share of devices whose link drops once.
    #[arg(long, default_value_t = 0.2)]
    flap_share: f64,
    /// Share of devices sending telemetry over HTTPS (the local HTTP API's
    /// `POST /v1/telemetry`, with a token from the runner) instead of MQTT.
    #[arg(long, default_value_t = 0.25)]
    https_share: f64,
    /// Seconds a device waits for an answer (a function's first invoke includes its build).
    #[arg(long, default_value_t = 300)]
    answer_timeout: u64,
    /// Times a denied device asks to be provisioned before it takes the denial as final
    /// (waiting 2, 4, then 8 s between): the hook denies whenever it cannot decide in time.
    #[arg(long, default_value_t = 4)]
    provision_attempts: u32,
    /// Seconds to wait for the pipeline to handle everything sent.
    #[arg(long, default_value_t = 300)]
    drain_timeout: u64,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/fleet-sim/report.json")]
    report: PathBuf,
    /// Exit 1 when an invariant of the report is broken.
    #[arg(long)]
    check: bool,
    /// Run under a fault profile of the stack's fault layer (throttle, latency, resets,
    /// all): the stack must be up with FLEETWIRE_FAULTS=1, as scripts/chaos starts it.
    #[arg(long, value_parser = chaos::profile::Profile::parse)]
    faults: Option<chaos::profile::Profile>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fleet-sim: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(report) => {
            println!("{}", report.render());
            println!("report written to {}", cli.report.display());
            let broken = report.violations();
            if broken.is_empty() {
                println!("every invariant holds");
                ExitCode::SUCCESS
            } else {
                for violation in &broken {
                    println!("BROKEN: {violation}");
                }
                if cli.check {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
        }
        Err(e) => {
            eprintln!("fleet-sim: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> Result<Report, String> {
    if cli.devices == 0 || cli.duration == 0 || cli.rate <= 0.0 {
        return Err("--devices, --duration and --rate must be positive".into());
    }
    let names = Names::from_env()?;
    let sdk = load_sdk_config(&SdkSettings {
        max_attempts: 3,
        operation_timeout: Duration::from_secs(30),
        attempt_timeout: Duration::from_secs(10),
        ..SdkSettings::default()
    })
    .await;
    let http = Client::builder(TokioExecutor::new()).build_http();
    let runner = Runner {
        url: names.runner_url.clone(),
        http: http.clone(),
    };
    runner.status().await?;
    runner.enable_mappings().await?;
    // The fault layer is reached (and cleared of any faults left on) before the fleet is
    // prepared; its faults start with the devices.
    let chaos = match cli.faults {
        Some(profile) => {
            let control = std::env::var("FLEETWIRE_FAULTS_URL").map_err(|_| {
                "--faults needs the stack's fault layer: start it with FLEETWIRE_FAULTS=1 scripts/stack up (scripts/chaos does) and load .local/run/stack.env".to_owned()
            })?;
            let log = std::env::var_os("FLEETWIRE_FUNCTION_LOG").map(PathBuf::from);
            Some(chaos::Chaos::connect(&control, profile, log).await?)
        }
        None => None,
    };
    let run = fleetwire_run_id();
    let shape = Shape {
        devices: cli.devices,
        unlisted_share: cli.unlisted_share,
        flap_share: cli.flap_share,
        https_share: cli.https_share,
    };
    eprintln!("fleet-sim: run {run}: preparing the allowlist, two releases and two rollouts");
    let fleet = setup::prepare(&sdk, &names, &shape, &run).await?;
    let expected_readings = (cli.devices as f64 * cli.duration as f64 * cli.rate) as u64;
    let progress = indicatif::ProgressBar::new(expected_readings);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {elapsed:>4} {bar:40} {pos}/{len} readings sent ({per_sec}) {msg}",
    ) {
        progress.set_style(style);
    }
    let (leave_tx, leave) = watch::channel(false);
    let shared = Arc::new(Shared::new(
        names.clone(),
        fleet.clone(),
        Behaviour {
            duration: Duration::from_secs(cli.duration),
            rate: cli.rate,
            invalid_share: cli.invalid_share,
            spoofed_share: cli.spoofed_share,
            answer_timeout: Duration::from_secs(cli.answer_timeout),
            provision_attempts: cli.provision_attempts.max(1),
        },
        CLAIM_CERTIFICATE_ID.to_owned(),
        progress.clone(),
        leave,
    ));
    let chaos = chaos.map(|chaos| {
        eprintln!(
            "fleet-sim: faults on: profile {}",
            cli.faults.map_or("", |p| p.name())
        );
        let (stop, stopped) = watch::channel(false);
        (chaos.clone(), stop, tokio::spawn(chaos.drive(stopped)))
    });
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let latencies = Arc::new(tokio::sync::Mutex::new(Vec::<f64>::new()));
    let sampler = tokio::spawn(sample_latency(
        shared.clone(),
        dynamodb.clone(),
        latencies.clone(),
    ));

    let started = Instant::now();
    let (done_tx, mut done) = mpsc::unbounded_channel();
    for spec in fleet.devices.clone() {
        tokio::spawn(device::live(shared.clone(), spec, done_tx.clone()));
    }
    drop(done_tx);
    let mut outcomes = Vec::new();
    while outcomes.len() < fleet.devices.len() {
        match done.recv().await {
            Some((spec, outcome)) => outcomes.push((spec, outcome)),
            None => break,
        }
    }
    // Faults stop with the fleet: the pipeline drains and the report is taken without them.
    let faults = match chaos {
        Some((chaos, stop, driver)) => {
            let _ = stop.send(true);
            match driver.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("switching faults: {e}")),
                Err(e) => return Err(format!("the fault driver stopped: {e}")),
            }
            Some(chaos.finish().await?)
        }
        None => None,
    };
    progress.set_message("waiting for the pipeline to drain");
    let drained = runner
        .drained(Duration::from_secs(cli.drain_timeout))
        .await?;
    // One more look for readings whose State row arrived last.
    tokio::time::sleep(Duration::from_secs(1)).await;
    sampler.abort();
    let elapsed = started.elapsed();
    progress.finish_and_clear();

    let prefix = fleet.prefix();
    let provisioned: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| o.provisioned)
        .map(|(spec, _)| spec.thing.clone())
        .collect();
    let state = observe::state_rows(&dynamodb, &names.state_table, &provisioned).await?;
    let _ = leave_tx.send(true);
    let sent = shared.sent.lock().await.clone();
    let stream = match &names.backend {
        Backend::Kinesis { stream } => {
            observe::kinesis_records(&aws_sdk_kinesis::Client::new(&sdk), stream, &prefix).await?
        }
        Backend::Kafka { bootstrap, topic } => {
            observe::kafka_records(bootstrap, topic, &prefix).await?
        }
    };
    let letters = observe::dead_letters(
        &aws_sdk_sqs::Client::new(&sdk),
        &names.dead_letter_queue_url,
        &prefix,
    )
    .await?;

    let summaries = observe::summary_rows(&dynamodb, &names.summaries_table, &provisioned).await?;
    let ota = fleetwire::adapters::DynamoOta::new(
        dynamodb.clone(),
        &names.firmware_table,
        &names.rollouts_table,
        &names.history_table,
    );
    let mut paused = 0;
    for rollout in &fleet.rollouts {
        if let Some(state) = ota.rollout(rollout).await.map_err(|e| e.to_string())?
            && state.rollout.status == RolloutStatus::Paused
        {
            paused += 1;
        }
    }

    let mut report = Report {
        run: run.clone(),
        backend: match names.backend {
            Backend::Kinesis { .. } => "kinesis".into(),
            Backend::Kafka { .. } => "msk".into(),
        },
        duration_s: elapsed.as_secs_f64(),
        drained,
        faults,
        ..Report::default()
    };
    let listed: Vec<(bool, device::Outcome)> = outcomes
        .iter()
        .map(|(s, o)| (s.listed, o.clone()))
        .collect();
    report.tally(&report::Inputs {
        outcomes: &listed,
        sent: &sent,
        stream: &stream,
        dead_letters: &letters,
        state: &state,
        summaries: &summaries,
        provisioned_things: &provisioned,
    });
    report.ota.rollouts_paused = paused;
    let mut samples = latencies.lock().await.clone();
    report.latency_ms.samples = samples.len();
    report.latency_ms.p50 = quantile(&mut samples, 0.50);
    report.latency_ms.p95 = quantile(&mut samples, 0.95);
    report.latency_ms.p99 = quantile(&mut samples, 0.99);
    // Over the time readings were being sent: what the pipeline took in while the fleet
    // talked.
    let first = sent.iter().map(|s| s.published).min();
    let last = sent.iter().map(|s| s.published).max();
    let sending = match (first, last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    report.throughput.records_per_s = report.telemetry.accepted as f64 / sending.max(0.001);

    if let Some(dir) = cli.report.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&cli.report, json).map_err(|e| format!("{}: {e}", cli.report.display()))?;
    // Let the devices say goodbye before the process ends.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(report)
}

/// Watches State while the fleet runs: when a device's newest reading shows up, the time
/// since its publish is one latency sample (publish to State visible).
async fn sample_latency(
    shared: Arc<Shared>,
    dynamodb: aws_sdk_dynamodb::Client,
    latencies: Arc<tokio::sync::Mutex<Vec<f64>>>,
) {
    let things: Vec<String> = shared
        .fleet
        .devices
        .iter()
        .filter(|d| d.listed)
        .map(|d| d.thing.clone())
        .collect();
    let mut measured: HashSet<(String, i64)> = HashSet::new();
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let Ok(rows) = observe::state_rows(&dynamodb, &shared.names.state_table, &things).await
        else {
            continue;
        };
        let now = Instant::now();
        let sent = shared.sent.lock().await;
        let mut found = Vec::new();
        for reading in sent.iter() {
            if rows.get(&reading.thing).and_then(|r| r.last_telemetry_at)
                == Some(reading.timestamp_ms)
                && measured.insert((reading.thing.clone(), reading.timestamp_ms))
            {
                found.push(now.duration_since(reading.published).as_secs_f64() * 1000.0);
            }
        }
        drop(sent);
        latencies.lock().await.extend(found);
    }
}

/// A short id that keeps this run's serials, things and models apart from every other.
fn fleetwire_run_id() -> String {
    format!("{:06x}", fastrand::u32(..0x100_0000))
}
