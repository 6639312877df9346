//! The local runner: IoT Core's part on a laptop, so that devices, rules, fleet
//! provisioning, lifecycle events and event source mappings work against the local stack
//! the way they work on AWS, without an account.

pub mod iot_sql;
pub mod topic;
pub mod wiring;
