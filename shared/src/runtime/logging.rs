//! Logging shared by every function: `tracing` events, filtered as Lambda's advanced
//! logging controls say (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`). With
//! `AWS_LAMBDA_LOG_FORMAT=JSON` (the template's `LoggingConfig`) each line is one JSON
//! object with the keys Powertools for AWS Lambda writes (`level`, `message`, `timestamp`,
//! `service`, `cold_start`, `function_request_id`, `xray_trace_id`, and `device_id` when the
//! event names one), then the event's own fields, so CloudWatch Logs Insights queries
//! written for Powertools work on fleetwire's logs. Otherwise the text format of
//! lambda_runtime's default subscriber.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use lambda_runtime::tracing::subscriber;
use serde_json::{Map, Value};
use subscriber::filter::{EnvFilter, LevelFilter};
use subscriber::fmt::format::Writer;
use subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use subscriber::registry::LookupSpan;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};

/// The invocation being handled: Lambda gives a process one event at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub request_id: String,
    pub trace_id: Option<String>,
    pub cold_start: bool,
}

static INVOCATION: Mutex<Option<Invocation>> = Mutex::new(None);

/// Names the invocation the next log lines belong to; `None` once it is answered.
pub fn set_invocation(invocation: Option<Invocation>) {
    *INVOCATION.lock().unwrap_or_else(|e| e.into_inner()) = invocation;
}

/// The X-Ray trace header of the invocation being handled (`Root=...;Parent=...;Sampled=1`).
pub fn current_trace_header() -> Option<String> {
    INVOCATION
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|i| i.trace_id.clone())
}

/// Installs the subscriber; call first thing in `main`. `service` is the function's name.
pub fn init(service: &str) {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if !json {
        lambda_runtime::tracing::init_default_subscriber();
        return;
    }
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| LevelFilter::from_str(&l).ok())
        .unwrap_or(LevelFilter::INFO);
    subscriber::fmt()
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        )
        .event_format(PowertoolsJson {
            service: service.to_owned(),
        })
        .with_writer(std::io::stdout)
        .init();
}

/// One JSON object per event, with Powertools' keys first.
pub struct PowertoolsJson {
    pub service: String,
}

/// Keys the event's own fields may not take.
const RESERVED: [&str; 8] = [
    "level",
    "message",
    "timestamp",
    "service",
    "cold_start",
    "function_request_id",
    "xray_trace_id",
    "device_id",
];

impl<S, N> FormatEvent<S, N> for PowertoolsJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut fields = fields.0;
        let mut line = Map::new();
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert(
            "message".into(),
            fields.remove("message").unwrap_or(Value::Null),
        );
        line.insert(
            "timestamp".into(),
            OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default()
                .into(),
        );
        line.insert("service".into(), self.service.clone().into());
        if let Some(invocation) = INVOCATION
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            line.insert("cold_start".into(), invocation.cold_start.into());
            line.insert(
                "function_request_id".into(),
                invocation.request_id.clone().into(),
            );
            if let Some(trace) = &invocation.trace_id {
                line.insert("xray_trace_id".into(), trace.clone().into());
            }
        }
        // A device named under either of the names the functions log it by.
        if let Some(device) = fields
            .get("device_id")
            .or_else(|| fields.get("thing_name"))
            .filter(|d| d.as_str().is_some_and(|d| !d.is_empty() && d != "-"))
        {
            line.insert("device_id".into(), device.clone());
        }
        for (key, value) in fields {
            if !RESERVED.contains(&key.as_str()) {
                line.insert(key, value);
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// An event's fields as JSON values.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_line_carries_powertools_keys_and_the_events_fields() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = subscriber::fmt()
            .event_format(PowertoolsJson {
                service: "fleetwire-dev-provisioning-hook".into(),
            })
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            set_invocation(Some(Invocation {
                request_id: "8476a536-e9f4-11e8-9739-2dfe598c3fcd".into(),
                trace_id: Some("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700".into()),
                cold_start: true,
            }));
            tracing::warn!(thing_name = "car-0001", decision = "deny", attempts = 3u64,
                detail = %"unknown serial", "provisioning decision");
            set_invocation(None);
            tracing::info!(service = "spoof", "between invocations");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "provisioning decision");
        assert_eq!(line["service"], "fleetwire-dev-provisioning-hook");
        assert_eq!(line["cold_start"], true);
        assert_eq!(
            line["function_request_id"],
            "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
        );
        assert_eq!(
            line["xray_trace_id"],
            "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700"
        );
        assert_eq!(line["device_id"], "car-0001");
        assert_eq!(line["decision"], "deny");
        assert_eq!(line["attempts"], 3);
        assert_eq!(line["detail"], "unknown serial");
        assert!(OffsetDateTime::parse(line["timestamp"].as_str().unwrap(), &Rfc3339).is_ok());
        let after = &lines[1];
        assert!(after.get("function_request_id").is_none());
        assert_eq!(
            after["service"], "fleetwire-dev-provisioning-hook",
            "a field cannot take a reserved key"
        );
    }
}
