//! A function's log lines in a test, as its JSON formatter writes them: [`capture`] installs
//! the formatter for the current thread (a `#[tokio::test]` runs on one) and names an
//! invocation; [`Captured::lines`] parses what was written.

use std::io::Write;
use std::sync::{Arc, Mutex};

use lambda_runtime::tracing::subscriber;
use serde_json::Value;
use tracing::subscriber::DefaultGuard;

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

    /// The first line whose message is `message`.
    pub fn line(&self, message: &str) -> Value {
        let lines = self.lines();
        lines
            .iter()
            .find(|l| l["message"] == message)
            .cloned()
            .unwrap_or_else(|| panic!("no line {message:?} in {lines:#?}"))
    }
}

/// Installs the JSON formatter of `service` on this thread until the guard drops.
pub fn capture(service: &str) -> (DefaultGuard, Captured) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = subscriber::fmt()
        .event_format(PowertoolsJson {
            service: service.to_owned(),
        })
        .with_writer(move || writer.clone())
        .finish();
    set_invocation(Some(Invocation {
        request_id: REQUEST_ID.into(),
        trace_id: None,
        cold_start: false,
    }));
    (tracing::subscriber::set_default(subscriber), captured)
}

/// Checks the keys every line of a function carries.
pub fn assert_powertools_keys(line: &Value, service: &str) {
    for key in ["level", "message", "timestamp", "cold_start"] {
        assert!(line.get(key).is_some(), "{key} missing from {line}");
    }
    assert_eq!(line["service"], service, "{line}");
    assert!(line["function_request_id"].is_string(), "{line}");
}
