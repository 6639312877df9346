//! What the functions met: each invocation that saw an AWS call fail or retry logs one line
//! (`fleetwire::runtime::serve`) with `sdk_retries=N` and `sdk_errors=CODE=N, ...`; a chaos
//! run reads the lines its functions wrote to the log `cargo lambda watch` keeps.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;

const MARK: &str = "AWS calls failed or were retried during the invocation";
/// The provisioning hook's line for each decision, with the time it took (`duration_ms`).
const DECISION: &str = "provisioning decision";

/// The retries and error codes of the invocations that met any, and how long the
/// provisioning hook took to decide.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Met {
    pub invocations: u64,
    pub retries: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    pub hook_decisions: u64,
    pub hook_slowest_ms: u64,
}

impl Met {
    /// Adds one log line, if it is one of those.
    pub fn add_line(&mut self, line: &str) {
        let line = strip_colours(line);
        if let Some(at) = line.find(DECISION) {
            let took = field(&line[at..], "duration_ms=")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(took) = took {
                self.hook_decisions += 1;
                self.hook_slowest_ms = self.hook_slowest_ms.max(took);
            }
            return;
        }
        let Some(at) = line.find(MARK) else {
            return;
        };
        let fields = &line[at + MARK.len()..];
        self.invocations += 1;
        if let Some(retries) = field(fields, "sdk_retries=") {
            self.retries += retries
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Some(errors) = field(fields, "sdk_errors=") {
            for pair in errors.split(", ") {
                if let Some((code, n)) = pair.trim().rsplit_once('=')
                    && let Ok(n) = n.trim().parse::<u64>()
                {
                    *self.errors_by_code.entry(code.to_owned()).or_default() += n;
                }
            }
        }
    }
}

/// The text after `name` up to the end of the line (the errors are the last field).
fn field<'a>(fields: &'a str, name: &str) -> Option<&'a str> {
    fields
        .find(name)
        .map(|at| fields[at + name.len()..].trim_end())
}

fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The log's length now: where this run's lines begin.
pub fn end_of(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// What the functions met in the lines written to `path` after `from`.
pub fn met_since(path: &Path, from: u64) -> Result<Met, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.seek(SeekFrom::Start(from))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut met = Met::default();
    for line in String::from_utf8_lossy(&bytes).lines() {
        met.add_line(line);
    }
    Ok(met)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_and_codes_are_summed_over_the_lines() {
        let mut met = Met::default();
        met.add_line(r#" WARN Lambda runtime invoke{requestId="3f35"}: AWS calls failed or were retried during the invocation sdk_calls=1 sdk_retries=0 sdk_errors=ConditionalCheckFailedException=1"#);
        met.add_line("\u{1b}[33m WARN\u{1b}[0m invoke: AWS calls failed or were retried during the invocation sdk_calls=4 sdk_retries=2 sdk_errors=ProvisionedThroughputExceededException=1, ServiceUnavailable=1");
        met.add_line(" INFO telemetry ingested records=3");
        met.add_line(r#" WARN invoke: provisioning decision serial="S-1" decision="deny" reason="unknown-serial" detail=unknown serial locked_now=false duration_ms=174"#);
        met.add_line(
            r#" INFO invoke: provisioning decision serial="S-2" decision="allow" duration_ms=2950"#,
        );
        assert_eq!((met.hook_decisions, met.hook_slowest_ms), (2, 2950));
        assert_eq!(met.invocations, 2);
        assert_eq!(met.retries, 2);
        assert_eq!(
            met.errors_by_code.into_iter().collect::<Vec<_>>(),
            [
                ("ConditionalCheckFailedException".to_owned(), 1),
                ("ProvisionedThroughputExceededException".to_owned(), 1),
                ("ServiceUnavailable".to_owned(), 1),
            ]
        );
    }

    #[test]
    fn only_the_lines_after_the_start_count() {
        let dir = std::env::temp_dir().join(format!("fleet-sim-log-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lambda.log");
        let line = "x: AWS calls failed or were retried during the invocation sdk_calls=2 sdk_retries=1 sdk_errors=ThrottlingException=1\n";
        std::fs::write(&path, line).unwrap();
        let start = end_of(&path);
        std::fs::write(&path, format!("{line}{line}")).unwrap();
        let met = met_since(&path, start).unwrap();
        assert_eq!((met.invocations, met.retries), (1, 1));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
