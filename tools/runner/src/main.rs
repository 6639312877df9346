//! `fleetwire-runner`: the local IoT Core. `wiring` prints what it plays from
//! template.yaml (and fails, with the reason, on anything it cannot play).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fleetwire_runner::wiring::{Source, Wiring};
use fleetwire_stack::LOCAL_ACCOUNT;
use fleetwire_stack::template::Template;

#[derive(Parser)]
#[command(
    about = "The local IoT Core: rules, fleet provisioning, lifecycle events and event source mappings from template.yaml"
)]
struct Cli {
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Stack name, for `${AWS::StackName}`.
    #[arg(long, default_value = "fleetwire")]
    stack_name: String,
    /// Template parameter override, `Name=Value` (repeatable).
    #[arg(long = "parameter", value_name = "NAME=VALUE")]
    parameters: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the rules, provisioning templates and event source mappings the runner plays.
    Wiring,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match wiring(&cli) {
        Ok(wiring) => {
            match cli.command {
                Command::Wiring => print(&wiring),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fleetwire-runner: {e}");
            ExitCode::FAILURE
        }
    }
}

fn wiring(cli: &Cli) -> Result<Wiring, Box<dyn std::error::Error>> {
    let mut template = Template::load(&cli.template)?;
    for pair in &cli.parameters {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--parameter {pair:?}: expected NAME=VALUE"))?;
        template.set_parameter(name, value)?;
    }
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    Ok(Wiring::read(
        &template,
        &cli.stack_name,
        &region,
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
}
