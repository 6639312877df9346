use super::fakes::*;
use super::*;
use fleetwire::cloudfront::{Policy, SigningKey, UrlSigner, UrlVerifier, VerifyingKey};

fn initial() -> (FakeCloudFront, FakeSecret) {
    let first = generate_key(KeyAlgorithm::Rsa2048).unwrap();
    let cloudfront = FakeCloudFront::with_group(
        "fleetwire-dev-firmware",
        PublicKey {
            id: "KTEMPLATE".into(),
            name: "fleetwire-dev-firmware".into(),
            caller_reference: "fleetwire-dev-firmware".into(),
            comment: Some("Verifies firmware URLs signed by firmware-url.".into()),
            encoded_key: first.public_pem.clone(),
            created: None,
            etag: "E-T".into(),
        },
    );
    let secret = FakeSecret::default();
    *secret.value.lock().unwrap() =
        Some(("KTEMPLATE".into(), first.private_pem, HashAlgorithm::Sha1));
    (cloudfront, secret)
}

fn rotation(algorithm: KeyAlgorithm) -> Rotation {
    Rotation {
        group: GroupRef::Name("fleetwire-dev-firmware".into()),
        algorithm,
        public_key_name: "fleetwire-dev-firmware-1".into(),
        wait: Duration::from_secs(1),
    }
}

/// A URL signed with the key the secret holds now.
fn sign_with_secret(secret: &FakeSecret) -> String {
    let (id, pem, hash) = secret.value.lock().unwrap().clone().unwrap();
    let signer = UrlSigner::new(
        id,
        SigningKey::from_pem(pem.as_bytes()).unwrap(),
        Some(hash),
    )
    .unwrap();
    signer
        .sign(
            "https://d.example/m/1.0/fw.bin",
            &Policy::expiring_at(4_000_000_000).unwrap(),
        )
        .unwrap()
}

/// What the distribution accepts: the keys of its group.
fn distribution(cloudfront: &FakeCloudFront) -> UrlVerifier {
    let keys = cloudfront.keys.lock().unwrap().clone();
    cloudfront.items().iter().fold(UrlVerifier::new(), |v, id| {
        let key = keys.iter().find(|k| &k.id == id).unwrap();
        v.trust(
            id.clone(),
            VerifyingKey::from_pem(key.encoded_key.as_bytes()).unwrap(),
        )
    })
}

#[tokio::test]
async fn urls_from_the_old_and_the_new_key_verify_during_the_overlap() {
    let (cloudfront, secret) = initial();
    let old_url = sign_with_secret(&secret);
    let rotated = rotate(&cloudfront, &secret, &rotation(KeyAlgorithm::EcdsaP256))
        .await
        .unwrap();
    assert_eq!(rotated.previous_key_pair_id.as_deref(), Some("KTEMPLATE"));
    assert_eq!(
        cloudfront.items(),
        ["KTEMPLATE", rotated.key_pair_id.as_str()]
    );
    let new_url = sign_with_secret(&secret);
    assert!(
        new_url.contains("Hash-Algorithm=SHA256"),
        "ECDSA signs with SHA256"
    );
    let now = 1_800_000_000;
    for url in [&old_url, &new_url] {
        distribution(&cloudfront).verify(url, now, None).unwrap();
    }
    let refused = retire(
        &cloudfront,
        &secret,
        &rotation(KeyAlgorithm::Rsa2048).group,
        &rotated.key_pair_id,
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("signs with"), "{refused}");
    let retired = retire(
        &cloudfront,
        &secret,
        &GroupRef::Id("KG1".into()),
        "KTEMPLATE",
    )
    .await
    .unwrap();
    assert!(
        !retired.deleted,
        "the template's key belongs to CloudFormation"
    );
    assert!(
        distribution(&cloudfront)
            .verify(&old_url, now, None)
            .is_err()
    );
    distribution(&cloudfront)
        .verify(&new_url, now, None)
        .unwrap();
}

#[tokio::test]
async fn a_failed_group_update_leaves_the_secret_and_no_orphan_key() {
    let (cloudfront, secret) = initial();
    *cloudfront.fail_group_update.lock().unwrap() = true;
    let err = rotate(&cloudfront, &secret, &rotation(KeyAlgorithm::Rsa2048))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PreconditionFailed"));
    assert_eq!(
        secret.active_key_id().await.unwrap().as_deref(),
        Some("KTEMPLATE")
    );
    assert_eq!(
        cloudfront.keys.lock().unwrap().len(),
        1,
        "the new public key was deleted"
    );
}

#[tokio::test]
async fn keys_made_here_are_deleted_when_retired_and_the_last_key_stays() {
    let (cloudfront, secret) = initial();
    let first = rotate(&cloudfront, &secret, &rotation(KeyAlgorithm::Rsa2048))
        .await
        .unwrap();
    let mut second_rotation = rotation(KeyAlgorithm::Rsa2048);
    second_rotation.public_key_name = "fleetwire-dev-firmware-2".into();
    rotate(&cloudfront, &secret, &second_rotation)
        .await
        .unwrap();
    let listed = list(&cloudfront, &secret, &GroupRef::Id("KG1".into()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed.iter().filter(|k| k.signing).count(), 1);
    assert_eq!(listed[1].created_by, "fleetctl");
    let retired = retire(
        &cloudfront,
        &secret,
        &GroupRef::Id("KG1".into()),
        &first.key_pair_id,
    )
    .await
    .unwrap();
    assert!(retired.deleted);
    assert!(cloudfront.public_key(&first.key_pair_id).await.is_err());
    retire(
        &cloudfront,
        &secret,
        &GroupRef::Id("KG1".into()),
        "KTEMPLATE",
    )
    .await
    .unwrap();
    let unknown = retire(&cloudfront, &secret, &GroupRef::Id("KG1".into()), "KNOPE").await;
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("not in key group")
    );
}

#[tokio::test]
async fn a_full_group_is_refused_before_anything_is_made() {
    let (cloudfront, secret) = initial();
    cloudfront.groups.lock().unwrap()[0].items =
        (0..MAX_KEYS_PER_GROUP).map(|i| format!("K{i}")).collect();
    let err = rotate(&cloudfront, &secret, &rotation(KeyAlgorithm::Rsa2048))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("retire one first"), "{err}");
    assert_eq!(cloudfront.keys.lock().unwrap().len(), 1);
}
