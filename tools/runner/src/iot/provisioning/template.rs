//! A provisioning template's body (IoT Core's template language: `Parameters`, `Ref`,
//! `Fn::Join`, the thing, certificate and policy resources) evaluated with the parameters
//! of a provisioning request and the pre-provisioning hook's overrides.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::Rejection;

/// What a provisioning template body asks for, with its parameters filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePlan {
    pub thing_name: String,
    pub thing_attributes: HashMap<String, String>,
    pub activate_certificate: bool,
    pub policies: Vec<String>,
    pub device_configuration: Map<String, Value>,
}

impl TemplatePlan {
    /// Evaluates `Parameters` (defaults) and the thing, certificate and policy resources.
    pub fn evaluate(body: &Value, given: &Map<String, Value>) -> Result<Self, Rejection> {
        let invalid = |m: String| Rejection::new(400, "InvalidParameters", m);
        let mut parameters: HashMap<String, String> = HashMap::new();
        if let Some(declared) = body.get("Parameters").and_then(Value::as_object) {
            for (name, spec) in declared {
                let value = given
                    .get(name)
                    .or_else(|| spec.get("Default"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(format!("parameter {name} has no value and no default"))
                    })?;
                parameters.insert(name.clone(), value.to_owned());
            }
        }
        let eval = |value: &Value| -> Result<String, Rejection> { evaluate(value, &parameters) };
        let mut plan = TemplatePlan {
            thing_name: String::new(),
            thing_attributes: HashMap::new(),
            activate_certificate: false,
            policies: Vec::new(),
            device_configuration: Map::new(),
        };
        let resources = body
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("the template has no Resources".into()))?;
        for (name, resource) in resources {
            let properties = resource.get("Properties").cloned().unwrap_or(Value::Null);
            match resource.get("Type").and_then(Value::as_str) {
                Some("AWS::IoT::Thing") => {
                    plan.thing_name = eval(properties.get("ThingName").unwrap_or(&Value::Null))?;
                    if let Some(attributes) = properties
                        .get("AttributePayload")
                        .and_then(Value::as_object)
                    {
                        for (key, value) in attributes {
                            plan.thing_attributes.insert(key.clone(), eval(value)?);
                        }
                    }
                }
                Some("AWS::IoT::Certificate") => {
                    let status =
                        eval(properties.get("Status").unwrap_or(&Value::from("Inactive")))?;
                    plan.activate_certificate = status.eq_ignore_ascii_case("active");
                }
                Some("AWS::IoT::Policy") => match properties.get("PolicyName") {
                    Some(policy) => plan.policies.push(eval(policy)?),
                    None => {
                        return Err(invalid(format!(
                            "{name}: the local runner attaches named policies only (PolicyName)"
                        )));
                    }
                },
                other => {
                    return Err(invalid(format!(
                        "{name}: resource type {other:?} is not supported by the local runner"
                    )));
                }
            }
        }
        if plan.thing_name.is_empty() {
            return Err(invalid("the template names no thing".into()));
        }
        if let Some(config) = body.get("DeviceConfiguration").and_then(Value::as_object) {
            for (key, value) in config {
                plan.device_configuration
                    .insert(key.clone(), Value::String(eval(value)?));
            }
        }
        Ok(plan)
    }
}

/// A template value: text, `{"Ref": parameter}` or `{"Fn::Join": [sep, [values]]}`.
fn evaluate(value: &Value, parameters: &HashMap<String, String>) -> Result<String, Rejection> {
    let invalid = |m: String| Rejection::new(400, "InvalidParameters", m);
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Object(map) if map.len() == 1 => {
            let (function, argument) = map.iter().next().expect("one entry");
            match function.as_str() {
                "Ref" => {
                    let name = argument.as_str().unwrap_or_default();
                    parameters
                        .get(name)
                        .cloned()
                        .ok_or_else(|| invalid(format!("Ref {name}: no such parameter")))
                }
                "Fn::Join" => {
                    let parts = argument
                        .as_array()
                        .filter(|a| a.len() == 2)
                        .ok_or_else(|| invalid("Fn::Join takes [separator, list]".into()))?;
                    let separator = parts[0].as_str().unwrap_or_default();
                    let items = parts[1].as_array().cloned().unwrap_or_default();
                    Ok(items
                        .iter()
                        .map(|item| evaluate(item, parameters))
                        .collect::<Result<Vec<_>, _>>()?
                        .join(separator))
                }
                other => Err(invalid(format!(
                    "{other} is not supported by the local runner (Ref, Fn::Join)"
                ))),
            }
        }
        other => Err(invalid(format!("cannot evaluate {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project_body() -> Value {
        crate::wiring::project(&[("Stage", "local")]).provisioning[0]
            .body
            .clone()
    }

    #[test]
    fn the_project_template_names_the_thing_from_the_hooks_overrides() {
        let parameters: Map<String, Value> = serde_json::from_value(json!({
            "SerialNumber": "SN-1", "ThingName": "car-0001", "Model": "sensor-x",
            "AWS::IoT::Certificate::Id": "abc"
        }))
        .unwrap();
        let plan = TemplatePlan::evaluate(&project_body(), &parameters).unwrap();
        assert_eq!(plan.thing_name, "car-0001");
        assert_eq!(plan.thing_attributes["serial"], "SN-1");
        assert_eq!(plan.thing_attributes["model"], "sensor-x");
        assert!(plan.activate_certificate);
        assert_eq!(plan.policies, ["fleetwire-local-device"]);
    }

    #[test]
    fn a_missing_parameter_without_default_is_invalid() {
        let parameters: Map<String, Value> = serde_json::from_value(
            json!({"SerialNumber": "SN-1", "AWS::IoT::Certificate::Id": "abc"}),
        )
        .unwrap();
        let rejection = TemplatePlan::evaluate(&project_body(), &parameters).unwrap_err();
        assert_eq!(rejection.status, 400);
        assert!(rejection.message.contains("ThingName"), "{rejection:?}");
    }

    #[test]
    fn joins_and_unknown_functions() {
        let params = HashMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(
            evaluate(&json!({"Fn::Join": ["-", ["car", {"Ref": "A"}]]}), &params).unwrap(),
            "car-x"
        );
        assert!(evaluate(&json!({"Fn::Sub": "x"}), &params).is_err());
        assert!(evaluate(&json!({"Ref": "B"}), &params).is_err());
    }
}
