//! `fleetctl`, the operator's command line for a fleetwire deployment, as a library: each
//! command is a function over the shared adapters (or over a narrow port where AWS has no
//! local stand-in), returning the text for stdout, so tests drive it without a shell.
//!
//! Exit codes: 0 done; 1 the operation failed or found a problem (a missing serial, a
//! refused change, invalid rows); 2 bad usage (arguments, files, keys).

pub mod archive;
pub mod certificates;
pub mod cli;
pub mod cloudfront_keys;
pub mod deployment;
pub mod device;
pub mod error;
pub mod failed;
pub mod firmware;
pub mod fleet;
pub mod import;
pub mod keys;
pub mod output;
pub mod registry;
pub mod rollout;
pub mod sign_url;

pub use error::{Answer, Failure};
