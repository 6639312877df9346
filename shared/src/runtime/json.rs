//! Typed reads of JSON whose errors name the field: `serde_json` says "invalid type:
//! integer `5`, expected a string" and leaves out where; an event from AWS or a device
//! deserves "certificateId: invalid type: ...". Every parser of an event or a request
//! reads through [`from_value`].

use serde::de::DeserializeOwned;
use serde_json::Value;

/// `value` as a `T`, or an error that starts with the path of the part that did not fit
/// (`Records[0].kinesis.data: ...`; none for the document itself).
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Event {
        #[serde(rename = "Records")]
        records: Vec<Record>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Record {
        data: String,
    }

    #[test]
    fn errors_name_the_path_of_the_part_that_did_not_fit() {
        let error =
            from_value::<Event>(&json!({"Records": [{"data": "a"}, {"data": 5}]})).unwrap_err();
        assert!(
            error.starts_with("Records[1].data: invalid type"),
            "{error}"
        );
        let missing = from_value::<Event>(&json!({"Records": [{}]})).unwrap_err();
        assert!(missing.contains("missing field `data`"), "{missing}");
        let root = from_value::<Event>(&json!(7)).unwrap_err();
        assert!(root.starts_with("invalid type"), "{root}");
    }
}
