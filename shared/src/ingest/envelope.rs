//! What the IoT rule hands the function, split into the records to judge.
//!
//! The rule is `SELECT encode(*, 'base64') AS payload_base64, topic(2) AS thing_name,
//! timestamp() AS received_at FROM 'fleet/+/telemetry'`: the device's payload whole, as it
//! sent it (JSON or not), beside the thing name IoT Core authenticated and the time it
//! received the message, which the device cannot set. A device that buffered while
//! offline sends `{"records": [..]}`. An event without `payload_base64` is read as a rule
//! that selects `*` beside its fields would send it (the device's JSON with the rule's
//! fields merged in).

use std::collections::BTreeSet;

use crate::domain::telemetry::{json_kind, rule};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Who sent a message, as the entry point authenticated it: the devices it may write for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// An MQTT device: the topic's thing name, which IoT Core authenticated.
    Thing(String),
    /// An HTTPS caller holding a token for these devices (one device, or a gateway's).
    Devices {
        caller: String,
        devices: BTreeSet<String>,
    },
    /// An HTTPS back end the fleet trusts with every device (an IAM-authorized caller).
    Fleet { caller: String },
}

impl Sender {
    /// Why `device_id` may not be written by this sender, if it may not.
    pub fn refuses(&self, device_id: &str) -> Option<String> {
        match self {
            Sender::Thing(thing) if thing != device_id => Some(format!(
                "device_id: {device_id:?} is not the sender, which is {thing:?}"
            )),
            Sender::Devices { caller, devices } if !devices.contains(device_id) => Some(format!(
                "device_id: {device_id:?} is not among the devices {caller:?} may write for"
            )),
            _ => None,
        }
    }

    /// The caller, for logs.
    pub fn name(&self) -> &str {
        match self {
            Sender::Thing(thing) => thing,
            Sender::Devices { caller, .. } | Sender::Fleet { caller } => caller,
        }
    }
}

/// One message from one sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Who sent it; `None` when the event does not say (a rule without the thing name).
    pub sender: Option<Sender>,
    /// The HTTP route it came in on (`POST /v1/telemetry`); `None` for MQTT.
    pub route: Option<String>,
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
                sender: None,
                route: None,
                received_at: now,
                body: Body::Malformed {
                    payload: event.clone(),
                    problem: "event is not a JSON object".into(),
                },
            };
        };
        let sender = object
            .get(rule::THING_NAME)
            .and_then(Value::as_str)
            .map(|thing| Sender::Thing(thing.to_string()));
        let received_at = object
            .get(rule::RECEIVED_AT)
            .and_then(Value::as_i64)
            .and_then(|ms| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
            })
            .unwrap_or(now);
        let body = match object.get(rule::PAYLOAD_BASE64) {
            Some(encoded) => decode_base64_body(encoded),
            None => body_of(without_rule_fields(object)),
        };
        Envelope {
            sender,
            route: None,
            received_at,
            body,
        }
    }

    /// An HTTPS request's body (`{"records": [..]}` or one reading) from `sender`, sent to
    /// `route` (`POST /v1/telemetry`).
    pub fn from_http_body(
        sender: Sender,
        route: &str,
        body: &[u8],
        received_at: OffsetDateTime,
    ) -> Envelope {
        let body = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => body_of(object),
            Ok(other) => Body::Malformed {
                problem: format!(
                    "the body must be a reading or {{\"records\": [..]}}, got {}",
                    json_kind(&other)
                ),
                payload: other,
            },
            Err(e) => Body::NotJson {
                base64: BASE64.encode(body),
                problem: format!("the body is not JSON: {e}"),
            },
        };
        Envelope {
            sender: Some(sender),
            route: Some(route.to_string()),
            received_at,
            body,
        }
    }

    /// Where the message came in: the MQTT topic it was published on, or the HTTP route.
    pub fn topic(&self) -> Option<String> {
        if let Some(route) = &self.route {
            return Some(route.clone());
        }
        match &self.sender {
            Some(Sender::Thing(thing)) => Some(format!("fleet/{thing}/telemetry")),
            _ => None,
        }
    }

    /// Who sent it (the thing, or the HTTPS caller), when the event says.
    pub fn caller(&self) -> Option<String> {
        self.sender.as_ref().map(|sender| sender.name().to_string())
    }
}

fn without_rule_fields(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .filter(|(k, _)| !rule::FIELDS.contains(&k.as_str()))
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
        assert_eq!(envelope.sender, Some(Sender::Thing("car-1".into())));
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
    fn http_bodies_become_envelopes_of_their_caller() {
        let caller = Sender::Fleet {
            caller: "arn:aws:iam::1:role/partner".into(),
        };
        let route = "POST /v1/telemetry";
        let envelope =
            Envelope::from_http_body(caller.clone(), route, br#"{"records": [{"a": 1}]}"#, NOW);
        assert_eq!(envelope.body, Body::Batch(vec![json!({"a": 1})]));
        assert_eq!(envelope.topic().as_deref(), Some(route));
        assert_eq!(
            envelope.caller().as_deref(),
            Some("arn:aws:iam::1:role/partner")
        );
        let envelope = Envelope::from_http_body(caller.clone(), route, b"[1, 2]", NOW);
        assert!(
            matches!(envelope.body, Body::Malformed { ref problem, .. } if problem.contains("got an array"))
        );
        let envelope = Envelope::from_http_body(caller, route, b"{nope", NOW);
        assert!(
            matches!(envelope.body, Body::NotJson { ref problem, .. } if problem.contains("not JSON"))
        );
    }

    #[test]
    fn senders_may_write_only_for_their_devices() {
        let thing = Sender::Thing("car-1".into());
        assert_eq!(thing.refuses("car-1"), None);
        assert!(
            thing
                .refuses("car-2")
                .unwrap()
                .contains("is not the sender")
        );
        let gateway = Sender::Devices {
            caller: "gw-1".into(),
            devices: ["car-1".to_string(), "car-2".to_string()].into(),
        };
        assert_eq!(gateway.refuses("car-2"), None);
        assert!(gateway.refuses("car-3").unwrap().contains("may write for"));
        assert_eq!(
            Sender::Fleet {
                caller: "ops".into()
            }
            .refuses("car-9"),
            None
        );
    }

    #[test]
    fn records_that_is_not_an_array_is_malformed() {
        let envelope = Envelope::parse(&json!({"records": {"a": 1}, "thing_name": "car-1"}), NOW);
        assert!(
            matches!(envelope.body, Body::Malformed { ref problem, .. } if problem.contains("must be an array"))
        );
        let envelope = Envelope::parse(&json!([1]), NOW);
        assert!(matches!(envelope.body, Body::Malformed { .. }));
        assert_eq!(envelope.sender, None);
    }
}
