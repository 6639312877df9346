//! `fleetctl registry add | revoke | allow | show | list`: the allowlist by hand.

use std::collections::BTreeMap;

use fleetwire::adapters::DynamoRegistry;
use fleetwire::adapters::dynamodb::registry::AllowOutcome;
use fleetwire::domain::registry::{
    AddOutcome, Registry, RegistryEntry, RegistryStatus, RevokeOutcome, Serial,
};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::certificates::{CutOff, IotCertificates};
use crate::import::check_thing_name;
use crate::output::{self, Table, fields, or_dash};
use crate::{Answer, Failure};

pub fn parse_serial(text: &str) -> Result<Serial, Failure> {
    Serial::parse(text).map_err(|e| Failure::usage(format!("{text:?}: {e}")))
}

/// What `registry add` writes.
#[derive(Debug, Clone, Default)]
pub struct NewSerial {
    pub serial: String,
    pub model: String,
    pub thing_name: Option<String>,
    pub claim_certificate_ids: Vec<String>,
    /// `NAME=VALUE` provisioning-template parameters.
    pub attributes: Vec<String>,
}

pub async fn add(
    registry: &DynamoRegistry,
    new: &NewSerial,
    json: bool,
) -> Result<Answer, Failure> {
    let serial = parse_serial(&new.serial)?;
    crate::import::check_name("model", &new.model, 64).map_err(Failure::usage)?;
    let thing_name = new.thing_name.clone().unwrap_or_else(|| serial.to_string());
    check_thing_name(&thing_name).map_err(Failure::usage)?;
    let mut entry = RegistryEntry::allowed(serial, &new.model, thing_name);
    for id in &new.claim_certificate_ids {
        if !(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(Failure::usage(format!(
                "claim certificate id {id:?} is not 64 hex digits"
            )));
        }
        entry.claim_certificate_ids.push(id.to_ascii_lowercase());
    }
    let mut attributes = BTreeMap::new();
    for pair in &new.attributes {
        let (name, value) = pair
            .split_once('=')
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| Failure::usage(format!("--attribute {pair:?} is not NAME=VALUE")))?;
        attributes.insert(name.to_owned(), value.to_owned());
    }
    entry.attributes = attributes;
    match registry.add(&entry).await? {
        AddOutcome::Added => Ok(Answer::ok(if json {
            output::json(&entry)?
        } else {
            format!(
                "added {} (model {}, thing {}): ALLOWED to provision once",
                entry.serial, entry.model, entry.thing_name
            )
        })),
        AddOutcome::AlreadyPresent(current) => Err(Failure::failed(format!(
            "{} is already in the Registry ({}); see it with `fleetctl registry show {}`",
            current.serial, current.status, current.serial
        ))),
    }
}

/// What `registry revoke` did.
#[derive(Debug, Clone, Serialize)]
pub struct Revoked {
    pub serial: String,
    pub previous_status: RegistryStatus,
    /// The device's IoT certificate, cut off, when it had provisioned.
    pub certificate: Option<CutOff>,
}

/// REVOKED in the Registry first (no new identity), then the provisioned certificate
/// revoked and its policies detached (the current identity stops working). Running it
/// again finishes a revocation the IoT step failed.
pub async fn revoke(
    registry: &DynamoRegistry,
    certificates: &IotCertificates,
    serial: &str,
    json: bool,
) -> Result<Answer, Failure> {
    let serial = parse_serial(serial)?;
    let previous = match registry.revoke(&serial, OffsetDateTime::now_utc()).await? {
        RevokeOutcome::Revoked(previous) => previous,
        RevokeOutcome::Unknown => return Err(unknown(&serial)),
    };
    let certificate = match &previous.provisioning {
        Some(record) => Some(certificates.cut_off(&record.certificate_id).await.map_err(|e| {
            Failure::failed(format!(
                "{serial} is REVOKED in the Registry, but its certificate {} is not cut off yet: \
                 {e}; run the command again",
                record.certificate_id
            ))
        })?),
        None => None,
    };
    let done = Revoked {
        serial: serial.to_string(),
        previous_status: previous.status,
        certificate,
    };
    if json {
        return Ok(Answer::ok(output::json(&done)?));
    }
    let mut text = format!(
        "revoked {} (was {}): it can no longer provision",
        done.serial, done.previous_status
    );
    match &done.certificate {
        Some(cut) => text.push_str(&format!(
            "\ncertificate {} set REVOKED (was {}); policies detached: {}",
            cut.certificate_id,
            cut.previous_status,
            if cut.detached_policies.is_empty() {
                "none attached".to_string()
            } else {
                cut.detached_policies.join(", ")
            }
        )),
        None => text.push_str("\nit never provisioned: no certificate to revoke"),
    }
    Ok(Answer::ok(text))
}

/// Re-arms a LOCKED, PROVISIONED or REVOKED serial, after `confirm` agreed (or `--yes`).
pub async fn allow(
    registry: &DynamoRegistry,
    serial: &str,
    yes: bool,
    confirm: &mut dyn FnMut(&str) -> Result<bool, Failure>,
    json: bool,
) -> Result<Answer, Failure> {
    let serial = parse_serial(serial)?;
    let Some(current) = registry.get(&serial).await? else {
        return Err(unknown(&serial));
    };
    if current.status == RegistryStatus::Allowed {
        return Ok(Answer::ok(format!(
            "{serial} is ALLOWED already: nothing to do"
        )));
    }
    if !yes {
        let question = format!(
            "re-arm {serial} ({}{}) so that the next device presenting it may provision?",
            current.status,
            current
                .provisioning
                .as_ref()
                .map(|p| format!(", certificate {}", p.certificate_id))
                .unwrap_or_default()
        );
        if !confirm(&question)? {
            return Err(Failure::failed(format!("{serial} left {}", current.status)));
        }
    }
    match registry.allow(&serial, OffsetDateTime::now_utc()).await? {
        AllowOutcome::Rearmed(before) => Ok(Answer::ok(if json {
            output::json(&serde_json::json!({
                "serial": serial.to_string(),
                "previous_status": before.status,
                "status": RegistryStatus::Allowed,
            }))?
        } else {
            format!(
                "{serial} is ALLOWED again (was {}): it may provision once",
                before.status
            )
        })),
        AllowOutcome::AlreadyAllowed => Ok(Answer::ok(format!(
            "{serial} is ALLOWED already: nothing to do"
        ))),
        AllowOutcome::Unknown => Err(unknown(&serial)),
    }
}

pub async fn show(registry: &DynamoRegistry, serial: &str, json: bool) -> Result<Answer, Failure> {
    let serial = parse_serial(serial)?;
    let entry = registry
        .get(&serial)
        .await?
        .ok_or_else(|| unknown(&serial))?;
    Ok(Answer::ok(if json {
        output::json(&entry)?
    } else {
        describe(&entry)
    }))
}

/// An entry as `key  value` lines.
pub fn describe(entry: &RegistryEntry) -> String {
    let provisioning = entry.provisioning.as_ref();
    fields(&[
        ("serial", entry.serial.to_string()),
        ("status", entry.status.to_string()),
        ("model", entry.model.clone()),
        ("thing name", entry.thing_name.clone()),
        (
            "claim certificates",
            if entry.claim_certificate_ids.is_empty() {
                "any".into()
            } else {
                entry.claim_certificate_ids.join(", ")
            },
        ),
        (
            "attributes",
            if entry.attributes.is_empty() {
                "-".into()
            } else {
                entry
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        ("denied attempts", entry.denied_attempts.to_string()),
        (
            "certificate",
            or_dash(provisioning.map(|p| &p.certificate_id)),
        ),
        ("client id", or_dash(provisioning.map(|p| &p.client_id))),
        (
            "provisioned at",
            or_dash(provisioning.and_then(|p| p.at.format(&Rfc3339).ok())),
        ),
    ])
}

pub async fn list(
    registry: &DynamoRegistry,
    status: Option<&str>,
    json: bool,
) -> Result<Answer, Failure> {
    let status = status
        .map(|s| {
            RegistryStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                Failure::usage(format!(
                    "--status {s:?}: expected ALLOWED, PROVISIONED, REVOKED or LOCKED"
                ))
            })
        })
        .transpose()?;
    let entries = registry.list(status).await?;
    if json {
        return Ok(Answer::ok(output::json(&entries)?));
    }
    let mut table = Table::new([
        "SERIAL",
        "STATUS",
        "MODEL",
        "THING",
        "DENIED",
        "PROVISIONED AT",
    ]);
    for entry in &entries {
        table.row([
            entry.serial.to_string(),
            entry.status.to_string(),
            entry.model.clone(),
            entry.thing_name.clone(),
            entry.denied_attempts.to_string(),
            or_dash(
                entry
                    .provisioning
                    .as_ref()
                    .and_then(|p| p.at.format(&Rfc3339).ok()),
            ),
        ]);
    }
    Ok(Answer::ok(format!(
        "{}\n{} serial(s)",
        table.render(),
        entries.len()
    )))
}

fn unknown(serial: &Serial) -> Failure {
    Failure::failed(format!(
        "{serial} is not in the Registry; add it with `fleetctl registry add {serial} --model M`"
    ))
}
