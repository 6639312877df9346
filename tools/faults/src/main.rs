//! `fault-proxy`: the local stack's fault layer (see the library). `scripts/stack up` starts
//! it when FLEETWIRE_FAULTS=1 and points the stack's endpoints at its routes.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use faults::control::Control;
use faults::start_route;
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(about = "TCP and AWS protocol faults between the local stack's clients and its services")]
struct Cli {
    /// The control API's address.
    #[arg(long, default_value = "127.0.0.1:8090")]
    control: SocketAddr,
    /// NAME=LISTEN=UPSTREAM, for instance dynamodb=127.0.0.1:18000=127.0.0.1:8000. Routes
    /// named dynamodb or kinesis also inject that service's errors.
    #[arg(long = "route", required = true)]
    routes: Vec<String>,
}

fn main() -> ExitCode {
    fleetwire::runtime::logging::init("fault-proxy");
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fault-proxy: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fault-proxy: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let mut switches = Vec::new();
    for spec in &cli.routes {
        let parts: Vec<&str> = spec.split('=').collect();
        let [name, listen, upstream] = parts[..] else {
            return Err(format!("--route {spec}: expected NAME=LISTEN=UPSTREAM"));
        };
        switches.push(start_route(name, listen, upstream).await?);
    }
    let control = TcpListener::bind(cli.control)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.control))?;
    tracing::info!(control = %cli.control, routes = ?cli.routes, "fault layer ready, no faults on");
    Control::new(switches).serve(control).await;
    Ok(())
}
