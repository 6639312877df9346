//! The command line: clap definitions and the dispatch to each command.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fleetwire::cloudfront::KeyAlgorithm;
use time::OffsetDateTime;

use crate::certificates::IotCertificates;
use crate::cloudfront_keys::{CloudFrontKeys, SecretsManagerSigningSecret};
use crate::deployment::{Aws, Deployment};
use crate::keys::{self, GroupRef, Rotation};
use crate::rollout::{Change, NewRollout};
use crate::{Answer, Failure, device, firmware, import, registry, rollout, sign_url};

#[derive(Parser, Debug)]
#[command(
    name = "fleetctl",
    version,
    about = "Operate a fleetwire deployment: allowlist, firmware, rollouts, devices, signing keys",
    after_help = "Resource names follow --stage (fleetwire-<stage>-registry, ...) unless REGISTRY_TABLE, \
                  FIRMWARE_BUCKET, ... name them; `source .local/run/stack.env` points every one at \
                  the local stack.\nExit codes: 0 done, 1 the operation failed, 2 bad usage."
)]
pub struct Cli {
    /// Deployment stage (default: FLEETWIRE_STAGE, else dev).
    #[arg(long, global = true)]
    stage: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The allowlist of serials that may provision.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Firmware releases: the images and the catalog.
    #[command(subcommand)]
    Firmware(FirmwareCommand),
    /// Staged rollouts of a release.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// What the system knows of one device.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The CloudFront keys firmware URLs are signed with.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a CloudFront signed URL (canned policy with only --expires, custom otherwise).
    SignUrl(sign_url::Args),
}

#[derive(Args, Debug)]
struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum RegistryCommand {
    /// Import serial,model[,thing_name[,claim_certificate_id]] rows from a CSV file.
    Import {
        file: PathBuf,
        /// Check the file and say what would change, writing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also re-arm PROVISIONED, LOCKED and REVOKED serials listed in the file.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Allow one serial to provision once.
    Add {
        serial: String,
        #[arg(long)]
        model: String,
        /// The thing it becomes (default: the serial).
        #[arg(long)]
        thing_name: Option<String>,
        /// A claim certificate of its batch; repeat for several (default: any claim).
        #[arg(long = "claim-certificate-id")]
        claim_certificate_ids: Vec<String>,
        /// A provisioning-template parameter, NAME=VALUE; repeatable.
        #[arg(long = "attribute")]
        attributes: Vec<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Take a serial out of the fleet: REVOKED, and its IoT certificate revoked.
    Revoke {
        serial: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Let a LOCKED, PROVISIONED or REVOKED serial provision again.
    Allow {
        serial: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// One serial's row.
    Show {
        serial: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Every serial, or those with one status.
    List {
        /// ALLOWED, PROVISIONED, REVOKED or LOCKED.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
enum FirmwareCommand {
    /// Hash, sign and upload an image, then add its release to the catalog.
    Publish {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        /// The image.
        #[arg(long)]
        file: PathBuf,
        /// The fleet's code-signing key: EC P-256 PEM (SEC1 or PKCS#8).
        #[arg(long, value_name = "KEY.pem")]
        signing_key: PathBuf,
        #[arg(long)]
        notes: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// The catalog.
    List {
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
enum RolloutCommand {
    /// Offer a published release to a share of a model's devices.
    Create {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        /// Share of the model's devices, 0 to 100.
        #[arg(long)]
        percent: f64,
        /// Pause when failures / finished exceeds this share (0 to 1).
        #[arg(long)]
        failure_threshold: f64,
        /// Outcomes needed before the failure rate counts.
        #[arg(long)]
        min_samples: u64,
        /// Also offer it to devices on a newer version.
        #[arg(long)]
        allow_downgrade: bool,
        /// The rollout's id (default: <model>-<version>).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Widen (or narrow) a rollout; raising the percentage only adds devices.
    SetPercent {
        rollout_id: String,
        percent: f64,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Stop offering it, until resumed.
    Pause {
        rollout_id: String,
        #[arg(long, default_value = "paused by an operator")]
        reason: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Offer it again after a pause; the failure rate counts afresh.
    Resume {
        rollout_id: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Stop it for good.
    Abort {
        rollout_id: String,
        #[arg(long, default_value = "aborted by an operator")]
        reason: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Counts, failure rate and why it paused.
    Status {
        rollout_id: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Every rollout, or those of one model.
    List {
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
enum DeviceCommand {
    /// Registry row, state, latest summaries and OTA history of a device.
    Show {
        /// Thing name or serial.
        id: String,
        #[command(flatten)]
        output: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Make a new signing key, trust it, then sign with it; the old key stays trusted.
    Rotate {
        #[arg(long, default_value = "rsa", value_name = "rsa|ecdsa")]
        algorithm: String,
        /// How long to wait for the distribution to deploy the new key
        /// (FIRMWARE_DISTRIBUTION_ID names it; without it there is no wait).
        #[arg(long, default_value_t = 30)]
        wait_minutes: u64,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Stop trusting a key (never the one in use).
    Retire {
        key_id: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// The trusted keys and which one signs.
    List {
        #[command(flatten)]
        output: JsonFlag,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<Answer, Failure> {
    if let Command::SignUrl(args) = &cli.command {
        return sign_url::run(args).map(Answer::ok).map_err(Failure::Usage);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run_async(cli))
}

async fn run_async(cli: Cli) -> Result<Answer, Failure> {
    let deployment = Deployment::from_env(cli.stage);
    let aws = Aws::load().await?;
    match cli.command {
        Command::Registry(command) => run_registry(command, &deployment, &aws).await,
        Command::Firmware(command) => run_firmware(command, &deployment, &aws).await,
        Command::Rollout(command) => run_rollout(command, &deployment, &aws).await,
        Command::Device(DeviceCommand::Show { id, output }) => {
            let registry = aws.registry(&deployment);
            let ota = aws.ota(&deployment);
            let dynamodb = aws.dynamodb();
            let (state_table, summaries_table) =
                (deployment.state_table(), deployment.summaries_table());
            let tables = device::DeviceTables {
                registry: &registry,
                ota: &ota,
                dynamodb: &dynamodb,
                state_table: &state_table,
                summaries_table: &summaries_table,
            };
            device::show(&tables, &id, output.json).await
        }
        Command::Keys(command) => run_keys(command, &deployment, &aws).await,
        Command::SignUrl(_) => unreachable!("handled before the runtime starts"),
    }
}

async fn run_registry(
    command: RegistryCommand,
    deployment: &Deployment,
    aws: &Aws,
) -> Result<Answer, Failure> {
    let registry = aws.registry(deployment);
    match command {
        RegistryCommand::Import {
            file,
            dry_run,
            force,
            output,
        } => {
            let report =
                import::run(&registry, &file, dry_run, force, &import::import_retry()).await?;
            let text = if output.json {
                crate::output::json(&serde_json::json!({
                    "imported": report.imported(),
                    "report": report,
                }))?
            } else {
                report.render()
            };
            Ok(Answer {
                text,
                failed: !report.invalid.is_empty(),
            })
        }
        RegistryCommand::Add {
            serial,
            model,
            thing_name,
            claim_certificate_ids,
            attributes,
            output,
        } => {
            let new = registry::NewSerial {
                serial,
                model,
                thing_name,
                claim_certificate_ids,
                attributes,
            };
            registry::add(&registry, &new, output.json).await
        }
        RegistryCommand::Revoke { serial, output } => {
            let certificates = IotCertificates::new(aws.iot());
            registry::revoke(&registry, &certificates, &serial, output.json).await
        }
        RegistryCommand::Allow {
            serial,
            yes,
            output,
        } => registry::allow(&registry, &serial, yes, &mut ask, output.json).await,
        RegistryCommand::Show { serial, output } => {
            registry::show(&registry, &serial, output.json).await
        }
        RegistryCommand::List { status, output } => {
            registry::list(&registry, status.as_deref(), output.json).await
        }
    }
}

/// Asks on the terminal; without one, refuses rather than guessing.
fn ask(question: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "{question} Not asking: stdin is not a terminal; pass --yes to confirm"
        )));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}

async fn run_firmware(
    command: FirmwareCommand,
    deployment: &Deployment,
    aws: &Aws,
) -> Result<Answer, Failure> {
    let ota = aws.ota(deployment);
    match command {
        FirmwareCommand::Publish {
            model,
            version,
            file,
            signing_key,
            notes,
            output,
        } => {
            let bucket = deployment.firmware_bucket()?;
            let request = firmware::Publish {
                model: &model,
                version: &version,
                file: &file,
                signing_key: &signing_key,
                notes: notes.as_deref(),
            };
            firmware::publish(&ota, &aws.s3(), &bucket, &request, output.json).await
        }
        FirmwareCommand::List { model, output } => {
            firmware::list(&ota, model.as_deref(), output.json).await
        }
    }
}

async fn run_rollout(
    command: RolloutCommand,
    deployment: &Deployment,
    aws: &Aws,
) -> Result<Answer, Failure> {
    let ota = aws.ota(deployment);
    match command {
        RolloutCommand::Create {
            model,
            version,
            percent,
            failure_threshold,
            min_samples,
            allow_downgrade,
            id,
            output,
        } => {
            let new = NewRollout {
                id,
                model,
                version,
                percent,
                failure_threshold,
                min_samples,
                allow_downgrade,
            };
            rollout::create(&ota, &new, output.json).await
        }
        RolloutCommand::SetPercent {
            rollout_id,
            percent,
            output,
        } => rollout::change(&ota, &rollout_id, &Change::SetPercent(percent), output.json).await,
        RolloutCommand::Pause {
            rollout_id,
            reason,
            output,
        } => rollout::change(&ota, &rollout_id, &Change::Pause { reason }, output.json).await,
        RolloutCommand::Resume { rollout_id, output } => {
            rollout::change(&ota, &rollout_id, &Change::Resume, output.json).await
        }
        RolloutCommand::Abort {
            rollout_id,
            reason,
            output,
        } => rollout::change(&ota, &rollout_id, &Change::Abort { reason }, output.json).await,
        RolloutCommand::Status { rollout_id, output } => {
            rollout::status(&ota, &rollout_id, output.json).await
        }
        RolloutCommand::List { model, output } => {
            rollout::list(&ota, model.as_deref(), output.json).await
        }
    }
}

async fn run_keys(
    command: KeysCommand,
    deployment: &Deployment,
    aws: &Aws,
) -> Result<Answer, Failure> {
    let cloudfront = CloudFrontKeys::new(aws.cloudfront(), deployment.distribution_id());
    let secret = SecretsManagerSigningSecret::new(aws.secrets(), deployment.signing_secret());
    let group = match deployment.key_group_id() {
        Some(id) => GroupRef::Id(id),
        None => GroupRef::Name(deployment.key_group_name()),
    };
    match command {
        KeysCommand::Rotate {
            algorithm,
            wait_minutes,
            output,
        } => {
            let algorithm: KeyAlgorithm = algorithm.parse().map_err(Failure::Usage)?;
            let rotation = Rotation {
                group,
                algorithm,
                public_key_name: deployment
                    .public_key_name(OffsetDateTime::now_utc().unix_timestamp()),
                wait: Duration::from_secs(wait_minutes * 60),
            };
            let rotated = keys::rotate(&cloudfront, &secret, &rotation).await?;
            keys::render_rotated(&rotated, output.json)
        }
        KeysCommand::Retire { key_id, output } => {
            let retired = keys::retire(&cloudfront, &secret, &group, &key_id).await?;
            keys::render_retired(&retired, output.json)
        }
        KeysCommand::List { output } => {
            let trusted = keys::list(&cloudfront, &secret, &group).await?;
            keys::render_list(&trusted, output.json)
        }
    }
}
