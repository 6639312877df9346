//! The runner's HTTP endpoints, on loopback:
//!
//! - the **IoT data plane**: `POST /topics/{topic}?qos=1` publishes like IoT Core's
//!   `Publish` API (what firmware-url's answers use), to subscribers and the rules;
//! - `POST /runner/tokens`: a device token for the local HTTP API's JWT routes, with the
//!   claims of the body (`{"sub": "gw-1", "fleetwire:devices": ["a", "b"]}`);
//! - `GET /runner/status`: connections, per-rule counters and the event source mappings'
//!   positions, so a test or the demo knows when everything sent has been handled;
//!   `POST /runner/mappings/enable` starts mappings the runner was told to hold back;
//! - the **local CloudFront** (its own port): serves firmware from the local S3 bucket to
//!   requests whose signed URL verifies against the trusted keys and whose policy holds
//!   (time, IP), and refuses every other request with 403, as the distribution would.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use fleetwire::cloudfront::{SigningKey, UrlVerifier, VerifyError};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::RwLock;

use crate::front_door::now_ms;
use crate::hub::{Connections, Message};
use crate::router::Router;

type Reply = Response<Full<Bytes>>;

/// Serves `handler` on `listener` with HTTP/1.1 until the process ends.
pub async fn serve<H, F>(listener: TcpListener, handler: H)
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::error!(error = %e, "cannot accept HTTP connections");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(request, peer).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn json_reply(status: StatusCode, value: &Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

/// An AWS-style JSON error (what the SDK's error parsing expects).
fn aws_error(status: StatusCode, kind: &str, message: &str) -> Reply {
    let mut response = json_reply(status, &json!({"message": message}));
    if let Ok(value) = kind.parse() {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}

/// `%2F` and friends back to bytes (paths and query values).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The IoT data plane and the status endpoint.
#[derive(Clone)]
pub struct DataPlane {
    pub router: Router,
    pub connections: Connections,
    pub mappings: Arc<crate::esm::MappingControl>,
    /// The local HTTP API, whose JWT routes trust the tokens `POST /runner/tokens` issues.
    pub http_api: Arc<crate::http_api::LocalHttpApi>,
}

impl DataPlane {
    pub async fn handle(self, request: Request<Incoming>, _peer: SocketAddr) -> Reply {
        let path = request.uri().path().to_owned();
        match (request.method(), path.as_str()) {
            (&Method::GET, "/runner/status") => json_reply(
                StatusCode::OK,
                &json!({
                    "connections": self.connections.len(),
                    "rules": self.router.rules().status(),
                    "mappings_enabled": self.mappings.enabled().await,
                    "mappings": self.mappings.status(),
                }),
            ),
            (&Method::POST, "/runner/tokens") => {
                let body = match request.into_body().collect().await {
                    Ok(body) => body.to_bytes(),
                    Err(e) => {
                        return json_reply(
                            StatusCode::BAD_REQUEST,
                            &json!({"message": e.to_string()}),
                        );
                    }
                };
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                match self
                    .http_api
                    .issuer
                    .issue(&self.http_api.routes, &body, now)
                {
                    Ok(issued) => json_reply(StatusCode::OK, &issued),
                    Err(e) => json_reply(StatusCode::BAD_REQUEST, &json!({"message": e})),
                }
            }
            (&Method::POST, "/runner/mappings/enable") => match self.mappings.enable().await {
                Ok(()) => json_reply(StatusCode::OK, &json!({"mappings_enabled": true})),
                Err(e) => aws_error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", &e),
            },
            (&Method::POST, p) if p.starts_with("/topics/") => {
                let topic = percent_decode(&p["/topics/".len()..]);
                if topic.is_empty() || topic.contains('+') || topic.contains('#') {
                    return aws_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestException",
                        "a topic name without wildcards is required",
                    );
                }
                let payload = match request.into_body().collect().await {
                    Ok(body) => body.to_bytes(),
                    Err(e) => {
                        return aws_error(
                            StatusCode::BAD_REQUEST,
                            "InvalidRequestException",
                            &e.to_string(),
                        );
                    }
                };
                self.router.route(Message {
                    topic,
                    payload,
                    client_id: None,
                    source_ip: None,
                    received_ms: now_ms(),
                    connection: None,
                });
                json_reply(StatusCode::OK, &json!({}))
            }
            _ => aws_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                "the local IoT data plane serves POST /topics/{topic} (and GET /runner/status, POST /runner/tokens)",
            ),
        }
    }
}

/// The keys the local distribution trusts: the public half of the key in the signing
/// secret (read again when a URL names a key it does not know, so a rotation is seen),
/// plus any given explicitly.
pub struct TrustedKeys {
    secrets: aws_sdk_secretsmanager::Client,
    secret_id: Option<String>,
    extra: Vec<(String, fleetwire::cloudfront::VerifyingKey)>,
    verifier: RwLock<UrlVerifier>,
}

impl TrustedKeys {
    pub fn new(
        secrets: aws_sdk_secretsmanager::Client,
        secret_id: Option<String>,
        extra: Vec<(String, fleetwire::cloudfront::VerifyingKey)>,
    ) -> Self {
        let verifier = extra.iter().fold(UrlVerifier::new(), |v, (id, key)| {
            v.trust(id.clone(), key.clone())
        });
        Self {
            secrets,
            secret_id,
            extra,
            verifier: RwLock::new(verifier),
        }
    }

    /// Gives a signing secret that still holds the template's placeholder a key of its
    /// own, as an operator does after the first deploy, so firmware-url can start; the
    /// local CloudFront trusts it. A secret holding a key is left as it is.
    pub async fn ensure_signing_key(&self) -> Result<Option<String>, String> {
        let Some(secret_id) = &self.secret_id else {
            return Ok(None);
        };
        let current = self
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "secret {secret_id}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                )
            })?;
        let value: Value = current
            .secret_string()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        let has_key = value
            .get("private_key")
            .and_then(Value::as_str)
            .is_some_and(|pem| SigningKey::from_pem(pem.as_bytes()).is_ok());
        if has_key {
            return Ok(None);
        }
        let key = fleetwire::cloudfront::generate_key(fleetwire::cloudfront::KeyAlgorithm::Rsa2048)
            .map_err(|e| e.to_string())?;
        let id = "KLOCALCLOUDFRONT";
        let value = json!({"key_pair_id": id, "private_key": key.private_pem, "hash": "sha1"});
        self.secrets
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(value.to_string())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "secret {secret_id}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                )
            })?;
        self.reload().await;
        Ok(Some(id.to_owned()))
    }

    async fn reload(&self) {
        let mut verifier = self.extra.iter().fold(UrlVerifier::new(), |v, (id, key)| {
            v.trust(id.clone(), key.clone())
        });
        if let Some(secret_id) = &self.secret_id
            && let Ok(output) = self
                .secrets
                .get_secret_value()
                .secret_id(secret_id)
                .send()
                .await
            && let Some(text) = output.secret_string()
            && let Ok(value) = serde_json::from_str::<Value>(text)
            && let (Some(id), Some(pem)) = (
                value.get("key_pair_id").and_then(Value::as_str),
                value.get("private_key").and_then(Value::as_str),
            )
            && let Ok(key) = SigningKey::from_pem(pem.as_bytes())
        {
            verifier = verifier.trust(id, key.public_key());
        }
        *self.verifier.write().await = verifier;
    }

    pub async fn verify(
        &self,
        url: &str,
        now: i64,
        ip: Option<IpAddr>,
    ) -> Result<String, VerifyError> {
        match self.verifier.read().await.verify(url, now, ip) {
            Err(VerifyError::UnknownKeyPair(_)) => {}
            other => return other,
        }
        self.reload().await;
        self.verifier.read().await.verify(url, now, ip)
    }
}

/// The local CloudFront distribution in front of the firmware bucket.
#[derive(Clone)]
pub struct LocalCloudFront {
    /// The base its URLs are signed with (`FIRMWARE_BASE_URL`), e.g. `http://127.0.0.1:8088`.
    pub base_url: String,
    pub bucket: String,
    pub s3: aws_sdk_s3::Client,
    pub keys: Arc<TrustedKeys>,
}

impl LocalCloudFront {
    pub async fn handle(self, request: Request<Incoming>, peer: SocketAddr) -> Reply {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return cloudfront_error(
                StatusCode::FORBIDDEN,
                "MethodNotAllowed",
                "only GET and HEAD",
            );
        }
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let url = format!("{}{}", self.base_url, path_and_query);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Err(e) = self.keys.verify(&url, now, Some(peer.ip())).await {
            tracing::info!(%peer, %url, error = %e, "refused a firmware download");
            return cloudfront_error(StatusCode::FORBIDDEN, "AccessDenied", &e.to_string());
        }
        let key = percent_decode(request.uri().path().trim_start_matches('/'));
        match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(object) => {
                let length = object.content_length();
                let body = match object.body.collect().await {
                    Ok(body) => body.into_bytes(),
                    Err(e) => {
                        return cloudfront_error(
                            StatusCode::BAD_GATEWAY,
                            "OriginError",
                            &e.to_string(),
                        );
                    }
                };
                let body = if request.method() == Method::HEAD {
                    Bytes::new()
                } else {
                    body
                };
                let mut response = reply(StatusCode::OK, "application/octet-stream", body);
                if let Some(length) = length
                    && let Ok(value) = length.to_string().parse()
                {
                    response.headers_mut().insert("content-length", value);
                }
                response
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                cloudfront_error(StatusCode::NOT_FOUND, "NoSuchKey", "no such firmware image")
            }
            Err(e) => cloudfront_error(
                StatusCode::BAD_GATEWAY,
                "OriginError",
                &aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            ),
        }
    }
}

/// CloudFront's XML error body.
fn cloudfront_error(status: StatusCode, code: &str, message: &str) -> Reply {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    reply(
        status,
        "text/xml",
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
            escape(code),
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_topics_keys_and_broken_escapes() {
        assert_eq!(
            percent_decode("fleet%2Fcar-1%2Ffirmware%2Furl"),
            "fleet/car-1/firmware/url"
        );
        assert_eq!(percent_decode("caf%C3%A9%20v2"), "café v2");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%zzb"), "a%zzb");
        assert_eq!(
            percent_decode("%é"),
            "%é",
            "a multi-byte character after % is kept"
        );
    }
}
