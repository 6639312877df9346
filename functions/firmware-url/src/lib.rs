//! firmware-url: the target of the `fleet/+/firmware/request` IoT rule.
//!
//! A PROVISIONED device whose model matches its Registry row is offered the release of the
//! newest ACTIVE rollout that reaches it (see `fleetwire::domain::ota::choose`), as a CloudFront
//! signed URL with the image's size, SHA-256 and code signature; anything else gets an
//! explicit `up_to_date` or `not_eligible` with the reason. The offer is kept in OtaHistory
//! before the answer is published, so ota-status can attribute the device's reports.

pub mod config;

use std::net::IpAddr;

use fleetwire::cloudfront::{IpCidr, Policy, UrlSigner};
use fleetwire::domain::ota::{
    AnswerStatus, Choice, DeviceChannel, FirmwareAnswer, FirmwareCatalog, FirmwareRequest,
    OfferRecord, OtaLedger, Version, answer_topic, check_request_id, choose, url_lifetime,
};
use fleetwire::domain::registry::{Registry, RegistryStatus};
use fleetwire::runtime::error::StoreError;
use fleetwire::runtime::metrics;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

pub use config::FirmwareUrlConfig;

/// How URLs are built and how long they live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlSettings {
    /// Where URLs point, without a trailing slash: `https://` and the distribution's
    /// domain (e.g. `https://d111111abcdef8.cloudfront.net`), or the local runner's
    /// CloudFront.
    pub download_base: String,
    /// Seconds a URL lives before the transfer time is added.
    pub base_ttl_seconds: u64,
    /// The slowest link planned for: the transfer time is size / this.
    pub slowest_bytes_per_second: u64,
    pub max_ttl_seconds: u64,
    /// Bind the URL to the address the request came from (off: cellular IPs change).
    pub bind_to_source_ip: bool,
}

/// What the function did with one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Handled {
    Offered {
        thing_name: String,
        rollout_id: String,
        version: String,
        expires_at: i64,
    },
    Answered {
        thing_name: String,
        status: AnswerStatus,
        reason: String,
    },
    /// No thing name to answer to: logged and dropped (retrying cannot help).
    Dropped { reason: String },
}

pub struct FirmwareUrl<R, S, C> {
    registry: R,
    store: S,
    channel: C,
    signer: UrlSigner,
    settings: UrlSettings,
}

impl<R: Registry, S: FirmwareCatalog + OtaLedger, C: DeviceChannel> FirmwareUrl<R, S, C> {
    pub fn new(
        registry: R,
        store: S,
        channel: C,
        signer: UrlSigner,
        settings: UrlSettings,
    ) -> Self {
        Self {
            registry,
            store,
            channel,
            signer,
            settings,
        }
    }

    /// Where answers go (for tests that read them back).
    pub fn channel(&self) -> &C {
        &self.channel
    }

    /// Answers one request. Store and publish failures are errors, so the asynchronous
    /// invoke is retried and finally kept in the failed-events queue; a retry signs a fresh
    /// URL and overwrites the offer, which is harmless.
    pub async fn handle(&self, event: &Value, now: OffsetDateTime) -> Result<Handled, StoreError> {
        let thing_name = event
            .get("thing_name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if thing_name.is_empty() || thing_name.contains(['/', '#', '+']) {
            let reason =
                "event has no usable thing_name (the rule sets it from topic(2))".to_string();
            tracing::warn!(reason = %reason, "firmware request dropped");
            metrics::count_by(metrics::name::FIRMWARE_OFFERS, "Outcome", "dropped", 1);
            return Ok(Handled::Dropped { reason });
        }
        let request: FirmwareRequest = match serde_json::from_value(event.clone()) {
            Ok(request) => request,
            Err(e) => {
                let request_id = event
                    .get("request_id")
                    .and_then(Value::as_str)
                    .filter(|id| check_request_id(id).is_ok())
                    .unwrap_or("");
                let reason = format!("invalid request: {e}");
                return self
                    .refuse(thing_name, request_id, AnswerStatus::NotEligible, reason)
                    .await;
            }
        };
        if let Err(reason) = check_request_id(&request.request_id) {
            return self
                .refuse(thing_name, "", AnswerStatus::NotEligible, reason)
                .await;
        }
        let current = match Version::parse(&request.current_version) {
            Ok(version) => version,
            Err(reason) => {
                let reason = format!("current_version: {reason}");
                return self
                    .refuse(
                        thing_name,
                        &request.request_id,
                        AnswerStatus::NotEligible,
                        reason,
                    )
                    .await;
            }
        };
        let not_eligible = |reason: String| (AnswerStatus::NotEligible, reason);
        let entry = match self.registry.find_by_thing(thing_name).await? {
            None => Err(not_eligible("the device is not in the Registry".into())),
            Some(entry) if entry.status != RegistryStatus::Provisioned => Err(not_eligible(
                format!("the device is {}, not PROVISIONED", entry.status),
            )),
            Some(entry) if entry.model != request.model => Err(not_eligible(format!(
                "model {:?} does not match the registered model {:?}",
                request.model, entry.model
            ))),
            Some(entry) => Ok(entry),
        };
        let entry = match entry {
            Ok(entry) => entry,
            Err((status, reason)) => {
                return self
                    .refuse(thing_name, &request.request_id, status, reason)
                    .await;
            }
        };
        let rollouts = self.store.rollouts_of_model(&entry.model).await?;
        let rollout = match choose(thing_name, &entry.model, &current, &rollouts) {
            Choice::Offer(rollout) => rollout,
            Choice::UpToDate(reason) => {
                return self
                    .refuse(
                        thing_name,
                        &request.request_id,
                        AnswerStatus::UpToDate,
                        reason.into(),
                    )
                    .await;
            }
        };
        let Some(release) = self.store.release(&entry.model, &rollout.version).await? else {
            tracing::error!(rollout_id = %rollout.rollout_id, model = %entry.model, version = %rollout.version,
                "rollout offers a release that is not in the Firmware table; nothing offered");
            let reason = format!("release {} is not published yet", rollout.version);
            return self
                .refuse(
                    thing_name,
                    &request.request_id,
                    AnswerStatus::UpToDate,
                    reason,
                )
                .await;
        };
        let lifetime = url_lifetime(
            release.size,
            self.settings.base_ttl_seconds,
            self.settings.slowest_bytes_per_second,
            self.settings.max_ttl_seconds,
        );
        let expires_at = now.unix_timestamp() + lifetime as i64;
        let url = format!(
            "{}/{}",
            self.settings.download_base,
            percent_encode_path(&release.s3_key)
        );
        let mut policy = Policy::expiring_at(expires_at).map_err(|e| StoreError::Rejected {
            call: "CloudFront.sign".into(),
            message: e.to_string(),
        })?;
        if self.settings.bind_to_source_ip
            && let Some(ip) = request
                .source_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
        {
            let host = if ip.is_ipv4() {
                format!("{ip}/32")
            } else {
                format!("{ip}/128")
            };
            policy =
                policy.from_ip(IpCidr::parse(&host).expect("a parsed address is a valid CIDR"));
        }
        let signed = self
            .signer
            .sign(&url, &policy)
            .map_err(|e| StoreError::Rejected {
                call: "CloudFront.sign".into(),
                message: e.to_string(),
            })?;
        self.store
            .record_offer(&OfferRecord {
                device_id: thing_name.to_owned(),
                request_id: request.request_id.clone(),
                rollout_id: rollout.rollout_id.clone(),
                version: release.version.clone(),
                from_version: request.current_version.clone(),
                url_expires_at: expires_at,
                at: now,
            })
            .await?;
        let answer = FirmwareAnswer::Offer {
            request_id: request.request_id.clone(),
            version: release.version.clone(),
            url: signed,
            size: release.size,
            sha256: release.sha256.clone(),
            signature: release.signature.clone(),
            expires_at,
        };
        self.publish(thing_name, &answer).await?;
        tracing::info!(thing_name, request_id = %request.request_id, rollout_id = %rollout.rollout_id,
            version = %release.version, from_version = %request.current_version, expires_at,
            decision = "offered", "firmware offered");
        metrics::count_by(metrics::name::FIRMWARE_OFFERS, "Outcome", "offered", 1);
        Ok(Handled::Offered {
            thing_name: thing_name.to_owned(),
            rollout_id: rollout.rollout_id.clone(),
            version: release.version,
            expires_at,
        })
    }

    async fn refuse(
        &self,
        thing_name: &str,
        request_id: &str,
        status: AnswerStatus,
        reason: String,
    ) -> Result<Handled, StoreError> {
        let answer = FirmwareAnswer::Status {
            request_id: request_id.to_owned(),
            status,
            reason: reason.clone(),
        };
        self.publish(thing_name, &answer).await?;
        tracing::info!(thing_name, request_id, status = ?status, reason = %reason, "firmware not offered");
        metrics::count_by(
            metrics::name::FIRMWARE_OFFERS,
            "Outcome",
            match status {
                AnswerStatus::UpToDate => "up_to_date",
                AnswerStatus::NotEligible => "not_eligible",
            },
            1,
        );
        Ok(Handled::Answered {
            thing_name: thing_name.to_owned(),
            status,
            reason,
        })
    }

    async fn publish(&self, thing_name: &str, answer: &FirmwareAnswer) -> Result<(), StoreError> {
        let payload = serde_json::to_vec(answer).expect("answers serialize");
        self.channel
            .publish(&answer_topic(thing_name), payload)
            .await
    }
}

/// Percent-encodes an S3 key for a URL path: everything but unreserved characters and `/`.
pub fn percent_encode_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
