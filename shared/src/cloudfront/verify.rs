//! Checking a signed URL the way CloudFront does: find the key pair, rebuild or decode the
//! policy, verify the signature over it, then apply its conditions.

use std::net::IpAddr;

use super::{HashAlgorithm, Policy, SIGNING_PARAMS, VerifyingKey, decode};

/// Why CloudFront would refuse a URL (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed signed URL: {0}")]
    Malformed(&'static str),
    #[error("key pair id {0:?} is not trusted")]
    UnknownKeyPair(String),
    #[error("signature does not match the policy")]
    BadSignature,
    #[error("policy refuses the request: {0}")]
    Refused(&'static str),
}

/// The public keys a distribution trusts (its key groups), by key pair id.
#[derive(Debug, Clone, Default)]
pub struct UrlVerifier {
    keys: Vec<(String, VerifyingKey)>,
}

impl UrlVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key` under `key_pair_id` (several at once during a key rotation).
    pub fn trust(mut self, key_pair_id: impl Into<String>, key: VerifyingKey) -> Self {
        self.keys.push((key_pair_id.into(), key));
        self
    }

    /// Checks `signed_url` for a request at `now` (Unix seconds) from `source_ip`, and
    /// returns the URL without the signing parameters (what the origin is asked for).
    pub fn verify(
        &self,
        signed_url: &str,
        now: i64,
        source_ip: Option<IpAddr>,
    ) -> Result<String, VerifyError> {
        let (base, query) = signed_url
            .split_once('?')
            .ok_or(VerifyError::Malformed("no query string"))?;
        let mut kept = Vec::new();
        let (mut expires, mut policy, mut signature, mut key_pair_id, mut hash) =
            (None, None, None, None, None);
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "Expires" => &mut expires,
                "Policy" => &mut policy,
                "Signature" => &mut signature,
                "Key-Pair-Id" => &mut key_pair_id,
                "Hash-Algorithm" => &mut hash,
                _ => {
                    kept.push(pair);
                    continue;
                }
            };
            debug_assert!(SIGNING_PARAMS.contains(&name));
            if slot.replace(value).is_some() {
                return Err(VerifyError::Malformed("a signing parameter appears twice"));
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let hash = match hash {
            None => HashAlgorithm::Sha1,
            Some("SHA256") => HashAlgorithm::Sha256,
            Some(_) => return Err(VerifyError::Malformed("unknown Hash-Algorithm")),
        };
        let key_pair_id = key_pair_id.ok_or(VerifyError::Malformed("no Key-Pair-Id"))?;
        let key = self
            .keys
            .iter()
            .find(|(id, _)| id == key_pair_id)
            .map(|(_, key)| key)
            .ok_or_else(|| VerifyError::UnknownKeyPair(key_pair_id.to_owned()))?;
        let signature = signature.and_then(decode).ok_or(VerifyError::Malformed(
            "no Signature, or not CloudFront base64",
        ))?;
        let (policy, statement) = match (expires, policy) {
            (Some(expires), None) => {
                let expires = expires
                    .parse()
                    .map_err(|_| VerifyError::Malformed("bad Expires"))?;
                let policy = Policy::expiring_at(expires)
                    .map_err(|_| VerifyError::Malformed("bad Expires"))?;
                let statement = policy.to_json(&url).into_bytes();
                (policy, statement)
            }
            (None, Some(encoded)) => {
                let statement =
                    decode(encoded).ok_or(VerifyError::Malformed("Policy is not base64"))?;
                let policy = Policy::from_json(&statement)
                    .ok_or(VerifyError::Malformed("Policy is not a policy statement"))?;
                (policy, statement)
            }
            _ => {
                return Err(VerifyError::Malformed(
                    "needs exactly one of Expires and Policy",
                ));
            }
        };
        if !key.verify(hash, &statement, &signature) {
            return Err(VerifyError::BadSignature);
        }
        policy
            .allows(&url, now, source_ip)
            .map_err(VerifyError::Refused)?;
        Ok(url)
    }
}
