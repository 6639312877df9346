//! Errors of the AWS adapters, classified so a caller can decide: retry, fail closed, or
//! give up on one record.
//!
//! A business "no" (a denied device, a stale write, a duplicate) is never one of these: the
//! ports return it as a value.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// A store or stream call that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No answer within the client's timeouts.
    #[error("{call} timed out: {message}")]
    Timeout { call: String, message: String },
    /// The service asked us to slow down and the retries ran out.
    #[error("{call} was throttled: {message}")]
    Throttled { call: String, message: String },
    /// Network failure or a server-side (5xx) error.
    #[error("{call} is unavailable: {message}")]
    Unavailable { call: String, message: String },
    /// The service refused the request itself (missing table, bad key, access denied).
    #[error("{call} was rejected: {message}")]
    Rejected { call: String, message: String },
    /// The service answered with data we cannot interpret (an item of the wrong shape).
    #[error("{call} returned data we cannot read: {message}")]
    Corrupt { call: String, message: String },
}

impl StoreError {
    /// Whether trying the same call again later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Timeout { .. }
                | StoreError::Throttled { .. }
                | StoreError::Unavailable { .. }
        )
    }

    /// The short kind used as the Lambda error type and in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Timeout { .. } => "StoreTimeout",
            StoreError::Throttled { .. } => "StoreThrottled",
            StoreError::Unavailable { .. } => "StoreUnavailable",
            StoreError::Rejected { .. } => "StoreRejected",
            StoreError::Corrupt { .. } => "StoreCorrupt",
        }
    }

    pub(crate) fn corrupt(call: &str, message: impl Into<String>) -> Self {
        StoreError::Corrupt {
            call: call.to_string(),
            message: message.into(),
        }
    }

    /// Classifies an SDK error of the operation `call` (e.g. `"DynamoDB.UpdateItem"`).
    pub fn from_sdk<E, R>(call: &str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let call = call.to_string();
        match &err {
            SdkError::TimeoutError(_) => StoreError::Timeout {
                call,
                message: DisplayErrorContext(&err).to_string(),
            },
            SdkError::DispatchFailure(failure) if failure.is_timeout() => StoreError::Timeout {
                call,
                message: DisplayErrorContext(&err).to_string(),
            },
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => StoreError::Unavailable {
                call,
                message: DisplayErrorContext(&err).to_string(),
            },
            SdkError::ServiceError(context) => {
                let service_error = context.err();
                let code = service_error.code().unwrap_or("Unknown");
                let message = format!(
                    "{code}: {}",
                    service_error.message().unwrap_or("no message")
                );
                // A 5xx whose body names no error the service models (a gateway's answer,
                // an empty body) is still the server's fault: the SDK retries 500, 502,
                // 503 and 504 as transient, and so must the caller.
                let server_status = (context.raw() as &dyn std::any::Any)
                    .downcast_ref::<aws_smithy_runtime_api::http::Response>()
                    .is_some_and(|raw| raw.status().is_server_error());
                if is_throttling_code(code) {
                    StoreError::Throttled { call, message }
                } else if is_server_fault_code(code) || server_status {
                    StoreError::Unavailable { call, message }
                } else {
                    StoreError::Rejected { call, message }
                }
            }
            _ => StoreError::Rejected {
                call,
                message: DisplayErrorContext(&err).to_string(),
            },
        }
    }
}

fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "LimitExceededException"
            | "KMSThrottlingException"
            | "RequestThrottled"
            | "SlowDown"
            | "TooManyRequestsException"
    )
}

fn is_server_fault_code(code: &str) -> bool {
    matches!(
        code,
        "InternalServerError"
            | "InternalFailure"
            | "InternalError"
            | "ServiceUnavailable"
            | "InternalFailureException"
            | "KMSInternalException"
    )
}

impl From<StoreError> for lambda_runtime::Diagnostic {
    fn from(error: StoreError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.kind().into(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timeouts_throttles_and_outages_are_transient() {
        let e = |make: fn(String, String) -> StoreError| make("X.Y".into(), "m".into());
        assert!(e(|call, message| StoreError::Timeout { call, message }).is_transient());
        assert!(e(|call, message| StoreError::Throttled { call, message }).is_transient());
        assert!(e(|call, message| StoreError::Unavailable { call, message }).is_transient());
        assert!(!e(|call, message| StoreError::Rejected { call, message }).is_transient());
        assert!(!e(|call, message| StoreError::Corrupt { call, message }).is_transient());
    }

    #[test]
    fn diagnostic_carries_kind_and_call() {
        let diagnostic: lambda_runtime::Diagnostic = StoreError::Throttled {
            call: "Kinesis.PutRecords".into(),
            message: "slow down".into(),
        }
        .into();
        assert_eq!(diagnostic.error_type, "StoreThrottled");
        assert_eq!(
            diagnostic.error_message,
            "Kinesis.PutRecords was throttled: slow down"
        );
    }

    #[test]
    fn an_unmodeled_server_error_is_an_outage_and_a_client_error_a_refusal() {
        use aws_sdk_dynamodb::operation::query::QueryError;
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let answered = |status: u16| {
            let raw = Response::new(
                StatusCode::try_from(status).expect("a status"),
                SdkBody::from("<html>Bad Gateway</html>"),
            );
            let err = QueryError::generic(ErrorMetadata::builder().build());
            StoreError::from_sdk("DynamoDB.Query", SdkError::service_error(err, raw))
        };
        assert!(matches!(answered(502), StoreError::Unavailable { .. }));
        assert!(matches!(answered(503), StoreError::Unavailable { .. }));
        assert!(matches!(answered(400), StoreError::Rejected { .. }));
    }

    #[test]
    fn throttling_and_server_codes_are_recognised() {
        assert!(is_throttling_code("ProvisionedThroughputExceededException"));
        assert!(is_server_fault_code("InternalServerError"));
        assert!(!is_throttling_code("ResourceNotFoundException"));
    }
}
