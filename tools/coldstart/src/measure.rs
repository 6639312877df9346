//! Fresh starts of a function process under the loopback Runtime API: init (spawn to the
//! first `next`), the first invocation, warm invocations and peak resident memory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::process::{Child, Command};

use crate::runtime_api::{ApiError, Outcome, Poll, RuntimeApi};
use crate::stats::{median, median_u64, ms, percentile};

/// What to start and how: the command, its working directory and the environment on top
/// of what Lambda itself sets.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub command: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub memory_mb: u32,
    /// Where the function's stdout and stderr go; discarded when `None`.
    pub log: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("cannot start {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("cannot open the log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the function exited ({status}) before it asked for an event")]
    Exited { status: String },
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The events to send, in turn: invocation `n` of a run gets event `n % len`, counted
/// across starts, so a run of distinct events never sends one twice until it wraps.
#[derive(Debug, Clone)]
pub struct Events {
    list: Vec<Bytes>,
    sent: usize,
}

impl Events {
    /// `None` for an empty list.
    pub fn new(list: Vec<Bytes>) -> Option<Events> {
        (!list.is_empty()).then_some(Events { list, sent: 0 })
    }

    pub fn one(event: Bytes) -> Events {
        Events {
            list: vec![event],
            sent: 0,
        }
    }

    fn next(&mut self) -> &Bytes {
        let event = &self.list[self.sent % self.list.len()];
        self.sent += 1;
        event
    }
}

/// One fresh start.
#[derive(Debug, Clone)]
pub struct StartSample {
    pub init: Duration,
    pub first: Duration,
    pub warm: Vec<Duration>,
    pub peak_rss_kib: Option<u64>,
    pub errors: usize,
    pub first_outcome: Outcome,
}

/// The environment Lambda gives a function process (see "Defined runtime environment
/// variables" in the Lambda developer guide), for a function named `name`.
pub fn lambda_environment(name: &str, memory_mb: u32, runtime_api: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".to_string()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
        ("_HANDLER", "bootstrap".to_string()),
        ("TZ", ":UTC".to_string()),
        ("LANG", "en_US.UTF-8".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The process's peak resident set (`VmHWM`), in KiB; `None` where `/proc` has no answer.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

fn spawn(target: &Target, api: &RuntimeApi) -> Result<Child, MeasureError> {
    let (program, args) = target
        .command
        .split_first()
        .ok_or_else(|| MeasureError::Spawn {
            command: String::new(),
            source: std::io::Error::other("no command given"),
        })?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(inherited())
        .envs(target.env.iter().cloned())
        .envs(lambda_environment(
            &target.name,
            target.memory_mb,
            &api.address(),
        ))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(cwd) = &target.cwd {
        command.current_dir(cwd);
    }
    match &target.log {
        Some(path) => {
            let open = || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| MeasureError::Log {
                        path: path.clone(),
                        source,
                    })
            };
            command.stdout(open()?).stderr(open()?);
        }
        None => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    command.spawn().map_err(|source| MeasureError::Spawn {
        command: target.command.join(" "),
        source,
    })
}

/// What a function process keeps of the harness's own environment: the search path and
/// the AWS settings (credentials, region, local endpoints), as Lambda passes its own.
fn inherited() -> impl Iterator<Item = (String, String)> {
    std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME" || k.starts_with("AWS_"))
}

async fn poll_or_exit(api: &mut RuntimeApi, child: &mut Child) -> Result<Poll, MeasureError> {
    // The API first: a function that reports an init error exits right after it.
    tokio::select! {
        biased;
        poll = api.next_poll() => Ok(poll?),
        status = child.wait() => Err(MeasureError::Exited {
            status: status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
        }),
    }
}

/// Starts `target` fresh, sends an event once cold and `warm_calls` times warm, reads its
/// peak memory while it waits for more, and stops it.
pub async fn one_start(
    api: &mut RuntimeApi,
    target: &Target,
    events: &mut Events,
    warm_calls: usize,
) -> Result<StartSample, MeasureError> {
    let spawned = Instant::now();
    let mut child = spawn(target, api)?;
    let poll = poll_or_exit(api, &mut child).await?;
    let init = poll.at.duration_since(spawned);
    let first = api.invoke(poll, events.next()).await?;
    let mut errors = usize::from(matches!(first.outcome, Outcome::Error(_)));
    let mut warm = Vec::with_capacity(warm_calls);
    for _ in 0..warm_calls {
        let poll = poll_or_exit(api, &mut child).await?;
        let invocation = api.invoke(poll, events.next()).await?;
        errors += usize::from(matches!(invocation.outcome, Outcome::Error(_)));
        warm.push(invocation.duration());
    }
    // Idle again: everything the function allocated for its invocations is counted.
    let idle = poll_or_exit(api, &mut child).await?;
    let peak_rss_kib = child.id().and_then(peak_rss_kib);
    // Stopped while it waits, as Lambda freezes it: letting the poll go first would answer
    // it without an event, which lambda_runtime takes for a broken API and panics over.
    let _ = child.kill().await;
    drop(idle);
    Ok(StartSample {
        init,
        first: first.duration(),
        warm,
        peak_rss_kib,
        errors,
        first_outcome: first.outcome,
    })
}

/// The figures of a run of fresh starts, in milliseconds and MiB.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub starts: usize,
    pub warm_calls_per_start: usize,
    /// Median of spawn to the first `next` request.
    pub init_ms: f64,
    /// Median of the first invocation (event handed over to answer received).
    pub first_invocation_ms: f64,
    /// Median of init plus first invocation: what a caller waits on a cold start.
    pub cold_start_ms: f64,
    pub warm_p50_ms: f64,
    pub warm_p99_ms: f64,
    pub peak_rss_mib: Option<f64>,
    /// Invocations the function answered with an error (the event should not cause any).
    pub errors: usize,
    /// The first answer of the first start, to show what was measured.
    pub first_answer: String,
}

pub fn summarise(name: &str, samples: &[StartSample]) -> Summary {
    let inits: Vec<_> = samples.iter().map(|s| s.init).collect();
    let firsts: Vec<_> = samples.iter().map(|s| s.first).collect();
    let colds: Vec<_> = samples.iter().map(|s| s.init + s.first).collect();
    let warm: Vec<_> = samples
        .iter()
        .flat_map(|s| s.warm.iter().copied())
        .collect();
    let rss: Vec<_> = samples.iter().filter_map(|s| s.peak_rss_kib).collect();
    let of = |d: Option<Duration>| d.map(ms).unwrap_or(f64::NAN);
    let first_answer = match samples.first().map(|s| &s.first_outcome) {
        Some(Outcome::Response(body)) => body.clone(),
        Some(Outcome::Error(body)) => format!("error: {body}"),
        None => String::new(),
    };
    Summary {
        name: name.to_string(),
        starts: samples.len(),
        warm_calls_per_start: samples.first().map_or(0, |s| s.warm.len()),
        init_ms: of(median(&inits)),
        first_invocation_ms: of(median(&firsts)),
        cold_start_ms: of(median(&colds)),
        warm_p50_ms: of(percentile(&warm, 50.0)),
        warm_p99_ms: of(percentile(&warm, 99.0)),
        peak_rss_mib: median_u64(&rss).map(|kib| kib as f64 / 1024.0),
        errors: samples.iter().map(|s| s.errors).sum(),
        first_answer: first_answer.chars().take(300).collect(),
    }
}

/// `starts` fresh starts of `target`, one after another.
pub async fn measure(
    api: &mut RuntimeApi,
    target: &Target,
    events: &mut Events,
    starts: usize,
    warm_calls: usize,
) -> Result<Summary, MeasureError> {
    let mut samples = Vec::with_capacity(starts);
    for _ in 0..starts {
        samples.push(one_start(api, target, events, warm_calls).await?);
    }
    Ok(summarise(&target.name, &samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_sent_in_turn_across_starts() {
        assert!(Events::new(vec![]).is_none());
        let mut events = Events::new(vec![Bytes::from("a"), Bytes::from("b")]).unwrap();
        let sent: Vec<_> = (0..5).map(|_| events.next().clone()).collect();
        assert_eq!(sent, ["a", "b", "a", "b", "a"]);
        let mut one = Events::one(Bytes::from("x"));
        assert_eq!(one.next(), "x");
        assert_eq!(one.next(), "x");
    }

    #[test]
    fn the_peak_resident_set_is_read_from_proc_status() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  20000 kB\nVmHWM:\t    9876 kB\nVmRSS:\t    9000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(9876));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
        assert!(peak_rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn lambda_sets_what_the_runtime_clients_require() {
        let env = lambda_environment("provisioning-hook", 256, "127.0.0.1:9001");
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), Some("256"));
        assert_eq!(
            get("AWS_LAMBDA_LOG_GROUP_NAME"),
            Some("/aws/lambda/provisioning-hook")
        );
        assert_eq!(get("AWS_LAMBDA_FUNCTION_VERSION"), Some("$LATEST"));
    }

    #[test]
    fn a_summary_takes_medians_of_starts_and_percentiles_of_all_warm_calls() {
        let sample = |init, first, warm: &[u64], rss| StartSample {
            init: Duration::from_millis(init),
            first: Duration::from_millis(first),
            warm: warm.iter().map(|w| Duration::from_millis(*w)).collect(),
            peak_rss_kib: Some(rss),
            errors: 0,
            first_outcome: Outcome::Response("{}".into()),
        };
        let summary = summarise(
            "f",
            &[
                sample(10, 5, &[1, 2], 2048),
                sample(30, 1, &[3, 100], 4096),
                sample(20, 3, &[2, 2], 3072),
            ],
        );
        assert_eq!(summary.init_ms, 20.0);
        assert_eq!(summary.first_invocation_ms, 3.0);
        assert_eq!(summary.cold_start_ms, 23.0);
        assert_eq!(summary.warm_p50_ms, 2.0);
        assert_eq!(summary.warm_p99_ms, 100.0);
        assert_eq!(summary.peak_rss_mib, Some(3.0));
        assert_eq!(summary.warm_calls_per_start, 2);
        assert_eq!(summary.first_answer, "{}");
    }
}
