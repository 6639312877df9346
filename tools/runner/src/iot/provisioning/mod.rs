//! Fleet provisioning by claim, with IoT Core's MQTT API, so a device written against IoT
//! Core (an AWS IoT Device SDK's fleet provisioning client, say) works unchanged:
//!
//! - `$aws/certificates/create/json`: a new key pair and certificate (moto's IoT makes a
//!   real X.509 certificate), answered on `.../accepted` with `certificateId`,
//!   `certificatePem`, `privateKey` and a `certificateOwnershipToken`;
//! - `$aws/certificates/create-from-csr/json`: the same from the device's CSR;
//! - `$aws/provisioning-templates/<name>/provision/json`: the template's pre-provisioning
//!   hook is invoked with IoT Core's request; if it allows, its `parameterOverrides` are
//!   applied and the template body is carried out (the thing created, the certificate
//!   activated, the policy attached, the certificate attached to the thing), and the
//!   answer is `{deviceConfiguration, thingName}`; otherwise `{statusCode, errorCode,
//!   errorMessage}` on `.../rejected`.
//!
//! Answers go to the requesting connection alone, as on IoT Core (a certificate and its
//! private key are never broadcast to other claimants). The claim certificate a
//! connection used is its MQTT username when that is a certificate id (64 hex digits),
//! otherwise the runner's default claim certificate id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_iot::types::{AttributePayload, CertificateStatus};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::iot::hub::{ConnectionId, ConnectionInfo, Connections, Message};
use crate::lambda::{Invoked, Invoker};
use crate::wiring::{Function, ProvisioningTemplate};

mod template;
use template::TemplatePlan;

/// How long a certificate ownership token stays valid (IoT Core: one hour).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

const CREATE: &str = "$aws/certificates/create/json";
const CREATE_FROM_CSR: &str = "$aws/certificates/create-from-csr/json";

/// A certificate issued to a claimant and not yet registered.
#[derive(Debug, Clone)]
struct Issued {
    certificate_id: String,
    certificate_arn: String,
    certificate_pem: String,
    at: Instant,
}

/// IoT Core's answer to a refused request.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"statusCode": self.status, "errorCode": self.code, "errorMessage": self.message})
    }
}

pub struct Provisioning {
    templates: Vec<(ProvisioningTemplate, Option<Function>)>,
    invoker: Invoker,
    iot: aws_sdk_iot::Client,
    connections: Connections,
    default_claim_certificate_id: String,
    tokens: Mutex<HashMap<String, Issued>>,
    /// Requests served at once: a batch of devices switched on together queues here
    /// rather than flooding moto (one RSA key per certificate) all at once.
    in_progress: tokio::sync::Semaphore,
}

impl Provisioning {
    pub fn new(
        templates: Vec<(ProvisioningTemplate, Option<Function>)>,
        invoker: Invoker,
        iot: aws_sdk_iot::Client,
        connections: Connections,
        default_claim_certificate_id: String,
    ) -> Self {
        Self {
            templates,
            invoker,
            iot,
            connections,
            default_claim_certificate_id,
            tokens: Mutex::default(),
            in_progress: tokio::sync::Semaphore::new(8),
        }
    }

    /// Whether `topic` is a request of the fleet provisioning API.
    pub fn handles(topic: &str) -> bool {
        topic.starts_with("$aws/certificates/create")
            || topic.starts_with("$aws/provisioning-templates/")
    }

    pub async fn handle(&self, connection: ConnectionId, message: &Message) {
        let Some(info) = self.connections.info(connection) else {
            return;
        };
        let topic = message.topic.as_str();
        let Ok(_permit) = self.in_progress.acquire().await else {
            return;
        };
        let result = if topic == CREATE {
            self.create(None).await
        } else if topic == CREATE_FROM_CSR {
            match serde_json::from_slice::<Value>(&message.payload)
                .ok()
                .and_then(|v| {
                    v.get("certificateSigningRequest")?
                        .as_str()
                        .map(str::to_owned)
                }) {
                Some(csr) => self.create(Some(csr)).await,
                None => Err(Rejection::new(
                    400,
                    "InvalidPayload",
                    "certificateSigningRequest is missing",
                )),
            }
        } else if let Some(name) = topic
            .strip_prefix("$aws/provisioning-templates/")
            .and_then(|rest| rest.strip_suffix("/provision/json"))
        {
            self.register(name, &info, &message.payload).await
        } else if topic.ends_with("/cbor") {
            Err(Rejection::new(
                400,
                "InvalidPayload",
                "the local runner speaks the JSON API only; use the /json topics",
            ))
        } else {
            // A subscription topic published to, or something IoT Core does not answer.
            return;
        };
        let (suffix, payload) = match &result {
            Ok(answer) => ("accepted", answer.clone()),
            Err(rejection) => {
                tracing::info!(client_id = %info.client_id, topic, code = rejection.code, reason = %rejection.message, "fleet provisioning request rejected");
                ("rejected", rejection.to_json())
            }
        };
        let answer_topic = format!("{topic}/{suffix}");
        if !self
            .connections
            .deliver(connection, &answer_topic, payload.to_string().as_bytes())
        {
            tracing::warn!(client_id = %info.client_id, topic = %answer_topic, "the claimant left before its answer");
        }
    }

    /// CreateKeysAndCertificate or CreateCertificateFromCsr: an inactive certificate and
    /// its ownership token.
    async fn create(&self, csr: Option<String>) -> Result<Value, Rejection> {
        let server_error = |e: String| Rejection::new(500, "InternalError", e);
        let (certificate_id, certificate_arn, certificate_pem, private_key) = match csr {
            None => {
                let created = self
                    .iot
                    .create_keys_and_certificate()
                    .set_as_active(false)
                    .send()
                    .await
                    .map_err(|e| {
                        server_error(aws_sdk_iot::error::DisplayErrorContext(e).to_string())
                    })?;
                (
                    created.certificate_id().unwrap_or_default().to_owned(),
                    created.certificate_arn().unwrap_or_default().to_owned(),
                    created.certificate_pem().unwrap_or_default().to_owned(),
                    created
                        .key_pair()
                        .and_then(|k| k.private_key())
                        .map(str::to_owned),
                )
            }
            Some(csr) => {
                let created = self
                    .iot
                    .create_certificate_from_csr()
                    .certificate_signing_request(csr)
                    .set_as_active(false)
                    .send()
                    .await
                    .map_err(|e| {
                        Rejection::new(
                            400,
                            "InvalidCsr",
                            aws_sdk_iot::error::DisplayErrorContext(e).to_string(),
                        )
                    })?;
                (
                    created.certificate_id().unwrap_or_default().to_owned(),
                    created.certificate_arn().unwrap_or_default().to_owned(),
                    created.certificate_pem().unwrap_or_default().to_owned(),
                    None,
                )
            }
        };
        let token = crate::random_hex(64);
        let mut tokens = self.tokens.lock().await;
        tokens.retain(|_, issued| issued.at.elapsed() < TOKEN_LIFETIME);
        tokens.insert(
            token.clone(),
            Issued {
                certificate_id: certificate_id.clone(),
                certificate_arn,
                certificate_pem: certificate_pem.clone(),
                at: Instant::now(),
            },
        );
        let mut answer = json!({
            "certificateId": certificate_id,
            "certificatePem": certificate_pem,
            "certificateOwnershipToken": token,
        });
        if let Some(key) = private_key {
            answer["privateKey"] = Value::String(key);
        }
        Ok(answer)
    }

    /// RegisterThing.
    async fn register(
        &self,
        name: &str,
        info: &ConnectionInfo,
        payload: &[u8],
    ) -> Result<Value, Rejection> {
        let request: Value = serde_json::from_slice(payload)
            .map_err(|e| Rejection::new(400, "InvalidPayload", format!("not JSON: {e}")))?;
        let token = request
            .get("certificateOwnershipToken")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Rejection::new(
                    400,
                    "InvalidPayload",
                    "certificateOwnershipToken is missing",
                )
            })?;
        let mut parameters: Map<String, Value> = match request.get("parameters") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) if map.values().all(Value::is_string) => map.clone(),
            Some(_) => {
                return Err(Rejection::new(
                    400,
                    "InvalidPayload",
                    "parameters must map names to strings",
                ));
            }
        };
        let issued = {
            let tokens = self.tokens.lock().await;
            tokens
                .get(token)
                .filter(|issued| issued.at.elapsed() < TOKEN_LIFETIME)
                .cloned()
        }
        .ok_or_else(|| {
            Rejection::new(
                400,
                "InvalidCertificateOwnershipToken",
                "the certificate ownership token is unknown or expired",
            )
        })?;
        let (template, hook) = self
            .templates
            .iter()
            .find(|(t, _)| t.name == name)
            .ok_or_else(|| {
                Rejection::new(
                    404,
                    "ResourceNotFound",
                    format!("no provisioning template {name}"),
                )
            })?;
        if let Some(hook) = hook {
            let claim = info
                .username
                .as_deref()
                .filter(|u| u.len() == 64 && u.bytes().all(|b| b.is_ascii_hexdigit()))
                .unwrap_or(&self.default_claim_certificate_id);
            let event = json!({
                "claimCertificateId": claim,
                "certificateId": issued.certificate_id,
                "certificatePem": issued.certificate_pem,
                "templateArn": template.arn,
                "clientId": info.client_id,
                "parameters": parameters,
            });
            let answer = match self.invoker.invoke(&hook.binary, &event).await {
                Invoked::Returned(answer) => answer,
                Invoked::FunctionError { response } => {
                    return Err(Rejection::new(
                        403,
                        "AccessDenied",
                        format!("the pre-provisioning hook failed: {response}"),
                    ));
                }
                Invoked::Unreachable(why) | Invoked::Unavailable(why) => {
                    return Err(Rejection::new(
                        403,
                        "AccessDenied",
                        format!("the pre-provisioning hook could not be invoked: {why}"),
                    ));
                }
            };
            if answer.get("allowProvisioning").and_then(Value::as_bool) != Some(true) {
                return Err(Rejection::new(
                    403,
                    "AccessDenied",
                    "the pre-provisioning hook denied the request",
                ));
            }
            if let Some(overrides) = answer.get("parameterOverrides").and_then(Value::as_object) {
                for (k, v) in overrides {
                    parameters.insert(k.clone(), v.clone());
                }
            }
        }
        parameters.insert(
            "AWS::IoT::Certificate::Id".into(),
            Value::String(issued.certificate_id.clone()),
        );
        let plan = TemplatePlan::evaluate(&template.body, &parameters)?;
        self.carry_out(&plan, &issued).await?;
        tracing::info!(client_id = %info.client_id, thing = %plan.thing_name, certificate = %issued.certificate_id, "provisioned");
        Ok(json!({"deviceConfiguration": plan.device_configuration, "thingName": plan.thing_name}))
    }

    async fn carry_out(&self, plan: &TemplatePlan, issued: &Issued) -> Result<(), Rejection> {
        let failed = |e: String| Rejection::new(500, "InternalError", e);
        let attributes = AttributePayload::builder()
            .set_attributes(Some(plan.thing_attributes.clone()))
            .merge(true)
            .build();
        let created = self
            .iot
            .create_thing()
            .thing_name(&plan.thing_name)
            .attribute_payload(attributes.clone())
            .send()
            .await;
        if let Err(e) = created {
            if !e
                .as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception())
            {
                return Err(failed(
                    aws_sdk_iot::error::DisplayErrorContext(e).to_string(),
                ));
            }
            self.iot
                .update_thing()
                .thing_name(&plan.thing_name)
                .attribute_payload(attributes)
                .send()
                .await
                .map_err(|e| failed(aws_sdk_iot::error::DisplayErrorContext(e).to_string()))?;
        }
        if plan.activate_certificate {
            self.iot
                .update_certificate()
                .certificate_id(&issued.certificate_id)
                .new_status(CertificateStatus::Active)
                .send()
                .await
                .map_err(|e| failed(aws_sdk_iot::error::DisplayErrorContext(e).to_string()))?;
        }
        for policy in &plan.policies {
            self.iot
                .attach_policy()
                .policy_name(policy)
                .target(&issued.certificate_arn)
                .send()
                .await
                .map_err(|e| {
                    failed(format!(
                        "attach policy {policy}: {}",
                        aws_sdk_iot::error::DisplayErrorContext(e)
                    ))
                })?;
        }
        self.iot
            .attach_thing_principal()
            .thing_name(&plan.thing_name)
            .principal(&issued.certificate_arn)
            .send()
            .await
            .map_err(|e| failed(aws_sdk_iot::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioning_topics_are_recognised() {
        assert!(Provisioning::handles("$aws/certificates/create/json"));
        assert!(Provisioning::handles(
            "$aws/provisioning-templates/t/provision/json"
        ));
        assert!(!Provisioning::handles("fleet/car-1/telemetry"));
    }
}
