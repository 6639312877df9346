//! The dead-letter queue: where rejected or undeliverable input goes, with its reason, so
//! nothing is lost silently.

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::runtime::error::StoreError;

/// One rejected input and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Short machine-readable reason, e.g. `validation`, `spoofed`, `stream-unavailable`.
    pub reason: String,
    /// Human-readable details, one per problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The function that rejected it.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The MQTT topic (or HTTP route) the input came in on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Who sent it, when known: the thing name (MQTT) or the HTTPS caller (the token's
    /// subject, or the IAM principal). Unlike `device_id`, known even when the input is not
    /// a reading at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// When IoT Core (or the API) received it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub received_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub rejected_at: OffsetDateTime,
    /// The input exactly as received, when it is JSON.
    pub payload: Value,
    /// The input as base64, when it is not JSON (then `payload` is null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
}

pub trait DeadLetterSink: Send + Sync {
    /// Stores every letter or fails: on `Err` the caller must not acknowledge its input, so
    /// the event source delivers it again.
    fn send(&self, letters: &[DeadLetter]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How a dead letter's `caller` names an HTTPS caller, so the function that writes it and
/// whatever reads it back (fleet-sim, an operator's query) agree: `token:<sub>` for a
/// token's subject, `iam:<arn>` for an IAM principal. A thing is named as it is.
pub mod caller {
    const TOKEN: &str = "token:";
    const IAM: &str = "iam:";

    /// The caller holding a token with this subject.
    pub fn token(subject: &str) -> String {
        format!("{TOKEN}{subject}")
    }

    /// The caller signing as this IAM principal.
    pub fn iam(arn: &str) -> String {
        format!("{IAM}{arn}")
    }

    /// Who a caller is without its kind: the thing name, the token's subject or the ARN.
    pub fn subject(caller: &str) -> &str {
        caller
            .strip_prefix(TOKEN)
            .or_else(|| caller.strip_prefix(IAM))
            .unwrap_or(caller)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn subject_is_what_the_caller_was_named_after() {
            assert_eq!(subject(&token("gw-0001")), "gw-0001");
            let arn = "arn:aws:iam::123456789012:role/fleet-backend";
            assert_eq!(subject(&iam(arn)), arn);
            assert_eq!(subject("car-0001"), "car-0001");
        }
    }
}
