//! Reading `template.yaml`: CloudFormation's YAML tags (`!Ref`, `!Sub`, ...) become their
//! long JSON forms (`{"Ref": ..}`, `{"Fn::Sub": ..}`), and the intrinsics that name
//! resources are resolved the way CloudFormation would, with parameter defaults.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};
use serde_yaml_ng::Value as Yaml;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("template has no Resources section")]
    NoResources,
    #[error("{at}: {problem}")]
    Resolve { at: String, problem: String },
    #[error("unknown parameter {0} (the template declares no such parameter)")]
    UnknownParameter(String),
    #[error("--parameter {0:?}: expected NAME=VALUE")]
    ParameterSyntax(String),
}

/// One resource as declared.
#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    pub properties: Value,
    /// `Metadata` (e.g. SAM's `BuildProperties.Binary`), unresolved.
    pub metadata: Value,
    /// The name of the condition that decides whether it exists.
    pub condition: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Template {
    /// Parameter name to its value: the default, or an override.
    pub parameters: BTreeMap<String, Option<String>>,
    /// The parameters as declared (`Type`, `Default`, `MinValue`, ...).
    pub parameter_specs: Map<String, Value>,
    /// In declaration order.
    pub resources: Vec<Resource>,
    /// Condition name to its expression.
    pub conditions: Map<String, Value>,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let yaml: Yaml = serde_yaml_ng::from_str(text)?;
        let json = to_json(&yaml);
        let parameters = json
            .get("Parameters")
            .and_then(Value::as_object)
            .map(|params| {
                params
                    .iter()
                    .map(|(name, spec)| (name.clone(), spec.get("Default").map(scalar_text)))
                    .collect()
            })
            .unwrap_or_default();
        let parameter_specs = json
            .get("Parameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let globals = json.get("Globals").and_then(Value::as_object);
        let resources = json
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or(TemplateError::NoResources)?
            .iter()
            .map(|(logical_id, body)| {
                let kind = body
                    .get("Type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let declared = body
                    .get("Properties")
                    .cloned()
                    .unwrap_or(Value::Object(Map::new()));
                // What SAM deploys: the resource's properties over its type's Globals.
                let global = globals.and_then(|sections| {
                    sections
                        .iter()
                        .find(|(section, _)| {
                            crate::globals::resource_type(section) == Some(kind.as_str())
                        })
                        .map(|(_, properties)| properties)
                });
                let properties = match global {
                    Some(global) => crate::globals::merge(global, &declared),
                    None => declared,
                };
                (logical_id, body, kind, properties)
            })
            .map(|(logical_id, body, kind, properties)| Resource {
                logical_id: logical_id.clone(),
                kind,
                properties,
                metadata: body.get("Metadata").cloned().unwrap_or(Value::Null),
                condition: body
                    .get("Condition")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
            .collect();
        let conditions = json
            .get("Conditions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(Template {
            parameters,
            parameter_specs,
            resources,
            conditions,
        })
    }

    /// Overrides a parameter's default, as `sam deploy --parameter-overrides` would.
    pub fn set_parameter(&mut self, name: &str, value: &str) -> Result<(), TemplateError> {
        match self.parameters.get_mut(name) {
            Some(slot) => {
                *slot = Some(value.to_string());
                Ok(())
            }
            None => Err(TemplateError::UnknownParameter(name.to_string())),
        }
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// YAML to JSON, turning `!Tag value` into `{"Fn::Tag": value}` (`!Ref` into `{"Ref": ..}`,
/// `!GetAtt A.B` into `{"Fn::GetAtt": ["A", "B"]}`).
fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        other => serde_yaml_ng::to_string(other)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = to_json(&tagged.value);
            let (key, value) = match (name, inner) {
                ("Ref", v) => ("Ref".to_string(), v),
                ("Condition", v) => ("Condition".to_string(), v),
                ("GetAtt", Value::String(s)) => {
                    let (resource, attribute) = s.split_once('.').unwrap_or((s.as_str(), ""));
                    (
                        "Fn::GetAtt".to_string(),
                        Value::from(vec![resource, attribute]),
                    )
                }
                (other, v) => (format!("Fn::{other}"), v),
            };
            Value::Object(Map::from_iter([(key, value)]))
        }
    }
}

/// What `Ref` and `Fn::GetAtt` of each resource return, known once names are decided.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub refs: BTreeMap<String, String>,
    pub arns: BTreeMap<String, String>,
}

/// Resolves intrinsics against parameters, pseudo parameters and known resources.
pub struct Resolver<'a> {
    pub template: &'a Template,
    pub stack_name: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub known: &'a Attributes,
}

impl Resolver<'_> {
    pub fn resolve(&self, at: &str, value: &Value) -> Result<Value, TemplateError> {
        let fail = |problem: String| TemplateError::Resolve {
            at: at.to_string(),
            problem,
        };
        match value {
            Value::Array(items) => items
                .iter()
                .map(|v| self.resolve(at, v))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                match key.as_str() {
                    // CloudFormation drops a property whose value is AWS::NoValue; null here.
                    "Ref" if arg.as_str() == Some("AWS::NoValue") => Ok(Value::Null),
                    "Ref" => self
                        .reference(arg.as_str().unwrap_or_default())
                        .map(Value::String)
                        .map_err(fail),
                    "Fn::If" => {
                        let branches = arg
                            .as_array()
                            .filter(|a| a.len() == 3)
                            .ok_or_else(|| fail("Fn::If takes [condition, then, else]".into()))?;
                        let name = branches[0]
                            .as_str()
                            .ok_or_else(|| fail("Fn::If's condition must be a name".into()))?;
                        let chosen = if self.condition(at, name)? {
                            &branches[1]
                        } else {
                            &branches[2]
                        };
                        self.resolve(at, chosen)
                    }
                    "Fn::Sub" => self.substitute(at, arg).map(Value::String),
                    "Fn::GetAtt" => self.get_att(arg).map(Value::String).map_err(fail),
                    "Fn::Join" => {
                        let parts = arg
                            .as_array()
                            .filter(|a| a.len() == 2)
                            .ok_or_else(|| fail("Fn::Join takes [separator, list]".into()))?;
                        let separator = parts[0].as_str().unwrap_or_default();
                        let list = self.resolve(at, &parts[1])?;
                        let texts: Vec<String> = list
                            .as_array()
                            .map(|l| l.iter().map(scalar_text).collect())
                            .unwrap_or_default();
                        Ok(Value::String(texts.join(separator)))
                    }
                    other if other.starts_with("Fn::") => Err(fail(format!(
                        "{other} is not supported by the local stack (supported: Ref, Fn::Sub, Fn::GetAtt, Fn::Join, Fn::If)"
                    ))),
                    _ => {
                        let resolved = self.resolve(at, arg)?;
                        Ok(Value::Object(Map::from_iter([(key.clone(), resolved)])))
                    }
                }
            }
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.resolve(at, v)?)))
                .collect::<Result<Map<_, _>, _>>()
                .map(Value::Object),
            other => Ok(other.clone()),
        }
    }

    /// Evaluates the template condition `name`.
    pub fn condition(&self, at: &str, name: &str) -> Result<bool, TemplateError> {
        let expression =
            self.template
                .conditions
                .get(name)
                .ok_or_else(|| TemplateError::Resolve {
                    at: at.to_string(),
                    problem: format!("no condition named {name}"),
                })?;
        self.evaluate(at, expression)
    }

    fn evaluate(&self, at: &str, expression: &Value) -> Result<bool, TemplateError> {
        let fail = |problem: String| TemplateError::Resolve {
            at: at.to_string(),
            problem,
        };
        let Some((function, arg)) = expression
            .as_object()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.iter().next())
        else {
            return Err(fail(format!("not a condition: {expression}")));
        };
        let list = || {
            arg.as_array()
                .cloned()
                .ok_or_else(|| fail(format!("{function} takes a list")))
        };
        match function.as_str() {
            "Condition" => self.condition(at, arg.as_str().unwrap_or_default()),
            "Fn::Equals" => {
                let items = list()?;
                let [a, b] = &items[..] else {
                    return Err(fail("Fn::Equals takes two values".into()));
                };
                Ok(self.text(at, a)? == self.text(at, b)?)
            }
            "Fn::Not" => Ok(!self.evaluate(
                at,
                list()?
                    .first()
                    .ok_or_else(|| fail("Fn::Not takes one condition".into()))?,
            )?),
            "Fn::And" => list()?
                .iter()
                .try_fold(true, |all, c| Ok(all && self.evaluate(at, c)?)),
            "Fn::Or" => list()?
                .iter()
                .try_fold(false, |any, c| Ok(any || self.evaluate(at, c)?)),
            other => Err(fail(format!("{other} is not a condition function"))),
        }
    }

    /// Resolves to text (names, numbers).
    pub fn text(&self, at: &str, value: &Value) -> Result<String, TemplateError> {
        Ok(scalar_text(&self.resolve(at, value)?))
    }

    fn reference(&self, name: &str) -> Result<String, String> {
        match name {
            "AWS::StackName" => return Ok(self.stack_name.to_string()),
            "AWS::Region" => return Ok(self.region.to_string()),
            "AWS::AccountId" => return Ok(self.account.to_string()),
            "AWS::Partition" => return Ok("aws".to_string()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_string()),
            _ => {}
        }
        if let Some(value) = self.template.parameters.get(name) {
            return value.clone().ok_or_else(|| {
                format!("parameter {name} has no default; pass --parameter {name}=VALUE")
            });
        }
        self.known.refs.get(name).cloned().ok_or_else(|| {
            format!("Ref {name}: no such parameter, or a resource not created locally")
        })
    }

    fn get_att(&self, arg: &Value) -> Result<String, String> {
        let parts: Vec<&str> = arg
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let [resource, attribute] = parts[..] else {
            return Err(format!("Fn::GetAtt takes [resource, attribute], got {arg}"));
        };
        match attribute {
            "Arn" | "TopicArn" => self.known.arns.get(resource).cloned(),
            "QueueUrl" | "Name" | "QueueName" => self.known.refs.get(resource).cloned(),
            _ => None,
        }
        .ok_or_else(|| format!("Fn::GetAtt {resource}.{attribute} is not known locally"))
    }

    fn substitute(&self, at: &str, arg: &Value) -> Result<String, TemplateError> {
        let fail = |problem: String| TemplateError::Resolve {
            at: at.to_string(),
            problem,
        };
        let (text, variables) = match arg {
            Value::String(s) => (s.as_str(), Map::new()),
            Value::Array(a) if a.len() == 2 => (
                a[0].as_str()
                    .ok_or_else(|| fail("Fn::Sub's first item must be a string".into()))?,
                a[1].as_object().cloned().unwrap_or_default(),
            ),
            other => {
                return Err(fail(format!(
                    "Fn::Sub takes a string or [string, map], got {other}"
                )));
            }
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(literal) = after.strip_prefix('!') {
                // `${!Literal}` stands for the text `${Literal}`.
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after
                .find('}')
                .ok_or_else(|| fail(format!("unclosed ${{ in {text:?}")))?;
            let name = &after[..end];
            let value = if let Some(v) = variables.get(name) {
                self.text(at, v)?
            } else if let Some((resource, attribute)) = name.split_once('.') {
                self.get_att(&Value::from(vec![resource, attribute]))
                    .map_err(fail)?
            } else {
                self.reference(name).map_err(fail)?
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
