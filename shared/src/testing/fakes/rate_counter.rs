//! The per-caller rate counter in a map.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::runtime::error::StoreError;
use crate::testing::{Behaviour, lock};

/// A rate counter in a map, with the adapter's rule (count unless `limit` are counted)
/// and a switchable failure.
#[derive(Debug, Default)]
pub struct InMemoryRateCounter {
    /// key -> (count, expires_at)
    rows: Mutex<HashMap<String, (u32, time::OffsetDateTime)>>,
    behaviour: Mutex<Behaviour>,
}

impl InMemoryRateCounter {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    /// Every count: (key, count, expires_at), by key.
    pub fn counts(&self) -> Vec<(String, u32, time::OffsetDateTime)> {
        let mut counts: Vec<_> = lock(&self.rows)
            .iter()
            .map(|(key, (count, expires_at))| (key.clone(), *count, *expires_at))
            .collect();
        counts.sort_by(|a, b| a.0.cmp(&b.0));
        counts
    }
}

impl crate::domain::rate_limit::RateCounter for InMemoryRateCounter {
    async fn try_take(
        &self,
        key: &str,
        limit: u32,
        expires_at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let mut rows = lock(&self.rows);
        let row = rows.entry(key.to_string()).or_insert((0, expires_at));
        if row.0 >= limit {
            return Ok(false);
        }
        *row = (row.0 + 1, expires_at);
        Ok(true)
    }
}
