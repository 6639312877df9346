//! What a command gives back: its answer, or why it could not run, with the exit code each
//! one means.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fleetwire::runtime::error::StoreError;

/// A command's stdout, and whether it found a problem (exit 1) although it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    pub failed: bool,
}

impl Answer {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            failed: false,
        }
    }

    pub fn failed(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            failed: true,
        }
    }
}

/// Why a command did not do its job; printed as one line on stderr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Bad arguments, an unreadable file, a key that cannot be used: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The operation ran and failed (AWS said no, the thing does not exist): exit 1.
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 1,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Failure::Usage(message.into())
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Failure::Failed(message.into())
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Failed(err.to_string())
    }
}

/// An AWS SDK error as one line: the call, the error code and its message.
pub fn sdk_failure<E, R>(call: &str, err: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    Failure::Failed(StoreError::from_sdk(call, err).to_string())
}
