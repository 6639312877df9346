//! What the IoT rule hands the function, split into the records to judge.
//!
//! The rule is `SELECT *, topic(2) AS thing_name, timestamp() AS received_at FROM
//! 'fleet/+/telemetry'`: the device's JSON with two fields added. A device that buffered
//! while offline sends `{"records": [..]}`. Payloads that are not JSON arrive base64
//! encoded in `payload_base64` (a rule with `encode(*, 'base64')`, or the local runner).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use fleetwire::telemetry::json_kind;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The fields the rule adds; removed before a reading is validated.
pub const RULE_FIELDS: [&str; 3] = ["thing_name", "received_at", "payload_base64"];

/// One message from one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The topic's thing name, the identity IoT Core authenticated.
    pub thing_name: Option<String>,
    pub received_at: OffsetDateTime,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// One reading.
    Single(Value),
    /// `{"records": [..]}`.
    Batch(Vec<Value>),
    /// Not JSON at all: kept as base64 for the dead-letter queue.
    NotJson { base64: String, problem: String },
    /// JSON, but neither a reading nor a batch (e.g. `"records"` that is not an array).
    Malformed { payload: Value, problem: String },
}

impl Envelope {
    pub fn parse(event: &Value, now: OffsetDateTime) -> Envelope {
        let Some(object) = event.as_object() else {
            return Envelope {
                thing_name: None,
                received_at: now,
                body: Body::Malformed {
                    payload: event.clone(),
                    problem: "event is not a JSON object".into(),
                },
            };
        };
        let thing_name = object
            .get("thing_name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let received_at = object
            .get("received_at")
            .and_then(Value::as_i64)
            .and_then(|ms| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
            })
            .unwrap_or(now);
        let body = match object.get("payload_base64") {
            Some(encoded) => decode_base64_body(encoded),
            None => body_of(without_rule_fields(object)),
        };
        Envelope {
            thing_name,
            received_at,
            body,
        }
    }

    /// The MQTT topic the message was published on.
    pub fn topic(&self) -> Option<String> {
        self.thing_name
            .as_ref()
            .map(|thing| format!("fleet/{thing}/telemetry"))
    }
}

fn without_rule_fields(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .filter(|(k, _)| !RULE_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn body_of(object: Map<String, Value>) -> Body {
    match object.get("records") {
        None => Body::Single(Value::Object(object)),
        Some(Value::Array(records)) => Body::Batch(records.clone()),
        Some(other) => Body::Malformed {
            payload: Value::Object(object.clone()),
            problem: format!("\"records\" must be an array, got {}", json_kind(other)),
        },
    }
}

fn decode_base64_body(encoded: &Value) -> Body {
    let Some(text) = encoded.as_str() else {
        return Body::Malformed {
            payload: encoded.clone(),
            problem: "payload_base64 is not a string".into(),
        };
    };
    let bytes = match BASE64.decode(text) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Body::NotJson {
                base64: text.to_string(),
                problem: format!("payload_base64 is not base64: {e}"),
            };
        }
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => body_of(object),
        Ok(other) => Body::Malformed {
            payload: other,
            problem: "payload is JSON but not an object".into(),
        },
        Err(e) => Body::NotJson {
            base64: text.to_string(),
            problem: format!("payload is not JSON: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    #[test]
    fn single_reading_loses_the_rule_fields() {
        let envelope = Envelope::parse(
            &json!({"device_id": "car-1", "thing_name": "car-1", "received_at": 1795593600000_i64}),
            NOW,
        );
        assert_eq!(envelope.thing_name.as_deref(), Some("car-1"));
        assert_eq!(envelope.received_at, datetime!(2026-11-25 08:00 UTC));
        assert_eq!(envelope.body, Body::Single(json!({"device_id": "car-1"})));
        assert_eq!(envelope.topic().as_deref(), Some("fleet/car-1/telemetry"));
    }

    #[test]
    fn batch_is_split_into_records() {
        let envelope = Envelope::parse(
            &json!({"records": [{"a": 1}, {"b": 2}], "thing_name": "car-1"}),
            NOW,
        );
        assert_eq!(
            envelope.body,
            Body::Batch(vec![json!({"a": 1}), json!({"b": 2})])
        );
        assert_eq!(
            envelope.received_at, NOW,
            "no received_at: the time of processing"
        );
    }

    #[test]
    fn base64_payloads_are_decoded_or_kept() {
        let json_body = BASE64.encode(br#"{"records": [{"a": 1}]}"#);
        let envelope = Envelope::parse(
            &json!({"payload_base64": json_body, "thing_name": "car-1"}),
            NOW,
        );
        assert_eq!(envelope.body, Body::Batch(vec![json!({"a": 1})]));

        let binary = BASE64.encode([0xff, 0x00, 0x13]);
        let envelope = Envelope::parse(
            &json!({"payload_base64": binary, "thing_name": "car-1"}),
            NOW,
        );
        assert!(matches!(envelope.body, Body::NotJson { ref base64, .. } if *base64 == binary));
    }

    #[test]
    fn records_that_is_not_an_array_is_malformed() {
        let envelope = Envelope::parse(&json!({"records": {"a": 1}, "thing_name": "car-1"}), NOW);
        assert!(
            matches!(envelope.body, Body::Malformed { ref problem, .. } if problem.contains("must be an array"))
        );
        let envelope = Envelope::parse(&json!([1]), NOW);
        assert!(matches!(envelope.body, Body::Malformed { .. }));
        assert_eq!(envelope.thing_name, None);
    }
}
