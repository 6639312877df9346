//! A run under faults (`--faults PROFILE`): while the devices live, the fault layer of the
//! local stack (`FLEETWIRE_FAULTS=1`, `tools/faults`) gets a fresh draw of the profile's
//! faults for each route every few seconds; when the devices are done the faults go off,
//! the pipeline drains, and the report says what was injected and what the functions met.

pub mod log;
pub mod profile;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::exchange::exchange;
use profile::{KILL_EVERY, KILL_TARGETS, Profile, ROUTES, WINDOW};

/// What a chaos run injected and what the functions made of it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultsReport {
    pub profile: String,
    /// The fault layer's count by kind: protocol errors per call (throttled PutRecords
    /// entries per entry), TCP toxics per window they were on.
    pub injected_by_kind: BTreeMap<String, u64>,
    /// Processes killed with SIGKILL (the functions under `cargo lambda watch`, DynamoDB
    /// Local).
    pub kills: u64,
    /// Of those, started again.
    pub restarts: u64,
    /// Services frozen with SIGSTOP and thawed.
    pub freezes: u64,
    /// What each kill did, as `scripts/stack kill` said it.
    pub kill_log: Vec<String>,
    /// From the functions' own log lines: the invocations that met a failed or retried
    /// AWS call, their retries and the error codes; the hook's slowest decision.
    pub functions: log::Met,
    /// The hook's budget to decide in (`DECISION_BUDGET_MS` of the stack, 3000 by default).
    pub hook_budget_ms: u64,
}

impl FaultsReport {
    /// The report table's faults section: one row per kind injected, then what the
    /// functions met.
    pub fn rows(&self) -> Vec<(&'static str, String, String)> {
        let mut rows = vec![("faults", "profile".to_owned(), self.profile.clone())];
        for (kind, n) in &self.injected_by_kind {
            rows.push(("", format!("injected: {kind}"), n.to_string()));
        }
        let met = &self.functions;
        for (name, n) in [
            ("kills", self.kills),
            ("restarts", self.restarts),
            ("freezes", self.freezes),
            ("functions: invocations that met faults", met.invocations),
            ("functions: SDK retries", met.retries),
            ("hook: slowest decision (ms)", met.hook_slowest_ms),
        ] {
            rows.push(("", name.to_owned(), n.to_string()));
        }
        for (code, n) in &met.errors_by_code {
            rows.push(("", format!("functions: {code}"), n.to_string()));
        }
        rows
    }
}

#[derive(Clone)]
pub struct Chaos {
    control: String,
    client: Client<HttpConnector, Full<Bytes>>,
    profile: Profile,
    function_log: Option<PathBuf>,
    log_start: u64,
    injected_before: BTreeMap<String, u64>,
    kills: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Chaos {
    /// Reaches the fault layer at `control` and notes where the run begins.
    pub async fn connect(
        control: &str,
        profile: Profile,
        function_log: Option<PathBuf>,
    ) -> Result<Chaos, String> {
        let mut chaos = Chaos {
            control: control.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            profile,
            log_start: function_log.as_deref().map_or(0, log::end_of),
            function_log,
            injected_before: BTreeMap::new(),
            kills: Default::default(),
        };
        let now = chaos.call(http::Method::DELETE, "/faults", None).await?;
        chaos.injected_before = injected(&now);
        Ok(chaos)
    }

    /// Draws the profile's faults for every route each window, and kills processes if it
    /// says so, until `stop` turns true.
    pub async fn drive(self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let killer = self
            .profile
            .kills()
            .then(|| tokio::spawn(self.clone().kill_now_and_then(stop.clone())));
        let switched = self.switch(&mut stop).await;
        if let Some(killer) = killer {
            killer
                .await
                .map_err(|e| format!("the killer stopped: {e}"))??;
        }
        switched
    }

    async fn switch(&self, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        let mut rng = fastrand::Rng::new();
        while !*stop.borrow() {
            for route in ROUTES {
                let faults = self.profile.window(route, &mut rng);
                self.call(http::Method::PUT, &format!("/faults/{route}"), Some(faults))
                    .await?;
            }
            tokio::select! {
                _ = tokio::time::sleep(WINDOW) => {}
                _ = stop.changed() => {}
            }
        }
        Ok(())
    }

    /// A process killed at a random moment, again and again until `stop`.
    async fn kill_now_and_then(self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let script = std::env::var("FLEETWIRE_STACK_SCRIPT").map_err(|_| {
            "--faults kills needs FLEETWIRE_STACK_SCRIPT from the faulty stack's stack.env"
                .to_owned()
        })?;
        let mut rng = fastrand::Rng::new();
        let mut round = Vec::new();
        loop {
            if round.is_empty() {
                round = KILL_TARGETS.to_vec();
                rng.shuffle(&mut round);
            }
            let wait = Duration::from_secs(rng.u64(KILL_EVERY));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return Ok(()),
            }
            if *stop.borrow() {
                return Ok(());
            }
            let target = round.pop().unwrap_or("lambda");
            let output = tokio::process::Command::new("bash")
                .arg(&script)
                .arg("kill")
                .arg(target)
                .output()
                .await
                .map_err(|e| format!("{script} kill {target}: {e}"))?;
            let said = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if !output.status.success() {
                return Err(format!(
                    "{script} kill {target} failed: {said} {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            eprintln!("fleet-sim: {said}");
            if let Ok(mut kills) = self.kills.lock() {
                kills.push(said);
            }
        }
    }

    /// Every fault off, and the run's figures.
    pub async fn finish(&self) -> Result<FaultsReport, String> {
        let now = self.call(http::Method::DELETE, "/faults", None).await?;
        let mut injected_by_kind = injected(&now);
        for (kind, n) in &self.injected_before {
            if let Some(total) = injected_by_kind.get_mut(kind) {
                *total = total.saturating_sub(*n);
            }
        }
        injected_by_kind.retain(|_, n| *n > 0);
        let functions = match &self.function_log {
            Some(path) => log::met_since(path, self.log_start)?,
            None => log::Met::default(),
        };
        let kill_log = self.kills.lock().map(|k| k.clone()).unwrap_or_default();
        let count = |prefix: &str, also: &str| {
            kill_log
                .iter()
                .filter(|l| l.starts_with(prefix) && l.contains(also))
                .count() as u64
        };
        Ok(FaultsReport {
            profile: self.profile.name().to_owned(),
            injected_by_kind,
            kills: count("killed", ""),
            restarts: count("killed", "restarted"),
            freezes: count("froze", ""),
            kill_log,
            functions,
            hook_budget_ms: std::env::var("DECISION_BUDGET_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3_000),
        })
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.control))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let (status, answer) = exchange(&self.client, request, Duration::from_secs(10))
            .await
            .map_err(|e| format!("the fault layer does not answer ({e}): start the stack with FLEETWIRE_FAULTS=1 (scripts/chaos does)"))?;
        let answer: Value = serde_json::from_slice(&answer)
            .map_err(|e| format!("the fault layer's answer is not JSON: {e}"))?;
        if !status.is_success() {
            return Err(format!("the fault layer refused {path}: {answer}"));
        }
        Ok(answer)
    }
}

fn injected(answer: &Value) -> BTreeMap<String, u64> {
    answer["injected_by_kind"]
        .as_object()
        .map(|kinds| {
            kinds
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}
