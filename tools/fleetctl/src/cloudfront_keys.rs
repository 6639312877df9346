//! The key-rotation ports over AWS: CloudFront public keys and key groups
//! (aws-sdk-cloudfront) and the signing secret (Secrets Manager).

use std::time::Duration;

use aws_sdk_cloudfront::types::{KeyGroupConfig, PublicKeyConfig};
use aws_smithy_types::date_time::Format;
use fleetwire::cloudfront::HashAlgorithm;

use crate::Failure;
use crate::error::sdk_failure;
use crate::keys::{KeyDistribution, KeyGroup, PublicKey, SigningSecret};

/// CloudFront, with the distribution whose deployments rotation waits for, if known.
pub struct CloudFrontKeys {
    client: aws_sdk_cloudfront::Client,
    distribution_id: Option<String>,
}

impl CloudFrontKeys {
    pub fn new(client: aws_sdk_cloudfront::Client, distribution_id: Option<String>) -> Self {
        Self {
            client,
            distribution_id,
        }
    }
}

fn build_failure(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::failed(format!("cannot build the {what} request: {e}"))
}

impl KeyDistribution for CloudFrontKeys {
    async fn find_key_group(&self, name: &str) -> Result<Option<String>, Failure> {
        let mut marker = None;
        loop {
            let page = self
                .client
                .list_key_groups()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| sdk_failure("CloudFront.ListKeyGroups", e))?;
            let Some(list) = page.key_group_list() else {
                return Ok(None);
            };
            for summary in list.items() {
                if let Some(group) = summary.key_group()
                    && group.key_group_config().is_some_and(|c| c.name() == name)
                {
                    return Ok(Some(group.id().to_owned()));
                }
            }
            marker = list
                .next_marker()
                .filter(|m| !m.is_empty())
                .map(str::to_owned);
            if marker.is_none() {
                return Ok(None);
            }
        }
    }

    async fn key_group(&self, id: &str) -> Result<KeyGroup, Failure> {
        let output = self
            .client
            .get_key_group()
            .id(id)
            .send()
            .await
            .map_err(|e| sdk_failure("CloudFront.GetKeyGroup", e))?;
        let group = output
            .key_group()
            .ok_or_else(|| Failure::failed(format!("CloudFront returned no key group {id}")))?;
        let config = group
            .key_group_config()
            .ok_or_else(|| Failure::failed(format!("key group {id} has no configuration")))?;
        Ok(KeyGroup {
            id: group.id().to_owned(),
            name: config.name().to_owned(),
            comment: config.comment().map(str::to_owned),
            items: config.items().to_vec(),
            etag: output.e_tag().unwrap_or_default().to_owned(),
        })
    }

    async fn set_key_group_items(&self, group: &KeyGroup, items: &[String]) -> Result<(), Failure> {
        let config = KeyGroupConfig::builder()
            .name(&group.name)
            .set_items(Some(items.to_vec()))
            .set_comment(group.comment.clone())
            .build()
            .map_err(|e| build_failure("UpdateKeyGroup", e))?;
        self.client
            .update_key_group()
            .id(&group.id)
            .if_match(&group.etag)
            .key_group_config(config)
            .send()
            .await
            .map_err(|e| sdk_failure("CloudFront.UpdateKeyGroup", e))?;
        Ok(())
    }

    async fn create_public_key(
        &self,
        name: &str,
        caller_reference: &str,
        encoded_key: &str,
        comment: &str,
    ) -> Result<String, Failure> {
        let config = PublicKeyConfig::builder()
            .caller_reference(caller_reference)
            .name(name)
            .encoded_key(encoded_key)
            .comment(comment)
            .build()
            .map_err(|e| build_failure("CreatePublicKey", e))?;
        let output = self
            .client
            .create_public_key()
            .public_key_config(config)
            .send()
            .await
            .map_err(|e| sdk_failure("CloudFront.CreatePublicKey", e))?;
        output
            .public_key()
            .map(|k| k.id().to_owned())
            .ok_or_else(|| Failure::failed("CloudFront created a public key but returned no id"))
    }

    async fn public_key(&self, id: &str) -> Result<PublicKey, Failure> {
        let output = self
            .client
            .get_public_key()
            .id(id)
            .send()
            .await
            .map_err(|e| sdk_failure("CloudFront.GetPublicKey", e))?;
        let key = output
            .public_key()
            .ok_or_else(|| Failure::failed(format!("CloudFront returned no public key {id}")))?;
        let config = key.public_key_config();
        Ok(PublicKey {
            id: key.id().to_owned(),
            name: config.map(|c| c.name().to_owned()).unwrap_or_default(),
            caller_reference: config
                .map(|c| c.caller_reference().to_owned())
                .unwrap_or_default(),
            comment: config.and_then(|c| c.comment()).map(str::to_owned),
            encoded_key: config
                .map(|c| c.encoded_key().to_owned())
                .unwrap_or_default(),
            created: key.created_time().fmt(Format::DateTime).ok(),
            etag: output.e_tag().unwrap_or_default().to_owned(),
        })
    }

    async fn delete_public_key(&self, id: &str, etag: &str) -> Result<(), Failure> {
        self.client
            .delete_public_key()
            .id(id)
            .if_match(etag)
            .send()
            .await
            .map_err(|e| sdk_failure("CloudFront.DeletePublicKey", e))?;
        Ok(())
    }

    async fn wait_deployed(&self, timeout: Duration) -> Result<(), Failure> {
        let Some(id) = &self.distribution_id else {
            return Ok(());
        };
        let started = tokio::time::Instant::now();
        loop {
            let output = self
                .client
                .get_distribution()
                .id(id)
                .send()
                .await
                .map_err(|e| sdk_failure("CloudFront.GetDistribution", e))?;
            let status = output.distribution().map(|d| d.status().to_owned());
            if status.as_deref() == Some("Deployed") {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Failure::failed(format!(
                    "distribution {id} is still {} after {} s",
                    status.unwrap_or_else(|| "unknown".into()),
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_secs(15).min(timeout)).await;
        }
    }
}

/// The signing secret in Secrets Manager (`{"key_pair_id", "private_key", "hash"}`).
pub struct SecretsManagerSigningSecret {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerSigningSecret {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

impl SigningSecret for SecretsManagerSigningSecret {
    async fn active_key_id(&self) -> Result<Option<String>, Failure> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| sdk_failure("SecretsManager.GetSecretValue", e))?;
        // Only the id is read; the value is never printed (serde_json errors carry no
        // content, only a position).
        let value: serde_json::Value = serde_json::from_str(output.secret_string().unwrap_or("{}"))
            .map_err(|e| {
                Failure::failed(format!(
                    "secret {} is not JSON (line {}, column {})",
                    self.secret_id,
                    e.line(),
                    e.column()
                ))
            })?;
        Ok(value
            .get("key_pair_id")
            .and_then(serde_json::Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned))
    }

    async fn store(
        &self,
        key_pair_id: &str,
        private_pem: &str,
        hash: HashAlgorithm,
    ) -> Result<(), Failure> {
        let value = serde_json::json!({
            "key_pair_id": key_pair_id,
            "private_key": private_pem,
            "hash": match hash {
                HashAlgorithm::Sha1 => "sha1",
                HashAlgorithm::Sha256 => "sha256",
            },
        });
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(value.to_string())
            .send()
            .await
            .map_err(|e| sdk_failure("SecretsManager.PutSecretValue", e))?;
        Ok(())
    }
}
