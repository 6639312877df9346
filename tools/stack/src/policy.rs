//! The project's own rules for `template.yaml`, as code: what a platform team's security
//! review would check, and what the field's common IaC failures break (a hook nobody may
//! invoke, wildcard IAM, a rule whose failures vanish, a mapping that retries a poison
//! record forever, a public bucket). `stack check-policy` runs them in
//! `scripts/check-template`; each rule has a test that breaks the template and sees it
//! fail.

use serde_json::Value;

use crate::template::{Resource, Template, TemplateError};

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub resource: String,
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.resource, self.problem)
    }
}

mod archive;
mod catalogue;
mod observability;
mod queries;
pub use catalogue::{RULES, WILDCARD_RULE};

/// Runs every rule over the template's text; `base` is the folder the template's own
/// relative paths (the named queries' files) are read from.
pub fn check(text: &str, base: &std::path::Path) -> Result<Vec<Finding>, TemplateError> {
    let template = Template::parse(text)?;
    let mut findings = Vec::new();
    let mut report = |rule: &'static str, resource: &str, problem: String| {
        findings.push(Finding {
            rule,
            resource: resource.to_owned(),
            problem,
        })
    };
    let kind_of = |id: &str| {
        template
            .resources
            .iter()
            .find(|r| r.logical_id == id)
            .map(|r| r.kind.as_str())
    };
    let is_own_key = |value: Option<&Value>| -> bool {
        let Some(value) = value else { return false };
        let id = value
            .get("Ref")
            .and_then(Value::as_str)
            .or_else(|| value.pointer("/Fn::GetAtt/0").and_then(Value::as_str));
        id.and_then(kind_of) == Some("AWS::KMS::Key")
    };
    // Functions that rules invoke (asynchronously).
    let rule_targets: Vec<String> = template
        .resources
        .iter()
        .filter(|r| r.kind == "AWS::IoT::TopicRule")
        .flat_map(|r| {
            r.properties
                .pointer("/TopicRulePayload/Actions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|action| {
            action
                .pointer("/Lambda/FunctionArn/Fn::GetAtt/0")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let bucket_policies: Vec<&Resource> = template
        .resources
        .iter()
        .filter(|r| r.kind == "AWS::S3::BucketPolicy")
        .collect();

    for resource in &template.resources {
        let id = resource.logical_id.as_str();
        let p = &resource.properties;
        let get = |path: &str| p.pointer(path);
        if let Some((key_path, why)) = single_key_encryption(&resource.kind)
            && !is_own_key(get(key_path))
        {
            report("encryption", id, why.into());
        }
        match resource.kind.as_str() {
            "AWS::Serverless::Function" => {
                let build_ok = resource.metadata.get("BuildMethod").and_then(Value::as_str)
                    == Some("rust-cargolambda")
                    && resource
                        .metadata
                        .pointer("/BuildProperties/Binary")
                        .is_some()
                    && get("/Runtime").and_then(Value::as_str) == Some("provided.al2023")
                    && get("/Architectures") == Some(&Value::from(vec!["arm64"]));
                if !build_ok {
                    report("function-build", id, "needs BuildMethod rust-cargolambda, BuildProperties.Binary, Runtime provided.al2023 and Architectures [arm64]".into());
                }
                let log_group = get("/LoggingConfig/LogGroup")
                    .and_then(|v| v.get("Ref"))
                    .and_then(Value::as_str);
                let retention = log_group
                    .and_then(|g| template.resources.iter().find(|r| r.logical_id == g))
                    .filter(|r| r.kind == "AWS::Logs::LogGroup")
                    .is_some_and(|r| r.properties.get("RetentionInDays").is_some());
                if get("/LoggingConfig/LogFormat").and_then(Value::as_str) != Some("JSON")
                    || !retention
                {
                    report("function-logs", id, "needs LoggingConfig with LogFormat JSON and a LogGroup of its own with RetentionInDays".into());
                }
                let own_role = get("/Role")
                    .and_then(|r| r.pointer("/Fn::GetAtt/0"))
                    .and_then(Value::as_str)
                    .and_then(|role| template.resources.iter().find(|r| r.logical_id == role))
                    .filter(|role| role.kind == "AWS::IAM::Role");
                let inline_ok = match own_role {
                    Some(role) => role_of_its_own(role),
                    None => get("/Policies")
                        .and_then(Value::as_array)
                        .is_some_and(|p| p.len() == 1 && p[0].get("Statement").is_some()),
                };
                if !inline_ok {
                    report(
                        "function-policy",
                        id,
                        "needs exactly one inline policy (Policies: [ {Version, Statement} ]), or a Role of the template with one inline policy and only Lambda's basic execution, X-Ray write-only (and, under a condition, VPC execution) policies"
                            .into(),
                    );
                }
                let own_statements: Vec<&Value> = match own_role {
                    Some(role) => statements(
                        role.properties
                            .pointer("/Policies/0/PolicyDocument/Statement"),
                    ),
                    None => statements(get("/Policies/0/Statement")),
                };
                let grants = |needle: &str| {
                    own_statements.iter().any(|st| {
                        st.get("Action")
                            .is_some_and(|a| a.to_string().contains(needle))
                    })
                };
                let key_grant = own_statements.iter().any(|st| {
                    st.get("Action")
                        .is_some_and(|a| a.to_string().contains("kms:Decrypt"))
                        && is_own_key(st.get("Resource"))
                });
                if grants("dynamodb:") && !key_grant {
                    report(
                        "table-key-access",
                        id,
                        "uses tables encrypted with the template's key but may not use the key (kms:Decrypt, kms:GenerateDataKey)".into(),
                    );
                }
                // SAM attaches the VPC execution policy to a function with any VpcConfig,
                // even one under Fn::If, so a conditional VPC needs a role of its own that
                // takes the policy under the same condition.
                if let Some(condition) = get("/VpcConfig/Fn::If/0").and_then(Value::as_str) {
                    let conditional = own_role.is_some_and(|role| {
                        role.properties
                            .pointer("/ManagedPolicyArns")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .any(|arn| {
                                arn.pointer("/Fn::If/0").and_then(Value::as_str) == Some(condition)
                                    && arn.to_string().contains("AWSLambdaVPCAccessExecutionRole")
                            })
                    });
                    if !conditional {
                        report(
                            "vpc-policy-with-vpc",
                            id,
                            format!(
                                "its VpcConfig holds only when {condition}, but SAM's role would take the VPC execution policy always: give it a Role that takes it under {condition}"
                            ),
                        );
                    }
                }
                if rule_targets.iter().any(|t| t == id) {
                    let retries =
                        get("/EventInvokeConfig/MaximumRetryAttempts").and_then(Value::as_i64);
                    let destination =
                        get("/EventInvokeConfig/DestinationConfig/OnFailure/Destination");
                    if !matches!(retries, Some(0..=2)) || destination.is_none() {
                        report("async-failure-path", id, "a rule invokes it asynchronously: EventInvokeConfig needs MaximumRetryAttempts (0 to 2) and DestinationConfig.OnFailure".into());
                    }
                }
            }
            "AWS::IoT::TopicRule" => {
                if get("/TopicRulePayload/ErrorAction/Sqs/QueueUrl").is_none() {
                    report("rule-error-action", id, "needs TopicRulePayload.ErrorAction.Sqs: a failed action would otherwise vanish".into());
                }
                let sql = get("/TopicRulePayload/Sql")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if selects_star_beside_own_fields(sql) {
                    report(
                        "rule-payload-apart",
                        id,
                        format!(
                            "{sql:?} merges the device's JSON with the rule's fields; IoT Core does not say which wins, so the device can set them: select encode(*, 'base64') AS payload_base64 beside them"
                        ),
                    );
                }
            }
            "AWS::Lambda::EventSourceMapping" => {
                if get("/DestinationConfig/OnFailure/Destination").is_none() {
                    report(
                        "mapping-failure-path",
                        id,
                        "needs DestinationConfig.OnFailure".into(),
                    );
                }
                let finite = |name: &str| get(name).and_then(Value::as_i64).is_some_and(|n| n >= 0);
                let bounded = finite("/MaximumRetryAttempts")
                    && finite("/MaximumRecordAgeInSeconds")
                    && get("/BisectBatchOnFunctionError") == Some(&Value::Bool(true));
                let reports = get("/FunctionResponseTypes")
                    .and_then(Value::as_array)
                    .is_some_and(|t| t.iter().any(|v| v == "ReportBatchItemFailures"));
                if let Some(problem) = checks::record_age_past_retention(&template, resource) {
                    report("record-age-inside-retention", id, problem);
                }
                if get("/Topics").is_none() {
                    if !bounded || !reports {
                        report("mapping-failure-path", id, "a stream mapping needs finite MaximumRetryAttempts and MaximumRecordAgeInSeconds, BisectBatchOnFunctionError and ReportBatchItemFailures".into());
                    }
                } else if !bounded || !reports || get("/ProvisionedPollerConfig").is_none() {
                    // Kafka takes these error controls, partial batch responses among them,
                    // only in provisioned mode.
                    report("mapping-failure-path", id, "a Kafka mapping needs ProvisionedPollerConfig with finite MaximumRetryAttempts and MaximumRecordAgeInSeconds, BisectBatchOnFunctionError and ReportBatchItemFailures".into());
                }
            }
            "AWS::DynamoDB::Table" => {
                if get("/SSESpecification/SSEEnabled") != Some(&Value::Bool(true))
                    || !is_own_key(get("/SSESpecification/KMSMasterKeyId"))
                {
                    report(
                        "encryption",
                        id,
                        "needs SSESpecification with the template's KMS key".into(),
                    );
                }
                if get("/PointInTimeRecoverySpecification/PointInTimeRecoveryEnabled")
                    != Some(&Value::Bool(true))
                {
                    report(
                        "point-in-time-recovery",
                        id,
                        "needs PointInTimeRecoverySpecification enabled".into(),
                    );
                }
            }
            "AWS::S3::Bucket" => {
                let default = get(
                    "/BucketEncryption/ServerSideEncryptionConfiguration/0/ServerSideEncryptionByDefault",
                );
                if default
                    .and_then(|d| d.get("SSEAlgorithm"))
                    .and_then(Value::as_str)
                    != Some("aws:kms")
                    || !is_own_key(default.and_then(|d| d.get("KMSMasterKeyID")))
                {
                    report(
                        "encryption",
                        id,
                        "needs default encryption aws:kms with the template's KMS key".into(),
                    );
                }
                let block = get("/PublicAccessBlockConfiguration");
                let blocked = [
                    "BlockPublicAcls",
                    "BlockPublicPolicy",
                    "IgnorePublicAcls",
                    "RestrictPublicBuckets",
                ]
                .iter()
                .all(|k| block.and_then(|b| b.get(*k)) == Some(&Value::Bool(true)));
                let versioned = get("/VersioningConfiguration/Status").and_then(Value::as_str)
                    == Some("Enabled");
                let tls_only = bucket_policies.iter().any(|policy| {
                    policy
                        .properties
                        .pointer("/Bucket/Ref")
                        .and_then(Value::as_str)
                        == Some(id)
                        && policy
                            .properties
                            .pointer("/PolicyDocument/Statement")
                            .and_then(Value::as_array)
                            .is_some_and(|statements| {
                                statements.iter().any(|s| {
                                    s.get("Effect") == Some(&Value::from("Deny"))
                                        && s.pointer("/Condition/Bool/aws:SecureTransport")
                                            == Some(&Value::from("false"))
                                })
                            })
                });
                if !blocked || !versioned || !tls_only {
                    report(
                        "bucket-hardening",
                        id,
                        format!(
                            "public access blocked: {blocked}, versioning: {versioned}, TLS-only bucket policy: {tls_only}"
                        ),
                    );
                }
            }
            "AWS::IoT::Policy" => {
                if let Some(problem) = unbound_claim_connect(get("/PolicyDocument/Statement")) {
                    report("claim-policy-bound", id, problem);
                }
            }
            "AWS::S3::BucketPolicy" => {
                for statement in statements(get("/PolicyDocument/Statement")) {
                    if let Some(problem) = unscoped_service_grant(statement) {
                        report("service-grant-scoped", id, problem);
                    }
                }
            }
            "AWS::Lambda::Permission" => {
                let service = get("/Principal")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if service.ends_with(".amazonaws.com") && get("/SourceArn").is_none() {
                    report(
                        "invoke-permission-scoped",
                        id,
                        format!(
                            "{service} may invoke it from anywhere: add SourceArn (and SourceAccount)"
                        ),
                    );
                }
            }
            "AWS::ApiGatewayV2::Route" => {
                let authorization = get("/AuthorizationType")
                    .and_then(Value::as_str)
                    .unwrap_or("NONE");
                let authorized = match authorization {
                    "AWS_IAM" => true,
                    "JWT" | "CUSTOM" => get("/AuthorizerId").is_some(),
                    _ => false,
                };
                if !authorized {
                    report(
                        "api-route-authorized",
                        id,
                        format!(
                            "AuthorizationType {authorization}: anyone could call it; use AWS_IAM or a JWT authorizer"
                        ),
                    );
                }
            }
            "AWS::ApiGatewayV2::Stage" => {
                let logged = get("/AccessLogSettings/DestinationArn").is_some()
                    && get("/AccessLogSettings/Format").is_some();
                let throttled = get("/DefaultRouteSettings/ThrottlingRateLimit").is_some()
                    && get("/DefaultRouteSettings/ThrottlingBurstLimit").is_some();
                if !logged || !throttled {
                    report(
                        "api-stage-guarded",
                        id,
                        format!("access logs: {logged}, throttling (rate and burst): {throttled}"),
                    );
                }
            }
            "AWS::ApiGatewayV2::DomainName" => {
                let tls12 = get("/DomainNameConfigurations")
                    .and_then(Value::as_array)
                    .is_some_and(|configs| {
                        !configs.is_empty()
                            && configs
                                .iter()
                                .all(|c| c.get("SecurityPolicy") == Some(&Value::from("TLS_1_2")))
                    });
                if !tls12 {
                    report(
                        "api-stage-guarded",
                        id,
                        "needs SecurityPolicy TLS_1_2 on every domain configuration".into(),
                    );
                }
            }
            "AWS::IoT::ProvisioningTemplate" => {
                // The device policy is the one the template body attaches.
                let attached: Vec<String> = p
                    .pointer("/TemplateBody/Fn::Sub/1")
                    .and_then(Value::as_object)
                    .map(|vars| {
                        vars.values()
                            .filter_map(|v| v.get("Ref").and_then(Value::as_str).map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                for policy_id in attached {
                    let Some(policy) = template
                        .resources
                        .iter()
                        .find(|r| r.logical_id == policy_id && r.kind == "AWS::IoT::Policy")
                    else {
                        continue;
                    };
                    let statements = policy
                        .properties
                        .pointer("/PolicyDocument/Statement")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let unbound = statements.iter().any(|s| {
                        let text = s.get("Resource").map(Value::to_string).unwrap_or_default();
                        !text.contains("iot:Connection.Thing.ThingName")
                    });
                    if statements.is_empty() || unbound {
                        report("device-policy-bound", &policy_id, "a statement's Resource is not bound to ${iot:Connection.Thing.ThingName}: a device could act as another".into());
                    }
                }
            }
            _ => {}
        }
        for (action, arn_type) in misdirected_grants(resource, &kind_of) {
            report(
                "action-resource-type",
                &resource.logical_id,
                format!(
                    "{action} is granted on a {arn_type} ARN, which IAM never evaluates it against"
                ),
            );
        }
    }
    for (table, problem) in archive::schema_drift(&template, &archive::sample_record()) {
        report("archive-schema", &table, problem);
    }
    for (query, problem) in queries::query_drift(&template, base) {
        report("named-queries", &query, problem);
    }
    for (resource, problem) in observability::own_metric_problems(&template) {
        report("own-metrics", &resource, problem);
    }
    findings.extend(unjustified_wildcards(text));
    Ok(findings)
}

mod checks;
use checks::*;

#[cfg(test)]
mod tests;
