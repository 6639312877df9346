//! The runner's own API, on the IoT data plane's port:
//!
//! - `GET /`: the fleet's dashboard, a page that asks `GET /runner/fleet` for its figures
//!   ([`Dashboard`]);
//! - `GET /runner/status`: connections, per-rule counters and the event source mappings'
//!   positions, so a test or the demo knows when everything sent has been handled;
//! - `POST /runner/tokens`: a device token for the local HTTP API's JWT routes, with the
//!   claims of the body (`{"sub": "gw-1", "fleetwire:devices": ["a", "b"]}`);
//! - `POST /runner/mappings/enable`: starts mappings the runner was told to hold back;
//! - `POST /runner/archive/flush`: writes what the local archive holds now, without
//!   waiting out its buffering interval;
//! - and `POST /topics/{topic}`, IoT Core's data plane ([`DataPlane`]).

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::apigw::LocalHttpApi;
use crate::archive::Archive;
use crate::dashboard::{Dashboard, PAGE};
use crate::esm::MappingControl;
use crate::http::{Reply, aws_error, json_reply, reply};
use crate::iot::data_plane::{DataPlane, TOPICS};
use crate::iot::hub::Connections;

#[derive(Clone)]
pub struct RunnerApi {
    pub data_plane: DataPlane,
    pub connections: Connections,
    pub mappings: Arc<MappingControl>,
    /// The local HTTP API, whose JWT routes trust the tokens `POST /runner/tokens` issues.
    pub http_api: Arc<LocalHttpApi>,
    /// The Firehose delivery streams the runner plays.
    pub archives: Vec<Archive>,
    pub dashboard: Dashboard,
}

impl RunnerApi {
    pub async fn handle(self, request: Request<Incoming>, _peer: SocketAddr) -> Reply {
        let path = request.uri().path().to_owned();
        match (request.method(), path.as_str()) {
            (&Method::GET, "/runner/status") => json_reply(StatusCode::OK, &self.status().await),
            (&Method::GET, "/") => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE),
            (&Method::GET, "/runner/fleet") => {
                let now_ms =
                    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
                let fleet = self.dashboard.fleet(self.status().await, now_ms).await;
                json_reply(StatusCode::OK, &fleet)
            }
            (&Method::POST, "/runner/archive/flush") => {
                let mut flushed = Vec::new();
                for archive in &self.archives {
                    match archive.flush().await {
                        Ok(report) => flushed.push(report),
                        Err(e) => {
                            return aws_error(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "ServiceException",
                                &e,
                            );
                        }
                    }
                }
                json_reply(StatusCode::OK, &json!({ "flushed": flushed }))
            }
            (&Method::POST, "/runner/tokens") => self.issue_token(request).await,
            (&Method::POST, "/runner/mappings/enable") => match self.mappings.enable().await {
                Ok(()) => json_reply(StatusCode::OK, &json!({"mappings_enabled": true})),
                Err(e) => aws_error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", &e),
            },
            (&Method::POST, p) if p.starts_with(TOPICS) => {
                self.data_plane.publish(p, request).await
            }
            _ => aws_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                "the local IoT data plane serves POST /topics/{topic} (and GET /, GET /runner/status, GET /runner/fleet, POST /runner/tokens)",
            ),
        }
    }

    async fn status(&self) -> serde_json::Value {
        json!({
            "connections": self.connections.len(),
            "rules": self.data_plane.router.rules().status(),
            "mappings_enabled": self.mappings.enabled().await,
            "mappings": self.mappings.status(),
            "archive": self.archives.iter().map(Archive::status).collect::<Vec<_>>(),
        })
    }

    async fn issue_token(&self, request: Request<Incoming>) -> Reply {
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                return json_reply(StatusCode::BAD_REQUEST, &json!({"message": e.to_string()}));
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
}
