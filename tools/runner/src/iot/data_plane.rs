//! IoT Core's data plane: `POST /topics/{topic}?qos=1` publishes like IoT Core's `Publish`
//! API (what firmware-url's answers use), to the broker's subscribers and the rules.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::http::{Reply, aws_error, json_reply, percent_decode};
use crate::iot::front_door::now_ms;
use crate::iot::hub::Message;
use crate::iot::router::Router;

/// Where the `/topics/` path of the data plane's port starts.
pub const TOPICS: &str = "/topics/";

#[derive(Clone)]
pub struct DataPlane {
    pub router: Router,
}

impl DataPlane {
    /// Publishes the body of `request` to the topic of `path` (`/topics/<percent-encoded>`).
    pub async fn publish(&self, path: &str, request: Request<Incoming>) -> Reply {
        let topic = percent_decode(&path[TOPICS.len()..]);
        if topic.is_empty() || topic.contains('+') || topic.contains('#') {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestException",
                "a topic name without wildcards is required",
            );
        }
        let payload: Bytes = match request.into_body().collect().await {
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
}
