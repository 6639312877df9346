//! `fleetctl keys rotate | retire | list`: CloudFront signing keys without downtime.
//!
//! The distribution trusts every public key of its key group; firmware-url signs with the
//! one private key in the signing secret, read once per cold start. Rotating therefore
//! goes: make a key pair, register its public key, add it to the key group (trusted
//! before anything is signed with it), wait for the distribution to deploy the change
//! when its id is known, and only then put the private key into the secret. The old key
//! stays trusted, so URLs signed by warm functions (and URLs already handed out) keep
//! working until `keys retire` removes it, which refuses to retire the key in use.
//!
//! The key group starts as the template's (`FirmwarePublicKeyPem`); once rotated here,
//! keep the template's key parameters as they are: CloudFormation rewrites the key group
//! only when they change.

use std::future::Future;
use std::time::Duration;

use fleetwire::cloudfront::{HashAlgorithm, KeyAlgorithm, generate_key};
use serde::Serialize;

use crate::output::{self, Table};
use crate::{Answer, Failure};

/// The comment fleetctl gives the public keys it creates, for people reading the console.
pub const CREATED_BY_FLEETCTL: &str = "fleetwire firmware URL key, created by fleetctl keys rotate";
/// How the caller reference of a key fleetctl created starts, so `retire` deletes only
/// those (a key the template created belongs to CloudFormation).
pub const FLEETCTL_CALLER_REFERENCE: &str = "fleetctl-keys-rotate:";
/// The most public keys one key group holds (a CloudFront quota).
pub const MAX_KEYS_PER_GROUP: usize = 5;

/// A key group and the ETag a change to it must quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroup {
    pub id: String,
    pub name: String,
    pub comment: Option<String>,
    pub items: Vec<String>,
    pub etag: String,
}

/// A registered public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: String,
    pub name: String,
    pub caller_reference: String,
    pub comment: Option<String>,
    pub encoded_key: String,
    pub created: Option<String>,
    pub etag: String,
}

/// CloudFront's public keys and key groups, as key rotation uses them.
pub trait KeyDistribution: Send + Sync {
    fn find_key_group(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, Failure>> + Send;
    fn key_group(&self, id: &str) -> impl Future<Output = Result<KeyGroup, Failure>> + Send;
    /// Replaces the group's items, if its ETag is still `group.etag`.
    fn set_key_group_items(
        &self,
        group: &KeyGroup,
        items: &[String],
    ) -> impl Future<Output = Result<(), Failure>> + Send;
    /// Registers a public key; fleetctl's own start their caller reference with
    /// [`FLEETCTL_CALLER_REFERENCE`].
    fn create_public_key(
        &self,
        name: &str,
        caller_reference: &str,
        encoded_key: &str,
        comment: &str,
    ) -> impl Future<Output = Result<String, Failure>> + Send;
    fn public_key(&self, id: &str) -> impl Future<Output = Result<PublicKey, Failure>> + Send;
    fn delete_public_key(
        &self,
        id: &str,
        etag: &str,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
    /// Waits until the distribution has deployed its latest change (when one is named).
    fn wait_deployed(&self, timeout: Duration) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// The signing secret, as key rotation uses it.
pub trait SigningSecret: Send + Sync {
    /// The key pair id firmware-url signs with now (`None` before the first key is set).
    fn active_key_id(&self) -> impl Future<Output = Result<Option<String>, Failure>> + Send;
    fn store(
        &self,
        key_pair_id: &str,
        private_pem: &str,
        hash: HashAlgorithm,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// Where the key group is: its id, or the name to find it by.
#[derive(Debug, Clone)]
pub enum GroupRef {
    Id(String),
    Name(String),
}

async fn resolve(cloudfront: &impl KeyDistribution, group: &GroupRef) -> Result<KeyGroup, Failure> {
    let id = match group {
        GroupRef::Id(id) => id.clone(),
        GroupRef::Name(name) => cloudfront.find_key_group(name).await?.ok_or_else(|| {
            Failure::failed(format!(
                "no CloudFront key group named {name}: deploy with FirmwarePublicKeyPem set, or \
                 set FIRMWARE_KEY_GROUP_ID (stack output FirmwareKeyGroupId)"
            ))
        })?,
    };
    cloudfront.key_group(&id).await
}

/// What `keys rotate` did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rotated {
    pub key_pair_id: String,
    pub public_key_name: String,
    pub algorithm: String,
    pub hash: String,
    pub previous_key_pair_id: Option<String>,
    pub trusted: Vec<String>,
}

/// What rotation is asked to do.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub group: GroupRef,
    pub algorithm: KeyAlgorithm,
    pub public_key_name: String,
    pub wait: Duration,
}

pub async fn rotate(
    cloudfront: &impl KeyDistribution,
    secret: &impl SigningSecret,
    rotation: &Rotation,
) -> Result<Rotated, Failure> {
    let group = resolve(cloudfront, &rotation.group).await?;
    if group.items.len() >= MAX_KEYS_PER_GROUP {
        return Err(Failure::failed(format!(
            "key group {} trusts {} keys, CloudFront's most: retire one first \
             (`fleetctl keys list`, then `fleetctl keys retire KEY_ID`)",
            group.name,
            group.items.len()
        )));
    }
    let previous = secret.active_key_id().await?;
    let generated = generate_key(rotation.algorithm)
        .map_err(|e| Failure::failed(format!("cannot generate a key pair: {e}")))?;
    let key_id = cloudfront
        .create_public_key(
            &rotation.public_key_name,
            &format!("{FLEETCTL_CALLER_REFERENCE}{}", rotation.public_key_name),
            &generated.public_pem,
            CREATED_BY_FLEETCTL,
        )
        .await?;
    let mut items = group.items.clone();
    items.push(key_id.clone());
    if let Err(failure) = cloudfront.set_key_group_items(&group, &items).await {
        // Nothing trusts the new key: take it away again so no orphan is left behind.
        if let Ok(created) = cloudfront.public_key(&key_id).await {
            let _ = cloudfront.delete_public_key(&key_id, &created.etag).await;
        }
        return Err(failure);
    }
    cloudfront.wait_deployed(rotation.wait).await.map_err(|e| {
        Failure::failed(format!(
            "{key_id} is in the key group but the distribution has not deployed it ({e}); the \
             signing secret still holds the old key: run `fleetctl keys rotate` again later, \
             or retire {key_id}"
        ))
    })?;
    let hash = match rotation.algorithm {
        KeyAlgorithm::Rsa2048 => HashAlgorithm::Sha1,
        KeyAlgorithm::EcdsaP256 => HashAlgorithm::Sha256,
    };
    secret.store(&key_id, &generated.private_pem, hash).await?;
    Ok(Rotated {
        key_pair_id: key_id,
        public_key_name: rotation.public_key_name.clone(),
        algorithm: match rotation.algorithm {
            KeyAlgorithm::Rsa2048 => "RSA 2048".into(),
            KeyAlgorithm::EcdsaP256 => "ECDSA P-256".into(),
        },
        hash: match hash {
            HashAlgorithm::Sha1 => "sha1".into(),
            HashAlgorithm::Sha256 => "sha256".into(),
        },
        previous_key_pair_id: previous,
        trusted: items,
    })
}

/// What `keys retire` did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Retired {
    pub key_pair_id: String,
    pub deleted: bool,
    pub trusted: Vec<String>,
}

pub async fn retire(
    cloudfront: &impl KeyDistribution,
    secret: &impl SigningSecret,
    group: &GroupRef,
    key_id: &str,
) -> Result<Retired, Failure> {
    if secret.active_key_id().await?.as_deref() == Some(key_id) {
        return Err(Failure::failed(format!(
            "{key_id} is the key firmware-url signs with: rotate to a new key first \
             (`fleetctl keys rotate`), wait for warm functions to recycle, then retire it"
        )));
    }
    let group = resolve(cloudfront, group).await?;
    if !group.items.iter().any(|k| k == key_id) {
        return Err(Failure::failed(format!(
            "{key_id} is not in key group {} (it trusts {})",
            group.name,
            group.items.join(", ")
        )));
    }
    if group.items.len() == 1 {
        return Err(Failure::failed(format!(
            "{key_id} is the last key of group {}: without it no URL verifies",
            group.name
        )));
    }
    let items: Vec<String> = group
        .items
        .iter()
        .filter(|k| *k != key_id)
        .cloned()
        .collect();
    cloudfront.set_key_group_items(&group, &items).await?;
    let key = cloudfront.public_key(key_id).await?;
    let deleted = made_by_fleetctl(&key);
    if deleted {
        cloudfront.delete_public_key(key_id, &key.etag).await?;
    }
    Ok(Retired {
        key_pair_id: key_id.to_owned(),
        deleted,
        trusted: items,
    })
}

fn made_by_fleetctl(key: &PublicKey) -> bool {
    key.caller_reference.starts_with(FLEETCTL_CALLER_REFERENCE)
}

/// One trusted key, as `keys list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrustedKey {
    pub key_pair_id: String,
    pub name: String,
    pub created: Option<String>,
    /// Whether firmware-url signs with it now.
    pub signing: bool,
    /// `fleetctl` or `template`.
    pub created_by: &'static str,
}

pub async fn list(
    cloudfront: &impl KeyDistribution,
    secret: &impl SigningSecret,
    group: &GroupRef,
) -> Result<Vec<TrustedKey>, Failure> {
    let group = resolve(cloudfront, group).await?;
    let active = secret.active_key_id().await?;
    let mut keys = Vec::new();
    for id in &group.items {
        let key = cloudfront.public_key(id).await?;
        keys.push(TrustedKey {
            signing: active.as_deref() == Some(id.as_str()),
            created_by: if made_by_fleetctl(&key) {
                "fleetctl"
            } else {
                "template"
            },
            key_pair_id: key.id,
            name: key.name,
            created: key.created,
        });
    }
    Ok(keys)
}

pub fn render_rotated(rotated: &Rotated, json: bool) -> Result<Answer, Failure> {
    if json {
        return Ok(Answer::ok(output::json(rotated)?));
    }
    let mut text = format!(
        "new signing key {} ({}, {}): trusted by the distribution and in the signing secret",
        rotated.key_pair_id, rotated.algorithm, rotated.hash
    );
    if let Some(previous) = &rotated.previous_key_pair_id {
        text.push_str(&format!(
            "\n{previous} stays trusted: warm firmware-url instances sign with it until they \
             are recycled, and URLs they issued stay valid until they expire. After the \
             longest URL lifetime (FirmwareUrlMaxTtlSeconds) has passed since every instance \
             restarted, run `fleetctl keys retire {previous}`."
        ));
    }
    Ok(Answer::ok(text))
}

pub fn render_retired(retired: &Retired, json: bool) -> Result<Answer, Failure> {
    if json {
        return Ok(Answer::ok(output::json(retired)?));
    }
    Ok(Answer::ok(format!(
        "{} is no longer trusted{}; the distribution trusts {}",
        retired.key_pair_id,
        if retired.deleted {
            " and was deleted"
        } else {
            " (the template created it: drop it from FirmwarePublicKeyPem at the next deploy)"
        },
        retired.trusted.join(", ")
    )))
}

pub fn render_list(keys: &[TrustedKey], json: bool) -> Result<Answer, Failure> {
    if json {
        return Ok(Answer::ok(output::json(&keys)?));
    }
    let mut table = Table::new(["KEY PAIR ID", "NAME", "CREATED", "SIGNING", "CREATED BY"]);
    for key in keys {
        table.row([
            key.key_pair_id.clone(),
            key.name.clone(),
            output::or_dash(key.created.as_ref()),
            if key.signing { "yes" } else { "no" }.into(),
            key.created_by.into(),
        ]);
    }
    Ok(Answer::ok(table.render()))
}

/// In-memory stand-ins of the two ports, for the unit tests here and the rotation tests.
#[doc(hidden)]
pub mod fakes {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct FakeCloudFront {
        pub groups: Mutex<Vec<KeyGroup>>,
        pub keys: Mutex<Vec<PublicKey>>,
        /// Makes the next key group update fail (as a concurrent change would).
        pub fail_group_update: Mutex<bool>,
    }

    impl FakeCloudFront {
        pub fn with_group(name: &str, initial_key: PublicKey) -> Self {
            let fake = Self::default();
            fake.groups.lock().unwrap().push(KeyGroup {
                id: "KG1".into(),
                name: name.into(),
                comment: None,
                items: vec![initial_key.id.clone()],
                etag: "E1".into(),
            });
            fake.keys.lock().unwrap().push(initial_key);
            fake
        }

        pub fn items(&self) -> Vec<String> {
            self.groups.lock().unwrap()[0].items.clone()
        }
    }

    impl KeyDistribution for FakeCloudFront {
        async fn find_key_group(&self, name: &str) -> Result<Option<String>, Failure> {
            Ok(self
                .groups
                .lock()
                .unwrap()
                .iter()
                .find(|g| g.name == name)
                .map(|g| g.id.clone()))
        }
        async fn key_group(&self, id: &str) -> Result<KeyGroup, Failure> {
            self.groups
                .lock()
                .unwrap()
                .iter()
                .find(|g| g.id == id)
                .cloned()
                .ok_or_else(|| Failure::failed("NoSuchResource"))
        }
        async fn set_key_group_items(
            &self,
            group: &KeyGroup,
            items: &[String],
        ) -> Result<(), Failure> {
            if std::mem::take(&mut *self.fail_group_update.lock().unwrap()) {
                return Err(Failure::failed("PreconditionFailed"));
            }
            let mut groups = self.groups.lock().unwrap();
            let stored = groups.iter_mut().find(|g| g.id == group.id).unwrap();
            if stored.etag != group.etag {
                return Err(Failure::failed("PreconditionFailed"));
            }
            stored.items = items.to_vec();
            stored.etag = format!("{}+", stored.etag);
            Ok(())
        }
        async fn create_public_key(
            &self,
            name: &str,
            caller_reference: &str,
            encoded: &str,
            comment: &str,
        ) -> Result<String, Failure> {
            let mut keys = self.keys.lock().unwrap();
            let id = format!("K{}", keys.len() + 1);
            keys.push(PublicKey {
                id: id.clone(),
                name: name.into(),
                caller_reference: caller_reference.into(),
                comment: Some(comment.into()),
                encoded_key: encoded.into(),
                created: None,
                etag: format!("E-{id}"),
            });
            Ok(id)
        }
        async fn public_key(&self, id: &str) -> Result<PublicKey, Failure> {
            self.keys
                .lock()
                .unwrap()
                .iter()
                .find(|k| k.id == id)
                .cloned()
                .ok_or_else(|| Failure::failed("NoSuchPublicKey"))
        }
        async fn delete_public_key(&self, id: &str, etag: &str) -> Result<(), Failure> {
            let mut keys = self.keys.lock().unwrap();
            let before = keys.len();
            keys.retain(|k| !(k.id == id && k.etag == etag));
            if keys.len() == before {
                return Err(Failure::failed("PreconditionFailed"));
            }
            Ok(())
        }
        async fn wait_deployed(&self, _timeout: Duration) -> Result<(), Failure> {
            Ok(())
        }
    }

    #[derive(Default)]
    pub struct FakeSecret {
        pub value: Mutex<Option<(String, String, HashAlgorithm)>>,
    }

    impl SigningSecret for FakeSecret {
        async fn active_key_id(&self) -> Result<Option<String>, Failure> {
            Ok(self.value.lock().unwrap().as_ref().map(|v| v.0.clone()))
        }
        async fn store(&self, id: &str, pem: &str, hash: HashAlgorithm) -> Result<(), Failure> {
            *self.value.lock().unwrap() = Some((id.into(), pem.into(), hash));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
