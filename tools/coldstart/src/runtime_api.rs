//! The Lambda Runtime API on loopback, as a function's runtime client sees it in Lambda:
//!
//! - `GET /2018-06-01/runtime/invocation/next` waits for an event and answers it with the
//!   `Lambda-Runtime-*` headers;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` end it;
//! - `POST /2018-06-01/runtime/init/error` reports a failed init.
//!
//! The measuring side holds a [`RuntimeApi`]: it learns when the function asks for its next
//! event (the end of init, or of the previous invocation), hands one over and waits for the
//! answer, with the instants of each step taken where they happen.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

const PREFIX: &str = "/2018-06-01/runtime";

/// The function asked for its next event at `at`; [`RuntimeApi::invoke`] answers it.
#[derive(Debug)]
pub struct Poll {
    pub at: Instant,
    reply: oneshot::Sender<Event>,
}

#[derive(Debug)]
struct Event {
    request_id: String,
    body: Bytes,
    served: oneshot::Sender<Instant>,
}

/// How an invocation ended, as the function reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Response(String),
    Error(String),
}

#[derive(Debug)]
enum Report {
    Done {
        request_id: String,
        outcome: Outcome,
        at: Instant,
    },
    InitError(String),
}

/// One finished invocation: when the event left the API and when its answer arrived.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub served_at: Instant,
    pub answered_at: Instant,
    pub outcome: Outcome,
}

impl Invocation {
    pub fn duration(&self) -> Duration {
        self.answered_at.duration_since(self.served_at)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    #[error("the function reported an init error: {0}")]
    InitFailed(String),
    #[error("the function did not {0} within {1:?}")]
    TimedOut(&'static str, Duration),
    #[error("the runtime API stopped")]
    Stopped,
    #[error("the function answered request {got}, but {expected} was the one in flight")]
    WrongRequest { expected: String, got: String },
}

/// The measuring side of the API.
pub struct RuntimeApi {
    addr: SocketAddr,
    polls: mpsc::Receiver<Poll>,
    reports: mpsc::Receiver<Report>,
    next_id: u64,
    pub timeout: Duration,
}

impl RuntimeApi {
    /// Serves the API on an ephemeral loopback port until this value is dropped.
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (poll_tx, polls) = mpsc::channel(4);
        let (report_tx, reports) = mpsc::channel(4);
        tokio::spawn(serve(listener, poll_tx, report_tx));
        Ok(RuntimeApi {
            addr,
            polls,
            reports,
            next_id: 0,
            timeout: Duration::from_secs(30),
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Waits for the function to ask for an event, or to report that its init failed.
    pub async fn next_poll(&mut self) -> Result<Poll, ApiError> {
        let wait = async {
            tokio::select! {
                poll = self.polls.recv() => poll.ok_or(ApiError::Stopped),
                report = self.reports.recv() => match report {
                    Some(Report::InitError(message)) => Err(ApiError::InitFailed(message)),
                    Some(Report::Done { request_id, .. }) => Err(ApiError::WrongRequest {
                        expected: "none".into(),
                        got: request_id,
                    }),
                    None => Err(ApiError::Stopped),
                },
            }
        };
        tokio::time::timeout(self.timeout, wait)
            .await
            .map_err(|_| ApiError::TimedOut("ask for an event", self.timeout))?
    }

    /// Hands `event` to the function that asked in `poll`, and waits for its answer.
    pub async fn invoke(&mut self, poll: Poll, event: &Bytes) -> Result<Invocation, ApiError> {
        self.next_id += 1;
        let request_id = format!("00000000-0000-4000-8000-{:012x}", self.next_id);
        let (served, served_at) = oneshot::channel();
        poll.reply
            .send(Event {
                request_id: request_id.clone(),
                body: event.clone(),
                served,
            })
            .map_err(|_| ApiError::Stopped)?;
        let wait = async {
            let served_at = served_at.await.map_err(|_| ApiError::Stopped)?;
            match self.reports.recv().await {
                Some(Report::Done {
                    request_id: got,
                    outcome,
                    at,
                }) if got == request_id => Ok(Invocation {
                    served_at,
                    answered_at: at,
                    outcome,
                }),
                Some(Report::Done {
                    request_id: got, ..
                }) => Err(ApiError::WrongRequest {
                    expected: request_id.clone(),
                    got,
                }),
                Some(Report::InitError(message)) => Err(ApiError::InitFailed(message)),
                None => Err(ApiError::Stopped),
            }
        };
        tokio::time::timeout(self.timeout, wait)
            .await
            .map_err(|_| ApiError::TimedOut("answer an event", self.timeout))?
    }
}

async fn serve(listener: TcpListener, polls: mpsc::Sender<Poll>, reports: mpsc::Sender<Report>) {
    while let Ok((stream, _)) = listener.accept().await {
        let polls = polls.clone();
        let reports = reports.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let polls = polls.clone();
                let reports = reports.clone();
                async move { Ok::<_, Infallible>(route(request, &polls, &reports).await) }
            });
            // A killed function leaves its connection half done: nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn status(code: StatusCode) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(b"{}")));
    *reply.status_mut() = code;
    reply
}

async fn route(
    request: Request<Incoming>,
    polls: &mpsc::Sender<Poll>,
    reports: &mpsc::Sender<Report>,
) -> Reply {
    let path = request.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return status(StatusCode::NOT_FOUND);
    };
    match (request.method(), rest) {
        (&Method::GET, "/invocation/next") => next(polls).await,
        (&Method::POST, "/init/error") => {
            let body = read_body(request).await;
            let _ = reports.send(Report::InitError(body)).await;
            status(StatusCode::ACCEPTED)
        }
        (&Method::POST, rest) => {
            let at = Instant::now();
            let Some((request_id, kind)) = rest
                .strip_prefix("/invocation/")
                .and_then(|r| r.rsplit_once('/'))
            else {
                return status(StatusCode::NOT_FOUND);
            };
            let request_id = request_id.to_string();
            let body = read_body(request).await;
            let outcome = match kind {
                "response" => Outcome::Response(body),
                "error" => Outcome::Error(body),
                _ => return status(StatusCode::NOT_FOUND),
            };
            let _ = reports
                .send(Report::Done {
                    request_id,
                    outcome,
                    at,
                })
                .await;
            status(StatusCode::ACCEPTED)
        }
        _ => status(StatusCode::NOT_FOUND),
    }
}

async fn next(polls: &mpsc::Sender<Poll>) -> Reply {
    let (reply, event) = oneshot::channel();
    if polls
        .send(Poll {
            at: Instant::now(),
            reply,
        })
        .await
        .is_err()
    {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    let Ok(event) = event.await else {
        // The measuring side let this poll go (the function is about to be stopped).
        return status(StatusCode::SERVICE_UNAVAILABLE);
    };
    let deadline_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or_default();
    let response = Response::builder()
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &event.request_id)
        .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:000000000000:function:bench",
        )
        .header(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
        )
        .body(Full::new(event.body))
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR));
    let _ = event.served.send(Instant::now());
    response
}

async fn read_body(request: Request<Incoming>) -> String {
    match request.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(e) => format!("(unreadable body: {e})"),
    }
}
