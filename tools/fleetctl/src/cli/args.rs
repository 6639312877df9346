//! The clap definitions of every command, flag and argument.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::sign_url;

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
    pub(super) stage: Option<String>,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
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
    /// What the failed-events queue holds; Kinesis and Kafka batches re-driven through the
    /// processor.
    #[command(subcommand)]
    Failed(FailedCommand),
    /// The fleet at a glance: devices by model and status, online now, each rollout.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// The archive's named queries: in Athena, or with DuckDB on the local stack.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Print a CloudFront signed URL (canned policy with only --expires, custom otherwise).
    SignUrl(sign_url::Args),
}

#[derive(Args, Debug)]
pub(super) struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Subcommand, Debug)]
pub(super) enum RegistryCommand {
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
pub(super) enum FirmwareCommand {
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
pub(super) enum RolloutCommand {
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
pub(super) enum DeviceCommand {
    /// Registry row, state, latest summaries and OTA history of a device.
    Show {
        /// Thing name or serial.
        id: String,
        #[command(flatten)]
        output: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum FleetCommand {
    /// Per model: serials by Registry status and devices online now; every rollout with
    /// its reach, outcomes and status.
    Status {
        #[command(flatten)]
        output: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum ArchiveCommand {
    /// The named queries and what each answers.
    Queries {
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Run a named query where the archive is: in Athena (the stack's workgroup), or with
    /// DuckDB when FLEETWIRE_ARCHIVE_ENGINE=duckdb (the local stack's stack.env sets it).
    Query {
        name: String,
        /// The query's cutoff: a duration back from now (6h, 2d, 90m) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// A further parameter of the query, in order; repeat for several.
        #[arg(long = "param")]
        params: Vec<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Write the Registry's devices (thing, model, status, serial) to the archive bucket
    /// as the table `devices`, which the queries by model join with; run it after an
    /// import or a provisioning wave.
    Devices,
}

#[derive(Subcommand, Debug)]
pub(super) enum FailedCommand {
    /// Every message of the queue: Kinesis and Kafka batches, failed invocations, rule errors.
    List {
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Read each failed Kinesis or Kafka batch back from its stream or topic and run it
    /// through the processor again (records it processed before are skipped); a message
    /// goes once its batch did.
    Redrive {
        /// Read the batches and say what would be re-driven, invoking nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        output: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum KeysCommand {
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
