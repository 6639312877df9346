//! In-memory fakes of the ports, one file per port.

mod alerts;
mod dead_letters;
mod device_channel;
mod device_state;
mod idempotency;
mod ota;
mod processing;
mod rate_counter;
mod registry;
mod stream;

pub use alerts::{RecordingAlerts, RecordingOtaAlerts};
pub use dead_letters::RecordingDeadLetters;
pub use device_channel::RecordingChannel;
pub use device_state::InMemoryDeviceState;
pub use idempotency::InMemoryIdempotency;
pub use ota::InMemoryOta;
pub use processing::InMemoryProcessing;
pub use rate_counter::InMemoryRateCounter;
pub use registry::InMemoryRegistry;
pub use stream::RecordingStream;
