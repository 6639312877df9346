//! One virtual device's life, against IoT Core's APIs only (what a real device can do):
//!
//! 1. claim: with the batch's claim identity, ask for a certificate
//!    (`$aws/certificates/create/json`) and register through the provisioning template;
//! 2. reconnect as its thing, with its new certificate id as identity;
//! 3. send readings at the configured rate (a share invalid, a share claiming another
//!    device's id); a flapping device loses its link once, buffers meanwhile and sends
//!    the buffer as one `{"records": [...]}` batch on reconnect; an HTTPS device posts its
//!    telemetry to the HTTP API with a device token instead, and checks each answer;
//! 4. ask for firmware, download the offered image, check its length, SHA-256 and code
//!    signature, and report progress and the outcome (the failing model fails on purpose);
//! 5. stay connected until told to leave.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fleetwire::domain::telemetry::CLAIM_CLIENT_ID_PREFIX;
use http_body_util::{Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};

use crate::mqtt::Session;
use crate::setup::{DeviceSpec, Fleet, Names};

mod firmware;
mod telemetry;

use firmware::update_firmware;
use telemetry::{Telemetry, device_token};

/// A firmware image must arrive whole within this (the local CloudFront serves it from S3).
const DOWNLOAD_LIMIT: Duration = Duration::from_secs(30);

/// How devices behave.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub duration: Duration,
    /// Readings per second per device.
    pub rate: f64,
    pub invalid_share: f64,
    pub spoofed_share: f64,
    /// How long a device waits for an answer (a function's first invoke includes its build).
    pub answer_timeout: Duration,
    /// Times a device asks to be provisioned before a denial is final.
    pub provision_attempts: u32,
}

/// What a reading was meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Valid,
    /// Out of range: telemetry-ingest must reject it (`validation`).
    Invalid,
    /// Names another device: telemetry-ingest must reject it (`spoofed`).
    Spoofed,
}

/// One reading a device sent and the broker acknowledged.
#[derive(Debug, Clone)]
pub struct Sent {
    pub seq: u64,
    pub thing: String,
    pub kind: Kind,
    pub timestamp_ms: i64,
    pub temperature: f64,
    /// A valid reading far from the device's history (a z-score anomaly).
    pub spike: bool,
    pub published: Instant,
}

/// What one device went through.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub provisioned: bool,
    pub denied: bool,
    /// RegisterThing requests the hook denied, retries included.
    pub denials: usize,
    pub error: Option<String>,
    pub ota_requested: bool,
    pub url_issued: bool,
    pub download_verified: bool,
    pub reported_succeeded: bool,
    pub reported_failed: bool,
}

/// What every device shares.
pub struct Shared {
    pub names: Names,
    pub fleet: Fleet,
    pub behaviour: Behaviour,
    pub claim_username: String,
    pub sent: Mutex<Vec<Sent>>,
    pub next_seq: AtomicU64,
    pub http: Client<HttpConnector, Empty<Bytes>>,
    pub api: Client<HttpConnector, Full<Bytes>>,
    pub progress: indicatif::ProgressBar,
    /// Becomes true when devices may disconnect.
    pub leave: watch::Receiver<bool>,
}

impl Shared {
    pub fn new(
        names: Names,
        fleet: Fleet,
        behaviour: Behaviour,
        claim_username: String,
        progress: indicatif::ProgressBar,
        leave: watch::Receiver<bool>,
    ) -> Self {
        Self {
            names,
            fleet,
            behaviour,
            claim_username,
            sent: Mutex::default(),
            next_seq: AtomicU64::new(1),
            http: Client::builder(TokioExecutor::new()).build_http(),
            api: Client::builder(TokioExecutor::new()).build_http(),
            progress,
            leave,
        }
    }
}

/// Lives the device's life; its outcome goes to `done` when it has nothing left to do
/// but stay connected, and it disconnects once `shared.leave` says so.
pub async fn live(
    shared: Arc<Shared>,
    spec: DeviceSpec,
    done: tokio::sync::mpsc::UnboundedSender<(DeviceSpec, Outcome)>,
) {
    let mut outcome = Outcome::default();
    // Spread the claims over the first seconds (20 a second), as a batch switched on
    // together would.
    let spread = (shared.fleet.devices.len() as u64 * 50).max(2000);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..spread))).await;
    let certificate = match provision_with_retries(&shared, &spec, &mut outcome.denials).await {
        Ok(Some(certificate)) => certificate,
        Ok(None) => {
            outcome.denied = true;
            let _ = done.send((spec, outcome));
            return;
        }
        Err(e) => {
            outcome.error = Some(e);
            let _ = done.send((spec, outcome));
            return;
        }
    };
    outcome.provisioned = true;
    let session = match operate(&shared, &spec, &certificate, &mut outcome).await {
        Ok(session) => Some(session),
        Err(e) => {
            outcome.error = Some(e);
            None
        }
    };
    let _ = done.send((spec, outcome));
    if let Some(session) = session {
        let mut leave = shared.leave.clone();
        let _ = leave.wait_for(|leave| *leave).await;
        session.disconnect().await;
    }
}

/// A device asks to be provisioned again after a denial, waiting 2, 4, then 8 s between
/// tries, up to `Behaviour::provision_attempts` times: the hook cannot tell a device why
/// (its answer is only `allowProvisioning`), and it denies whenever it cannot decide in
/// time, so a device on the allowlist that met an outage is let in on a later try; one
/// off the list never.
const PROVISION_BACKOFF_CAP_S: u64 = 8;

/// [`provision`], again after a denial, as a device in the field does.
async fn provision_with_retries(
    shared: &Shared,
    spec: &DeviceSpec,
    denials: &mut usize,
) -> Result<Option<String>, String> {
    let mut attempt = 1;
    loop {
        let answer = provision(shared, spec).await;
        *denials += usize::from(matches!(answer, Ok(None)));
        match answer {
            Ok(Some(certificate)) => return Ok(Some(certificate)),
            Ok(None) if attempt >= shared.behaviour.provision_attempts => return Ok(None),
            // IoT Core's own failures (a 5xx status: the hook could not be run) are worth
            // another try too; anything else is a failure of the run.
            Err(e)
                if attempt >= shared.behaviour.provision_attempts
                    || !e.contains(SERVER_FAILURE) =>
            {
                return Err(e);
            }
            Ok(None) | Err(_) => {
                let wait = (1u64 << attempt.min(6)).min(PROVISION_BACKOFF_CAP_S);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                attempt += 1;
            }
        }
    }
}

/// How [`provision`] marks a rejection IoT Core answered with a 5xx status.
const SERVER_FAILURE: &str = "(IoT Core failed)";

/// Fleet provisioning by claim; `None` when the request was rejected.
async fn provision(shared: &Shared, spec: &DeviceSpec) -> Result<Option<String>, String> {
    let names = &shared.names;
    let timeout = shared.behaviour.answer_timeout;
    let mut session = Session::connect(
        &names.mqtt_host,
        names.mqtt_port,
        &format!("{CLAIM_CLIENT_ID_PREFIX}{}", spec.serial),
        &shared.claim_username,
    )
    .await?;
    let create = "$aws/certificates/create/json";
    let provision = format!(
        "$aws/provisioning-templates/{}/provision/json",
        names.provisioning_template
    );
    for filter in [
        format!("{create}/accepted"),
        format!("{create}/rejected"),
        format!("{provision}/accepted"),
        format!("{provision}/rejected"),
    ] {
        session.subscribe(&filter).await?;
    }
    session.publish(create, "{}").await?;
    let (topic, payload) = session
        .receive(|t| t.starts_with(create), timeout)
        .await
        .ok_or_else(|| format!("{}: no answer to CreateKeysAndCertificate", spec.serial))?;
    let created: Value = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
    if topic.ends_with("/rejected") {
        return Err(format!(
            "{}: CreateKeysAndCertificate rejected: {created}",
            spec.serial
        ));
    }
    let certificate_id = created["certificateId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if created["privateKey"].as_str().is_none() || created["certificatePem"].as_str().is_none() {
        return Err(format!(
            "{}: the certificate answer lacks its key or PEM",
            spec.serial
        ));
    }
    let request = json!({
        "certificateOwnershipToken": created["certificateOwnershipToken"],
        "parameters": {"SerialNumber": spec.serial},
    });
    session.publish(&provision, request.to_string()).await?;
    let (topic, payload) = session
        .receive(|t| t.starts_with(&provision), timeout)
        .await
        .ok_or_else(|| format!("{}: no answer to RegisterThing", spec.serial))?;
    session.disconnect().await;
    let answer: Value = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
    if topic.ends_with("/rejected") {
        // Denied is the hook's "no"; any other rejection is a failure of the run.
        if answer["errorCode"] == "AccessDenied" {
            return Ok(None);
        }
        let failed = if answer["statusCode"]
            .as_u64()
            .is_some_and(|code| code >= 500)
        {
            SERVER_FAILURE
        } else {
            ""
        };
        return Err(format!(
            "{}: RegisterThing rejected {failed}: {answer}",
            spec.serial
        ));
    }
    if answer["thingName"].as_str() != Some(spec.thing.as_str()) {
        return Err(format!(
            "{}: provisioned as {} instead of {}",
            spec.serial, answer["thingName"], spec.thing
        ));
    }
    Ok(Some(certificate_id))
}

async fn operate(
    shared: &Shared,
    spec: &DeviceSpec,
    certificate: &str,
    outcome: &mut Outcome,
) -> Result<Session, String> {
    let names = &shared.names;
    let connect = || Session::connect(&names.mqtt_host, names.mqtt_port, &spec.thing, certificate);
    let mut session = Some(connect().await?);
    let telemetry = Telemetry {
        topic: format!("fleet/{}/telemetry", spec.thing),
        token: if spec.https {
            Some(device_token(shared, &spec.thing).await?)
        } else {
            None
        },
    };
    let behaviour = &shared.behaviour;
    let rate = if spec.spikes {
        behaviour.rate * SPIKING_RATE_FACTOR
    } else {
        behaviour.rate
    };
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut readings_sent = 0u64;
    let started = tokio::time::Instant::now();
    let flap_at = behaviour.duration.mul_f64(0.4 + fastrand::f64() * 0.2);
    let flap_for = Duration::from_secs(3).min(behaviour.duration / 5);
    let mut buffered: Vec<(Value, Sent)> = Vec::new();
    let mut flapped = false;
    let mut last_ms = 0i64;
    tokio::time::sleep(Duration::from_millis(fastrand::u64(
        0..interval.as_millis().max(1) as u64,
    )))
    .await;
    while started.elapsed() < behaviour.duration {
        let elapsed = started.elapsed();
        if spec.flaps && !flapped && elapsed >= flap_at {
            if let Some(live) = session.take() {
                // Half of them vanish without a word, the others say goodbye.
                if spec.index.is_multiple_of(2) {
                    live.drop_link().await;
                } else {
                    live.disconnect().await;
                }
            }
            flapped = true;
        }
        if session.is_none() && flapped && elapsed >= flap_at + flap_for {
            let live = connect().await?;
            if !buffered.is_empty() {
                let records: Vec<Value> = buffered.iter().map(|(r, _)| r.clone()).collect();
                let kinds: Vec<Kind> = buffered.iter().map(|(_, s)| s.kind).collect();
                telemetry
                    .send(shared, &live, json!({"records": records}), &kinds)
                    .await?;
                record_sent(
                    shared,
                    std::mem::take(&mut buffered).into_iter().map(|(_, s)| s),
                )
                .await;
            }
            session = Some(live);
        }
        let spike = spec.spikes && readings_sent == SPIKE_AFTER_READINGS;
        readings_sent += 1;
        let (reading, sent) = reading(shared, spec, &mut last_ms, spike);
        match &session {
            Some(live) => {
                telemetry.send(shared, live, reading, &[sent.kind]).await?;
                record_sent(shared, [sent]).await;
            }
            None => buffered.push((reading, sent)),
        }
        tokio::time::sleep(interval).await;
    }
    let mut live = match session {
        Some(live) => live,
        None => {
            let live = connect().await?;
            if !buffered.is_empty() {
                let records: Vec<Value> = buffered.iter().map(|(r, _)| r.clone()).collect();
                let kinds: Vec<Kind> = buffered.iter().map(|(_, s)| s.kind).collect();
                telemetry
                    .send(shared, &live, json!({"records": records}), &kinds)
                    .await?;
                record_sent(shared, buffered.into_iter().map(|(_, s)| s)).await;
            }
            live
        }
    };
    update_firmware(shared, spec, &mut live, outcome).await?;
    Ok(live)
}

/// How much faster the spiking device sends.
const SPIKING_RATE_FACTOR: f64 = 4.0;
/// Readings the spiking device sends before its spike: more than the stream processor's
/// 30 samples before it scores a device against its history, rejected ones included.
const SPIKE_AFTER_READINGS: u64 = 40;
/// The spike: inside the processor's fixed bounds (-40 to 85 °C), so only the device's
/// own history (15 to 30 °C so far) makes it an anomaly.
const SPIKE_TEMPERATURE: f64 = 80.0;

/// A reading with a run-wide sequence number (kept by the system as an unknown field).
fn reading(shared: &Shared, spec: &DeviceSpec, last_ms: &mut i64, spike: bool) -> (Value, Sent) {
    let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
    let behaviour = &shared.behaviour;
    let roll = fastrand::f64();
    let kind = if spike {
        Kind::Valid
    } else if roll < behaviour.invalid_share {
        Kind::Invalid
    } else if roll < behaviour.invalid_share + behaviour.spoofed_share {
        Kind::Spoofed
    } else {
        Kind::Valid
    };
    // Strictly increasing per device, so the newest reading is unambiguous.
    let timestamp_ms = now_ms().max(*last_ms + 1);
    *last_ms = timestamp_ms;
    let temperature = match kind {
        Kind::Invalid => 999.0,
        _ if spike => SPIKE_TEMPERATURE,
        _ => (1500 + fastrand::u32(0..1500)) as f64 / 100.0,
    };
    let device_id = match kind {
        Kind::Spoofed => format!("{}-imposter", spec.thing),
        _ => spec.thing.clone(),
    };
    let mut reading = json!({
        "device_id": device_id,
        "timestamp": timestamp_ms,
        "temperature": temperature,
        "humidity": 40 + fastrand::u32(0..20),
        "pressure": 1000 + fastrand::u32(0..20),
        "location": {"latitude": 37.5665, "longitude": 126.978},
        "metadata": {"version": "1.0.0", "source": "fleet-sim"},
        "seq": seq,
    });
    if kind == Kind::Spoofed {
        // An imposter also tries to steer the rule's own fields; it is still judged by
        // the topic it published on.
        reading["thing_name"] = json!(device_id);
        reading["received_at"] = json!(0);
    }
    let sent = Sent {
        seq,
        thing: spec.thing.clone(),
        kind,
        timestamp_ms,
        temperature,
        spike,
        published: Instant::now(),
    };
    (reading, sent)
}

async fn record_sent(shared: &Shared, sent: impl IntoIterator<Item = Sent>) {
    let mut log = shared.sent.lock().await;
    let before = log.len();
    log.extend(sent);
    shared.progress.inc((log.len() - before) as u64);
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
