//! SAM's `Globals`, merged into each resource of their type the way `sam deploy` merges
//! them (aws-sam-translator's `GlobalProperties`): a property only the globals set is
//! taken as it is; maps are merged key by key; lists are the globals' items then the
//! resource's, except `Architectures`, which the resource's replaces; anything else
//! (strings, numbers, intrinsic functions) is the resource's when it sets one.

use serde_json::{Map, Value};

/// The resource type each `Globals` section applies to.
pub fn resource_type(section: &str) -> Option<&'static str> {
    match section {
        "Function" => Some("AWS::Serverless::Function"),
        "Api" => Some("AWS::Serverless::Api"),
        "HttpApi" => Some("AWS::Serverless::HttpApi"),
        "SimpleTable" => Some("AWS::Serverless::SimpleTable"),
        "StateMachine" => Some("AWS::Serverless::StateMachine"),
        "LayerVersion" => Some("AWS::Serverless::LayerVersion"),
        _ => None,
    }
}

/// `local` (a resource's properties) over `global` (its section of `Globals`).
pub fn merge(global: &Value, local: &Value) -> Value {
    merge_at(global, local, "")
}

fn merge_at(global: &Value, local: &Value, path: &str) -> Value {
    match (kind(global), kind(local)) {
        (Kind::Map, Kind::Map) => {
            let (Value::Object(global), Value::Object(local)) = (global, local) else {
                unreachable!("kind() said both are maps")
            };
            let mut merged: Map<String, Value> = global.clone();
            for (key, value) in local {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let value = match global.get(key) {
                    Some(global) => merge_at(global, value, &path),
                    None => value.clone(),
                };
                merged.insert(key.clone(), value);
            }
            Value::Object(merged)
        }
        (Kind::List, Kind::List) if path != "Architectures" => {
            let (Value::Array(global), Value::Array(local)) = (global, local) else {
                unreachable!("kind() said both are lists")
            };
            Value::Array(global.iter().chain(local).cloned().collect())
        }
        _ => local.clone(),
    }
}

#[derive(PartialEq)]
enum Kind {
    Map,
    List,
    Primitive,
}

/// An intrinsic function is a primitive here: it resolves to one.
fn kind(value: &Value) -> Kind {
    match value {
        Value::Object(map)
            if map.len() == 1
                && map
                    .keys()
                    .all(|k| k == "Ref" || k == "Condition" || k.starts_with("Fn::")) =>
        {
            Kind::Primitive
        }
        Value::Object(_) => Kind::Map,
        Value::Array(_) => Kind::List,
        _ => Kind::Primitive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_resource_keeps_what_it_sets_and_gets_what_only_the_globals_set() {
        let global = json!({"Runtime": "provided.al2023", "Timeout": 3, "Handler": "bootstrap"});
        let local = json!({"Timeout": 30, "MemorySize": 256});
        assert_eq!(
            merge(&global, &local),
            json!({"Runtime": "provided.al2023", "Timeout": 30, "Handler": "bootstrap", "MemorySize": 256})
        );
    }

    #[test]
    fn maps_merge_key_by_key() {
        let global = json!({"LoggingConfig": {"LogFormat": "JSON"}});
        let local = json!({"LoggingConfig": {"LogGroup": {"Ref": "HookLogGroup"}}});
        assert_eq!(
            merge(&global, &local),
            json!({"LoggingConfig": {"LogFormat": "JSON", "LogGroup": {"Ref": "HookLogGroup"}}})
        );
    }

    #[test]
    fn lists_are_joined_but_architectures_are_replaced() {
        let global = json!({"Layers": ["a"], "Architectures": ["arm64"]});
        let local = json!({"Layers": ["b"], "Architectures": ["x86_64"]});
        assert_eq!(
            merge(&global, &local),
            json!({"Layers": ["a", "b"], "Architectures": ["x86_64"]})
        );
    }

    #[test]
    fn an_intrinsic_is_a_value_not_a_map_to_merge() {
        let global = json!({"KmsKeyArn": {"Fn::GetAtt": ["FleetKey", "Arn"]}, "Environment": {"Variables": {"A": "1"}}});
        let local =
            json!({"KmsKeyArn": {"Ref": "OtherKey"}, "Environment": {"Variables": {"B": "2"}}});
        assert_eq!(
            merge(&global, &local),
            json!({"KmsKeyArn": {"Ref": "OtherKey"}, "Environment": {"Variables": {"A": "1", "B": "2"}}})
        );
    }
}
