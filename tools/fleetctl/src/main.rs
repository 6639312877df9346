//! `fleetctl`: the operator's command line for a fleetwire deployment.
//!
//! Every failure is one line on stderr and exit code 2 (1 is left for "ran, found a
//! problem" answers of future commands); the answer alone goes to stdout, so it can be
//! piped.

mod sign_url;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "fleetctl", version, about = "Operate a fleetwire deployment")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a CloudFront signed URL (canned policy with only --expires, custom otherwise).
    SignUrl(sign_url::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::SignUrl(args) => sign_url::run(&args),
    };
    match result {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("fleetctl: {message}");
            ExitCode::from(2)
        }
    }
}
