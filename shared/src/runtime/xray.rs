//! X-Ray subsegments for the AWS SDK's calls. With active tracing, Lambda records each
//! invocation as a segment and passes its trace header (`Root=...;Parent=...;Sampled=1`)
//! to the function; the AWS SDK for Rust does not record its calls in it (there is no
//! X-Ray SDK for Rust, and the SDK itself has no X-Ray support, nor a UDP client for the
//! daemon). [`SdkSubsegments`] is an SDK interceptor that does: for every operation of a
//! client built with [`traced_client!`](crate::traced_client) in a sampled invocation, it
//! sends the X-Ray daemon one subsegment document over UDP, as the X-Ray SDKs do (X-Ray
//! developer guide, "Sending trace data to AWS X-Ray": a subsegment with `type`
//! `subsegment` and the invocation segment's id as `parent_id`, sent to the daemon's
//! address in `AWS_XRAY_DAEMON_ADDRESS` after the header `{"format": "json", "version": 1}`;
//! "AWS X-Ray segment documents": `namespace` `aws`, the `aws` object with `operation`,
//! `request_id` and `retries`, `http.response.status`, and the `error` (4xx), `throttle`
//! (429 or a throttling code) and `fault` (5xx, or no answer) flags).
//!
//! Sending is one non-blocking UDP datagram per call: no API call and nothing awaited.
//! Outside Lambda (no daemon address) or in an unsampled invocation, nothing is sent.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde_json::{Value, json};

/// The header every document sent to the X-Ray daemon starts with.
pub const DAEMON_HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

/// Where the trace header of the current invocation comes from.
pub type TraceSource = fn() -> Option<String>;

/// The SDK interceptor that records each call as a subsegment.
#[derive(Debug, Clone)]
pub struct SdkSubsegments {
    daemon: Option<SocketAddr>,
    trace: TraceSource,
}

impl SdkSubsegments {
    /// To the daemon Lambda names in `AWS_XRAY_DAEMON_ADDRESS`, for the invocation
    /// [`serve`](super::serve) is handling.
    pub fn from_env() -> Self {
        let daemon = std::env::var("AWS_XRAY_DAEMON_ADDRESS")
            .ok()
            .and_then(|address| daemon_address(&address));
        Self::new(daemon, super::logging::current_trace_header)
    }

    pub fn new(daemon: Option<SocketAddr>, trace: TraceSource) -> Self {
        Self { daemon, trace }
    }
}

/// `AWS_XRAY_DAEMON_ADDRESS`: `host:port`, or `tcp:host:port udp:host:port` (the UDP one).
pub fn daemon_address(value: &str) -> Option<SocketAddr> {
    let udp = value
        .split_whitespace()
        .find_map(|part| part.strip_prefix("udp:"))
        .unwrap_or(value.trim());
    udp.parse().ok()
}

/// The parts of a trace header a subsegment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    pub parent: String,
    pub sampled: bool,
}

impl TraceHeader {
    pub fn parse(header: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) => root = Some(v.to_owned()),
                Some(("Parent", v)) => parent = Some(v.to_owned()),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        Some(Self {
            root: root?,
            parent: parent?,
            sampled,
        })
    }
}

/// One SDK operation as it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The SDK's service name (`dynamodb`).
    pub service: String,
    pub operation: String,
    /// Seconds since the epoch.
    pub start: f64,
    pub end: f64,
    /// The last attempt's HTTP status; `None` when no answer came.
    pub status: Option<u16>,
    pub request_id: Option<String>,
    /// The error code the service answered (`ThrottlingException`), if any.
    pub error_code: Option<String>,
    pub attempts: u32,
}

/// X-Ray's name of a service, as its SDKs name their subsegments.
fn service_name(service: &str) -> String {
    match service.to_ascii_lowercase().as_str() {
        "dynamodb" => "DynamoDB".into(),
        "kinesis" => "Kinesis".into(),
        "sqs" => "SQS".into(),
        "sns" => "SNS".into(),
        "secretsmanager" => "SecretsManager".into(),
        "iotdataplane" | "iot data plane" => "IoT".into(),
        _ => service.to_owned(),
    }
}

const THROTTLING_CODES: [&str; 4] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// The error code of an answer: the `x-amzn-errortype` header, else the `__type` (or
/// `code`) of a JSON error body, without its namespace (`com.amazonaws.dynamodb.v20120810#`)
/// or its trailing `:http://...` (AWS JSON protocol errors).
pub fn error_code(header: Option<&str>, failed: bool, body: Option<&[u8]>) -> Option<String> {
    let clean = |code: &str| {
        let code = code.split(':').next().unwrap_or_default();
        code.rsplit('#').next().unwrap_or_default().to_owned()
    };
    if let Some(header) = header {
        return Some(clean(header)).filter(|c| !c.is_empty());
    }
    if !failed {
        return None;
    }
    let body: Value = serde_json::from_slice(body?).ok()?;
    ["__type", "code"]
        .iter()
        .find_map(|key| body.get(*key).and_then(Value::as_str))
        .map(clean)
        .filter(|c| !c.is_empty())
}

/// The subsegment document of `call` in the trace `header`.
pub fn subsegment(header: &TraceHeader, call: &Call, id: &str) -> Value {
    let status = call.status;
    let throttle = status == Some(429)
        || call
            .error_code
            .as_deref()
            .is_some_and(|code| THROTTLING_CODES.contains(&code));
    let fault = status.is_none_or(|s| s >= 500);
    let error = !fault && status.is_some_and(|s| s >= 400);
    let mut document = json!({
        "name": service_name(&call.service),
        "id": id,
        "trace_id": header.root,
        "parent_id": header.parent,
        "type": "subsegment",
        "namespace": "aws",
        "start_time": call.start,
        "end_time": call.end,
        "aws": {
            "operation": call.operation,
            "retries": call.attempts.saturating_sub(1),
        },
        "error": error,
        "throttle": throttle,
        "fault": fault,
    });
    if let Some(request_id) = &call.request_id {
        document["aws"]["request_id"] = json!(request_id);
    }
    if let Some(status) = status {
        document["http"] = json!({ "response": { "status": status } });
    }
    if let Some(code) = &call.error_code {
        document["cause"] = json!({ "exceptions": [{ "id": id, "type": code, "remote": true }] });
    }
    document
}

/// When the operation started and how many attempts it made, kept in its config bag.
#[derive(Debug, Clone)]
struct Started {
    at: f64,
    attempts: u32,
}

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn socket() -> Option<Arc<UdpSocket>> {
    static SOCKET: OnceLock<Option<Arc<UdpSocket>>> = OnceLock::new();
    SOCKET
        .get_or_init(|| {
            let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
            socket.set_nonblocking(true).ok()?;
            Some(Arc::new(socket))
        })
        .clone()
}

impl Intercept for SdkSubsegments {
    fn name(&self) -> &'static str {
        "XRaySubsegments"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started {
            at: now(),
            attempts: 0,
        });
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(started) = cfg.load::<Started>().cloned() {
            cfg.interceptor_state().store_put(Started {
                attempts: started.attempts + 1,
                ..started
            });
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (Some(daemon), Some(header)) = (
            self.daemon,
            (self.trace)().and_then(|h| TraceHeader::parse(&h)),
        ) else {
            return Ok(());
        };
        if !header.sampled {
            return Ok(());
        }
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_else(|| ("AWS".into(), "unknown".into()));
        let started = cfg.load::<Started>().cloned().unwrap_or(Started {
            at: now(),
            attempts: 1,
        });
        let response = context.response();
        let header_value = |name: &str| {
            response
                .and_then(|r| r.headers().get(name))
                .map(str::to_owned)
        };
        let call = Call {
            service,
            operation,
            start: started.at,
            end: now(),
            status: response.map(|r| r.status().as_u16()),
            request_id: header_value("x-amzn-requestid")
                .or_else(|| header_value("x-amz-request-id")),
            error_code: response.and_then(|r| {
                error_code(
                    r.headers().get("x-amzn-errortype"),
                    r.status().is_client_error() || r.status().is_server_error(),
                    r.body().bytes(),
                )
            }),
            attempts: started.attempts.max(1),
        };
        let id = format!("{:016x}", fastrand::u64(..));
        let document = subsegment(&header, &call, &id);
        if let Some(socket) = socket() {
            let datagram = format!("{DAEMON_HEADER}{document}");
            if let Err(e) = socket.send_to(datagram.as_bytes(), daemon) {
                tracing::debug!(error = %e, "X-Ray subsegment not sent");
            }
        }
        Ok(())
    }
}

/// An SDK client whose calls are X-Ray subsegments and whose retries and errors are
/// counted for the invocation's log ([`sdk_faults`](super::sdk_faults)):
/// `traced_client!(aws_sdk_dynamodb, &sdk_config)`.
#[macro_export]
macro_rules! traced_client {
    ($sdk_crate:ident, $config:expr) => {
        $sdk_crate::Client::from_conf(
            $sdk_crate::config::Builder::from($config)
                .interceptor($crate::runtime::xray::SdkSubsegments::from_env())
                .interceptor($crate::runtime::sdk_faults::SdkFaults::process())
                .build(),
        )
    };
}

#[cfg(test)]
mod tests;
