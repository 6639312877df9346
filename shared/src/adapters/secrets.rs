//! The CloudFront signing key, kept in one Secrets Manager secret whose value is JSON:
//!
//! ```json
//! {"key_pair_id": "K2JCJMDEHXQW5F", "private_key": "-----BEGIN PRIVATE KEY-----\n...", "hash": "sha1"}
//! ```
//!
//! `hash` is optional (the key's default: sha1 for RSA, sha256 for ECDSA). The value is
//! read once at init and never logged; rotating writes a new value, and warm functions
//! keep the old key until recycled, so the old public key stays in the key group for an
//! overlap.

use aws_sdk_secretsmanager::Client;
use serde::Deserialize;

use crate::cloudfront::{HashAlgorithm, SigningKey, UrlSigner};

#[derive(Deserialize)]
struct SigningSecret {
    key_pair_id: String,
    private_key: String,
    #[serde(default)]
    hash: Option<String>,
}

/// Why the signer could not be loaded; never carries the secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SigningSecretError {
    #[error("cannot read secret {secret_id}: {message}")]
    Read { secret_id: String, message: String },
    #[error("secret {secret_id} is not JSON with key_pair_id and private_key: {message}")]
    Shape { secret_id: String, message: String },
    #[error("secret {secret_id}: {message}")]
    Key { secret_id: String, message: String },
}

/// Reads the secret and builds the signer from it.
pub async fn load_url_signer(
    client: &Client,
    secret_id: &str,
) -> Result<UrlSigner, SigningSecretError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SigningSecretError::Read {
            secret_id: secret_id.to_owned(),
            message: crate::runtime::error::StoreError::from_sdk(
                "SecretsManager.GetSecretValue",
                e,
            )
            .to_string(),
        })?;
    let text = output
        .secret_string()
        .ok_or_else(|| SigningSecretError::Shape {
            secret_id: secret_id.to_owned(),
            message: "it has no string value".into(),
        })?;
    signer_from_secret(secret_id, text)
}

/// Builds the signer from the secret's JSON value.
pub fn signer_from_secret(secret_id: &str, value: &str) -> Result<UrlSigner, SigningSecretError> {
    // serde_json's error names the position, never the content, so the key cannot leak.
    let secret: SigningSecret =
        serde_json::from_str(value).map_err(|e| SigningSecretError::Shape {
            secret_id: secret_id.to_owned(),
            message: format!(
                "{} at line {} column {}",
                classify(&e),
                e.line(),
                e.column()
            ),
        })?;
    let key_error = |message: String| SigningSecretError::Key {
        secret_id: secret_id.to_owned(),
        message,
    };
    let hash = secret
        .hash
        .as_deref()
        .map(str::parse::<HashAlgorithm>)
        .transpose()
        .map_err(key_error)?;
    let key = SigningKey::from_pem(secret.private_key.as_bytes())
        .map_err(|e| key_error(e.to_string()))?;
    UrlSigner::new(secret.key_pair_id, key, hash).map_err(|e| key_error(e.to_string()))
}

fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Data => "a field is missing or has the wrong type",
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not valid JSON",
        serde_json::error::Category::Io => "unreadable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> String {
        std::fs::read_to_string(format!(
            "{}/tests/data/cloudfront/rsa2048_pkcs1.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn builds_the_signer_from_the_json_value() {
        let value = serde_json::json!({"key_pair_id": "K1", "private_key": pem()}).to_string();
        let signer = signer_from_secret("s", &value).unwrap();
        assert_eq!(signer.key_pair_id(), "K1");
        assert_eq!(signer.hash(), HashAlgorithm::Sha1);
        let value =
            serde_json::json!({"key_pair_id": "K1", "private_key": pem(), "hash": "sha256"})
                .to_string();
        assert_eq!(
            signer_from_secret("s", &value).unwrap().hash(),
            HashAlgorithm::Sha256
        );
    }

    #[test]
    fn errors_never_echo_the_secret() {
        let leaky = format!("{{\"key_pair_id\": \"K1\", \"private_key\": {:?}", pem());
        for value in [
            leaky.clone(),
            "{}".to_string(),
            format!("{{\"key_pair_id\": 5, \"private_key\": {:?}}}", pem()),
        ] {
            let message = signer_from_secret("s", &value).unwrap_err().to_string();
            assert!(!message.contains("MII"), "{message}");
        }
        let bad_key = serde_json::json!({"key_pair_id": "K1", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIsecret\n-----END PRIVATE KEY-----"}).to_string();
        let message = signer_from_secret("s", &bad_key).unwrap_err().to_string();
        assert!(!message.contains("MIIsecret"), "{message}");
    }
}
