//! Reading and writing DynamoDB items by hand: a few typed accessors and a JSON bridge,
//! so the adapters need no extra serialization crate.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Number, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::runtime::error::StoreError;

pub type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute (DynamoDB carries numbers as decimal strings).
pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Typed access to one item, with errors naming the call and the attribute.
pub struct ItemReader<'a> {
    pub call: &'a str,
    pub item: &'a Item,
}

impl ItemReader<'_> {
    pub fn string(&self, name: &str) -> Result<String, StoreError> {
        self.optional_string(name)?
            .ok_or_else(|| StoreError::corrupt(self.call, format!("attribute {name} is missing")))
    }

    pub fn optional_string(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong_type(name, "S", other)),
        }
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(n)) => n.parse().map(Some).map_err(|_| {
                StoreError::corrupt(self.call, format!("attribute {name}={n} is out of range"))
            }),
            Some(other) => Err(self.wrong_type(name, "N", other)),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(name, "BOOL", other)),
        }
    }

    pub fn string_set(&self, name: &str) -> Result<Vec<String>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
            Some(AttributeValue::Ss(values)) => Ok(values.clone()),
            Some(other) => Err(self.wrong_type(name, "SS", other)),
        }
    }

    pub fn string_map(&self, name: &str) -> Result<Vec<(String, String)>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
            Some(AttributeValue::M(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    AttributeValue::S(s) => Ok((k.clone(), s.clone())),
                    other => Err(self.wrong_type(&format!("{name}.{k}"), "S", other)),
                })
                .collect(),
            Some(other) => Err(self.wrong_type(name, "M", other)),
        }
    }

    pub fn json(&self, name: &str) -> Option<Value> {
        self.item.get(name).map(attribute_to_json)
    }

    fn wrong_type(&self, name: &str, want: &str, got: &AttributeValue) -> StoreError {
        StoreError::corrupt(
            self.call,
            format!("attribute {name} should be {want}, is {got:?}"),
        )
    }
}

/// A JSON value as a DynamoDB attribute: objects as maps, arrays as lists, numbers as N.
pub fn json_to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(json_to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_attribute(v)))
                .collect(),
        ),
    }
}

/// A whole item as a JSON object, each attribute by [`attribute_to_json`].
pub fn item_to_json(item: &Item) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_to_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// The inverse of [`json_to_attribute`]; sets become arrays, binaries are dropped to null.
pub fn attribute_to_json(attribute: &AttributeValue) -> Value {
    match attribute {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| {
                n.parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
            })
            .unwrap_or(Value::Null),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::L(items) => Value::Array(items.iter().map(attribute_to_json).collect()),
        AttributeValue::M(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), attribute_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        AttributeValue::Ss(values) => {
            Value::Array(values.iter().cloned().map(Value::String).collect())
        }
        AttributeValue::Ns(values) => Value::Array(
            values
                .iter()
                .map(|n| attribute_to_json(&AttributeValue::N(n.clone())))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// A time as DynamoDB items keep it: RFC 3339, UTC.
pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_survives_a_round_trip_through_attributes() {
        let value = json!({"a": 1, "b": -2.5, "c": "x", "d": [true, null, {"e": 10}]});
        assert_eq!(attribute_to_json(&json_to_attribute(&value)), value);
    }

    #[test]
    fn reader_reports_missing_and_mistyped_attributes_by_name() {
        let item: Item = [("n".to_string(), AttributeValue::S("x".into()))].into();
        let reader = ItemReader {
            call: "DynamoDB.GetItem",
            item: &item,
        };
        assert!(
            reader
                .string("absent")
                .unwrap_err()
                .to_string()
                .contains("attribute absent is missing")
        );
        assert!(
            reader
                .number::<u32>("n")
                .unwrap_err()
                .to_string()
                .contains("attribute n should be N")
        );
        assert_eq!(reader.optional_string("absent"), Ok(None));
    }
}
