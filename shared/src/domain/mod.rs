//! The fleet's models and rules, free of AWS: each module holds its types, its decisions
//! and the port traits its handlers ask for.

pub mod dead_letter;
pub mod device_state;
pub mod fleet;
pub mod idempotency;
pub mod ota;
pub mod presence;
pub mod processing;
pub mod rate_limit;
pub mod registry;
pub mod telemetry;
