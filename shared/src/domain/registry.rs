//! The device Registry: which serials may join the fleet, and what became of them.
//!
//! A serial moves ALLOWED → PROVISIONED exactly once, in one conditional write; operators
//! move it to REVOKED, and repeated refused attempts move it to LOCKED.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::runtime::error::StoreError;

/// Longest serial number accepted.
pub const MAX_SERIAL_LEN: usize = 64;

/// A manufacturing serial number: 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(String);

impl Serial {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("serial is empty".into());
        }
        if raw.chars().count() > MAX_SERIAL_LEN {
            return Err(format!("serial is longer than {MAX_SERIAL_LEN} characters"));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
        {
            return Err(format!(
                "serial has character {bad:?} outside [A-Za-z0-9_-]"
            ));
        }
        Ok(Serial(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Serial {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Serial::parse(&raw)
    }
}

impl From<Serial> for String {
    fn from(serial: Serial) -> String {
        serial.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a serial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegistryStatus {
    /// May provision once.
    Allowed,
    /// Has a fleet identity; a second provisioning is a replay.
    Provisioned,
    /// Taken out of the fleet by an operator.
    Revoked,
    /// Too many refused attempts; waits for an operator.
    Locked,
}

impl RegistryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryStatus::Allowed => "ALLOWED",
            RegistryStatus::Provisioned => "PROVISIONED",
            RegistryStatus::Revoked => "REVOKED",
            RegistryStatus::Locked => "LOCKED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Allowed,
            Self::Provisioned,
            Self::Revoked,
            Self::Locked,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for RegistryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One serial's row in the Registry table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntry {
    pub serial: Serial,
    pub status: RegistryStatus,
    pub model: String,
    /// The IoT thing this serial becomes; never taken from a device's request.
    pub thing_name: String,
    /// Claim certificates of the serial's manufacturing batch; empty means any claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_certificate_ids: Vec<String>,
    /// Further provisioning-template parameters (e.g. `Region`, `Fleet`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<ProvisioningRecord>,
    #[serde(default)]
    pub denied_attempts: u32,
}

impl RegistryEntry {
    /// A new ALLOWED entry.
    pub fn allowed(
        serial: Serial,
        model: impl Into<String>,
        thing_name: impl Into<String>,
    ) -> Self {
        RegistryEntry {
            serial,
            status: RegistryStatus::Allowed,
            model: model.into(),
            thing_name: thing_name.into(),
            claim_certificate_ids: Vec::new(),
            attributes: BTreeMap::new(),
            provisioning: None,
            denied_attempts: 0,
        }
    }
}

/// Who took the serial's identity, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningRecord {
    pub certificate_id: String,
    pub claim_certificate_id: String,
    pub client_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A request to move `serial` from ALLOWED to PROVISIONED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningClaim {
    pub serial: Serial,
    pub record: ProvisioningRecord,
}

/// The result of a claim: the business answer, not an error.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// The serial was ALLOWED (and the claim certificate matched), or it is a retry of the
    /// claim that provisioned it (same certificate); it is PROVISIONED now.
    Provisioned(RegistryEntry),
    /// The condition failed; `current` is the row as it was (None: unknown serial), taken
    /// from the failed write itself, not from a second read.
    Refused { current: Option<RegistryEntry> },
}

/// The result of adding a serial.
#[derive(Debug, Clone, PartialEq)]
pub enum AddOutcome {
    Added,
    /// The serial is already in the Registry; it was left untouched.
    AlreadyPresent(Box<RegistryEntry>),
}

/// The result of counting a refused attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialOutcome {
    /// Counted; the serial keeps its status.
    Counted { attempts: u32 },
    /// Counted, and the count reached the limit: the serial is LOCKED now.
    Locked { attempts: u32 },
    /// Not counted: the serial is unknown, REVOKED or already LOCKED.
    NotCounted,
}

/// The result of revoking a serial.
#[derive(Debug, Clone, PartialEq)]
pub enum RevokeOutcome {
    /// Revoked; the row as it was before, so a caller can cut off its certificate too.
    Revoked(Box<RegistryEntry>),
    Unknown,
}

/// A refused attempt to record against a serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub serial: Serial,
    /// Short reason code, e.g. `already-provisioned`.
    pub reason: String,
    pub at: OffsetDateTime,
    /// The count at which the serial is locked.
    pub lock_after: u32,
}

/// The Registry table, narrowed to what the functions and tools do with it.
pub trait Registry: Send + Sync {
    /// Adds an entry unless the serial exists (conditional put).
    fn add(
        &self,
        entry: &RegistryEntry,
    ) -> impl Future<Output = Result<AddOutcome, StoreError>> + Send;

    /// Reads one serial (strongly consistent).
    fn get(
        &self,
        serial: &Serial,
    ) -> impl Future<Output = Result<Option<RegistryEntry>, StoreError>> + Send;

    /// The entry whose thing is `thing_name` (the Registry's `thing_name-index`; eventually
    /// consistent, which is fine long after provisioning). Thing names are unique: the
    /// provisioning template names each thing from its serial's row.
    fn find_by_thing(
        &self,
        thing_name: &str,
    ) -> impl Future<Output = Result<Option<RegistryEntry>, StoreError>> + Send;

    /// ALLOWED → PROVISIONED in one conditional write (see [`admits`]). A retry of the
    /// claim that provisioned the serial (same certificate id) succeeds again without
    /// changing the first provisioning time, so an answer lost to a timeout cannot lock a
    /// device out; any other claim of a PROVISIONED serial is refused.
    fn claim(
        &self,
        claim: &ProvisioningClaim,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;

    /// Counts a refused attempt against an ALLOWED or PROVISIONED serial and locks it once
    /// the count reaches `lock_after`. Unknown serials are never created.
    fn record_denial(
        &self,
        denial: &Denial,
    ) -> impl Future<Output = Result<DenialOutcome, StoreError>> + Send;

    /// Sets any existing serial to REVOKED.
    fn revoke(
        &self,
        serial: &Serial,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<RevokeOutcome, StoreError>> + Send;
}

/// Whether `entry` admits a claim (the rule both the DynamoDB condition and the fake apply):
/// an ALLOWED entry whose batch list is empty or names the claim certificate, or a
/// PROVISIONED entry being claimed again by the certificate that provisioned it.
pub fn admits(entry: &RegistryEntry, claim: &ProvisioningRecord) -> bool {
    match entry.status {
        RegistryStatus::Allowed => {
            entry.claim_certificate_ids.is_empty()
                || entry
                    .claim_certificate_ids
                    .contains(&claim.claim_certificate_id)
        }
        RegistryStatus::Provisioned => entry
            .provisioning
            .as_ref()
            .is_some_and(|p| p.certificate_id == claim.certificate_id),
        RegistryStatus::Revoked | RegistryStatus::Locked => false,
    }
}

/// Whether refused attempts against an entry in `status` count towards its lock.
pub fn counts_denials(status: RegistryStatus) -> bool {
    matches!(
        status,
        RegistryStatus::Allowed | RegistryStatus::Provisioned
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_rules() {
        assert!(Serial::parse("SN-2026_000123").is_ok());
        assert!(Serial::parse(&"9".repeat(64)).is_ok());
        assert!(
            Serial::parse(&"9".repeat(65))
                .unwrap_err()
                .contains("longer than 64")
        );
        assert!(Serial::parse("").unwrap_err().contains("empty"));
        assert!(Serial::parse("SN:1").unwrap_err().contains("':'"));
        assert!(Serial::parse("SN 1").is_err());
        assert!(
            Serial::parse("ＳＮ1").is_err(),
            "non-ASCII letters are refused"
        );
    }

    #[test]
    fn status_round_trips_through_its_name() {
        for status in [
            RegistryStatus::Allowed,
            RegistryStatus::Provisioned,
            RegistryStatus::Revoked,
            RegistryStatus::Locked,
        ] {
            assert_eq!(RegistryStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RegistryStatus::parse("allowed"), None);
    }

    fn record(certificate_id: &str, claim_certificate_id: &str) -> ProvisioningRecord {
        ProvisioningRecord {
            certificate_id: certificate_id.into(),
            claim_certificate_id: claim_certificate_id.into(),
            client_id: "client".into(),
            at: time::macros::datetime!(2026-11-25 12:00:00 UTC),
        }
    }

    #[test]
    fn admits_allowed_entries_with_a_matching_claim() {
        let mut entry = RegistryEntry::allowed(Serial::parse("SN1").unwrap(), "m", "thing-SN1");
        assert!(admits(&entry, &record("cert", "any-claim")));
        entry.claim_certificate_ids = vec!["claim-a".into()];
        assert!(admits(&entry, &record("cert", "claim-a")));
        assert!(!admits(&entry, &record("cert", "claim-b")));
        entry.status = RegistryStatus::Revoked;
        assert!(!admits(&entry, &record("cert", "claim-a")));
        entry.status = RegistryStatus::Locked;
        assert!(!admits(&entry, &record("cert", "claim-a")));
    }

    #[test]
    fn admits_a_provisioned_entry_only_for_its_own_certificate() {
        let mut entry = RegistryEntry::allowed(Serial::parse("SN1").unwrap(), "m", "thing-SN1");
        entry.status = RegistryStatus::Provisioned;
        entry.provisioning = Some(record("cert-1", "claim"));
        assert!(
            admits(&entry, &record("cert-1", "claim")),
            "a retry of the same claim"
        );
        assert!(
            !admits(&entry, &record("cert-2", "claim")),
            "a replay with another certificate"
        );
    }
}
