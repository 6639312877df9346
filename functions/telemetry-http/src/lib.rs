//! telemetry-http: `POST /v1/telemetry` over HTTPS, for gateways, partner back ends and
//! test rigs that do not speak MQTT. The same ingest core as the IoT rule's
//! (`fleetwire::ingest::Ingest`): the same validation, anti-spoofing, enrichment, stream and
//! dead-letter queue. What HTTP adds is an answer per record, a status that never says
//! 2xx for a record that was not stored, and idempotent retries (`Idempotency-Key`).
//!
//! | status | when |
//! |---|---|
//! | 202 | at least one record accepted (each record's result in `records`) |
//! | 400 | every record rejected (each with its errors; all kept in the dead-letter queue), or a bad header |
//! | 401 / 403 | no identity / an identity that may write for no device |
//! | 405 / 415 / 413 | not POST / not JSON / body over `MAX_BODY_BYTES` |
//! | 409 | a request with the same `Idempotency-Key` is in progress (`Retry-After`) |
//! | 422 | the `Idempotency-Key` was used before for a different request |
//! | 429 | the caller is over its own rate limit (`Retry-After`: when its next window starts) |
//! | 503 | the stream or the dead-letter queue is unavailable after its budget (`Retry-After`): the records marked `unavailable` were not stored, send them again |

pub mod auth;
pub mod config;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body as ResponseBody;
use aws_lambda_events::http::{HeaderMap, HeaderValue, Method};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use fleetwire::domain::dead_letter::DeadLetterSink;
use fleetwire::domain::idempotency::{
    Claim, IdempotencyKey, IdempotencyStore, StoredResponse, fingerprint,
};
use fleetwire::domain::rate_limit::{Admission, CallerRateLimiter, RateCounter};
use fleetwire::ingest::envelope::Envelope;
use fleetwire::ingest::stream::StreamSink;
use fleetwire::ingest::{Ingest, Outcome, RecordStatus, SinkFailures};
use fleetwire::runtime::metrics;
use serde_json::{Value, json};
use time::OffsetDateTime;

pub use config::{HttpConfig, HttpSettings};

/// The name dead letters from this entry point carry as their source.
pub const SOURCE: &str = "telemetry-http";

/// The entry point: the ingest core, the idempotency table, the per-caller rate limiter
/// (when one is configured) and the settings, built once.
pub struct HttpIngest<S, D, I, R> {
    ingest: Ingest<S, D>,
    idempotency: I,
    limiter: Option<CallerRateLimiter<R>>,
    settings: HttpSettings,
}

/// An answer before it becomes API Gateway's response.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<u64>,
    replayed: bool,
}

impl Answer {
    fn error(status: u16, message: impl Into<String>) -> Answer {
        Answer {
            status,
            body: json!({ "message": message.into() }),
            retry_after: None,
            replayed: false,
        }
    }

    fn retry_later(mut self, seconds: u64) -> Answer {
        self.retry_after = Some(seconds);
        self
    }

    /// Answers that are final for their request, so an idempotent retry replays them.
    fn is_final(&self) -> bool {
        self.status < 500 && self.status != 409
    }
}

impl<S: StreamSink, D: DeadLetterSink, I: IdempotencyStore, R: RateCounter> HttpIngest<S, D, I, R> {
    pub fn new(ingest: Ingest<S, D>, idempotency: I, settings: HttpSettings) -> Self {
        HttpIngest {
            ingest: ingest.with_source(SOURCE),
            idempotency,
            limiter: None,
            settings,
        }
    }

    /// Holds each caller to its own rate limit (`429` beyond it).
    pub fn with_rate_limit(mut self, limiter: CallerRateLimiter<R>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Answers one request received at `now`.
    pub async fn handle(
        &self,
        request: &ApiGatewayV2httpRequest,
        now: OffsetDateTime,
    ) -> ApiGatewayV2httpResponse {
        let answer = self.answer(request, now).await;
        tracing::info!(
            request_id = request.request_context.request_id.as_deref().unwrap_or("-"),
            status = answer.status,
            replayed = answer.replayed,
            "telemetry request answered"
        );
        metrics::count_by(
            metrics::name::HTTP_ANSWERS,
            "Status",
            answer.status.to_string(),
            1,
        );
        response_of(&answer)
    }

    async fn answer(&self, request: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> Answer {
        if request.request_context.http.method != Method::POST {
            return Answer::error(405, "only POST is served here");
        }
        let sender = match auth::sender_of(&request.request_context, &self.settings.devices_claim) {
            Ok(sender) => sender,
            Err(e @ auth::AuthError::Unauthenticated(_)) => {
                tracing::warn!(reason = %e, "telemetry request refused: unauthenticated");
                return Answer::error(401, e.to_string());
            }
            Err(e @ auth::AuthError::Forbidden(_)) => {
                tracing::warn!(reason = %e, "telemetry request refused: forbidden");
                return Answer::error(403, e.to_string());
            }
        };
        if let Some(limited) = self.over_budget(sender.name(), now).await {
            return limited;
        }
        if let Some(kind) = header(&request.headers, "content-type")
            && !kind
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        {
            return Answer::error(
                415,
                format!("Content-Type must be application/json, got {kind:?}"),
            );
        }
        let body = match body_bytes(request) {
            Ok(body) => body,
            Err(problem) => return Answer::error(400, problem),
        };
        if body.len() > self.settings.max_body_bytes {
            return Answer::error(
                413,
                format!(
                    "the body is {} bytes; at most {} per request (send fewer records)",
                    body.len(),
                    self.settings.max_body_bytes
                ),
            );
        }
        let key = match header(&request.headers, "idempotency-key").map(IdempotencyKey::parse) {
            None => None,
            Some(Ok(key)) => Some(key.scoped_to(sender.name())),
            Some(Err(problem)) => return Answer::error(400, problem),
        };
        let envelope = Envelope::from_http_body(sender, &route_of(request), &body, now);
        let Some(key) = key else {
            return self.ingest(&envelope, now).await;
        };

        let route = request.request_context.http.path.as_deref().unwrap_or("");
        let print = fingerprint(&[route.as_bytes(), &body]);
        let settings = self.settings.idempotency;
        let claim = self
            .idempotency
            .claim(
                &key,
                &print,
                now,
                now - settings.in_progress_expiry,
                now + settings.ttl,
            )
            .await;
        match claim {
            Err(e) => {
                tracing::error!(error = %e, "idempotency table unavailable");
                Answer::error(
                    503,
                    "the idempotency table is unavailable; send the request again",
                )
                .retry_later(self.settings.retry_after_seconds)
            }
            Ok(Claim::Completed { fingerprint, .. } | Claim::InProgress { fingerprint })
                if fingerprint != print =>
            {
                Answer::error(
                    422,
                    "this Idempotency-Key was used for a different request; use a new key",
                )
            }
            Ok(Claim::InProgress { .. }) => Answer::error(
                409,
                "a request with this Idempotency-Key is in progress; ask again later",
            )
            .retry_later(self.settings.retry_after_seconds),
            Ok(Claim::Completed { response, .. }) => Answer {
                status: response.status,
                body: serde_json::from_str(&response.body).unwrap_or(Value::Null),
                retry_after: None,
                replayed: true,
            },
            Ok(Claim::Claimed) => {
                let answer = self.ingest(&envelope, now).await;
                let stored = if answer.is_final() {
                    let response = StoredResponse {
                        status: answer.status,
                        body: answer.body.to_string(),
                    };
                    self.idempotency
                        .complete(&key, &print, &response, now + settings.ttl)
                        .await
                } else {
                    self.idempotency.release(&key).await
                };
                // The answer stands: a retry after a lost write is processed again,
                // which the stream's consumers absorb (they drop repeated readings).
                if let Err(e) = stored {
                    tracing::warn!(error = %e, "idempotency answer not stored");
                }
                answer
            }
        }
    }

    /// The `429` for a caller over its budget, or `None` to go on. A limiter that cannot
    /// count lets the request in: the stage's own throttle still bounds everyone, and
    /// refusing telemetry because a counter is down would lose what the limit protects.
    async fn over_budget(&self, caller: &str, now: OffsetDateTime) -> Option<Answer> {
        let limiter = self.limiter.as_ref()?;
        match limiter.admit(caller, now).await {
            Ok(Admission::Admitted) => None,
            Ok(limited) => {
                let limit = limiter.limit();
                tracing::warn!(
                    caller,
                    "telemetry request refused: over the caller's rate limit"
                );
                Some(
                    Answer::error(
                        429,
                        format!(
                            "{caller} is over its rate limit of {} requests per second (burst {}); send again after Retry-After seconds",
                            limit.per_second(),
                            limit.burst()
                        ),
                    )
                    .retry_later(limited.retry_after_seconds().unwrap_or(1)),
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, caller, "caller rate table unavailable; request let in");
                None
            }
        }
    }

    async fn ingest(&self, envelope: &Envelope, now: OffsetDateTime) -> Answer {
        match self
            .ingest
            .ingest(envelope, now, SinkFailures::Report)
            .await
        {
            Ok(outcome) => self.answer_of(&outcome),
            Err(e) => {
                tracing::error!(error = %e, "telemetry request failed");
                Answer::error(
                    503,
                    "the dead-letter queue is unavailable, so rejected records could not be kept; send the request again",
                )
                .retry_later(self.settings.retry_after_seconds)
            }
        }
    }

    fn answer_of(&self, outcome: &Outcome) -> Answer {
        let count =
            |f: fn(&RecordStatus) -> bool| outcome.records.iter().filter(|r| f(&r.status)).count();
        let accepted = count(|s| matches!(s, RecordStatus::Accepted));
        let rejected = count(|s| matches!(s, RecordStatus::Rejected { .. }));
        let unavailable = count(|s| matches!(s, RecordStatus::Unavailable { .. }));
        let body = json!({
            "accepted": accepted,
            "rejected": rejected,
            "unavailable": unavailable,
            "records": outcome.records,
        });
        let (status, retry_after) = if unavailable > 0 {
            (503, Some(self.settings.retry_after_seconds))
        } else if accepted == 0 {
            (400, None)
        } else {
            (202, None)
        };
        Answer {
            status,
            body,
            retry_after,
            replayed: false,
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The route the request came in on (`POST /v1/telemetry`), for the dead letters it makes.
fn route_of(request: &ApiGatewayV2httpRequest) -> String {
    let context = &request.request_context;
    match context
        .route_key
        .as_deref()
        .or(request.route_key.as_deref())
    {
        Some(key) if key != "$default" => key.to_string(),
        _ => format!(
            "{} {}",
            context.http.method,
            context.http.path.as_deref().unwrap_or("/")
        ),
    }
}

fn body_bytes(request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, String> {
    let body = request.body.as_deref().unwrap_or("");
    if request.is_base64_encoded {
        BASE64
            .decode(body)
            .map_err(|e| format!("the body is marked base64 but is not: {e}"))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

fn response_of(answer: &Answer) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(seconds) = answer.retry_after {
        headers.insert("retry-after", HeaderValue::from(seconds));
    }
    if answer.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if answer.status == 405 {
        headers.insert("allow", HeaderValue::from_static("POST"));
    }
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(answer.status);
    response.headers = headers;
    response.body = Some(ResponseBody::Text(answer.body.to_string()));
    response
}

#[cfg(test)]
mod tests;
