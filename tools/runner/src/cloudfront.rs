//! The local CloudFront distribution in front of the firmware bucket: serves an object
//! only to a URL whose signature verifies against the trusted keys and whose policy holds
//! (time, IP), and refuses every other request with 403 and CloudFront's XML error, as the
//! distribution would.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use fleetwire::cloudfront::{SigningKey, UrlVerifier, VerifyError};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::http::{Reply, percent_decode, reply};

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
