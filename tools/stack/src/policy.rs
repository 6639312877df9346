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

/// Every rule, with what it asks.
pub const RULES: [(&str, &str); 19] = [
    (
        "function-build",
        "functions are arm64 provided.al2023 Rust binaries built by cargo lambda",
    ),
    (
        "function-logs",
        "functions log JSON to their own log group, which has a retention",
    ),
    (
        "function-policy",
        "functions have exactly one inline policy of their own",
    ),
    (
        "vpc-policy-with-vpc",
        "a function takes the VPC execution policy only when it runs in a VPC",
    ),
    (
        "table-key-access",
        "a function that uses a table can use the key the table is encrypted with, as every other function on the tables",
    ),
    (
        "rule-error-action",
        "every IoT topic rule has an SQS error action",
    ),
    (
        "rule-payload-apart",
        "no IoT rule selects * beside fields of its own: the device could set them (the payload goes whole, encode(*, 'base64'))",
    ),
    (
        "async-failure-path",
        "every function a rule invokes has finite retries and an OnFailure destination",
    ),
    (
        "mapping-failure-path",
        "every event source mapping has finite retries and record age, bisect and an OnFailure destination; Kinesis ones report partial batches, Kafka ones run in provisioned mode",
    ),
    (
        "encryption",
        "tables, stream, queues, topics, secrets, buckets and the archive use the template's own KMS key",
    ),
    (
        "point-in-time-recovery",
        "every table has point-in-time recovery",
    ),
    (
        "bucket-hardening",
        "every bucket blocks public access, keeps versions and refuses requests without TLS",
    ),
    (
        "service-grant-scoped",
        "every bucket policy grant to an AWS service names its one source: aws:SourceArn with StringEquals or ArnEquals, no wildcard",
    ),
    (
        "action-resource-type",
        "an IAM grant names only resource types its action is evaluated against (iot:AttachPolicy: a certificate or thing group, not the policy)",
    ),
    (
        "invoke-permission-scoped",
        "every Lambda permission for a service names the source (SourceArn)",
    ),
    (
        "device-policy-bound",
        "the device policy binds every resource to ${iot:Connection.Thing.ThingName}",
    ),
    (
        "claim-policy-bound",
        "a policy that allows fleet provisioning lets its certificate connect only as claim-*, a client id no thing may have",
    ),
    (
        "api-route-authorized",
        "every HTTP API route needs IAM or a JWT authorizer: no anonymous writes",
    ),
    (
        "api-stage-guarded",
        "every HTTP API stage logs access and throttles; every custom domain takes TLS 1.2 or newer only",
    ),
];

/// The rule that a wildcard needs a reason; checked on the text, where comments are.
pub const WILDCARD_RULE: (&str, &str) = (
    "no-unjustified-wildcard",
    "a * in an IAM or IoT policy's Action or Resource carries its reason in a comment on the same line",
);

/// Runs every rule over the template's text.
pub fn check(text: &str) -> Result<Vec<Finding>, TemplateError> {
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
                        "needs exactly one inline policy (Policies: [ {Version, Statement} ]), or a Role of the template with one inline policy and only Lambda's basic (and, under a condition, VPC) execution policies"
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
                if get("/Topics").is_none() {
                    let reports = get("/FunctionResponseTypes")
                        .and_then(Value::as_array)
                        .is_some_and(|t| t.iter().any(|v| v == "ReportBatchItemFailures"));
                    if !bounded || !reports {
                        report("mapping-failure-path", id, "a stream mapping needs finite MaximumRetryAttempts and MaximumRecordAgeInSeconds, BisectBatchOnFunctionError and ReportBatchItemFailures".into());
                    }
                } else if !bounded || get("/ProvisionedPollerConfig").is_none() {
                    // Kafka takes these error controls only in provisioned mode; the
                    // processor fails a Kafka batch whole, so bisect isolates the bad record.
                    report("mapping-failure-path", id, "a Kafka mapping needs ProvisionedPollerConfig with finite MaximumRetryAttempts and MaximumRecordAgeInSeconds and BisectBatchOnFunctionError".into());
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
    findings.extend(unjustified_wildcards(text));
    Ok(findings)
}

/// Lines of an `Action:` or `Resource:` (or their list items) holding a `*` outside a
/// comment, without a comment saying why.
fn unjustified_wildcards(text: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    // The indentation of the Action/Resource key whose list we are in.
    let mut in_list: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start().trim_start_matches("- ");
        let (code, comment) = match line.split_once(" #") {
            Some((code, comment)) => (code, Some(comment.trim())),
            None => (line, None),
        };
        let is_key = trimmed.starts_with("Action:") || trimmed.starts_with("Resource:");
        if is_key {
            in_list = Some(indent);
        } else if let Some(key_indent) = in_list
            && !(indent > key_indent && line.trim_start().starts_with("- "))
        {
            in_list = None;
        }
        let relevant = is_key || in_list.is_some();
        if relevant && code.contains('*') && comment.is_none_or(|c| c.len() < 8) {
            findings.push(Finding {
                rule: WILDCARD_RULE.0,
                resource: format!("template.yaml line {}", number + 1),
                problem: format!("{} has a * without a reason in a comment", code.trim()),
            });
        }
    }
    findings
}

/// Where a resource with one key setting names its KMS key, and what to say when it does
/// not name the template's own. Tables and buckets take more than a key: checked apart.
fn single_key_encryption(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "AWS::SQS::Queue" | "AWS::SNS::Topic" => (
            "/KmsMasterKeyId",
            "needs KmsMasterKeyId: the template's KMS key",
        ),
        "AWS::Kinesis::Stream" => (
            "/StreamEncryption/KeyId",
            "needs StreamEncryption with the template's KMS key",
        ),
        "AWS::SecretsManager::Secret" => ("/KmsKeyId", "needs KmsKeyId: the template's KMS key"),
        "AWS::KinesisFirehose::DeliveryStream" => (
            "/ExtendedS3DestinationConfiguration/EncryptionConfiguration/KMSEncryptionConfig/AWSKMSKeyARN",
            "needs the S3 destination encrypted with the template's KMS key",
        ),
        _ => return None,
    })
}

/// Whether a rule's `SELECT` list has `*` and something else: the device's JSON merged
/// with fields the rule means to set.
fn selects_star_beside_own_fields(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    let (Some(select), Some(from)) = (upper.find("SELECT"), upper.find(" FROM ")) else {
        return false;
    };
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, select + "SELECT".len());
    for (at, c) in sql.char_indices().take(from).skip(start) {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(sql[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(sql[start..from].trim());
    items.len() > 1 && items.contains(&"*")
}

/// What is wrong with a policy that allows fleet provisioning (publishing to
/// `$aws/certificates/create`) and lets its certificate connect outside `client/claim-*`.
fn unbound_claim_connect(statements: Option<&Value>) -> Option<String> {
    let statements = self::statements(statements);
    let text = |v: &Value| v.to_string();
    let provisions = statements
        .iter()
        .any(|s| text(s).contains("$aws/certificates/create"));
    if !provisions {
        return None;
    }
    let wanted = format!(
        ":client/{}*",
        fleetwire::domain::telemetry::CLAIM_CLIENT_ID_PREFIX
    );
    let connects: Vec<String> = statements
        .iter()
        .filter(|s| text(&s["Action"]).contains("iot:Connect"))
        .map(|s| text(&s["Resource"]))
        .collect();
    let bound = !connects.is_empty() && connects.iter().all(|r| r.contains(&wanted));
    (!bound).then(|| {
        format!("a claim certificate may connect as {connects:?}: allow only client ids ending the ARN in {wanted:?}")
    })
}

/// The resource types IAM evaluates these actions against (Service Authorization
/// Reference, "Actions, resources, and condition keys for AWS IoT"); a grant on another
/// type is dead: it reads as a permission and allows nothing.
const ACTION_RESOURCE_TYPES: [(&str, &[&str]); 2] = [
    ("iot:AttachPolicy", &["cert", "thinggroup"]),
    ("iot:AttachPrincipalPolicy", &["cert"]),
];

/// Each (action, resource type) of `resource`'s IAM statements that grants an action of
/// [`ACTION_RESOURCE_TYPES`] on a type it is not evaluated against.
fn misdirected_grants<'a>(
    resource: &'a Resource,
    kind_of: &dyn Fn(&str) -> Option<&'a str>,
) -> Vec<(String, String)> {
    let documents: Vec<&Value> = match resource.kind.as_str() {
        "AWS::IAM::Role" => resource
            .properties
            .pointer("/Policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.pointer("/PolicyDocument/Statement"))
            .collect(),
        "AWS::Serverless::Function" => resource
            .properties
            .pointer("/Policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("Statement"))
            .collect(),
        _ => return Vec::new(),
    };
    let one_or_many = |v: Option<&'a Value>| -> Vec<&'a Value> {
        match v {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(other) => vec![other],
            None => Vec::new(),
        }
    };
    let type_of = |arn: &Value| -> Option<String> {
        let text = arn
            .as_str()
            .or_else(|| arn.get("Fn::Sub").and_then(Value::as_str));
        if let Some(text) = text {
            // `arn:...:iot:<region>:<account>:<type>/<name>`; the region and account may be
            // `${AWS::...}` variables, so the type is what ends the part before the first `/`.
            let (head, _) = text.split_once('/')?;
            return head.rsplit(':').next().map(str::to_string);
        }
        let id = arn.pointer("/Fn::GetAtt/0").and_then(Value::as_str)?;
        let kind = kind_of(id)?;
        Some(
            match kind {
                "AWS::IoT::Policy" => "policy",
                "AWS::IoT::Thing" => "thing",
                "AWS::IoT::ThingGroup" => "thinggroup",
                "AWS::IoT::Certificate" => "cert",
                other => other,
            }
            .to_string(),
        )
    };
    let mut found = Vec::new();
    for statement in documents.into_iter().flat_map(|d| statements(Some(d))) {
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        for action in one_or_many(statement.get("Action"))
            .iter()
            .filter_map(|a| a.as_str())
        {
            let Some((_, types)) = ACTION_RESOURCE_TYPES.iter().find(|(a, _)| *a == action) else {
                continue;
            };
            for arn in one_or_many(statement.get("Resource")) {
                if let Some(arn_type) = type_of(arn)
                    && !types.contains(&arn_type.as_str())
                {
                    found.push((action.to_string(), arn_type));
                }
            }
        }
    }
    found
}

/// A function's own role: one inline policy, and of AWS's managed policies only Lambda's
/// basic execution role, plus the VPC execution role under a condition.
fn role_of_its_own(role: &Resource) -> bool {
    let inline = role
        .properties
        .pointer("/Policies")
        .and_then(Value::as_array)
        .is_some_and(|p| p.len() == 1 && p[0].pointer("/PolicyDocument/Statement").is_some());
    let managed = role
        .properties
        .pointer("/ManagedPolicyArns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|arn| {
            let text = arn.to_string();
            text.contains("service-role/AWSLambdaBasicExecutionRole")
                || (arn.get("Fn::If").is_some()
                    && text.contains("service-role/AWSLambdaVPCAccessExecutionRole"))
        });
    inline && managed
}

/// A policy's statements, with both branches of a statement under `Fn::If`.
fn statements(value: Option<&Value>) -> Vec<&Value> {
    let mut out = Vec::new();
    for statement in value.and_then(Value::as_array).into_iter().flatten() {
        match statement.pointer("/Fn::If").and_then(Value::as_array) {
            Some(branches) => out.extend(branches.iter().skip(1).filter(|b| b.is_object())),
            None => out.push(statement),
        }
    }
    out
}

/// What is wrong with a statement that allows an AWS service without naming its one source.
fn unscoped_service_grant(statement: &Value) -> Option<String> {
    let service = statement.pointer("/Principal/Service")?;
    if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return None;
    }
    let exact = ["StringEquals", "ArnEquals"].iter().find_map(|operator| {
        statement
            .pointer(&format!("/Condition/{operator}"))?
            .as_object()?
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("aws:SourceArn"))
            .map(|(_, arn)| arn)
    });
    match exact {
        None => Some(format!(
            "{service} is allowed without aws:SourceArn under StringEquals or ArnEquals"
        )),
        Some(arn) if arn.to_string().contains('*') => {
            Some(format!("{service} is allowed for a wildcard source {arn}"))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../template.yaml");

    fn rules_broken(text: &str) -> Vec<&'static str> {
        let mut rules: Vec<&'static str> =
            check(text).unwrap().into_iter().map(|f| f.rule).collect();
        rules.dedup();
        rules
    }

    /// The template with `old` (which must be there) replaced.
    fn broken(old: &str, new: &str) -> String {
        assert!(TEMPLATE.contains(old), "the template no longer has {old:?}");
        TEMPLATE.replacen(old, new, 1)
    }

    #[test]
    fn the_project_template_keeps_every_rule() {
        let findings = check(TEMPLATE).unwrap();
        assert!(
            findings.is_empty(),
            "{}",
            findings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    #[test]
    fn each_rule_fails_on_a_template_that_breaks_it() {
        let cases = [
            (
                "function-build",
                broken(
                    "    Architectures: [arm64]\n",
                    "    Architectures: [x86_64]\n",
                ),
            ),
            (
                // A function's own setting wins over Globals, as SAM merges them.
                "function-build",
                broken(
                    "      MemorySize: 256\n",
                    "      MemorySize: 256\n      Runtime: provided.al2\n",
                ),
            ),
            (
                "function-logs",
                broken("      LogFormat: JSON\n", "      LogFormat: Text\n"),
            ),
            (
                "function-policy",
                broken(
                    "      Policies:\n        - Version: \"2012-10-17\"\n",
                    "      Policies:\n        - AWSLambdaBasicExecutionRole\n        - Version: \"2012-10-17\"\n",
                ),
            ),
            (
                "rule-error-action",
                broken(
                    "        ErrorAction:\n          Sqs:\n            QueueUrl: !Ref FailedEventsQueue\n            RoleArn: !GetAtt RuleErrorRole.Arn\n            UseBase64: false\n",
                    "",
                ),
            ),
            (
                "async-failure-path",
                broken(
                    "        MaximumRetryAttempts: 2\n",
                    "        MaximumRetryAttempts: 185\n",
                ),
            ),
            (
                "mapping-failure-path",
                broken(
                    "      BisectBatchOnFunctionError: true\n",
                    "      BisectBatchOnFunctionError: false\n",
                ),
            ),
            (
                "mapping-failure-path",
                broken(
                    "      MaximumRetryAttempts: 10\n",
                    "      MaximumRetryAttempts: -1\n",
                ),
            ),
            (
                "encryption",
                broken(
                    "      KmsMasterKeyId: !Ref FleetKey\n",
                    "      KmsMasterKeyId: alias/aws/sqs\n",
                ),
            ),
            (
                "encryption",
                broken(
                    "          - ServerSideEncryptionByDefault: { SSEAlgorithm: aws:kms, KMSMasterKeyID: !GetAtt FleetKey.Arn }\n",
                    "          - ServerSideEncryptionByDefault: { SSEAlgorithm: AES256 }\n",
                ),
            ),
            (
                "point-in-time-recovery",
                broken(
                    "      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true }\n",
                    "",
                ),
            ),
            (
                "rule-payload-apart",
                broken(
                    "SELECT encode(*, 'base64') AS payload_base64, topic(2) AS thing_name",
                    "SELECT *, topic(2) AS thing_name",
                ),
            ),
            (
                "claim-policy-bound",
                broken(
                    ":client/claim-*\" # a claimant's",
                    ":client/*\" # a claimant's",
                ),
            ),
            (
                "action-resource-type",
                broken(
                    "                  - iot:GetPolicy\n",
                    "                  - iot:GetPolicy\n                  - iot:AttachPolicy\n",
                ),
            ),
            (
                "mapping-failure-path",
                broken(
                    "      ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 10 }\n",
                    "",
                ),
            ),
            (
                "vpc-policy-with-vpc",
                broken(
                    "        - !If [UseMsk, !Sub \"arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole\", !Ref AWS::NoValue]\n",
                    "",
                ),
            ),
            (
                // An unconditional VPC policy is as wrong as SAM's.
                "function-policy",
                broken(
                    "        - !If [UseMsk, !Sub \"arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole\", !Ref AWS::NoValue]\n",
                    "        - !Sub \"arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole\"\n",
                ),
            ),
            (
                "table-key-access",
                broken(
                    "            # The fleet key encrypts what this function reads and writes, as for the\n            # other functions on the same tables.\n            - Effect: Allow\n              Action: [kms:Decrypt, kms:GenerateDataKey]\n              Resource: !GetAtt FleetKey.Arn\n",
                    "",
                ),
            ),
            (
                "service-grant-scoped",
                broken(
                    "                  AWS:SourceArn: !Sub \"arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${FirmwareDistribution}\"\n",
                    "                  AWS:SourceArn: !Sub \"arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*\"\n",
                ),
            ),
            (
                "service-grant-scoped",
                broken(
                    "              Condition:\n                StringEquals:\n                  AWS:SourceArn: !Sub \"arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${FirmwareDistribution}\"\n",
                    "",
                ),
            ),
            (
                "bucket-hardening",
                broken(
                    "        RestrictPublicBuckets: true\n",
                    "        RestrictPublicBuckets: false\n",
                ),
            ),
            (
                "bucket-hardening",
                broken(
                    "          - Sid: DenyInsecureTransport\n            Effect: Deny\n",
                    "          - Sid: DenyInsecureTransport\n            Effect: Allow\n",
                ),
            ),
            (
                "invoke-permission-scoped",
                broken("      SourceArn: !GetAtt TelemetryRule.Arn\n", ""),
            ),
            (
                "device-policy-bound",
                broken(
                    "topic/fleet/${!iot:Connection.Thing.ThingName}/*\"",
                    "topic/fleet/*\"",
                ),
            ),
            (
                "api-route-authorized",
                broken(
                    "      AuthorizationType: AWS_IAM\n",
                    "      AuthorizationType: NONE\n",
                ),
            ),
            (
                "api-route-authorized",
                broken("      AuthorizerId: !Ref TelemetryTokenAuthorizer\n", ""),
            ),
            (
                "api-stage-guarded",
                broken(
                    "        ThrottlingBurstLimit: !Ref TelemetryApiBurstLimit\n",
                    "",
                ),
            ),
            (
                "api-stage-guarded",
                broken(
                    "        DestinationArn: !GetAtt TelemetryApiAccessLogGroup.Arn\n",
                    "",
                ),
            ),
            (
                "api-stage-guarded",
                broken(
                    "          SecurityPolicy: TLS_1_2\n",
                    "          SecurityPolicy: TLS_1_0\n",
                ),
            ),
            (
                WILDCARD_RULE.0,
                broken(" # things are named at registration, not before", ""),
            ),
            (
                WILDCARD_RULE.0,
                broken(
                    "              Action: sns:Publish\n",
                    "              Action: \"sns:*\"\n",
                ),
            ),
        ];
        for (rule, text) in cases {
            let broken_rules = rules_broken(&text);
            assert!(
                broken_rules.contains(&rule),
                "{rule} not caught; found {broken_rules:?}"
            );
        }
    }

    #[test]
    fn wildcards_are_found_in_keys_and_their_lists_only() {
        let text = "Resources:\n  A:\n    Properties:\n      Action: \"s3:*\" # every action: a deny\n      Resource:\n        - !Sub \"arn:x:*\"\n        - arn:y\n      Sql: \"SELECT * FROM 'a'\"\n      Principal: \"*\"\n";
        let found = unjustified_wildcards(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].resource.ends_with("line 6"), "{found:?}");
    }
}
