//! The local API Gateway HTTP API: the `AWS::ApiGatewayV2::Route`s of template.yaml on a
//! loopback port, each turned into a payload-2.0 event and invoked synchronously through
//! `cargo lambda watch`, its answer returned as the HTTP response.
//!
//! JWT routes are authorized as API Gateway's JWT authorizer does: a bearer token in
//! `Authorization`, its signature, `iss` equal to the authorizer's issuer, `aud` (or
//! `client_id`) one of its audiences, `exp` and `nbf`; the claims then reach the function
//! as strings in `requestContext.authorizer.jwt.claims` (an array as `[a b]`), and a
//! failure is answered `401 {"message":"Unauthorized"}` without invoking anything. The
//! local issuer is the runner itself: it signs tokens with a key made at start (HS256;
//! API Gateway fetches an RSA key from the issuer's JWKS instead, which changes nothing
//! the function sees). `AWS_IAM` routes need SigV4 verification the runner does not do:
//! they are answered `403` with that reason, and tested with `cargo lambda invoke`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::lambda::{Invoked, Invoker};
use crate::wiring::{HttpRoute, RouteAuth};

type Reply = Response<Full<Bytes>>;

/// API Gateway's payload limit for HTTP APIs.
const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// The runner's token issuer: HS256 with a key made at start.
pub struct LocalIssuer {
    key: hmac::Key,
}

impl LocalIssuer {
    pub fn new() -> Result<Self, String> {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| "no randomness for the local token key".to_string())?;
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        })
    }

    /// A signed token with exactly these claims.
    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
        let signed = format!("{header}.{payload}");
        let signature = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    /// The claims of `token` when it is ours, unexpired, from `issuer` and for one of
    /// `audiences`; otherwise why not (for the runner's log; the caller sees 401 only).
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audiences: &[String],
        now: i64,
    ) -> Result<Map<String, Value>, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT (three dot-separated parts)".into());
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| "the signature is not base64url")?;
        hmac::verify(
            &self.key,
            format!("{header}.{payload}").as_bytes(),
            &signature,
        )
        .map_err(|_| "the signature does not verify")?;
        let claims: Map<String, Value> = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or("the payload is not a JSON object")?;
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err(format!("iss is not {issuer}"));
        }
        let audience_ok = |v: &Value| v.as_str().is_some_and(|a| audiences.iter().any(|x| x == a));
        let aud_ok = match claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(audience_ok),
            Some(one) => audience_ok(one),
            None => claims.get("client_id").is_some_and(audience_ok),
        };
        if !aud_ok {
            return Err(format!("aud is none of {audiences:?}"));
        }
        match claims.get("exp").and_then(Value::as_i64) {
            Some(exp) if exp > now => {}
            Some(_) => return Err("expired".into()),
            None => return Err("no exp claim".into()),
        }
        if claims
            .get("nbf")
            .and_then(Value::as_i64)
            .is_some_and(|nbf| nbf > now)
        {
            return Err("not valid yet (nbf)".into());
        }
        Ok(claims)
    }

    /// `POST /runner/tokens`: the body's claims, with `iss`, `aud`, `iat` and `exp`
    /// (`ttl_seconds`, default an hour) filled in from the first JWT route when absent.
    pub fn issue(&self, routes: &[HttpRoute], body: &[u8], now: i64) -> Result<Value, String> {
        let mut claims: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| format!("the body must be a JSON object of claims: {e}"))?;
        let Some((issuer, audiences)) = routes.iter().find_map(|r| match &r.auth {
            RouteAuth::Jwt { issuer, audiences } => Some((issuer, audiences)),
            RouteAuth::Iam => None,
        }) else {
            return Err(
                "the template has no JWT route (give TelemetryTokenIssuer to the runner)".into(),
            );
        };
        let ttl = match claims.remove("ttl_seconds") {
            None => 3600,
            Some(v) => v
                .as_i64()
                .ok_or("ttl_seconds must be a whole number of seconds")?,
        };
        claims
            .entry("iss")
            .or_insert_with(|| Value::from(issuer.as_str()));
        if let Some(audience) = audiences.first() {
            claims
                .entry("aud")
                .or_insert_with(|| Value::from(audience.as_str()));
        }
        claims.entry("iat").or_insert_with(|| Value::from(now));
        claims
            .entry("exp")
            .or_insert_with(|| Value::from(now + ttl));
        Ok(json!({"token": self.sign(&claims), "claims": claims}))
    }
}

/// The HTTP API's routes and what serves them.
pub struct LocalHttpApi {
    pub routes: Vec<HttpRoute>,
    /// Route's function logical id to its `cargo lambda watch` binary.
    pub binaries: BTreeMap<String, String>,
    pub invoker: Invoker,
    pub issuer: Arc<LocalIssuer>,
    pub account: String,
}

fn reply(status: StatusCode, body: &Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// A claim as API Gateway hands it to the function: strings as they are, arrays as
/// `[a b]`, anything else as its JSON text.
fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(claim_text).collect::<Vec<_>>().join(" ")
        ),
        other => other.to_string(),
    }
}

impl LocalHttpApi {
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>, peer: SocketAddr) -> Reply {
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &json!({"message": "Request Entity Too Large"}),
                );
            }
        };
        let now = OffsetDateTime::now_utc();
        let method = parts.method.as_str();
        let path = parts.uri.path();
        let Some(route) = self
            .routes
            .iter()
            .find(|r| r.method == method && r.path == path)
        else {
            return reply(StatusCode::NOT_FOUND, &json!({"message": "Not Found"}));
        };
        let authorizer = match &route.auth {
            RouteAuth::Iam => {
                return reply(
                    StatusCode::FORBIDDEN,
                    &json!({"message": format!(
                        "{} is an AWS_IAM route: the local API does not verify SigV4; invoke the function with an IAM event instead (events/telemetry-http/backend-iam.json)",
                        route.route_key
                    )}),
                );
            }
            RouteAuth::Jwt { issuer, audiences } => {
                let token = parts
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
                let verified = match token {
                    Some(token) if !token.is_empty() => {
                        self.issuer
                            .verify(token, issuer, audiences, now.unix_timestamp())
                    }
                    _ => Err("no Authorization header".into()),
                };
                match verified {
                    Ok(claims) => json!({"jwt": {
                        "claims": claims.iter().map(|(k, v)| (k.clone(), Value::from(claim_text(v)))).collect::<Map<_, _>>(),
                        "scopes": null,
                    }}),
                    Err(why) => {
                        tracing::info!(route = %route.route_key, %why, "token refused");
                        return reply(
                            StatusCode::UNAUTHORIZED,
                            &json!({"message": "Unauthorized"}),
                        );
                    }
                }
            }
        };
        let event = payload_v2(route, &parts, &body, authorizer, peer, now, &self.account);
        let Some(binary) = self.binaries.get(&route.function) else {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"message": "Internal Server Error"}),
            );
        };
        match self.invoker.invoke(binary, &event).await {
            Invoked::Returned(answer) => proxy_response(&answer),
            Invoked::FunctionError { response } => {
                tracing::warn!(route = %route.route_key, %response, "the function failed");
                reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"message": "Internal Server Error"}),
                )
            }
            Invoked::Unreachable(why) | Invoked::Unavailable(why) => {
                tracing::warn!(route = %route.route_key, %why, "the function is unreachable");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"message": "Service Unavailable"}),
                )
            }
        }
    }
}

/// `requestContext.time` as API Gateway writes it: `02/Dec/2026:10:00:00 +0000`.
const REQUEST_TIME: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
);

/// The request as API Gateway's payload format 2.0 hands it to the function. Built as JSON
/// rather than as aws_lambda_events' `ApiGatewayV2httpRequest`, whose serializer also
/// writes the fields of authorizer payloads (`type`, `httpMethod`...) that a real event
/// lacks; the tests read it back with that type, as the function does.
fn payload_v2(
    route: &HttpRoute,
    parts: &http::request::Parts,
    body: &Bytes,
    authorizer: Value,
    peer: SocketAddr,
    now: OffsetDateTime,
    account: &str,
) -> Value {
    // Header names lower-cased, repeated ones joined with commas, as payload 2.0 does.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (STANDARD.encode(body), true),
    };
    let host = headers.get("host").cloned().unwrap_or_default();
    let request_id = format!("{:032x}", fastrand::u128(..));
    json!({
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": parts.uri.query().unwrap_or_default(),
        "headers": headers,
        "requestContext": {
            "accountId": account,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or_default(),
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": format!("{:?}", parts.version),
                "sourceIp": peer.ip().to_string(),
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.to_offset(time::UtcOffset::UTC).format(REQUEST_TIME).unwrap_or_default(),
            "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
            "authorizer": authorizer,
        },
        "body": body,
        "isBase64Encoded": encoded,
    })
}

/// The function's payload-2.0 answer as an HTTP response.
fn proxy_response(answer: &Value) -> Reply {
    let status = answer
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(u16::try_from(s).ok()?).ok())
        .unwrap_or(StatusCode::OK);
    let body = answer
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = if answer.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        STANDARD.decode(body).unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    let mut response = Response::builder().status(status);
    if let Some(headers) = answer.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            if let Some(value) = value.as_str() {
                response = response.header(name.as_str(), value);
            }
        }
    }
    response
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests;
