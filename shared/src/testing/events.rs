//! The sample events under `events/<function>/`, loaded by name, the one way every test
//! reads them.

use std::path::PathBuf;

/// The file `events/<function>/<name>` of the workspace.
pub fn event_path(function: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(function)
        .join(name)
}

/// The text of `events/<function>/<name>`; a missing file is a broken test, so it panics
/// with the path.
pub fn event_text(function: &str, name: &str) -> String {
    let path = event_path(function, name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the sample event {}: {e}", path.display()))
}

/// `events/<function>/<name>` as JSON.
pub fn event(function: &str, name: &str) -> serde_json::Value {
    let text = event_text(function, name);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("events/{function}/{name} is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_sample_event_by_function_and_name() {
        let event = event("presence", "connected.json");
        assert_eq!(event["eventType"], "connected");
    }

    #[test]
    #[should_panic(expected = "events/presence/no-such-event.json")]
    fn a_missing_event_names_its_path() {
        event_text("presence", "no-such-event.json");
    }
}
