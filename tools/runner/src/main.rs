//! `runner`: the local IoT Core. `run` serves devices, rules, fleet
//! provisioning, lifecycle events, the IoT data plane, the event source mappings and a
//! local CloudFront, all as template.yaml wires them ([`runner::start`]);
//! `wiring` prints what it plays (and fails, with the reason, on anything it cannot play).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runner::start::{RunArgs, region, run};
use runner::wiring::{DeliverySource, RouteAuth, Source, Wiring};
use stack::LOCAL_ACCOUNT;
use stack::cli::TemplateArgs;

#[derive(Parser)]
#[command(
    about = "The local IoT Core: rules, fleet provisioning, lifecycle events and event source mappings from template.yaml"
)]
struct Cli {
    #[command(flatten)]
    stack: TemplateArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start: the size of a variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Print the rules, provisioning templates and event source mappings the runner plays.
    Wiring,
    /// Serve until stopped (SIGINT or SIGTERM).
    Run(RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let wiring = match wiring(&cli) {
        Ok(wiring) => wiring,
        Err(e) => {
            eprintln!("runner: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Wiring => {
            print(&wiring);
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            fleetwire::runtime::logging::init("runner");
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("runner: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(wiring, args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("runner: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn wiring(cli: &Cli) -> Result<Wiring, Box<dyn std::error::Error>> {
    let template = cli.stack.load()?;
    Ok(Wiring::read(
        &template,
        &cli.stack.stack_name,
        &region(),
        LOCAL_ACCOUNT,
    )?)
}

fn print(wiring: &Wiring) {
    let binary = |id: &str| {
        wiring
            .function(id)
            .map_or("?", |f| f.binary.as_str())
            .to_owned()
    };
    println!(
        "{:<24} {:<36} {:<18} ERROR ACTION",
        "RULE", "FROM", "FUNCTION"
    );
    for rule in &wiring.rules {
        println!(
            "{:<24} {:<36} {:<18} {}",
            rule.name,
            rule.sql.from,
            binary(&rule.function),
            rule.error_queue.as_deref().unwrap_or("-")
        );
    }
    for template in &wiring.provisioning {
        println!(
            "provisioning template {} (hook: {})",
            template.name,
            template.hook.as_deref().map_or("none".into(), binary)
        );
    }
    for mapping in &wiring.mappings {
        let source = match &mapping.source {
            Source::Kinesis { stream, .. } => format!("Kinesis stream {stream}"),
            Source::Kafka { topics, .. } => format!("Kafka topics {}", topics.join(", ")),
        };
        println!(
            "event source mapping {}: {source} -> {} (batch {}, retries {}, bisect {}, on failure {})",
            mapping.logical_id,
            binary(&mapping.function),
            mapping.batch_size,
            mapping.maximum_retry_attempts,
            mapping.bisect_on_error,
            mapping.on_failure_queue.as_deref().unwrap_or("-")
        );
    }
    for delivery in &wiring.deliveries {
        println!(
            "archive {}: {} -> Parquet in s3://{}/{} ({} columns; every {} s or {} MiB)",
            delivery.name,
            match &delivery.source {
                DeliverySource::Kinesis { stream } => format!("Kinesis stream {stream}"),
                DeliverySource::Kafka { topic } => format!("Kafka topic {topic}"),
            },
            delivery.bucket,
            delivery.prefix,
            delivery.columns.len(),
            delivery.buffer_seconds,
            delivery.buffer_bytes / (1024 * 1024)
        );
    }
    for route in &wiring.http_routes {
        let auth = match &route.auth {
            RouteAuth::Iam => "AWS_IAM (SigV4; answered 403 locally)".to_owned(),
            RouteAuth::Jwt { issuer, .. } => format!("JWT from {issuer}"),
        };
        println!(
            "HTTP API route {} -> {} ({auth})",
            route.route_key,
            binary(&route.function)
        );
    }
}
