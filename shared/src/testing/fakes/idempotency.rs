//! The idempotency table in a map.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::runtime::error::StoreError;
use crate::testing::{Behaviour, lock};

/// An idempotency table in a map, with the adapter's claim rules (free when unused,
/// expired, or claimed before `stale_before`), and a switchable failure.
#[derive(Debug, Default)]
pub struct InMemoryIdempotency {
    /// key -> (fingerprint, claimed_at, answer, expires_at)
    rows: Mutex<HashMap<String, IdempotencyRow>>,
    behaviour: Mutex<Behaviour>,
}

#[derive(Debug, Clone)]
struct IdempotencyRow {
    fingerprint: String,
    claimed_at: time::OffsetDateTime,
    response: Option<crate::domain::idempotency::StoredResponse>,
    expires_at: time::OffsetDateTime,
}

impl InMemoryIdempotency {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    /// The keys that hold a row (claimed or answered).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = lock(&self.rows).keys().cloned().collect();
        keys.sort();
        keys
    }
}

impl crate::domain::idempotency::IdempotencyStore for InMemoryIdempotency {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        now: time::OffsetDateTime,
        stale_before: time::OffsetDateTime,
        expires_at: time::OffsetDateTime,
    ) -> Result<crate::domain::idempotency::Claim, StoreError> {
        use crate::domain::idempotency::Claim;
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let mut rows = lock(&self.rows);
        if let Some(row) = rows.get(key) {
            let free =
                row.expires_at < now || (row.response.is_none() && row.claimed_at < stale_before);
            if !free {
                return Ok(match &row.response {
                    Some(response) => Claim::Completed {
                        fingerprint: row.fingerprint.clone(),
                        response: response.clone(),
                    },
                    None => Claim::InProgress {
                        fingerprint: row.fingerprint.clone(),
                    },
                });
            }
        }
        rows.insert(
            key.to_string(),
            IdempotencyRow {
                fingerprint: fingerprint.to_string(),
                claimed_at: now,
                response: None,
                expires_at,
            },
        );
        Ok(Claim::Claimed)
    }

    async fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        response: &crate::domain::idempotency::StoredResponse,
        expires_at: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let mut rows = lock(&self.rows);
        let claimed_at = rows
            .get(key)
            .map_or(time::OffsetDateTime::UNIX_EPOCH, |row| row.claimed_at);
        rows.insert(
            key.to_string(),
            IdempotencyRow {
                fingerprint: fingerprint.to_string(),
                claimed_at,
                response: Some(response.clone()),
                expires_at,
            },
        );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        let mut rows = lock(&self.rows);
        if rows.get(key).is_some_and(|row| row.response.is_none()) {
            rows.remove(key);
        }
        Ok(())
    }
}
