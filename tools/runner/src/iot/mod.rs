//! IoT Core: devices connect to the front door (a pass-through to mosquitto that sees what
//! IoT Core sees), each message is routed to the broker's subscribers, the rules engine
//! and fleet provisioning, and the data plane publishes as IoT Core's `Publish` API does.

pub mod data_plane;
pub mod front_door;
pub mod hub;
pub mod packet;
pub mod provisioning;
pub mod router;
pub mod rules;
pub mod topic;
