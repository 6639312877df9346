//! CloudFront signed URLs, in Rust, without OpenSSL.
//!
//! A [`UrlSigner`] holds a key pair id and a private key parsed once (RSA or ECDSA P-256).
//! [`UrlSigner::sign`] appends `Expires` (canned policy) or `Policy` (custom policy), then
//! `Signature`, `Key-Pair-Id`, and `Hash-Algorithm=SHA256` when not signing with SHA1. For
//! RSA-SHA1 the URL is byte for byte what botocore's `CloudFrontSigner` produces
//! (`tests/data/cloudfront/vectors.json`). [`UrlVerifier`] checks such URLs as CloudFront
//! does, for tests and the local stack.

mod encoding;
mod keys;
mod policy;
#[allow(unsafe_code)]
mod rsa_sha1;
mod verify;

pub use encoding::{decode, encode};
pub use keys::{GeneratedKey, KeyAlgorithm, KeyError, SigningKey, VerifyingKey, generate_key};
pub use policy::{IpCidr, Policy, PolicyError};
pub use verify::{UrlVerifier, VerifyError};

/// The query parameters CloudFront reserves for signing.
const SIGNING_PARAMS: [&str; 5] = [
    "Expires",
    "Policy",
    "Signature",
    "Key-Pair-Id",
    "Hash-Algorithm",
];

/// The digest signed: SHA1 (CloudFront's default, RSA only) or SHA256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha1,
    Sha256,
}

impl std::str::FromStr for HashAlgorithm {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "sha1" => Ok(Self::Sha1),
            "sha256" => Ok(Self::Sha256),
            _ => Err(format!("{text:?} is not a hash algorithm (sha1 or sha256)")),
        }
    }
}

/// Why a URL cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("key pair id {0:?} is not a CloudFront public key id (letters and digits)")]
    BadKeyPairId(String),
    #[error("cannot sign {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Signs CloudFront URLs with one key pair.
#[derive(Debug)]
pub struct UrlSigner {
    key_pair_id: String,
    key: SigningKey,
    hash: HashAlgorithm,
}

impl UrlSigner {
    /// A signer for the public key `key_pair_id`; `hash` defaults to the key's default
    /// (SHA1 for RSA, SHA256 for ECDSA).
    pub fn new(
        key_pair_id: impl Into<String>,
        key: SigningKey,
        hash: Option<HashAlgorithm>,
    ) -> Result<Self, SignError> {
        let key_pair_id = key_pair_id.into();
        if key_pair_id.is_empty() || !key_pair_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SignError::BadKeyPairId(key_pair_id));
        }
        let hash = hash.unwrap_or_else(|| key.default_hash());
        key.supports(hash)?;
        Ok(Self {
            key_pair_id,
            key,
            hash,
        })
    }

    pub fn key_pair_id(&self) -> &str {
        &self.key_pair_id
    }

    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }

    /// `url` signed under `policy`: canned when the policy is only an expiry for this URL,
    /// custom otherwise. `url` must be absolute http(s), percent-encoded as it will be
    /// requested, without a fragment or CloudFront's own signing parameters.
    pub fn sign(&self, url: &str, policy: &Policy) -> Result<String, SignError> {
        check_url(url)?;
        let statement = policy.to_json(url);
        let signature = encode(&self.key.sign(self.hash, statement.as_bytes()));
        let mut signed = String::with_capacity(url.len() + statement.len() * 4 / 3 + 512);
        signed.push_str(url);
        signed.push(if url.contains('?') { '&' } else { '?' });
        if policy.is_canned(url) {
            signed.push_str("Expires=");
            signed.push_str(&policy.expires().to_string());
        } else {
            signed.push_str("Policy=");
            signed.push_str(&encode(statement.as_bytes()));
        }
        signed.push_str("&Signature=");
        signed.push_str(&signature);
        signed.push_str("&Key-Pair-Id=");
        signed.push_str(&self.key_pair_id);
        if self.hash == HashAlgorithm::Sha256 {
            signed.push_str("&Hash-Algorithm=SHA256");
        }
        Ok(signed)
    }
}

fn check_url(url: &str) -> Result<(), SignError> {
    let bad = |reason| {
        Err(SignError::BadUrl {
            url: url.to_owned(),
            reason,
        })
    };
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return bad("it is not an absolute http:// or https:// URL");
    };
    if rest.is_empty() || rest.starts_with(['/', '?']) {
        return bad("it has no host");
    }
    if url.contains('#') {
        return bad("it has a fragment (#), which is never sent to CloudFront");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it holds spaces or control characters; percent-encode them");
    }
    if let Some((_, query)) = url.split_once('?') {
        let reserved = query
            .split('&')
            .any(|pair| SIGNING_PARAMS.contains(&pair.split('=').next().unwrap_or("")));
        if reserved {
            return bad("its query already has a CloudFront signing parameter");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
