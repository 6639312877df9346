//! DynamoDB adapters: one file (or folder) per table, each adapter type in one file; the
//! item helpers and the conditional-write and transaction helpers they all use.

mod batch;
pub mod conditional;
pub mod device_state;
pub mod fleet;
pub mod idempotency;
pub mod item;
pub mod ota;
pub mod ota_admin;
pub mod processing;
pub mod rate_counter;
pub mod registry;

pub use device_state::DynamoDeviceState;
pub use idempotency::DynamoIdempotency;
pub use ota::DynamoOta;
pub use ota_admin::DynamoOtaAdmin;
pub use processing::DynamoProcessing;
pub use rate_counter::DynamoRateCounter;
pub use registry::DynamoRegistry;
