//! Init failures reported the way Lambda's managed runtimes report them.
//!
//! A function that exits during init leaves only "Runtime exited" in its logs. Posting the
//! error to the Runtime API's `/runtime/init/error` first makes Lambda show the error type
//! and message (e.g. `ConfigError: environment variable REGISTRY_TABLE is not set`) in the
//! invoke response and in CloudWatch.

use std::fmt::Display;

use lambda_runtime::Diagnostic;
use lambda_runtime_api_client::body::Body;

const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// Passes `Ok` through; on `Err`, logs the error, reports it to the Runtime API (when
/// running under one) and returns it for `main` to exit with.
///
/// ```no_run
/// # async fn init() -> Result<(), fleetwire::runtime::config::ConfigError> { Ok(()) }
/// # async fn example() -> Result<(), lambda_runtime::Error> {
/// let app = fleetwire::runtime::init::or_report(init().await).await?;
/// # Ok(()) }
/// ```
pub async fn or_report<T, E>(result: Result<T, E>) -> Result<T, lambda_runtime::Error>
where
    E: Into<Diagnostic> + Display,
{
    match result {
        Ok(value) => Ok(value),
        Err(error) => {
            let message = error.to_string();
            let diagnostic: Diagnostic = error.into();
            tracing::error!(error_type = %diagnostic.error_type, error = %message, "init failed");
            if let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API")
                && let Err(report_error) = report_init_error(&api, &diagnostic).await
            {
                tracing::error!(error = %report_error, "could not report the init error to the Runtime API");
            }
            Err(message.into())
        }
    }
}

/// Posts `diagnostic` to `http://{runtime_api}/2018-06-01/runtime/init/error`.
pub async fn report_init_error(
    runtime_api: &str,
    diagnostic: &Diagnostic,
) -> Result<(), lambda_runtime::Error> {
    let endpoint: http::Uri = format!("http://{runtime_api}").parse()?;
    let client = lambda_runtime_api_client::Client::builder()
        .with_endpoint(endpoint)
        .build()?;
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(INIT_ERROR_PATH)
        .header(
            "lambda-runtime-function-error-type",
            diagnostic.error_type.as_str(),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(diagnostic)?))?;
    let response = client.call(request).await?;
    if !response.status().is_success() {
        return Err(format!("Runtime API answered {}", response.status()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::ConfigError;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Accepts one HTTP request on loopback, answers 202 and returns the raw request.
    async fn one_request_listener() -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let n = socket.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let length = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if request.len() >= head_end + 4 + length {
                        break;
                    }
                }
            }
            socket
                .write_all(
                    b"HTTP/1.1 202 Accepted\r\ncontent-length: 16\r\n\r\n{\"status\":\"OK\"}\n",
                )
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        (address, handle)
    }

    #[tokio::test]
    async fn init_error_is_posted_with_type_header_and_json_body() {
        let (address, request) = one_request_listener().await;
        let diagnostic = Diagnostic {
            error_type: "ConfigError".into(),
            error_message: "REGISTRY_TABLE is not set".into(),
        };
        report_init_error(&address, &diagnostic).await.unwrap();

        let request = request.await.unwrap();
        assert!(
            request.starts_with("POST /2018-06-01/runtime/init/error HTTP/1.1"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("lambda-runtime-function-error-type: configerror"),
            "{request}"
        );
        let body = request.split("\r\n\r\n").nth(1).unwrap();
        let posted: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            posted,
            serde_json::json!({"errorType": "ConfigError", "errorMessage": "REGISTRY_TABLE is not set"})
        );
    }

    #[tokio::test]
    async fn ok_passes_through_and_err_keeps_its_message() {
        assert_eq!(or_report::<u8, ConfigError>(Ok(7)).await.unwrap(), 7);
        let err = or_report::<u8, _>(Err(ConfigError::Missing {
            name: "A".into(),
            meaning: "b".into(),
        }))
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "environment variable A is not set (b)");
    }

    #[tokio::test]
    async fn unreachable_runtime_api_is_an_error_not_a_hang() {
        // Bind then drop, so the port is closed.
        let address = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let diagnostic = Diagnostic {
            error_type: "X".into(),
            error_message: "y".into(),
        };
        assert!(
            report_init_error(&address.to_string(), &diagnostic)
                .await
                .is_err()
        );
    }
}
