//! provisioning-hook: IoT Core's pre-provisioning hook for fleet provisioning by claim.
//!
//! Every device of a batch shares one claim certificate, so this hook is what stands
//! between a leaked claim and a fleet identity. It allows a request only when the serial
//! is ALLOWED in the Registry (and, if the entry names its batch's claim certificates, the
//! request used one of them), moving it to PROVISIONED in the same conditional write. It
//! names the thing from the Registry, never from the request, denies anything it cannot
//! decide within its budget, and logs one line per decision.

pub mod config;
pub mod request;

use std::collections::BTreeMap;

use fleetwire::domain::presence::CertificateBinding;
use fleetwire::domain::registry::{
    ClaimOutcome, Denial, DenialOutcome, ProvisioningClaim, ProvisioningRecord, Registry,
    RegistryEntry, RegistryStatus, Serial, counts_denials,
};
use fleetwire::domain::telemetry::DeviceId;
use fleetwire::runtime::error::StoreError;
use fleetwire::runtime::metrics;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;

pub use config::HookConfig;
pub use request::{HookRequest, HookResponse};

/// Why a request was denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    MalformedRequest(String),
    MissingSerial,
    InvalidSerial(String),
    UnknownSerial,
    AlreadyProvisioned,
    Revoked,
    Locked,
    WrongClaimCertificate,
    /// The Registry row names a thing no device may be (see `DeviceId`): refused even
    /// though the serial is allowlisted, so a bad row cannot open the claimants' space.
    InvalidThingName(String),
    RegistryTimeout,
    RegistryUnavailable(String),
}

impl DenyReason {
    /// The reason as a short code for logs and the Registry's `last_denied_reason`.
    pub fn code(&self) -> &'static str {
        match self {
            DenyReason::MalformedRequest(_) => "malformed-request",
            DenyReason::MissingSerial => "missing-serial",
            DenyReason::InvalidSerial(_) => "invalid-serial",
            DenyReason::UnknownSerial => "unknown-serial",
            DenyReason::AlreadyProvisioned => "already-provisioned",
            DenyReason::Revoked => "revoked",
            DenyReason::Locked => "locked",
            DenyReason::WrongClaimCertificate => "wrong-claim-certificate",
            DenyReason::InvalidThingName(_) => "invalid-thing-name",
            DenyReason::RegistryTimeout => "registry-timeout",
            DenyReason::RegistryUnavailable(_) => "registry-unavailable",
        }
    }

    fn detail(&self) -> String {
        match self {
            DenyReason::MalformedRequest(d)
            | DenyReason::InvalidSerial(d)
            | DenyReason::RegistryUnavailable(d) => d.clone(),
            DenyReason::InvalidThingName(d) => format!("the Registry's thing name {d}"),
            DenyReason::AlreadyProvisioned => {
                "serial already has a fleet identity (replay or cloned device)".into()
            }
            DenyReason::WrongClaimCertificate => {
                "claim certificate is not one of the serial's batch".into()
            }
            DenyReason::RegistryTimeout => {
                "no answer from the Registry within the decision budget".into()
            }
            other => other.code().replace('-', " "),
        }
    }

    /// The reason a refused claim had, read from the row as the failed write saw it.
    fn from_refusal(current: Option<&RegistryEntry>) -> Self {
        match current.map(|e| e.status) {
            None => DenyReason::UnknownSerial,
            Some(RegistryStatus::Provisioned) => DenyReason::AlreadyProvisioned,
            Some(RegistryStatus::Revoked) => DenyReason::Revoked,
            Some(RegistryStatus::Locked) => DenyReason::Locked,
            // ALLOWED yet refused: only the batch's claim-certificate condition can fail.
            Some(RegistryStatus::Allowed) => DenyReason::WrongClaimCertificate,
        }
    }
}

/// The hook: a Registry and the settings, built once at init.
pub struct ProvisioningHook<R, B> {
    registry: R,
    /// Where the thing's own certificate is bound, for presence to check.
    binding: B,
    config: HookConfig,
}

/// What one request carried, as far as it could be read, for the decision's log line.
#[derive(Default)]
struct Subject {
    serial: Option<String>,
    client_id: Option<String>,
    certificate_id: Option<String>,
}

impl<R: Registry, B: CertificateBinding> ProvisioningHook<R, B> {
    pub fn new(registry: R, binding: B, config: HookConfig) -> Self {
        ProvisioningHook {
            registry,
            binding,
            config,
        }
    }

    /// Decides one request. Never fails: every problem is a logged deny.
    pub async fn handle(&self, event: &Value) -> HookResponse {
        let started = Instant::now();
        let mut subject = Subject::default();
        let decision = self.decide(event, started, &mut subject).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let serial = subject.serial.as_deref().unwrap_or("-");
        let client_id = subject.client_id.as_deref().unwrap_or("-");
        let certificate_id = subject.certificate_id.as_deref().unwrap_or("-");
        match decision {
            Ok(entry) => {
                tracing::info!(serial, client_id, certificate_id, thing_name = %entry.thing_name, decision = "allow",
                    reason = "allowed", duration_ms, "provisioning decision");
                metrics::count_by(
                    metrics::name::PROVISIONING_DECISIONS,
                    "Reason",
                    "allowed",
                    1,
                );
                HookResponse {
                    allow_provisioning: true,
                    parameter_overrides: self.overrides(&entry),
                }
            }
            Err((reason, denial)) => {
                let (attempts, locked) = match denial {
                    Some(DenialOutcome::Counted { attempts }) => (Some(attempts), false),
                    Some(DenialOutcome::Locked { attempts }) => (Some(attempts), true),
                    _ => (None, false),
                };
                tracing::warn!(serial, client_id, certificate_id, decision = "deny", reason = reason.code(),
                    detail = %reason.detail(), denied_attempts = attempts, locked_now = locked, duration_ms,
                    "provisioning decision");
                metrics::count_by(
                    metrics::name::PROVISIONING_DECISIONS,
                    "Reason",
                    reason.code(),
                    1,
                );
                metrics::count(metrics::name::PROVISIONING_DENIED, 1);
                HookResponse::deny()
            }
        }
    }

    /// The Registry entry to provision, or why not (with the denial count, when counted).
    async fn decide(
        &self,
        event: &Value,
        started: Instant,
        subject: &mut Subject,
    ) -> Result<RegistryEntry, (DenyReason, Option<DenialOutcome>)> {
        let request =
            HookRequest::parse(event).map_err(|e| (DenyReason::MalformedRequest(e), None))?;
        subject.client_id = Some(request.client_id.clone());
        subject.certificate_id = Some(request.certificate_id.clone());
        let raw_serial = request
            .parameters
            .get(&self.config.serial_parameter)
            .ok_or((DenyReason::MissingSerial, None))?;
        subject.serial = Some(raw_serial.chars().take(80).collect());
        let serial = Serial::parse(raw_serial).map_err(|e| (DenyReason::InvalidSerial(e), None))?;

        let deadline = started + self.config.budget;
        let claim = ProvisioningClaim {
            serial: serial.clone(),
            record: ProvisioningRecord {
                certificate_id: request.certificate_id.clone(),
                claim_certificate_id: request.claim_certificate_id.clone(),
                client_id: request.client_id.clone(),
                at: OffsetDateTime::now_utc(),
            },
        };
        let current = match tokio::time::timeout_at(deadline, self.registry.claim(&claim)).await {
            Err(_elapsed) => return Err((DenyReason::RegistryTimeout, None)),
            Ok(Err(error)) => return Err((store_reason(error), None)),
            Ok(Ok(ClaimOutcome::Provisioned(entry))) => {
                let thing = DeviceId::parse(&entry.thing_name)
                    .map_err(|e| (DenyReason::InvalidThingName(e), None))?;
                // Presence accepts the thing's lifecycle events only from this certificate.
                // Fails closed; IoT Core's retry of the request binds again.
                let bound = self
                    .binding
                    .bind_certificate(&thing, &request.certificate_id);
                return match tokio::time::timeout_at(deadline, bound).await {
                    Ok(Ok(())) => Ok(entry),
                    Err(_elapsed) => Err((DenyReason::RegistryTimeout, None)),
                    Ok(Err(error)) => Err((store_reason(error), None)),
                };
            }
            Ok(Ok(ClaimOutcome::Refused { current })) => current,
        };
        let reason = DenyReason::from_refusal(current.as_ref());
        if !current.is_some_and(|entry| counts_denials(entry.status)) {
            return Err((reason, None));
        }
        let denial = Denial {
            serial,
            reason: reason.code().to_string(),
            at: OffsetDateTime::now_utc(),
            lock_after: self.config.lock_after,
        };
        // The answer is deny either way; counting only gets what is left of the budget.
        let counted = match tokio::time::timeout_at(deadline, self.registry.record_denial(&denial))
            .await
        {
            Ok(Ok(outcome)) => Some(outcome),
            Ok(Err(error)) => {
                tracing::error!(serial = %denial.serial, error = %error, "could not count the denied attempt");
                None
            }
            Err(_elapsed) => {
                tracing::error!(serial = %denial.serial, "no time left in the budget to count the denied attempt");
                None
            }
        };
        Err((reason, counted))
    }

    /// The template parameters the Registry decides: every attribute of the entry, then
    /// `Model`, `SerialNumber` and `ThingName`, so a request can never choose its thing.
    fn overrides(&self, entry: &RegistryEntry) -> BTreeMap<String, String> {
        let mut overrides = entry.attributes.clone();
        if !entry.model.is_empty() {
            overrides.insert("Model".into(), entry.model.clone());
        }
        overrides.insert(
            self.config.serial_parameter.clone(),
            entry.serial.to_string(),
        );
        overrides.insert("ThingName".into(), entry.thing_name.clone());
        overrides
    }
}

fn store_reason(error: StoreError) -> DenyReason {
    match error {
        StoreError::Timeout { .. } => DenyReason::RegistryTimeout,
        other => DenyReason::RegistryUnavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
