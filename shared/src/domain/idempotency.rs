//! Idempotent requests: a retried request with the same key and body gets the first answer
//! and does nothing twice (Powertools' idempotency, the small part we need).
//!
//! The first request claims its key with a conditional put; the one that wins does the
//! work and stores its answer, every later one reads that answer. A claim that is still
//! in progress (a concurrent retry) is answered "come back later", and one left behind
//! by a crashed invocation goes stale after `in_progress_expiry` so the key is not stuck.

use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::runtime::error::StoreError;

/// The answer stored for a key: what the first request returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: do the work, then `complete` (or `release` if it must be retried).
    Claimed,
    /// The key was used before and answered.
    Completed {
        fingerprint: String,
        response: StoredResponse,
    },
    /// Another request with this key is being processed now.
    InProgress { fingerprint: String },
}

/// Where claims and answers live (a DynamoDB table with a TTL on `expires_at`).
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request whose body hashes to `fingerprint`, unless it already
    /// holds an answer or a claim newer than `stale_before`.
    fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        stale_before: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Stores the answer of a claimed key.
    fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        response: &StoredResponse,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives a claim up, so that a retry with the same key does the work again.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How long answers are remembered and when an unfinished claim counts as abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencySettings {
    /// How long a key's answer is replayed (`IDEMPOTENCY_TTL_SECONDS`, default 24 h).
    pub ttl: Duration,
    /// After this, a claim without an answer is taken over (longer than the function's
    /// timeout, so a slow but live invocation keeps its claim).
    pub in_progress_expiry: Duration,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        IdempotencySettings {
            ttl: Duration::from_secs(24 * 3600),
            in_progress_expiry: Duration::from_secs(60),
        }
    }
}

/// A request key as callers send it (`Idempotency-Key`), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// At most this many characters.
    pub const MAX_LEN: usize = 128;

    /// A key of 1 to 128 visible ASCII characters, or why not.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let key = raw.trim();
        if key.is_empty() || key.len() > Self::MAX_LEN {
            return Err(format!(
                "Idempotency-Key must be 1 to {} characters, got {}",
                Self::MAX_LEN,
                key.len()
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("Idempotency-Key must be visible ASCII (no spaces)".into());
        }
        Ok(IdempotencyKey(key.to_string()))
    }

    /// The stored key: scoped to the caller, so callers never see each other's answers.
    pub fn scoped_to(&self, caller: &str) -> String {
        format!("{caller}#{}", self.0)
    }
}

/// A request's fingerprint: hex SHA-256 of what it asks (route and body).
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_scoped_to_the_caller() {
        let key = IdempotencyKey::parse(" order-7f3a ").unwrap();
        assert_eq!(key.scoped_to("gw-1"), "gw-1#order-7f3a");
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_eq!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"ab", b"c"]));
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b""]).len(), 64);
    }
}
