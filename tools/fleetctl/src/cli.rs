//! The command line: clap definitions and the dispatch to each command.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use fleetwire::adapters::dynamodb::fleet::scan_presence;
use fleetwire::cloudfront::KeyAlgorithm;
use fleetwire::domain::fleet::overview;
use time::OffsetDateTime;

use crate::archive::athena::Athena;
use crate::archive::duckdb::LocalDuckDb;
use crate::certificates::IotCertificates;
use crate::cloudfront_keys::{CloudFrontKeys, SecretsManagerSigningSecret};
use crate::deployment::{ArchiveEngine, Aws, Deployment};
use crate::failed::aws::{KafkaTopicReader, KinesisStreamReader, LambdaInvoker, SqsFailedQueue};
use crate::keys::{self, GroupRef, Rotation};
use crate::rollout::{Change, NewRollout};
use crate::{
    Answer, Failure, archive, device, failed, firmware, fleet, import, registry, rollout, sign_url,
};

mod args;
pub use args::Cli;
use args::*;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<Answer, Failure> {
    // Commands that read nothing of AWS.
    match &cli.command {
        Command::SignUrl(args) => {
            return sign_url::run(args).map(Answer::ok).map_err(Failure::Usage);
        }
        Command::Archive(ArchiveCommand::Queries { output }) => return archive::list(output.json),
        _ => {}
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
        Command::Failed(command) => run_failed(command, &deployment, &aws).await,
        Command::Archive(command) => run_archive(command, &deployment, &aws).await,
        Command::Fleet(FleetCommand::Status { output }) => {
            let registry = aws.registry(&deployment);
            let ota = aws.ota(&deployment);
            let entries = registry.list(None).await?;
            let states = scan_presence(&aws.dynamodb(), &deployment.state_table()).await?;
            let rollouts = ota.list_rollouts(None).await?;
            fleet::render(&overview(&entries, &states, &rollouts), output.json)
        }
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

async fn run_archive(
    command: ArchiveCommand,
    deployment: &Deployment,
    aws: &Aws,
) -> Result<Answer, Failure> {
    match command {
        ArchiveCommand::Queries { output } => archive::list(output.json),
        ArchiveCommand::Devices => {
            let entries = aws.registry(deployment).list(None).await?;
            archive::devices::upload(&aws.s3(), &deployment.archive_bucket()?, &entries).await
        }
        ArchiveCommand::Query {
            name,
            since,
            params,
            output,
        } => {
            let query = archive::find(&name)?;
            let values =
                archive::parameters(&query, since.as_deref(), &params, OffsetDateTime::now_utc())?;
            match deployment.archive_engine()? {
                ArchiveEngine::Athena => {
                    let engine = Athena::new(
                        aws.athena(),
                        deployment.athena_workgroup(),
                        deployment.archive_database(),
                        Duration::from_secs(600),
                    );
                    archive::query(&engine, &query, &values, output.json).await
                }
                ArchiveEngine::DuckDb => {
                    let engine =
                        LocalDuckDb::new(deployment.python(), deployment.archive_bucket()?);
                    archive::query(&engine, &query, &values, output.json).await
                }
            }
        }
    }
}

async fn run_failed(
    command: FailedCommand,
    deployment: &Deployment,
    aws: &Aws,
) -> Result<Answer, Failure> {
    let queue = SqsFailedQueue::new(aws.sqs(), deployment.failed_events_queue_url()?);
    match command {
        FailedCommand::List { output } => failed::list(&queue, output.json).await,
        FailedCommand::Redrive { dry_run, output } => {
            let reader = KinesisStreamReader::new(aws.kinesis());
            let topics = KafkaTopicReader::new(aws.sdk.clone(), deployment.kafka_auth()?);
            let invoker = LambdaInvoker::new(aws.lambda());
            let processor = deployment.stream_processor_function();
            failed::redrive(
                &queue,
                &reader,
                &topics,
                &invoker,
                &processor,
                dry_run,
                output.json,
            )
            .await
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
