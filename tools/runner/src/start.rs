//! Starting the runner: every port bound first (a taken one stops the start before
//! anything runs), then IoT Core's parts, the event source mappings, the local API Gateway
//! and CloudFront, each on its own task, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::runtime::config::Env;
use stack::LOCAL_ACCOUNT;
use tokio::net::TcpListener;

use crate::apigw::{LocalHttpApi, LocalIssuer};
use crate::archive::Archive;
use crate::cloudfront::{LocalCloudFront, TrustedKeys};
use crate::control::RunnerApi;
use crate::dashboard::emf::MetricTotals;
use crate::dashboard::{Dashboard, FleetTables};
use crate::esm::{Esm, EsmStatus, MappingControl, StartAt};
use crate::http::serve;
use crate::iot::data_plane::DataPlane;
use crate::iot::front_door::FrontDoor;
use crate::iot::hub::{BrokerClient, Connections};
use crate::iot::provisioning::Provisioning;
use crate::iot::router::Router;
use crate::iot::rules::RulesEngine;
use crate::lambda::{AsyncInvoker, Invoker};
use crate::queues::Queues;
use crate::wiring::Wiring;

/// The claim certificate id assumed for a connection that does not name one in its MQTT
/// username: SHA-256 of "fleetwire-local-claim".
const DEFAULT_CLAIM_CERTIFICATE_ID: &str =
    "23d2ac0dd50cfc5687909951e5be1c1774a9b47ee8285d4f02ab1cd03c345ccd";

#[derive(Args)]
pub struct RunArgs {
    /// Where devices connect (MQTT 3.1.1 or 5, plain TCP).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub mqtt_listen: SocketAddr,
    /// The MQTT broker behind the front door (mosquitto).
    #[arg(long, default_value = "127.0.0.1:18830")]
    pub broker: SocketAddr,
    /// `cargo lambda watch`'s invoke endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    pub lambda: String,
    /// The IoT data plane (`POST /topics/{topic}`) and `GET /runner/status`.
    #[arg(long, default_value = "127.0.0.1:8087")]
    pub http_listen: SocketAddr,
    /// The local API Gateway HTTP API (the template's ApiGatewayV2 routes).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub api_listen: SocketAddr,
    /// The local CloudFront for firmware downloads.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub cdn_listen: SocketAddr,
    /// The base firmware URLs are signed with (firmware-url's FIRMWARE_BASE_URL).
    #[arg(long, env = "FIRMWARE_BASE_URL")]
    pub cdn_base_url: Option<String>,
    /// The bucket the local CloudFront serves.
    #[arg(long, env = "FIRMWARE_BUCKET")]
    pub firmware_bucket: Option<String>,
    /// The signing secret whose key the local CloudFront trusts.
    #[arg(long, env = "SIGNING_KEY_SECRET_ARN")]
    pub signing_secret: Option<String>,
    /// The Kafka broker of the MSK event source mapping.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub kafka_bootstrap: Option<String>,
    /// Where the event source mappings start: `latest` (the local stream is shared) or
    /// `trim-horizon`.
    #[arg(long, default_value = "latest")]
    pub stream_start: String,
    /// Run the event source mappings from the start (`false`: they wait for
    /// `POST /runner/mappings/enable`, as a mapping created disabled would).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub mappings_enabled: bool,
    /// The claim certificate id for connections whose username is not one.
    #[arg(long, default_value = DEFAULT_CLAIM_CERTIFICATE_ID)]
    pub claim_certificate_id: String,
    /// Longest one invoke may take; past it the invoke counts as a function error (as a
    /// Lambda timeout does) and is retried. The first invoke of a function includes
    /// cargo lambda watch's build of it: build the workspace first (scripts/demo does).
    #[arg(long, default_value_t = 120)]
    pub invoke_timeout_seconds: u64,
    /// Invokes of one function at once (match `cargo lambda watch --concurrency`).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The functions' log (`cargo lambda watch`'s output), whose EMF documents the
    /// dashboard reads as CloudWatch would.
    #[arg(long)]
    pub function_log: Option<std::path::PathBuf>,
    /// The fleet's tables, for the dashboard.
    #[arg(long, env = "REGISTRY_TABLE")]
    pub registry_table: Option<String>,
    #[arg(long, env = "STATE_TABLE")]
    pub state_table: Option<String>,
    #[arg(long, env = "SUMMARIES_TABLE")]
    pub summaries_table: Option<String>,
    #[arg(long, env = "FIRMWARE_TABLE")]
    pub firmware_table: Option<String>,
    #[arg(long, env = "ROLLOUTS_TABLE")]
    pub rollouts_table: Option<String>,
    #[arg(long, env = "OTA_HISTORY_TABLE")]
    pub ota_history_table: Option<String>,
    /// Seconds before each retry of a failed asynchronous invoke (Lambda: about 60, 120).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub async_retry_delays: Vec<u64>,
}

/// The fleet's tables, when every one is named.
fn fleet_tables(args: &RunArgs) -> Option<FleetTables> {
    Some(FleetTables {
        registry: args.registry_table.clone()?,
        state: args.state_table.clone()?,
        summaries: args.summaries_table.clone()?,
        firmware: args.firmware_table.clone()?,
        rollouts: args.rollouts_table.clone()?,
        ota_history: args.ota_history_table.clone()?,
    })
}

pub fn region() -> String {
    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
}

async fn bind(what: &str, address: SocketAddr, hint: &str) -> Result<TcpListener, String> {
    TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address} for {what}: {e}; {hint}"))
}

pub async fn run(wiring: Wiring, args: RunArgs) -> Result<(), String> {
    let start = match args.stream_start.as_str() {
        "latest" => StartAt::Latest,
        "trim-horizon" => StartAt::TrimHorizon,
        other => {
            return Err(format!(
                "--stream-start {other:?}: expected latest or trim-horizon"
            ));
        }
    };
    // Every port first: a taken one stops the start before anything runs.
    let mqtt = bind(
        "MQTT",
        args.mqtt_listen,
        "set FLEETWIRE_MQTT_PORT to another port",
    )
    .await?;
    let http = bind(
        "the IoT data plane",
        args.http_listen,
        "set FLEETWIRE_IOT_DATA_PORT to another port",
    )
    .await?;
    let cdn = bind(
        "the local CloudFront",
        args.cdn_listen,
        "set FLEETWIRE_CDN_PORT to another port",
    )
    .await?;
    let api = bind(
        "the local HTTP API",
        args.api_listen,
        "set FLEETWIRE_API_PORT to another port",
    )
    .await?;
    tokio::net::TcpStream::connect(args.broker)
        .await
        .map_err(|e| {
            format!(
                "the MQTT broker at {} does not answer ({e}); scripts/stack up starts it",
                args.broker
            )
        })?;

    // The local servers are single-threaded and slow under a fleet's burst (moto makes
    // an RSA key per certificate): patience. And IoT Core's own calls to its stores do not
    // fail a device's request for a connection cut or stalled once (the fault layer's
    // resets): four attempts.
    let defaults = SdkSettings {
        max_attempts: 4,
        connect_timeout: Duration::from_secs(10),
        attempt_timeout: Duration::from_secs(30),
        operation_timeout: Duration::from_secs(60),
        ..SdkSettings::default()
    };
    let settings = SdkSettings::from_env(&Env::process(), defaults).map_err(|e| e.to_string())?;
    let sdk = load_sdk_config(&settings).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let queues = Queues::new(aws_sdk_sqs::Client::new(&sdk));
    let invoker = Invoker::new(
        &args.lambda,
        Duration::from_secs(args.invoke_timeout_seconds),
        args.concurrency,
    );
    let async_invoker = AsyncInvoker {
        invoker: invoker.clone(),
        destinations: queues.clone(),
        retry_delays: args
            .async_retry_delays
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect(),
    };
    let connections = Connections::default();
    let rules = Arc::new(RulesEngine::new(
        wiring.rules.clone(),
        &wiring.functions,
        async_invoker,
        queues.clone(),
    ));
    let templates = wiring
        .provisioning
        .iter()
        .map(|t| {
            (
                t.clone(),
                t.hook.as_ref().and_then(|h| wiring.function(h).cloned()),
            )
        })
        .collect::<Vec<_>>();
    let provisioning = (!templates.is_empty()).then(|| {
        Arc::new(Provisioning::new(
            templates,
            invoker.clone(),
            aws_sdk_iot::Client::new(&sdk),
            connections.clone(),
            args.claim_certificate_id.clone(),
        ))
    });
    let broker = BrokerClient::connect(&args.broker.ip().to_string(), args.broker.port());
    let router = Router::new(rules, provisioning, broker);

    let esm = Esm {
        invoker: invoker.clone(),
        queues: queues.clone(),
        status: EsmStatus::default(),
        region: region(),
        retry_wait: Duration::from_millis(500),
    };
    let mut mappings = Vec::new();
    for mapping in &wiring.mappings {
        let Some(function) = wiring.function(&mapping.function).cloned() else {
            return Err(format!(
                "{}: its function {} is not deployed",
                mapping.logical_id, mapping.function
            ));
        };
        mappings.push((mapping.clone(), function));
    }
    let control = Arc::new(MappingControl::new(
        esm,
        mappings,
        aws_sdk_kinesis::Client::new(&sdk),
        args.kafka_bootstrap.clone(),
        start,
    ));
    if args.mappings_enabled {
        control.enable().await?;
    }
    let mut archives = Vec::new();
    for delivery in &wiring.deliveries {
        let archive = Archive::new(delivery.clone(), s3.clone(), region())?;
        archive
            .start(
                aws_sdk_kinesis::Client::new(&sdk),
                args.kafka_bootstrap.as_deref(),
                start,
            )
            .await?;
        archives.push(archive);
    }

    let http_api = Arc::new(LocalHttpApi {
        binaries: wiring
            .http_routes
            .iter()
            .filter_map(|r| {
                Some((
                    r.function.clone(),
                    wiring.function(&r.function)?.binary.clone(),
                ))
            })
            .collect(),
        routes: wiring.http_routes.clone(),
        invoker: invoker.clone(),
        issuer: Arc::new(LocalIssuer::new()?),
        account: LOCAL_ACCOUNT.to_owned(),
    });
    {
        let http_api = http_api.clone();
        tokio::spawn(serve(api, move |request, peer| {
            http_api.clone().handle(request, peer)
        }));
    }
    let metrics = MetricTotals::new(fleetwire::runtime::metrics::NAMESPACE);
    if let Some(log) = &args.function_log {
        tokio::spawn(
            metrics
                .clone()
                .follow(log.clone(), Duration::from_millis(500)),
        );
    }
    let dashboard = Dashboard::new(
        metrics,
        aws_sdk_dynamodb::Client::new(&sdk),
        fleet_tables(&args),
    );
    let runner_api = RunnerApi {
        data_plane: DataPlane {
            router: router.clone(),
        },
        connections: connections.clone(),
        mappings: control.clone(),
        http_api,
        archives,
        dashboard,
    };
    tokio::spawn(serve(http, move |request, peer| {
        runner_api.clone().handle(request, peer)
    }));
    let cdn_base = args
        .cdn_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.cdn_listen))
        .trim_end_matches('/')
        .to_owned();
    match &args.firmware_bucket {
        Some(bucket) => {
            let keys = Arc::new(TrustedKeys::new(
                aws_sdk_secretsmanager::Client::new(&sdk),
                args.signing_secret.clone(),
                Vec::new(),
            ));
            if let Some(id) = keys.ensure_signing_key().await? {
                println!(
                    "runner: the signing secret held no key; it now holds {id}, which the local CloudFront trusts"
                );
            }
            let cloudfront = LocalCloudFront {
                base_url: cdn_base.clone(),
                bucket: bucket.clone(),
                s3,
                keys,
            };
            tokio::spawn(serve(cdn, move |request, peer| {
                cloudfront.clone().handle(request, peer)
            }));
        }
        None => tracing::warn!("no FIRMWARE_BUCKET: the local CloudFront is off"),
    }
    tokio::spawn(FrontDoor::new(args.broker, connections, router).serve(mqtt));

    println!(
        "runner: MQTT on {} (broker {}), IoT data plane and /runner/status on http://{}, CloudFront on {}",
        args.mqtt_listen, args.broker, args.http_listen, cdn_base
    );
    println!(
        "runner: {} rules, {} provisioning template(s), {} event source mapping(s); functions through {}",
        wiring.rules.len(),
        wiring.provisioning.len(),
        wiring.mappings.len(),
        args.lambda
    );
    println!(
        "runner: HTTP API on http://{}: {}",
        args.api_listen,
        wiring
            .http_routes
            .iter()
            .map(|r| r.route_key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    shutdown_signal().await;
    println!("runner: stopping");
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
