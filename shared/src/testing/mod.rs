//! What tests share: in-memory fakes of the ports (`fakes/`, one file per port), the
//! sample events of `events/` (`events`), helpers for tests against the local stack
//! (`local_stack`) and one id that keeps a run's keys apart from earlier runs'.
//!
//! The fakes apply the same rules as the AWS adapters (conditions, ordering) and can be
//! told to fail or to be slow, so a handler's error and timeout paths are testable
//! without a network.

use std::sync::Mutex;
use std::time::Duration;

use crate::runtime::error::StoreError;

pub mod events;
pub mod fakes;
pub mod fuzz;
pub mod lifecycle;
pub mod local_stack;
pub mod logs;
pub mod metrics;

pub use events::event;
pub use fakes::*;
pub use local_stack::{
    START_HINT, invoke_under_watch, read_stream, read_stream_devices, stack_var,
};

/// How a fake behaves on each call.
#[derive(Debug, Clone, Default)]
pub enum Behaviour {
    #[default]
    Normal,
    /// Sleep this long before answering normally.
    Slow(Duration),
    /// Fail every call with this error.
    Failing(StoreError),
}

impl Behaviour {
    pub(crate) async fn apply(&self) -> Result<(), StoreError> {
        match self {
            Behaviour::Normal => Ok(()),
            Behaviour::Slow(delay) => {
                tokio::time::sleep(*delay).await;
                Ok(())
            }
            Behaviour::Failing(error) => Err(error.clone()),
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A suffix that keeps one test run's keys apart from earlier runs against the same stack:
/// milliseconds since the epoch and four random digits.
pub fn run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{millis}{:04}", fastrand::u16(..10_000))
}

/// `<tag>-<run_id>`: a key no earlier run against the same stack used.
pub fn unique_id(tag: &str) -> String {
    format!("{tag}-{}", run_id())
}
