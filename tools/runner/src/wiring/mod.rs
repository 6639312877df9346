//! What `template.yaml` wires together, as the runner plays it: the functions (their
//! binaries and asynchronous-invoke settings), the IoT topic rules, the fleet provisioning
//! templates and the event source mappings. Read once at start; anything the runner
//! cannot play faithfully is refused then, with the reason.

use std::collections::BTreeMap;

use serde_json::Value;
use stack::plan::plan;
use stack::template::{Attributes, Resolver, Template};

use crate::iot::rules::sql::Statement;

mod delivery;
mod http_route;
mod mapping;

use delivery::delivery;
pub use delivery::{Delivery, DeliverySource};
use http_route::http_route;
use mapping::mapping;

/// Why the template cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error(transparent)]
    Template(#[from] stack::template::TemplateError),
    #[error("{resource}: {problem}")]
    Unsupported { resource: String, problem: String },
}

fn unsupported(resource: &str, problem: impl Into<String>) -> WiringError {
    WiringError::Unsupported {
        resource: resource.into(),
        problem: problem.into(),
    }
}

/// A Lambda function of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub logical_id: String,
    /// The binary `cargo lambda watch` serves it as.
    pub binary: String,
    /// Its deployed name (`FunctionName`), as ARNs name it.
    pub name: String,
    pub arn: String,
    /// Retries of a failed asynchronous invoke (Lambda's default is 2).
    pub async_retries: u32,
    /// How long Lambda keeps an asynchronous event it could not run yet
    /// (`MaximumEventAgeInSeconds`, 6 hours by default).
    pub max_event_age: std::time::Duration,
    /// Where an asynchronous event goes after its last failed attempt: an SQS queue name.
    pub on_failure_queue: Option<String>,
}

/// An IoT topic rule with a Lambda action.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub sql: Statement,
    /// Logical id of the function its Lambda action invokes.
    pub function: String,
    /// The SQS queue (name) of its error action.
    pub error_queue: Option<String>,
}

/// A fleet provisioning template.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisioningTemplate {
    pub name: String,
    pub arn: String,
    /// Logical id of the pre-provisioning hook function.
    pub hook: Option<String>,
    /// The template body: `Parameters` and `Resources` (a thing, the certificate, a policy).
    pub body: Value,
}

/// An event source mapping from the Kinesis stream or the Kafka topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub logical_id: String,
    pub function: String,
    pub source: Source,
    pub batch_size: usize,
    pub batching_window_seconds: u64,
    pub report_batch_item_failures: bool,
    pub bisect_on_error: bool,
    /// `-1` is Lambda's "until the record expires".
    pub maximum_retry_attempts: i64,
    pub maximum_record_age_seconds: i64,
    pub on_failure_queue: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Kinesis { stream: String, arn: String },
    Kafka { topics: Vec<String>, arn: String },
}

/// A route of the HTTP API (`AWS::ApiGatewayV2::Route`) with a Lambda proxy integration.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    /// `POST /v1/telemetry`.
    pub route_key: String,
    pub method: String,
    pub path: String,
    /// Logical id of the function its integration invokes.
    pub function: String,
    pub auth: RouteAuth,
}

/// How a route is authorized.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAuth {
    Iam,
    Jwt {
        issuer: String,
        audiences: Vec<String>,
    },
}

/// Everything the runner plays.
#[derive(Debug, Clone, Default)]
pub struct Wiring {
    pub functions: BTreeMap<String, Function>,
    pub rules: Vec<Rule>,
    pub provisioning: Vec<ProvisioningTemplate>,
    pub mappings: Vec<Mapping>,
    pub http_routes: Vec<HttpRoute>,
    /// The Firehose delivery streams the local archive plays.
    pub deliveries: Vec<Delivery>,
}

impl Wiring {
    pub fn read(
        template: &Template,
        stack_name: &str,
        region: &str,
        account: &str,
    ) -> Result<Self, WiringError> {
        let (_, mut known) = plan(template, stack_name, region, account)?;
        // What Ref and GetAtt give for the resources the runner adds to the plan's.
        add_functions_and_rules(template, stack_name, region, account, &mut known)?;
        let resolver = Resolver {
            template,
            stack_name,
            region,
            account,
            known: &known,
        };
        let arn_to_queue: BTreeMap<String, String> = template
            .resources
            .iter()
            .filter(|r| r.kind == "AWS::SQS::Queue")
            .filter_map(|r| {
                Some((
                    known.arns.get(&r.logical_id)?.clone(),
                    known.refs.get(&r.logical_id)?.clone(),
                ))
            })
            .collect();
        let queue_of = |at: &str, value: Option<&Value>| -> Result<Option<String>, WiringError> {
            let Some(value) = value else {
                return Ok(None);
            };
            let arn = resolver.text(at, value)?;
            arn_to_queue.get(&arn).cloned().map(Some).ok_or_else(|| {
                unsupported(
                    at,
                    format!("destination {arn} is not a queue of the template"),
                )
            })
        };
        let mut wiring = Wiring::default();
        for resource in &template.resources {
            if let Some(condition) = &resource.condition
                && !resolver.condition(&resource.logical_id, condition)?
            {
                continue;
            }
            let id = resource.logical_id.as_str();
            let props = &resource.properties;
            match resource.kind.as_str() {
                "AWS::Serverless::Function" => {
                    let binary = resource
                        .metadata
                        .pointer("/BuildProperties/Binary")
                        .and_then(Value::as_str)
                        .ok_or_else(|| unsupported(id, "no Metadata.BuildProperties.Binary"))?;
                    let invoke = props.get("EventInvokeConfig");
                    let async_retries = match invoke.and_then(|c| c.get("MaximumRetryAttempts")) {
                        Some(v) => resolver.text(id, v)?.parse().unwrap_or(2),
                        None => 2,
                    };
                    let max_event_age = match invoke.and_then(|c| c.get("MaximumEventAgeInSeconds"))
                    {
                        Some(v) => resolver.text(id, v)?.parse().unwrap_or(21_600),
                        None => 21_600,
                    };
                    let on_failure_queue = queue_of(
                        &format!("{id}.EventInvokeConfig"),
                        invoke.and_then(|c| c.pointer("/DestinationConfig/OnFailure/Destination")),
                    )?;
                    wiring.functions.insert(
                        id.to_owned(),
                        Function {
                            logical_id: id.to_owned(),
                            binary: binary.to_owned(),
                            name: known.refs.get(id).cloned().unwrap_or_default(),
                            arn: known.arns.get(id).cloned().unwrap_or_default(),
                            async_retries,
                            max_event_age: std::time::Duration::from_secs(max_event_age),
                            on_failure_queue,
                        },
                    );
                }
                "AWS::IoT::TopicRule" => {
                    let payload = resolver
                        .resolve(id, props.get("TopicRulePayload").unwrap_or(&Value::Null))?;
                    if payload.get("RuleDisabled").and_then(Value::as_bool) == Some(true) {
                        continue;
                    }
                    let sql_text = payload
                        .get("Sql")
                        .and_then(Value::as_str)
                        .ok_or_else(|| unsupported(id, "no Sql"))?;
                    let sql =
                        Statement::parse(sql_text).map_err(|e| unsupported(id, e.to_string()))?;
                    let actions = props
                        .pointer("/TopicRulePayload/Actions")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let [action] = &actions[..] else {
                        return Err(unsupported(
                            id,
                            "the runner plays rules with exactly one action",
                        ));
                    };
                    let target = action
                        .pointer("/Lambda/FunctionArn")
                        .ok_or_else(|| unsupported(id, "the runner plays Lambda actions only"))?;
                    let function = referenced_resource(target).ok_or_else(|| {
                        unsupported(id, "FunctionArn must be !GetAtt <Function>.Arn")
                    })?;
                    let error_queue = match payload.pointer("/ErrorAction/Sqs/QueueUrl") {
                        Some(url) => Some(
                            url.as_str()
                                .ok_or_else(|| unsupported(id, "ErrorAction queue is not a name"))?
                                .to_owned(),
                        ),
                        None if payload.get("ErrorAction").is_some() => {
                            return Err(unsupported(id, "the runner plays SQS error actions only"));
                        }
                        None => None,
                    };
                    wiring.rules.push(Rule {
                        name: id.to_owned(),
                        sql,
                        function,
                        error_queue,
                    });
                }
                "AWS::IoT::ProvisioningTemplate" => {
                    let name =
                        resolver.text(id, props.get("TemplateName").unwrap_or(&Value::Null))?;
                    let body_text =
                        resolver.text(id, props.get("TemplateBody").unwrap_or(&Value::Null))?;
                    let body: Value = serde_json::from_str(&body_text)
                        .map_err(|e| unsupported(id, format!("TemplateBody is not JSON: {e}")))?;
                    let hook = props
                        .pointer("/PreProvisioningHook/TargetArn")
                        .map(|v| {
                            referenced_resource(v).ok_or_else(|| {
                                unsupported(
                                    id,
                                    "PreProvisioningHook.TargetArn must be !GetAtt <Function>.Arn",
                                )
                            })
                        })
                        .transpose()?;
                    wiring.provisioning.push(ProvisioningTemplate {
                        arn: format!("arn:aws:iot:{region}:{account}:provisioningtemplate/{name}"),
                        name,
                        hook,
                        body,
                    });
                }
                "AWS::Lambda::EventSourceMapping" => {
                    wiring
                        .mappings
                        .push(mapping(&resolver, id, props, &queue_of)?);
                }
                "AWS::KinesisFirehose::DeliveryStream" => {
                    wiring
                        .deliveries
                        .push(delivery(template, &resolver, id, props)?);
                }
                "AWS::ApiGatewayV2::Route" => {
                    wiring
                        .http_routes
                        .push(http_route(template, &resolver, id, props)?);
                }
                _ => {}
            }
        }
        for route in &wiring.http_routes {
            if !wiring.functions.contains_key(&route.function) {
                return Err(unsupported(
                    &route.route_key,
                    format!("its function {} is not deployed", route.function),
                ));
            }
        }
        for rule in &wiring.rules {
            if !wiring.functions.contains_key(&rule.function) {
                return Err(unsupported(
                    &rule.name,
                    format!("its function {} is not deployed", rule.function),
                ));
            }
        }
        Ok(wiring)
    }

    pub fn function(&self, logical_id: &str) -> Option<&Function> {
        self.functions.get(logical_id)
    }
}

/// `!GetAtt X.Arn` or `!Ref X` → `X`.
fn referenced_resource(value: &Value) -> Option<String> {
    if let Some(parts) = value.get("Fn::GetAtt").and_then(Value::as_array) {
        return parts.first()?.as_str().map(str::to_owned);
    }
    value.get("Ref")?.as_str().map(str::to_owned)
}

/// Functions: Ref is the name, Arn the Lambda ARN. Rules: Ref is the rule name. Other
/// resources without a local stand-in: their logical id.
fn add_functions_and_rules(
    template: &Template,
    stack_name: &str,
    region: &str,
    account: &str,
    known: &mut Attributes,
) -> Result<(), WiringError> {
    let snapshot = known.clone();
    let resolver = Resolver {
        template,
        stack_name,
        region,
        account,
        known: &snapshot,
    };
    for resource in &template.resources {
        let id = &resource.logical_id;
        match resource.kind.as_str() {
            "AWS::Serverless::Function" => {
                let name = match resource.properties.get("FunctionName") {
                    Some(v) => resolver.text(id, v)?,
                    None => format!("{stack_name}-{id}"),
                };
                known.arns.insert(
                    id.clone(),
                    format!("arn:aws:lambda:{region}:{account}:function:{name}"),
                );
                known.refs.insert(id.clone(), name);
            }
            "AWS::IoT::TopicRule" => {
                known.refs.insert(id.clone(), id.clone());
                known.arns.insert(
                    id.clone(),
                    format!("arn:aws:iot:{region}:{account}:rule/{id}"),
                );
            }
            // Roles and the like play no part locally; a stand-in keeps references to
            // them resolvable.
            kind if !known.refs.contains_key(id) => {
                let service = kind
                    .split("::")
                    .nth(1)
                    .unwrap_or("local")
                    .to_ascii_lowercase();
                known.refs.insert(id.clone(), id.clone());
                known.arns.insert(
                    id.clone(),
                    format!("arn:aws:{service}:{region}:{account}:{id}"),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// The project's own template as the runner reads it, with `parameters` set: what the
/// runner's unit tests play against.
#[cfg(test)]
pub(crate) fn project(parameters: &[(&str, &str)]) -> Wiring {
    let mut template =
        Template::parse(include_str!("../../../../template.yaml")).expect("template.yaml parses");
    for (name, value) in parameters {
        template.set_parameter(name, value).unwrap();
    }
    Wiring::read(&template, "fleetwire", "us-east-1", "123456789012").expect("wiring reads")
}
