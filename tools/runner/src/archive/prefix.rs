//! Firehose's custom prefixes (Amazon Data Firehose developer guide, "Understand custom
//! prefixes for Amazon S3 objects"): `!{timestamp:<pattern>}` evaluated at the approximate
//! arrival time of the oldest record of the object, in UTC, and
//! `!{firehose:error-output-type}` (and `random-string`). The runner evaluates the
//! date-time patterns the template uses (`yyyy`, `MM`, `dd`, `HH`, `mm`, `ss` and literal
//! separators); any other expression is refused at start.

use time::OffsetDateTime;

/// The error output type of a record that failed format conversion.
pub const FORMAT_CONVERSION_FAILED: &str = "format-conversion-failed";

/// Whether the runner can evaluate every expression of `prefix`.
pub fn check(prefix: &str) -> Result<(), String> {
    evaluate(prefix, OffsetDateTime::UNIX_EPOCH, FORMAT_CONVERSION_FAILED).map(|_| ())
}

/// `prefix` with its expressions evaluated.
pub fn evaluate(prefix: &str, at: OffsetDateTime, error_type: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = prefix;
    while let Some(start) = rest.find("!{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("{prefix}: an expression is not closed"))?;
        let expression = &rest[start + 2..start + end];
        let (namespace, value) = expression
            .split_once(':')
            .ok_or_else(|| format!("{prefix}: !{{{expression}}} has no namespace"))?;
        match (namespace, value) {
            ("timestamp", pattern) => out.push_str(&timestamp(pattern, at, prefix)?),
            ("firehose", "error-output-type") => out.push_str(error_type),
            ("firehose", "random-string") => out.push_str(&crate::random_hex(6)),
            _ => {
                return Err(format!(
                    "{prefix}: the local archive does not evaluate !{{{expression}}}"
                ));
            }
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn timestamp(pattern: &str, at: OffsetDateTime, prefix: &str) -> Result<String, String> {
    let at = at.to_offset(time::UtcOffset::UTC);
    let mut out = String::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        let (text, used) = if let Some(r) = rest.strip_prefix("yyyy") {
            (format!("{:04}", at.year()), rest.len() - r.len())
        } else if let Some(r) = rest.strip_prefix("MM") {
            (format!("{:02}", u8::from(at.month())), rest.len() - r.len())
        } else if let Some(r) = rest.strip_prefix("dd") {
            (format!("{:02}", at.day()), rest.len() - r.len())
        } else if let Some(r) = rest.strip_prefix("HH") {
            (format!("{:02}", at.hour()), rest.len() - r.len())
        } else if let Some(r) = rest.strip_prefix("mm") {
            (format!("{:02}", at.minute()), rest.len() - r.len())
        } else if let Some(r) = rest.strip_prefix("ss") {
            (format!("{:02}", at.second()), rest.len() - r.len())
        } else {
            let c = rest.chars().next().unwrap_or_default();
            if c.is_ascii_alphabetic() || c == '\'' {
                return Err(format!(
                    "{prefix}: the local archive does not evaluate the pattern {pattern}"
                ));
            }
            (c.to_string(), c.len_utf8())
        };
        out.push_str(&text);
        rest = &rest[used..];
    }
    Ok(out)
}
