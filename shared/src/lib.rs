//! What every fleetwire function shares: configuration read at init, error types mapped to
//! Lambda diagnostics, the domain models of the design, narrow port traits and their AWS
//! adapters, and (behind the `testing` feature) in-memory fakes of those ports.

#![deny(unsafe_code)] // allowed in one module only: cloudfront::rsa_sha1

pub mod adapters;
pub mod aws;
pub mod cloudfront;
pub mod config;
pub mod dead_letter;
pub mod device_state;
pub mod error;
pub mod idempotency;
pub mod init;
pub mod logging;
pub mod ota;
pub mod presence;
pub mod processing;
pub mod rate_limit;
pub mod registry;
pub mod retry;
pub mod stream;
pub mod telemetry;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
