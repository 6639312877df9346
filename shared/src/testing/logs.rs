//! A function's log lines in a test, as its JSON formatter writes them: [`capture`] makes
//! the formatter the process's subscriber (once; a subscriber scoped to one test's thread
//! misses events when tests run in parallel, as tracing caches each call site's interest
//! for the whole process) and names an invocation; [`Captured::line`] finds a line among
//! everything the process's tests logged.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use lambda_runtime::tracing::subscriber;
use serde_json::Value;

use crate::runtime::logging::{Invocation, PowertoolsJson, set_invocation};

/// The request id the captured lines carry.
pub const REQUEST_ID: &str = "test-request-0001";

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Every line written so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8(bytes)
            .expect("log lines are UTF-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("each log line is one JSON object"))
            .collect()
    }

    /// The first line whose message is `message` and whose `key` is `value` (any, when
    /// `None`).
    pub fn line(&self, message: &str, field: Option<(&str, &str)>) -> Value {
        let lines = self.lines();
        lines
            .iter()
            .find(|l| l["message"] == message && field.is_none_or(|(k, v)| l[k] == v))
            .cloned()
            .unwrap_or_else(|| panic!("no line {message:?} with {field:?} in {lines:#?}"))
    }
}

static CAPTURED: OnceLock<Captured> = OnceLock::new();

/// Makes the JSON formatter of `service` the process's subscriber (the first call's
/// `service` stays) and returns what it writes.
pub fn capture(service: &str) -> &'static Captured {
    let captured = CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = subscriber::fmt()
            .event_format(PowertoolsJson {
                service: service.to_owned(),
            })
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test sets the process's subscriber");
        captured
    });
    set_invocation(Some(Invocation {
        request_id: REQUEST_ID.into(),
        trace_id: None,
        cold_start: false,
    }));
    captured
}

/// Checks the keys every line of a function carries.
pub fn assert_powertools_keys(line: &Value, service: &str) {
    for key in ["level", "message", "timestamp", "cold_start"] {
        assert!(line.get(key).is_some(), "{key} missing from {line}");
    }
    assert_eq!(line["service"], service, "{line}");
    assert!(line["function_request_id"].is_string(), "{line}");
}
