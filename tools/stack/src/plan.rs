//! The local resources a template declares: tables, streams, queues, topics, buckets and
//! secrets, with the names CloudFormation would give them. Everything else (functions,
//! roles, policies, rules) has no local stand-in here and is left out.

use serde_json::Value;

use crate::template::{Attributes, Resolver, Template, TemplateError};

#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub logical_id: String,
    pub name: String,
    pub spec: Spec,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Table(TableSpec),
    Stream {
        /// `None`: on-demand capacity (`StreamModeDetails.StreamMode: ON_DEMAND`).
        shard_count: Option<i32>,
        retention_hours: i32,
    },
    Queue {
        attributes: Vec<(String, String)>,
    },
    Topic,
    Bucket,
    Secret {
        value: Option<String>,
    },
    /// An IoT policy (moto keeps them), for the local runner to attach to the things it
    /// provisions.
    IotPolicy {
        document: String,
    },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableSpec {
    /// (attribute, HASH | RANGE)
    pub key_schema: Vec<(String, String)>,
    /// (attribute, S | N | B)
    pub attributes: Vec<(String, String)>,
    /// (index name, key schema)
    pub global_indexes: Vec<(String, Vec<(String, String)>)>,
    pub ttl_attribute: Option<String>,
}

impl Spec {
    pub fn kind(&self) -> &'static str {
        match self {
            Spec::Table(_) => "DynamoDB table",
            Spec::Stream { .. } => "Kinesis stream",
            Spec::Queue { .. } => "SQS queue",
            Spec::Topic => "SNS topic",
            Spec::Bucket => "S3 bucket",
            Spec::Secret { .. } => "Secret",
            Spec::IotPolicy { .. } => "IoT policy",
        }
    }
}

impl Planned {
    /// The environment variable the functions (and tests) read this resource from:
    /// `RegistryTable` → `REGISTRY_TABLE`, `DeadLetterQueue` → `DEAD_LETTER_QUEUE_URL`.
    pub fn env_var(&self) -> String {
        let base = screaming_snake(&self.logical_id);
        match self.spec {
            Spec::Queue { .. } => format!("{base}_URL"),
            Spec::Topic | Spec::Secret { .. } => format!("{base}_ARN"),
            _ => base,
        }
    }
}

pub fn screaming_snake(id: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = id.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        let prev_is_lower_or_digit =
            i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
        if c.is_ascii_uppercase() && i > 0 && (prev_is_lower_or_digit || next_is_lower) {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The resources to create, with their names and ARNs. Names are decided first, so a
/// resource may refer to another declared after it (a queue's redrive target, say).
pub fn plan(
    template: &Template,
    stack_name: &str,
    region: &str,
    account: &str,
) -> Result<(Vec<Planned>, Attributes), TemplateError> {
    let mut known = Attributes::default();
    let mut named = Vec::new();
    for resource in &template.resources {
        let Some((name_property, arn_format)) = naming(&resource.kind) else {
            continue;
        };
        let resolver = Resolver {
            template,
            stack_name,
            region,
            account,
            known: &known,
        };
        // A resource whose condition is false does not exist in this deployment.
        if let Some(condition) = &resource.condition
            && !resolver.condition(&resource.logical_id, condition)?
        {
            continue;
        }
        let name = match resource.properties.get(name_property) {
            Some(v) => resolver.text(&format!("{}.{name_property}", resource.logical_id), v)?,
            // CloudFormation would generate <stack>-<LogicalId>-<random>, in lower case for
            // buckets, whose names must be; locally, the same without the random part.
            None if name_property == "BucketName" => {
                format!("{stack_name}-{}", resource.logical_id).to_ascii_lowercase()
            }
            None => format!("{stack_name}-{}", resource.logical_id),
        };
        let arn = arn_format
            .replace("{region}", region)
            .replace("{account}", account)
            .replace("{name}", &name);
        known.refs.insert(resource.logical_id.clone(), name.clone());
        known.arns.insert(resource.logical_id.clone(), arn);
        named.push((resource, name));
    }
    let resolver = Resolver {
        template,
        stack_name,
        region,
        account,
        known: &known,
    };
    let mut planned = Vec::new();
    for (resource, name) in named {
        let props = &resource.properties;
        let at = |prop: &str| format!("{}.{prop}", resource.logical_id);
        let number = |prop: &str, default: i32| -> Result<i32, TemplateError> {
            match props.get(prop) {
                None => Ok(default),
                Some(v) => {
                    resolver
                        .text(&at(prop), v)?
                        .parse()
                        .map_err(|_| TemplateError::Resolve {
                            at: at(prop),
                            problem: "expected a whole number".into(),
                        })
                }
            }
        };
        let spec = match resource.kind.as_str() {
            "AWS::DynamoDB::Table" => Spec::Table(table_spec(props)),
            "AWS::Kinesis::Stream" => {
                let mode = match props.get("StreamModeDetails") {
                    Some(details) => resolver.resolve(&at("StreamModeDetails"), details)?,
                    None => Value::Null,
                };
                let on_demand = mode.get("StreamMode").and_then(Value::as_str) == Some("ON_DEMAND");
                Spec::Stream {
                    shard_count: if on_demand {
                        None
                    } else {
                        Some(number("ShardCount", 1)?)
                    },
                    retention_hours: number("RetentionPeriodHours", 24)?,
                }
            }
            "AWS::SQS::Queue" => Spec::Queue {
                attributes: queue_attributes(&resolver, &resource.logical_id, props)?,
            },
            "AWS::SNS::Topic" => Spec::Topic,
            "AWS::S3::Bucket" => Spec::Bucket,
            "AWS::IoT::Policy" => Spec::IotPolicy {
                document: resolver
                    .resolve(
                        &at("PolicyDocument"),
                        props.get("PolicyDocument").unwrap_or(&Value::Null),
                    )?
                    .to_string(),
            },
            _ => Spec::Secret {
                value: props
                    .get("SecretString")
                    .map(|v| resolver.text(&at("SecretString"), v))
                    .transpose()?,
            },
        };
        planned.push(Planned {
            logical_id: resource.logical_id.clone(),
            name,
            spec,
        });
    }
    Ok((planned, known))
}

/// For each kind the local stack creates: the property holding its name, and its ARN.
fn naming(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "AWS::DynamoDB::Table" => (
            "TableName",
            "arn:aws:dynamodb:{region}:{account}:table/{name}",
        ),
        "AWS::Kinesis::Stream" => ("Name", "arn:aws:kinesis:{region}:{account}:stream/{name}"),
        "AWS::SQS::Queue" => ("QueueName", "arn:aws:sqs:{region}:{account}:{name}"),
        "AWS::SNS::Topic" => ("TopicName", "arn:aws:sns:{region}:{account}:{name}"),
        "AWS::S3::Bucket" => ("BucketName", "arn:aws:s3:::{name}"),
        "AWS::SecretsManager::Secret" => (
            "Name",
            "arn:aws:secretsmanager:{region}:{account}:secret:{name}",
        ),
        "AWS::IoT::Policy" => ("PolicyName", "arn:aws:iot:{region}:{account}:policy/{name}"),
        _ => return None,
    })
}

fn pairs(list: Option<&Value>, key: &str, value: &str) -> Vec<(String, String)> {
    list.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    Some((
                        item.get(key)?.as_str()?.to_string(),
                        item.get(value)?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn table_spec(props: &Value) -> TableSpec {
    TableSpec {
        key_schema: pairs(props.get("KeySchema"), "AttributeName", "KeyType"),
        attributes: pairs(
            props.get("AttributeDefinitions"),
            "AttributeName",
            "AttributeType",
        ),
        global_indexes: props
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_array)
            .map(|indexes| {
                indexes
                    .iter()
                    .filter_map(|index| {
                        let name = index.get("IndexName")?.as_str()?.to_string();
                        Some((
                            name,
                            pairs(index.get("KeySchema"), "AttributeName", "KeyType"),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ttl_attribute: props
            .get("TimeToLiveSpecification")
            .filter(|ttl| ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(false))
            .and_then(|ttl| ttl.get("AttributeName")?.as_str().map(str::to_string)),
    }
}

/// The queue properties that mean the same on moto as on AWS. KMS settings are left out:
/// the local stack has no KMS keys, and SQS-managed encryption changes nothing locally.
fn queue_attributes(
    resolver: &Resolver<'_>,
    id: &str,
    props: &Value,
) -> Result<Vec<(String, String)>, TemplateError> {
    const PASSED: [&str; 7] = [
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "FifoQueue",
        "ContentBasedDeduplication",
    ];
    let mut attributes = Vec::new();
    for name in PASSED {
        if let Some(value) = props.get(name) {
            attributes.push((
                name.to_string(),
                resolver.text(&format!("{id}.{name}"), value)?,
            ));
        }
    }
    if let Some(redrive) = props.get("RedrivePolicy") {
        let resolved = resolver.resolve(&format!("{id}.RedrivePolicy"), redrive)?;
        attributes.push(("RedrivePolicy".to_string(), resolved.to_string()));
    }
    Ok(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_plan() -> Vec<Planned> {
        let template =
            Template::parse(include_str!("../../../template.yaml")).expect("template.yaml parses");
        plan(&template, "fleetwire", "us-east-1", "123456789012")
            .expect("template.yaml resolves")
            .0
    }

    #[test]
    fn names_become_environment_variables() {
        assert_eq!(screaming_snake("RegistryTable"), "REGISTRY_TABLE");
        assert_eq!(screaming_snake("OtaHistoryTable"), "OTA_HISTORY_TABLE");
        assert_eq!(
            screaming_snake("CloudFrontKeyGroup"),
            "CLOUD_FRONT_KEY_GROUP"
        );
        assert_eq!(screaming_snake("S3Bucket"), "S3_BUCKET");
        assert_eq!(screaming_snake("DLQ"), "DLQ");
    }

    #[test]
    fn the_project_template_declares_the_design_tables_stream_and_queue() {
        let plan = project_plan();
        let find = |id: &str| {
            plan.iter()
                .find(|p| p.logical_id == id)
                .unwrap_or_else(|| panic!("{id} missing"))
        };
        for (id, name) in [
            ("RegistryTable", "fleetwire-dev-registry"),
            ("StateTable", "fleetwire-dev-state"),
            ("SummariesTable", "fleetwire-dev-summaries"),
            ("FirmwareTable", "fleetwire-dev-firmware"),
            ("RolloutsTable", "fleetwire-dev-rollouts"),
            ("OtaHistoryTable", "fleetwire-dev-ota-history"),
        ] {
            assert_eq!(find(id).name, name);
            assert!(matches!(find(id).spec, Spec::Table(_)));
        }
        let Spec::Table(summaries) = &find("SummariesTable").spec else {
            unreachable!()
        };
        assert_eq!(
            summaries.key_schema,
            vec![
                ("device_id".into(), "HASH".into()),
                ("hour".into(), "RANGE".into())
            ]
        );
        let Spec::Table(history) = &find("OtaHistoryTable").spec else {
            unreachable!()
        };
        assert_eq!(history.ttl_attribute.as_deref(), Some("expires_at"));
        assert_eq!(
            find("TelemetryStream").spec,
            Spec::Stream {
                shard_count: Some(1),
                retention_hours: 24
            }
        );
        let queue = find("DeadLetterQueue");
        assert_eq!(queue.env_var(), "DEAD_LETTER_QUEUE_URL");
        assert_eq!(
            queue.spec,
            Spec::Queue {
                attributes: vec![("MessageRetentionPeriod".into(), "1209600".into())]
            }
        );
    }

    #[test]
    fn the_msk_backend_has_no_kinesis_stream_and_on_demand_has_no_shard_count() {
        let mut template = Template::parse(include_str!("../../../template.yaml")).unwrap();
        template.set_parameter("StreamBackend", "msk").unwrap();
        let (planned, _) = plan(&template, "fleetwire", "us-east-1", "123456789012").unwrap();
        assert!(planned.iter().all(|p| p.logical_id != "TelemetryStream"));
        assert!(planned.iter().any(|p| p.logical_id == "FailedEventsQueue"));

        let mut template = Template::parse(include_str!("../../../template.yaml")).unwrap();
        template.set_parameter("StreamMode", "ON_DEMAND").unwrap();
        let (planned, _) = plan(&template, "fleetwire", "us-east-1", "123456789012").unwrap();
        let stream = planned
            .iter()
            .find(|p| p.logical_id == "TelemetryStream")
            .unwrap();
        assert_eq!(
            stream.spec,
            Spec::Stream {
                shard_count: None,
                retention_hours: 24
            }
        );
    }

    #[test]
    fn a_queue_may_name_a_redrive_target_declared_after_it() {
        let template = Template::parse(
            r#"
Resources:
  AQueue:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy: { deadLetterTargetArn: !GetAtt ZQueue.Arn, maxReceiveCount: 3 }
  ZQueue:
    Type: AWS::SQS::Queue
  Role:
    Type: AWS::IAM::Role
"#,
        )
        .unwrap();
        let (planned, _) = plan(&template, "s", "us-east-1", "123456789012").unwrap();
        assert_eq!(planned.len(), 2, "the role has no local stand-in");
        let Spec::Queue { attributes } = &planned[0].spec else {
            unreachable!()
        };
        assert_eq!(attributes[0].0, "RedrivePolicy");
        assert!(
            attributes[0]
                .1
                .contains("arn:aws:sqs:us-east-1:123456789012:s-ZQueue"),
            "{}",
            attributes[0].1
        );
    }
}
