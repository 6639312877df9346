//! `fleetctl registry import FILE.csv`: a production batch's serials onto the allowlist.
//!
//! Rows are `serial,model[,thing_name[,claim_certificate_id]]`, with an optional header
//! line. The file is checked first (every bad row is reported with its line number and
//! nothing about it is written), then the serials' current rows are read, and:
//! - a new serial is written ALLOWED with BatchWriteItem, 25 at a time, sending again what
//!   DynamoDB leaves unprocessed (no device can create a serial, so nothing can race it);
//! - an ALLOWED serial whose row differs is replaced in a write conditional on it still
//!   being ALLOWED, so a device provisioning meanwhile is never undone;
//! - a PROVISIONED, LOCKED or REVOKED serial is skipped, unless `--force`, which re-arms
//!   it (ALLOWED, provisioning record cleared), again conditional on the status it had.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use fleetwire::adapters::DynamoRegistry;
use fleetwire::domain::device_state::WriteOutcome;
use fleetwire::domain::registry::{RegistryEntry, RegistryStatus, Serial};
use fleetwire::domain::telemetry::DeviceId;
use fleetwire::runtime::retry::RetryPolicy;
use serde::Serialize;

use crate::Failure;

/// A row of the file that can be imported.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    pub line: usize,
    pub serial: Serial,
    pub model: String,
    pub thing_name: Option<String>,
    pub claim_certificate_id: Option<String>,
}

/// A row that cannot, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidRow {
    pub line: usize,
    pub reason: String,
}

/// Reads the CSV text: the rows to import and the rows refused.
pub fn parse_csv(text: &str) -> (Vec<ImportRow>, Vec<InvalidRow>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut invalid = Vec::new();
    let mut serial_lines: HashMap<Serial, usize> = HashMap::new();
    let mut thing_lines: HashMap<String, usize> = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(index + 1, |p| line_at(text, p));
                invalid.push(InvalidRow {
                    line,
                    reason: format!("not CSV: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(index + 1, |p| line_at(text, p));
        let fields: Vec<&str> = record.iter().collect();
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        if index == 0 && fields[0].eq_ignore_ascii_case("serial") {
            continue;
        }
        match parse_row(line, &fields) {
            Ok(row) => {
                if let Some(first) = serial_lines.get(&row.serial) {
                    invalid.push(InvalidRow {
                        line,
                        reason: format!("serial {} is also on line {first}", row.serial),
                    });
                    continue;
                }
                let thing = row
                    .thing_name
                    .clone()
                    .unwrap_or_else(|| row.serial.to_string());
                if let Some(first) = thing_lines.get(&thing) {
                    invalid.push(InvalidRow {
                        line,
                        reason: format!("thing name {thing} is also on line {first}"),
                    });
                    continue;
                }
                serial_lines.insert(row.serial.clone(), line);
                thing_lines.insert(thing, line);
                rows.push(row);
            }
            Err(reason) => invalid.push(InvalidRow { line, reason }),
        }
    }
    (rows, invalid)
}

/// The file line a record starts on (the reader's own count skips blank and comment
/// lines, which would send an operator to the wrong line). Lines end where the CSV reader
/// ends them: at `\n`, `\r\n` or a lone `\r` (a file from an old Mac is still one row
/// per line).
fn line_at(text: &str, position: &csv::Position) -> usize {
    let start = (position.byte() as usize).min(text.len());
    let mut line = file_lines(&text[..start]).count();
    // The reported start can be a blank or comment line the reader skipped.
    for skipped in file_lines(&text[start..]) {
        let trimmed = skipped.trim();
        if !(trimmed.is_empty() || trimmed.starts_with('#')) {
            break;
        }
        line += 1;
    }
    line
}

/// The lines of `text` as the CSV reader ends them; text ending in a line end has an
/// empty last line, so a position just past one is on the next line.
pub(crate) fn file_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\n', '\r']) {
            Some(end) => {
                let next = if current[end..].starts_with("\r\n") {
                    end + 2
                } else {
                    end + 1
                };
                rest = Some(&current[next..]);
                Some(&current[..end])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn parse_row(line: usize, fields: &[&str]) -> Result<ImportRow, String> {
    if !(2..=4).contains(&fields.len()) {
        return Err(format!(
            "{} fields; expected serial,model[,thing_name[,claim_certificate_id]]",
            fields.len()
        ));
    }
    let serial = Serial::parse(fields[0])?;
    let model = fields[1];
    check_name("model", model, 64)?;
    let thing_name = fields
        .get(2)
        .filter(|t| !t.is_empty())
        .map(|t| check_thing_name(t).map(|()| t.to_string()))
        .transpose()?;
    let claim_certificate_id = fields
        .get(3)
        .filter(|c| !c.is_empty())
        .map(|c| {
            if c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(c.to_ascii_lowercase())
            } else {
                Err(format!(
                    "claim certificate id {c:?} is not 64 hex digits (an IoT certificate id)"
                ))
            }
        })
        .transpose()?;
    Ok(ImportRow {
        line,
        serial,
        model: model.to_string(),
        thing_name,
        claim_certificate_id,
    })
}

/// Models and such: 1 to `max` of `[A-Za-z0-9_.-]`.
pub fn check_name(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        Some(bad) => Err(format!(
            "{what} has character {bad:?} outside [A-Za-z0-9_.-]"
        )),
        None => Ok(()),
    }
}

/// IoT thing names as the whole system takes them: [`DeviceId`]'s rule (1 to 128 of
/// `[a-zA-Z0-9:_-]`, not in the claimants' client-id space).
pub fn check_thing_name(value: &str) -> Result<(), String> {
    DeviceId::parse(value)
        .map(|_| ())
        .map_err(|e| format!("thing name {e}"))
}

/// What the import does with each valid row, decided from the rows as they are now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Serials not in the Registry: batch written.
    pub create: Vec<RegistryEntry>,
    /// Existing rows to replace, each only while it still has the status observed.
    pub replace: Vec<(RegistryEntry, RegistryStatus)>,
    /// Rows already as the file says.
    pub unchanged: Vec<Serial>,
    /// Rows left alone, with the reason.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub line: usize,
    pub serial: String,
    pub reason: String,
}

/// Decides each row against `existing` (the current rows of the file's serials).
pub fn plan(rows: &[ImportRow], existing: &HashMap<Serial, RegistryEntry>, force: bool) -> Plan {
    let mut plan = Plan::default();
    for row in rows {
        let thing_name = row
            .thing_name
            .clone()
            .unwrap_or_else(|| row.serial.to_string());
        let Some(current) = existing.get(&row.serial) else {
            let mut entry = RegistryEntry::allowed(row.serial.clone(), &row.model, thing_name);
            entry.claim_certificate_ids = row.claim_certificate_id.iter().cloned().collect();
            plan.create.push(entry);
            continue;
        };
        let mut wanted = current.clone();
        wanted.model = row.model.clone();
        wanted.thing_name = thing_name;
        if let Some(claim) = &row.claim_certificate_id
            && !wanted.claim_certificate_ids.contains(claim)
        {
            wanted.claim_certificate_ids.push(claim.clone());
        }
        match current.status {
            RegistryStatus::Allowed if wanted == *current => {
                plan.unchanged.push(row.serial.clone());
            }
            RegistryStatus::Allowed => plan.replace.push((wanted, RegistryStatus::Allowed)),
            status if force => {
                wanted.status = RegistryStatus::Allowed;
                wanted.provisioning = None;
                wanted.denied_attempts = 0;
                plan.replace.push((wanted, status));
            }
            status => plan.skipped.push(Skipped {
                line: row.line,
                serial: row.serial.to_string(),
                reason: format!("{status}: left as it is (--force re-arms it for provisioning)"),
            }),
        }
    }
    plan
}

/// What an import did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    pub rows: usize,
    pub created: usize,
    pub replaced: usize,
    pub unchanged: usize,
    pub skipped: Vec<Skipped>,
    pub invalid: Vec<InvalidRow>,
    /// BatchWriteItem calls made, retries of unprocessed items included.
    pub batch_calls: usize,
}

impl ImportReport {
    pub fn imported(&self) -> usize {
        self.created + self.replaced
    }

    pub fn render(&self) -> String {
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        let mut out = format!(
            "{verb} {} of {} rows ({} new, {} updated); {} unchanged, {} skipped, {} invalid",
            self.imported(),
            self.rows,
            self.created,
            self.replaced,
            self.unchanged,
            self.skipped.len(),
            self.invalid.len()
        );
        for skip in &self.skipped {
            out.push_str(&format!(
                "\nline {}: skipped {}: {}",
                skip.line, skip.serial, skip.reason
            ));
        }
        for bad in &self.invalid {
            out.push_str(&format!("\nline {}: invalid: {}", bad.line, bad.reason));
        }
        out
    }
}

/// Backoff for unprocessed items: DynamoDB returns them under throttling, so wait longer
/// than the functions would, for up to a minute per batch.
pub fn import_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(5),
        budget: Duration::from_secs(60),
    }
}

/// Imports `path` into `registry`.
pub async fn run(
    registry: &DynamoRegistry,
    path: &Path,
    dry_run: bool,
    force: bool,
    retry: &RetryPolicy,
) -> Result<ImportReport, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let (rows, invalid) = parse_csv(&text);
    let serials: Vec<Serial> = rows.iter().map(|r| r.serial.clone()).collect();
    let existing: HashMap<Serial, RegistryEntry> = registry
        .batch_get(&serials, retry)
        .await?
        .into_iter()
        .map(|e| (e.serial.clone(), e))
        .collect();
    let mut plan = plan(&rows, &existing, force);
    let mut report = ImportReport {
        dry_run,
        rows: rows.len() + invalid.len(),
        created: plan.create.len(),
        replaced: plan.replace.len(),
        unchanged: plan.unchanged.len(),
        skipped: std::mem::take(&mut plan.skipped),
        invalid,
        batch_calls: 0,
    };
    if dry_run {
        return Ok(report);
    }
    let progress = progress_bar((plan.create.len() + plan.replace.len()) as u64);
    for chunk in plan
        .create
        .chunks(fleetwire::adapters::dynamodb::registry::BATCH_WRITE_MAX)
    {
        report.batch_calls += registry.batch_put(chunk, retry).await?;
        progress.inc(chunk.len() as u64);
    }
    let lines: BTreeMap<&Serial, usize> = rows.iter().map(|r| (&r.serial, r.line)).collect();
    for (entry, expected) in &plan.replace {
        if registry.replace_if_status(entry, *expected).await? == WriteOutcome::Stale {
            report.replaced -= 1;
            report.skipped.push(Skipped {
                line: lines.get(&entry.serial).copied().unwrap_or(0),
                serial: entry.serial.to_string(),
                reason: format!("changed from {expected} while importing: left as it is now"),
            });
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    report.skipped.sort_by_key(|s| s.line);
    Ok(report)
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "importing {bar:40} {pos}/{len} rows ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests;
