//! `fleetctl`: see the library for the commands; this only maps their result to stdout,
//! stderr and the exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use fleetctl::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            err.exit()
        }
        Err(err) if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return ExitCode::from(2);
        }
        Err(err) => {
            // clap's first paragraph says what is wrong; the rest is usage, which --help
            // shows. One line, as every other fleetctl error.
            let rendered = err.render().to_string();
            let what: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!(
                "fleetctl: {} (see fleetctl --help)",
                what.join(" ").trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match fleetctl::cli::run(cli) {
        Ok(answer) => {
            if !answer.text.is_empty() {
                // A closed pipe (`fleetctl ... | head -1`) is the reader's choice, not an error.
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{}", answer.text.trim_end_matches('\n'));
            }
            if answer.failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(failure) => {
            eprintln!("fleetctl: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
