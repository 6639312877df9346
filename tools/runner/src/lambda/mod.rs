//! Invoking functions the way AWS does, through `cargo lambda watch`'s invoke endpoint.
//!
//! `cargo lambda watch` runs every invoke synchronously, so the runner gives asynchronous
//! invokes (what IoT rules make) Lambda's semantics itself: a function error is retried
//! `MaximumRetryAttempts` times (the template's EventInvokeConfig; Lambda's default 2),
//! then the event goes to the OnFailure destination with Lambda's destination record. An
//! invoke that cannot be made at all (no such function, watch not answering) is the
//! caller's to handle: for a rule, its error action.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Mutex, Semaphore};

use crate::wiring::Function;

/// The result of one synchronous invoke.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked {
    /// The function returned this.
    Returned(Value),
    /// The function failed (an `Err` from the handler, a panic, a timeout).
    FunctionError { response: Value },
    /// No invoke happened: the function is unknown.
    Unreachable(String),
    /// No answer: `cargo lambda watch` cannot be reached, or the connection ended before
    /// the answer (its process died, with the function processes in it). Lambda's own
    /// failure to run the function, not the function's.
    Unavailable(String),
}

/// What became of an asynchronous invoke.
#[derive(Debug, Clone, PartialEq)]
pub enum AsyncOutcome {
    /// Succeeded, after `attempts` attempts.
    Succeeded {
        attempts: u32,
        response: Value,
    },
    /// Failed on every attempt; sent to the OnFailure destination when there is one.
    RetriesExhausted {
        attempts: u32,
        destination: Option<String>,
    },
    Unreachable(String),
}

/// Posts invokes to `cargo lambda watch`.
#[derive(Clone)]
pub struct Invoker {
    client: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
    timeout: Duration,
    limits: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    concurrency: usize,
}

impl Invoker {
    /// `endpoint` is watch's address (`http://127.0.0.1:9000`); `timeout` bounds one invoke
    /// (the first one of a function includes its build); `concurrency` is how many invokes
    /// of one function run at once (watch's `--concurrency`).
    pub fn new(endpoint: &str, timeout: Duration, concurrency: usize) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            timeout,
            limits: Arc::default(),
            concurrency: concurrency.max(1),
        }
    }

    async fn limit(&self, binary: &str) -> Arc<Semaphore> {
        self.limits
            .lock()
            .await
            .entry(binary.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.concurrency)))
            .clone()
    }

    /// One synchronous invoke (RequestResponse).
    pub async fn invoke(&self, binary: &str, payload: &Value) -> Invoked {
        let limit = self.limit(binary).await;
        let Ok(_permit) = limit.acquire().await else {
            return Invoked::Unreachable("the invoker is shutting down".into());
        };
        let uri = format!(
            "{}/2015-03-31/functions/{binary}/invocations",
            self.endpoint
        );
        let request = match http::Request::post(&uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload.to_string())))
        {
            Ok(request) => request,
            Err(e) => {
                return Invoked::Unreachable(format!("cannot build the invoke of {binary}: {e}"));
            }
        };
        let response = match tokio::time::timeout(self.timeout, self.client.request(request)).await
        {
            Err(_) => {
                return Invoked::FunctionError {
                    response: json!({"errorType": "Timeout", "errorMessage": format!("no answer within {} s", self.timeout.as_secs())}),
                };
            }
            Ok(Err(e)) => return Invoked::Unavailable(format!("{uri}: {e}")),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = match response.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => return Invoked::Unavailable(format!("{uri}: {e}")),
        };
        let value: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        if status == http::StatusCode::NOT_FOUND {
            return Invoked::Unreachable(format!("no function {binary}: {value}"));
        }
        let looks_like_error =
            value.get("errorType").is_some() && value.get("errorMessage").is_some();
        if !status.is_success() || function_error || looks_like_error {
            return Invoked::FunctionError { response: value };
        }
        Invoked::Returned(value)
    }
}

/// Lambda's asynchronous invoke: retries and the OnFailure destination.
#[derive(Clone)]
pub struct AsyncInvoker {
    pub invoker: Invoker,
    pub destinations: crate::queues::Queues,
    /// Waits before each retry (Lambda waits about 1 and then 2 minutes; locally shorter).
    pub retry_delays: Vec<Duration>,
}

impl AsyncInvoker {
    pub async fn invoke(&self, function: &Function, event: &Value) -> AsyncOutcome {
        let attempts_allowed = 1 + function.async_retries;
        let mut last_error = Value::Null;
        let queued = tokio::time::Instant::now();
        for attempt in 1..=attempts_allowed {
            if attempt > 1 {
                let wait = self
                    .retry_delays
                    .get(attempt as usize - 2)
                    .or(self.retry_delays.last())
                    .copied()
                    .unwrap_or_default();
                tokio::time::sleep(wait).await;
            }
            // When Lambda itself cannot run the function (a system error), it returns the
            // event to its queue and tries again for up to the event's maximum age, without
            // counting an attempt (Lambda Developer Guide, "How Lambda handles errors and
            // retries with asynchronous invocation").
            let mut pause = Duration::from_millis(250);
            let invoked = loop {
                match self.invoker.invoke(&function.binary, event).await {
                    Invoked::Unavailable(why) if queued.elapsed() < function.max_event_age => {
                        tracing::warn!(function = %function.binary, error = %why, "Lambda cannot run the function now; the event waits in its queue");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                    invoked => break invoked,
                }
            };
            match invoked {
                Invoked::Returned(response) => {
                    return AsyncOutcome::Succeeded {
                        attempts: attempt,
                        response,
                    };
                }
                Invoked::Unreachable(why) | Invoked::Unavailable(why) => {
                    return AsyncOutcome::Unreachable(why);
                }
                Invoked::FunctionError { response } => {
                    tracing::warn!(function = %function.binary, attempt, error = %response, "asynchronous invoke failed");
                    last_error = response;
                }
            }
        }
        let destination = function.on_failure_queue.clone();
        if let Some(queue) = &destination {
            let record = destination_record(function, event, &last_error, attempts_allowed);
            if let Err(e) = self.destinations.send(queue, &record.to_string()).await {
                tracing::error!(function = %function.binary, queue, error = %e, "cannot send to the OnFailure destination: the event is lost");
            }
        } else {
            tracing::error!(function = %function.binary, "retries exhausted and no OnFailure destination: the event is dropped, as Lambda would");
        }
        AsyncOutcome::RetriesExhausted {
            attempts: attempts_allowed,
            destination,
        }
    }
}

/// The record Lambda sends to an asynchronous invoke's OnFailure destination.
pub fn destination_record(
    function: &Function,
    event: &Value,
    error: &Value,
    attempts: u32,
) -> Value {
    json!({
        "version": "1.0",
        "timestamp": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        "requestContext": {
            "requestId": crate::random_hex(16),
            "functionArn": format!("{}:$LATEST", function.arn),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_record_has_lambdas_shape() {
        let function = Function {
            logical_id: "F".into(),
            binary: "f".into(),
            name: "fleetwire-local-f".into(),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:fleetwire-local-f".into(),
            async_retries: 2,
            max_event_age: Duration::from_secs(21_600),
            on_failure_queue: Some("q".into()),
        };
        let record = destination_record(
            &function,
            &json!({"a": 1}),
            &json!({"errorType": "E", "errorMessage": "m"}),
            3,
        );
        assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(
            record["requestContext"]["functionArn"],
            "arn:aws:lambda:us-east-1:123456789012:function:fleetwire-local-f:$LATEST"
        );
        assert_eq!(record["requestPayload"], json!({"a": 1}));
        assert_eq!(record["responsePayload"]["errorType"], "E");
    }

    #[tokio::test]
    async fn an_event_waits_while_lambda_cannot_run_the_function() {
        // Nothing listens yet: cargo lambda watch is down (killed, starting again).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("the port again");
            crate::http::serve(listener, |_request, _peer| async {
                crate::http::json_reply(http::StatusCode::OK, &json!({"ok": true}))
            })
            .await;
        });
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                .build(),
        );
        let invoker = AsyncInvoker {
            invoker: Invoker::new(
                &format!("http://127.0.0.1:{port}"),
                Duration::from_secs(5),
                1,
            ),
            destinations: crate::queues::Queues::new(sqs),
            retry_delays: vec![Duration::from_millis(1)],
        };
        let function = Function {
            logical_id: "F".into(),
            binary: "f".into(),
            name: "fleetwire-local-f".into(),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:fleetwire-local-f".into(),
            async_retries: 0,
            max_event_age: Duration::from_secs(60),
            on_failure_queue: None,
        };
        let outcome = invoker.invoke(&function, &json!({"a": 1})).await;
        assert!(
            matches!(outcome, AsyncOutcome::Succeeded { attempts: 1, .. }),
            "{outcome:?}"
        );

        // Past the event's maximum age it is given up, as Lambda gives it up.
        let expired = Function {
            max_event_age: Duration::ZERO,
            ..function
        };
        let nobody = AsyncInvoker {
            invoker: Invoker::new("http://127.0.0.1:9", Duration::from_secs(5), 1),
            ..invoker
        };
        let outcome = nobody.invoke(&expired, &json!({"a": 1})).await;
        assert!(
            matches!(outcome, AsyncOutcome::Unreachable(_)),
            "{outcome:?}"
        );
    }
}
