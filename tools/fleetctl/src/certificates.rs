//! Cutting a device off in IoT Core: its certificate REVOKED (no new connection is
//! accepted) and every policy detached from it (nothing it could still do is allowed).

use aws_sdk_iot::types::CertificateStatus;
use serde::Serialize;

use crate::Failure;
use crate::error::sdk_failure;

/// What cutting a certificate off did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CutOff {
    pub certificate_id: String,
    /// Its status before (`ACTIVE`, `INACTIVE`, `REVOKED`, ...).
    pub previous_status: String,
    pub detached_policies: Vec<String>,
}

/// The IoT certificate registry, narrowed to what `registry revoke` needs.
pub struct IotCertificates {
    client: aws_sdk_iot::Client,
}

impl IotCertificates {
    pub fn new(client: aws_sdk_iot::Client) -> Self {
        Self { client }
    }

    /// Sets the certificate to REVOKED and detaches every policy attached to it.
    /// Idempotent: a second run finds it revoked with nothing attached.
    pub async fn cut_off(&self, certificate_id: &str) -> Result<CutOff, Failure> {
        let described = self
            .client
            .describe_certificate()
            .certificate_id(certificate_id)
            .send()
            .await
            .map_err(|e| sdk_failure("IoT.DescribeCertificate", e))?;
        let description = described
            .certificate_description()
            .ok_or_else(|| Failure::failed(format!("IoT has no certificate {certificate_id}")))?;
        let arn = description
            .certificate_arn()
            .ok_or_else(|| Failure::failed(format!("certificate {certificate_id} has no ARN")))?
            .to_owned();
        let previous_status = description
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|| "UNKNOWN".into());
        if description.status() != Some(&CertificateStatus::Revoked) {
            self.client
                .update_certificate()
                .certificate_id(certificate_id)
                .new_status(CertificateStatus::Revoked)
                .send()
                .await
                .map_err(|e| sdk_failure("IoT.UpdateCertificate", e))?;
        }
        // List them all first: detaching while paging could skip a page.
        let mut attached = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .client
                .list_attached_policies()
                .target(&arn)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| sdk_failure("IoT.ListAttachedPolicies", e))?;
            attached.extend(
                page.policies()
                    .iter()
                    .filter_map(|p| p.policy_name().map(str::to_owned)),
            );
            marker = page.next_marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
        for name in &attached {
            self.client
                .detach_policy()
                .policy_name(name)
                .target(&arn)
                .send()
                .await
                .map_err(|e| sdk_failure("IoT.DetachPolicy", e))?;
        }
        Ok(CutOff {
            certificate_id: certificate_id.to_owned(),
            previous_status,
            detached_policies: attached,
        })
    }
}
