//! The control API a chaos run switches faults with:
//! - `GET /faults`: every route's faults now and everything injected so far, by kind;
//! - `PUT /faults/<route>` with `{"errors": <share 0..1>, "delay_ms": [low, high],
//!   "toxics": [<toxic>...]}`: the route's faults from now on (toxics as Toxiproxy's API
//!   writes them: `type`, `attributes`, `stream`, `toxicity`); an absent field means none;
//! - `DELETE /faults`: every route back to faultless.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{Faults, Switch};

pub struct Control {
    switches: BTreeMap<String, Switch>,
}

type Reply = Response<Full<Bytes>>;

impl Control {
    pub fn new(switches: Vec<Switch>) -> Arc<Control> {
        Arc::new(Control {
            switches: switches
                .into_iter()
                .map(|s| (s.route.name.clone(), s))
                .collect(),
        })
    }

    pub async fn serve(self: Arc<Control>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let control = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let control = control.clone();
                    async move { Ok::<_, Infallible>(control.handle(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Reply {
        let path = request.uri().path().to_owned();
        match (request.method().clone(), path.as_str()) {
            (Method::GET, "/faults") => reply(StatusCode::OK, &self.report()),
            (Method::DELETE, "/faults") => {
                for switch in self.switches.values() {
                    if let Err(e) = switch.apply(Faults::default()).await {
                        return reply(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": e}));
                    }
                }
                reply(StatusCode::OK, &self.report())
            }
            (Method::PUT, route) if route.starts_with("/faults/") => {
                let name = &route["/faults/".len()..];
                let Some(switch) = self.switches.get(name) else {
                    let known: Vec<&String> = self.switches.keys().collect();
                    return reply(
                        StatusCode::NOT_FOUND,
                        &json!({"error": format!("no route {name}; the routes are {known:?}")}),
                    );
                };
                let body = match request.into_body().collect().await {
                    Ok(body) => body.to_bytes(),
                    Err(e) => {
                        return reply(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}));
                    }
                };
                let faults: Faults = match serde_json::from_slice(&body) {
                    Ok(faults) => faults,
                    Err(e) => {
                        return reply(
                            StatusCode::BAD_REQUEST,
                            &json!({"error": format!("the faults of {name}: {e}")}),
                        );
                    }
                };
                if !(0.0..=1.0).contains(&faults.errors) {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": "errors is a share between 0 and 1"}),
                    );
                }
                if (faults.errors > 0.0 || faults.delay_ms.is_some())
                    && switch.route.service.is_none()
                {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": format!("{name} is a TCP route: it has no protocol errors or delays")}),
                    );
                }
                match switch.apply(faults).await {
                    Ok(()) => reply(StatusCode::OK, &self.report()),
                    Err(e) => reply(StatusCode::BAD_REQUEST, &json!({"error": e})),
                }
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                &json!({"error": "GET /faults, PUT /faults/<route>, DELETE /faults"}),
            ),
        }
    }

    fn report(&self) -> Value {
        let mut routes = serde_json::Map::new();
        let mut injected: BTreeMap<String, u64> = BTreeMap::new();
        for (name, switch) in &self.switches {
            routes.insert(
                name.clone(),
                json!({
                    "service": switch.route.service.map(|s| s.name()),
                    "errors": switch.route.error_share(),
                    "delay_ms": switch.route.delay(),
                    "toxics": switch.route.toxics(),
                }),
            );
            for (kind, n) in switch.route.injected() {
                *injected.entry(kind).or_default() += n;
            }
        }
        json!({"routes": routes, "injected_by_kind": injected})
    }
}

fn reply(status: StatusCode, body: &Value) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body.to_string())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    reply
}
