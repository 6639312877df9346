//! The local runner: AWS's parts of fleetwire on a laptop, so that devices, rules, fleet
//! provisioning, lifecycle events, event source mappings, the HTTP API and firmware
//! downloads work against the local stack the way they work on AWS, without an account.
//! Each module plays one AWS part:
//!
//! - [`iot`]: IoT Core (the MQTT front door and its packets, topic matching, the rules
//!   engine and IoT SQL, fleet provisioning, the data plane);
//! - [`lambda`]: invoking functions as Lambda does, with asynchronous retries and
//!   destinations;
//! - [`esm`]: Lambda's event source mappings for Kinesis and MSK;
//! - [`apigw`]: the API Gateway HTTP API and its JWT authorizer;
//! - [`cloudfront`]: the firmware distribution and its signed URLs;
//! - [`control`]: the runner's own API (status, tokens, mappings);
//! - [`dashboard`]: the fleet as a page, from the functions' EMF metrics and the tables;
//! - [`wiring`]: what template.yaml wires together, read once at start; [`start`] starts it.

pub mod apigw;
pub mod archive;
pub mod cloudfront;
pub mod control;
pub mod dashboard;
pub mod esm;
pub mod http;
pub mod iot;
pub mod lambda;
pub mod queues;
pub mod start;
pub mod wiring;

/// `bytes` random bytes as lower-case hex (session ids, tokens, request ids).
pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}
