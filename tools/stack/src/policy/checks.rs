//! The checks the rules of the parent module run on statements, SQL and text: pieces small
//! enough to read alone, each with the AWS behaviour it encodes.

use serde_json::Value;

use super::{Finding, WILDCARD_RULE};
use crate::template::{Resource, Template};

/// Lines of an `Action:` or `Resource:` (or their list items) holding a `*` outside a
/// comment, without a comment saying why.
pub(super) fn unjustified_wildcards(text: &str) -> Vec<Finding> {
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
pub(super) fn single_key_encryption(kind: &str) -> Option<(&'static str, &'static str)> {
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
pub(super) fn selects_star_beside_own_fields(sql: &str) -> bool {
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
pub(super) fn unbound_claim_connect(statements: Option<&Value>) -> Option<String> {
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
pub(super) const ACTION_RESOURCE_TYPES: [(&str, &[&str]); 2] = [
    ("iot:AttachPolicy", &["cert", "thinggroup"]),
    ("iot:AttachPrincipalPolicy", &["cert"]),
];

/// Each (action, resource type) of `resource`'s IAM statements that grants an action of
/// [`ACTION_RESOURCE_TYPES`] on a type it is not evaluated against.
pub(super) fn misdirected_grants<'a>(
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
/// basic execution role, the X-Ray write-only policy (what SAM attaches for `Tracing:
/// Active`), plus the VPC execution role under a condition.
pub(super) fn role_of_its_own(role: &Resource) -> bool {
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
                || text.contains(":iam::aws:policy/AWSXrayWriteOnlyAccess")
                || (arn.get("Fn::If").is_some()
                    && text.contains("service-role/AWSLambdaVPCAccessExecutionRole"))
        });
    inline && managed
}

/// A policy's statements, with both branches of a statement under `Fn::If`.
pub(super) fn statements(value: Option<&Value>) -> Vec<&Value> {
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
pub(super) fn unscoped_service_grant(statement: &Value) -> Option<String> {
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

/// Kinesis keeps a stream's records 24 hours unless told otherwise (Kinesis developer
/// guide, "Change the data retention period").
const KINESIS_DEFAULT_RETENTION_HOURS: f64 = 24.0;

/// A Kinesis mapping must give up on a batch (`MaximumRecordAgeInSeconds`) by half its
/// stream's shortest retention: its failure record names the batch, not its records, and
/// `fleetctl failed redrive` reads them back from the stream. The shortest retention is
/// the stream's literal `RetentionPeriodHours`, or its parameter's `MinValue` (else
/// `Default`). `None` when the mapping is fine or reads no stream of the template.
pub(super) fn record_age_past_retention(template: &Template, mapping: &Resource) -> Option<String> {
    let stream_id = mapping
        .properties
        .pointer("/EventSourceArn/Fn::GetAtt/0")
        .and_then(Value::as_str)?;
    let stream = template
        .resources
        .iter()
        .find(|r| r.logical_id == stream_id && r.kind == "AWS::Kinesis::Stream")?;
    let number = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let hours = match stream.properties.get("RetentionPeriodHours") {
        None => KINESIS_DEFAULT_RETENTION_HOURS,
        Some(value) => match value.get("Ref").and_then(Value::as_str) {
            Some(parameter) => {
                let spec = template.parameter_specs.get(parameter)?;
                spec.get("MinValue")
                    .or_else(|| spec.get("Default"))
                    .and_then(number)?
            }
            None => number(value)?,
        },
    };
    let age = mapping
        .properties
        .get("MaximumRecordAgeInSeconds")
        .and_then(number)
        .unwrap_or(-1.0);
    let half = hours * 3600.0 / 2.0;
    if age < 0.0 || age > half {
        return Some(format!(
            "MaximumRecordAgeInSeconds {age} is past half of {stream_id}'s shortest retention ({hours} h): a batch given up on must still be in the stream to be re-driven"
        ));
    }
    None
}
