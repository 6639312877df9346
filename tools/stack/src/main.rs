//! `stack`: makes the local stand-ins hold what `template.yaml` declares.
//!
//! `create` creates every table, stream, queue, topic, bucket and secret of the template
//! (idempotently) and writes the env file functions and tests read; `status` shows each
//! resource; `exercise` runs the shared adapters against them once.

mod exercise;
mod local;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::runtime::config::Env;

use stack::LOCAL_ACCOUNT;
use stack::cli::TemplateArgs;
use stack::plan::{self, Planned};

use crate::local::{Clients, Outcome, State};

#[derive(Parser)]
#[command(about = "Creates and checks the resources of template.yaml on the local stack")]
struct Cli {
    #[command(flatten)]
    stack: TemplateArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create every declared resource that does not exist yet and write the env file.
    Create {
        /// Where to write `NAME=value` lines for the functions and tests.
        #[arg(long)]
        env_file: PathBuf,
    },
    /// Show every declared resource; exit 1 when one is missing.
    Status,
    /// Run the shared adapters against the resources once.
    Exercise,
    /// Check the template against the project's own rules (no AWS, no stack needed).
    CheckPolicy,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, BoxError> {
    if matches!(cli.command, Command::CheckPolicy) {
        return check_policy(&cli.stack.template);
    }
    let template = cli.stack.load()?;
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let (planned, attributes) =
        plan::plan(&template, &cli.stack.stack_name, &region, LOCAL_ACCOUNT)?;
    // Emulators answer at once or not at all: fail fast instead of retrying.
    let defaults = SdkSettings {
        max_attempts: 1,
        ..SdkSettings::default()
    };
    let settings = SdkSettings::from_env(&Env::process(), defaults)?;
    let clients = Clients::new(&load_sdk_config(&settings).await);
    let arn = |p: &Planned| {
        attributes
            .arns
            .get(&p.logical_id)
            .cloned()
            .unwrap_or_default()
    };

    match cli.command {
        Command::CheckPolicy => unreachable!("checked before any client is built"),
        Command::Create { env_file } => {
            let mut outcomes = Vec::new();
            for resource in &planned {
                outcomes.push(local::create(&clients, resource, &arn(resource)).await?);
            }
            print_table(&planned, &outcomes);
            write_env_file(&env_file, &planned, &outcomes)?;
            println!("wrote {}", env_file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let mut outcomes = Vec::new();
            for resource in &planned {
                outcomes.push(local::inspect(&clients, resource, &arn(resource)).await);
            }
            print_table(&planned, &outcomes);
            let missing = outcomes
                .iter()
                .filter(|o| o.state == State::Missing)
                .count();
            if missing > 0 {
                eprintln!("{missing} resource(s) missing: run scripts/stack up");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Exercise => {
            let mut values = BTreeMap::new();
            for resource in &planned {
                let outcome = local::inspect(&clients, resource, &arn(resource)).await;
                if outcome.state == State::Missing {
                    return Err(format!(
                        "{} {} is missing: run scripts/stack up",
                        resource.spec.kind(),
                        resource.name
                    )
                    .into());
                }
                values.insert(resource.env_var(), outcome.value);
            }
            exercise::run(&clients, &values).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_policy(path: &std::path::Path) -> Result<ExitCode, BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let findings = stack::policy::check(&text, base)?;
    for (rule, what) in stack::policy::RULES
        .iter()
        .chain(std::iter::once(&stack::policy::WILDCARD_RULE))
    {
        let broken = findings.iter().filter(|f| f.rule == *rule).count();
        println!(
            "{} {rule}: {what}",
            if broken == 0 { "ok  " } else { "FAIL" }
        );
    }
    for finding in &findings {
        println!("  {finding}");
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_table(planned: &[Planned], outcomes: &[Outcome]) {
    println!("{:<24} {:<16} {:<40} STATE", "RESOURCE", "KIND", "NAME");
    for (resource, outcome) in planned.iter().zip(outcomes) {
        println!(
            "{:<24} {:<16} {:<40} {}",
            resource.logical_id,
            resource.spec.kind(),
            resource.name,
            outcome.state.label()
        );
    }
}

/// The variables a function reads, as `cargo lambda watch --env-file` and `source` take them.
fn write_env_file(
    path: &PathBuf,
    planned: &[Planned],
    outcomes: &[Outcome],
) -> Result<(), BoxError> {
    let mut text =
        String::from("# Written by `scripts/stack up` from template.yaml; do not edit.\n");
    let mut passed: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("AWS_ENDPOINT_URL")
                || matches!(
                    k.as_str(),
                    "AWS_REGION"
                        | "AWS_DEFAULT_REGION"
                        | "AWS_ACCESS_KEY_ID"
                        | "AWS_SECRET_ACCESS_KEY"
                        | "AWS_EC2_METADATA_DISABLED"
                )
        })
        .collect();
    passed.sort();
    for (k, v) in passed {
        text.push_str(&format!("{k}={v}\n"));
    }
    for (resource, outcome) in planned.iter().zip(outcomes) {
        text.push_str(&format!("{}={}\n", resource.env_var(), outcome.value));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}
