//! The HTTP side of a DynamoDB or Kinesis route: each call is passed to the service, or,
//! for the route's share of calls, answered as the service answers when it throttles or
//! fails ([`crate::aws`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::Route;
use crate::aws::{self, Fault, Service};

type Reply = Response<Full<Bytes>>;

/// Passes calls to `upstream` and injects the route's faults.
#[derive(Clone)]
pub struct ProtocolLayer {
    route: Arc<Route>,
    service: Service,
    upstream: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl ProtocolLayer {
    pub fn new(route: Arc<Route>, service: Service, upstream: SocketAddr) -> ProtocolLayer {
        ProtocolLayer {
            route,
            service,
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Serves HTTP/1.1 on `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let layer = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let layer = layer.clone();
                    async move { Ok::<_, Infallible>(layer.handle(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Reply {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the request: {e}"),
                );
            }
        };
        if let Some([low, high]) = self.route.delay() {
            let held = fastrand::u64(low..=high);
            self.route
                .count(format!("{} delayed calls", self.service.name()), 1);
            tokio::time::sleep(std::time::Duration::from_millis(held)).await;
        }
        let Some((fault, json)) = self.fault_for(&parts.headers, &body) else {
            return self.forward(&parts, body).await;
        };
        self.route.count(fault.kind(self.service), fault.count());
        if let Some((status, answer)) = aws::refusal(self.service, &fault) {
            return self.json_reply(status, &answer);
        }
        let failed = match &fault {
            Fault::FailEntries { failed } => failed,
            Fault::FailAfterApplying => {
                let reply = self.forward(&parts, body).await;
                if reply.status() != StatusCode::OK {
                    return reply;
                }
                let (status, answer) = aws::failure_after_applying(self.service);
                return self.json_reply(status, &answer);
            }
            _ => return self.forward(&parts, body).await,
        };
        let total = json
            .get("Records")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let written = match aws::without_entries(&json, failed) {
            None => None,
            Some(request) => {
                let reply = self.forward(&parts, Bytes::from(request.to_string())).await;
                if reply.status() != StatusCode::OK {
                    // The service refused the call itself: its answer stands.
                    return reply;
                }
                match reply.into_body().collect().await.map(|b| b.to_bytes()) {
                    Ok(bytes) => serde_json::from_slice::<Value>(&bytes).ok(),
                    Err(_) => None,
                }
            }
        };
        self.json_reply(
            200,
            &aws::with_failed_entries(written.as_ref(), total, failed),
        )
    }

    /// The fault for this call, if the dice say so and the call is one the layer reads
    /// (the service's JSON protocol with an operation in `X-Amz-Target`).
    fn fault_for(&self, headers: &HeaderMap, body: &Bytes) -> Option<(Fault, Value)> {
        let share = self.route.error_share();
        if share <= 0.0 || fastrand::f64() >= share {
            return None;
        }
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        if !content_type.starts_with("application/x-amz-json") {
            return None;
        }
        let target = headers.get("x-amz-target")?.to_str().ok()?;
        let json: Value = serde_json::from_slice(body).ok()?;
        let mut rng = fastrand::Rng::new();
        let fault = aws::choose(self.service, aws::operation(target), &json, &mut rng);
        Some((fault, json))
    }

    async fn forward(&self, parts: &http::request::Parts, body: Bytes) -> Reply {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(format!("http://{}{path}", self.upstream));
        for (name, value) in &parts.headers {
            if name != header::CONTENT_LENGTH {
                request = request.header(name, value);
            }
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(e) => {
                return plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("{} at {}: {e}", self.service.name(), self.upstream),
                );
            }
        };
        let (parts, body) = response.into_parts();
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return plain(StatusCode::BAD_GATEWAY, &e.to_string()),
        };
        let mut reply = Response::new(Full::new(bytes));
        *reply.status_mut() = parts.status;
        for (name, value) in &parts.headers {
            if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
                reply.headers_mut().insert(name, value.clone());
            }
        }
        reply
    }

    fn json_reply(&self, status: u16, answer: &Value) -> Reply {
        let mut reply = Response::new(Full::new(Bytes::from(answer.to_string())));
        *reply.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        reply.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(self.service.content_type()),
        );
        reply
    }
}

fn plain(status: StatusCode, text: &str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(text.to_owned())));
    *reply.status_mut() = status;
    reply
}
