//! One HTTP request and its whole answer, within one time limit: a server that sends its
//! headers and then stalls must not hold a device (or the report) forever.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

/// Sends `request` and reads the answer's body, all within `limit`.
pub async fn exchange<B>(
    client: &Client<HttpConnector, B>,
    request: Request<B>,
    limit: Duration,
) -> Result<(StatusCode, Bytes), String>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let uri = request.uri().to_string();
    let whole = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    tokio::time::timeout(limit, whole)
        .await
        .map_err(|_| format!("{uri}: no whole answer within {} s", limit.as_secs_f32()))?
        .map_err(|e| format!("{uri}: {e}"))
}
