//! Where a device's readings go: its MQTT topic, or the HTTP API with a device token,
//! each answer checked.

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::exchange::exchange;
use crate::mqtt::Session;

use super::*;

/// Attempts of one HTTP request, the first included (the last waits 12.8 s before it, 25 s
/// after the first: a device keeps its readings through an outage of the API).
const HTTP_ATTEMPTS: u32 = 7;

/// Where a device's telemetry goes: its MQTT topic, or the HTTP API with its token.
pub(super) struct Telemetry {
    pub(super) topic: String,
    pub(super) token: Option<String>,
}

impl Telemetry {
    /// Sends one reading or a `{"records": [...]}` batch whose readings are `kinds`. Over
    /// HTTPS the answer must be what the API promises: `202` when one reading is valid,
    /// `400` when none is, and a per-record result that says which; what it asks to be
    /// sent again is sent again with the same idempotency key.
    pub(super) async fn send(
        &self,
        shared: &Shared,
        session: &Session,
        body: Value,
        kinds: &[Kind],
    ) -> Result<(), String> {
        let Some(token) = &self.token else {
            return session.publish(&self.topic, body.to_string()).await;
        };
        // One key for every attempt: a retry must never count the readings twice.
        let key = format!("{:032x}", fastrand::u128(..));
        let body = Bytes::from(body.to_string());
        let mut attempt = 0;
        let (status, answer) = loop {
            let request = http::Request::post(format!("{}/v1/telemetry", shared.names.api_url))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("idempotency-key", &key)
                .body(Full::new(body.clone()))
                .map_err(|e| e.to_string())?;
            let answered = post_json(shared, request).await;
            attempt += 1;
            // What the API asks a client to send again: a request still in progress (409),
            // over the caller's rate (429), a store or stream unavailable (5xx); and no
            // answer at all.
            let again = match &answered {
                Ok((status, _)) => matches!(status, 409 | 429 | 500 | 502 | 503 | 504),
                Err(_) => true,
            };
            if !again || attempt == HTTP_ATTEMPTS {
                break answered?;
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        };
        let any_valid = kinds.contains(&Kind::Valid);
        let expected = if any_valid { 202 } else { 400 };
        if status != expected {
            return Err(format!(
                "POST /v1/telemetry answered {status}, expected {expected}: {answer}"
            ));
        }
        let results: Vec<&str> = answer["records"]
            .as_array()
            .map(|records| {
                records
                    .iter()
                    .filter_map(|r| r["status"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let wanted: Vec<&str> = kinds
            .iter()
            .map(|k| {
                if *k == Kind::Valid {
                    "accepted"
                } else {
                    "rejected"
                }
            })
            .collect();
        if results != wanted {
            return Err(format!(
                "POST /v1/telemetry results {results:?}, expected {wanted:?}"
            ));
        }
        Ok(())
    }
}

/// A device token for `thing` from the runner's local issuer (on AWS: the fleet's
/// identity provider, behind the API's JWT authorizer).
pub(super) async fn device_token(shared: &Shared, thing: &str) -> Result<String, String> {
    let request = http::Request::post(format!("{}/runner/tokens", shared.names.runner_url))
        .body(Full::new(Bytes::from(json!({"sub": thing}).to_string())))
        .map_err(|e| e.to_string())?;
    let (status, answer) = post_json(shared, request).await?;
    match answer["token"].as_str() {
        Some(token) if status == 200 => Ok(token.to_owned()),
        _ => Err(format!("no device token ({status}): {answer}")),
    }
}

async fn post_json(
    shared: &Shared,
    request: http::Request<Full<Bytes>>,
) -> Result<(u16, Value), String> {
    let (status, body) = exchange(&shared.api, request, shared.behaviour.answer_timeout).await?;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status.as_u16(), value))
}
