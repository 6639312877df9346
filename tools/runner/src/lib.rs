//! The local runner: IoT Core's part on a laptop, so that devices, rules, fleet
//! provisioning, lifecycle events and event source mappings work against the local stack
//! the way they work on AWS, without an account.

pub mod esm;
pub mod front_door;
pub mod http_api;
pub mod http_endpoints;
pub mod hub;
pub mod iot_sql;
pub mod lambda;
pub mod provisioning;
pub mod queues;
pub mod router;
pub mod rules;
pub mod topic;
pub mod wire;
pub mod wiring;

/// `bytes` random bytes as lower-case hex (session ids, tokens, request ids).
pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}
