//! What a function needs around its handler: the process's life ([`serve`]), typed
//! configuration from the environment, the AWS SDK's settings, init failures reported the
//! way managed runtimes report them, logging, retry with backoff, and the adapters' error
//! classification.

pub mod aws;
pub mod config;
pub mod error;
pub mod init;
pub mod json;
pub mod kafka_event;
pub mod kinesis_event;
pub mod logging;
pub mod metrics;
pub mod retry;
pub mod sdk_faults;
mod serve;
pub mod xray;

pub use serve::serve;
