//! IoT Core's pre-provisioning hook contract (payload version 2020-04-01), which
//! aws_lambda_events does not model.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What IoT Core sends the hook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRequest {
    pub claim_certificate_id: String,
    pub certificate_id: String,
    /// Never logged; the hook does not need it (the certificate id identifies it).
    #[serde(default)]
    pub certificate_pem: Option<CertificatePem>,
    pub template_arn: String,
    pub client_id: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// A certificate PEM whose `Debug` says nothing about it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct CertificatePem(pub String);

impl fmt::Debug for CertificatePem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificatePem(<{} bytes, not shown>)", self.0.len())
    }
}

impl HookRequest {
    /// Parses the event, refusing anything IoT Core would not send: not an object,
    /// missing or mistyped fields, empty certificate ids.
    pub fn parse(event: &Value) -> Result<Self, String> {
        if !event.is_object() {
            return Err("request is not a JSON object".into());
        }
        let request: HookRequest = fleetwire::runtime::json::from_value(event)
            .map_err(|e| format!("request body: {e}"))?;
        for (field, value) in [
            ("certificateId", &request.certificate_id),
            ("claimCertificateId", &request.claim_certificate_id),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{field} is empty"));
            }
        }
        Ok(request)
    }
}

/// What the hook answers. `parameterOverrides` replaces the named template parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookResponse {
    pub allow_provisioning: bool,
    pub parameter_overrides: BTreeMap<String, String>,
}

impl HookResponse {
    pub fn deny() -> Self {
        HookResponse {
            allow_provisioning: false,
            parameter_overrides: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> Value {
        json!({
            "claimCertificateId": "claim", "certificateId": "cert", "certificatePem": "-----BEGIN CERTIFICATE-----",
            "templateArn": "arn:aws:iot:us-east-1:123456789012:provisioningtemplate/t", "clientId": "c",
            "parameters": {"SerialNumber": "SN1"}
        })
    }

    #[test]
    fn parses_the_documented_shape() {
        let parsed = HookRequest::parse(&request()).unwrap();
        assert_eq!(parsed.parameters["SerialNumber"], "SN1");
        assert_eq!(parsed.certificate_id, "cert");
    }

    #[test]
    fn debug_output_never_shows_the_pem() {
        let parsed = HookRequest::parse(&request()).unwrap();
        let debug = format!("{parsed:?}");
        assert!(!debug.contains("BEGIN CERTIFICATE"), "{debug}");
        assert!(debug.contains("not shown"));
    }

    #[test]
    fn refuses_what_iot_core_would_not_send() {
        assert!(
            HookRequest::parse(&json!("text"))
                .unwrap_err()
                .contains("not a JSON object")
        );
        let mut missing = request();
        missing.as_object_mut().unwrap().remove("certificateId");
        assert!(
            HookRequest::parse(&missing)
                .unwrap_err()
                .contains("certificateId")
        );
        let mut wrong = request();
        wrong["parameters"]["SerialNumber"] = json!(5);
        assert!(
            HookRequest::parse(&wrong)
                .unwrap_err()
                .contains("invalid type")
        );
        let mut empty = request();
        empty["claimCertificateId"] = json!(" ");
        assert_eq!(
            HookRequest::parse(&empty).unwrap_err(),
            "claimCertificateId is empty"
        );
    }

    #[test]
    fn response_has_exactly_the_two_fields() {
        let answer = serde_json::to_value(HookResponse::deny()).unwrap();
        assert_eq!(
            answer,
            json!({"allowProvisioning": false, "parameterOverrides": {}})
        );
    }
}

/// The parser against anything IoT Core could be made to send: AWS's documented input
/// with one part changed into any JSON, and any JSON at all.
#[cfg(test)]
mod fuzz {
    use fleetwire::testing::fuzz::{assert_names_the_field, json_value, near};
    use proptest::prelude::*;

    use super::*;

    fn example() -> Value {
        fleetwire::testing::event("aws-examples", "pre-provisioning-hook.json")
    }

    proptest! {
        #[test]
        fn a_changed_request_parses_or_names_what_is_wrong((event, keys) in near(example())) {
            if let Err(error) = HookRequest::parse(&event) {
                assert_names_the_field(&error, &keys);
            }
        }

        #[test]
        fn any_json_is_parsed_or_refused_without_a_panic(event in json_value()) {
            if let Err(error) = HookRequest::parse(&event) {
                prop_assert!(!error.is_empty());
            }
        }
    }
}
