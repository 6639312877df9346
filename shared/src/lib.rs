//! What every fleetwire function shares, by layer:
//!
//! - [`domain`]: the fleet's models and rules (registry, telemetry, presence, processing,
//!   OTA), each with the narrow port traits its handlers ask for;
//! - [`ingest`]: the ingest core both telemetry entry points run (envelope, validation
//!   pipeline, stream sink with partial-failure resend);
//! - [`adapters`]: the AWS implementations of the ports, one per service and table;
//! - [`cloudfront`]: CloudFront signed URLs, signed and verified without OpenSSL;
//! - [`runtime`]: configuration read at init, SDK settings, init errors reported to the
//!   Runtime API, logging, retry and the adapters' error type;
//! - [`testing`] (behind the `testing` feature): in-memory fakes of the ports, sample
//!   events and local-stack helpers.

#![deny(unsafe_code)] // allowed in one module only: cloudfront::rsa_sha1

pub mod adapters;
pub mod cloudfront;
pub mod domain;
pub mod ingest;
pub mod runtime;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
