use super::*;
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/cloudfront/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn signer(key: &str, hash: Option<HashAlgorithm>) -> UrlSigner {
    UrlSigner::new(
        "K2JCJMDEHXQW5F",
        SigningKey::from_pem(&fixture(key)).unwrap(),
        hash,
    )
    .unwrap()
}

fn policy_of(vector: &Value) -> Policy {
    let mut policy = Policy::expiring_at(vector["expires"].as_i64().unwrap()).unwrap();
    if let Some(t) = vector["not_before"].as_i64() {
        policy = policy.not_before(t).unwrap();
    }
    if let Some(ip) = vector["ip"].as_str() {
        policy = policy.from_ip(ip.parse().unwrap());
    }
    if let Some(resource) = vector["resource"].as_str() {
        policy = policy.for_resource(resource);
    }
    policy
}

fn vectors() -> Vec<Value> {
    let document: Value = serde_json::from_slice(&fixture("vectors.json")).unwrap();
    document["vectors"].as_array().unwrap().clone()
}

fn verifier(public: &str) -> UrlVerifier {
    UrlVerifier::new().trust(
        "K2JCJMDEHXQW5F",
        VerifyingKey::from_pem(&fixture(public)).unwrap(),
    )
}

#[test]
fn matches_botocore_byte_for_byte() {
    let vectors = vectors();
    assert!(vectors.len() >= 20);
    for key in ["rsa2048_pkcs1.pem", "rsa2048_pkcs8.pem"] {
        for vector in &vectors {
            let hash = vector["hash"].as_str().unwrap().parse().unwrap();
            let url = vector["url"].as_str().unwrap();
            let policy = policy_of(vector);
            assert_eq!(
                policy.to_json(url),
                vector["policy"].as_str().unwrap(),
                "{vector}"
            );
            let signed = signer(key, Some(hash)).sign(url, &policy).unwrap();
            assert_eq!(
                signed,
                vector["signed_url"].as_str().unwrap(),
                "{key} {}",
                vector["name"]
            );
        }
    }
}

#[test]
fn every_vector_verifies_and_yields_the_url_signed() {
    let verifier = verifier("rsa2048_public.pem");
    for vector in vectors() {
        let signed = vector["signed_url"].as_str().unwrap();
        let ip = Some("203.0.113.9".parse().unwrap());
        let now = vector["not_before"].as_i64().unwrap_or(0) + 1;
        match verifier.verify(signed, now, ip) {
            Ok(url) => assert_eq!(url, vector["url"].as_str().unwrap()),
            Err(VerifyError::Refused("source address not allowed")) => {
                assert!(
                    vector["ip"]
                        .as_str()
                        .is_some_and(|ip| !ip.starts_with("203.0.113"))
                )
            }
            Err(e) => panic!("{}: {e}", vector["name"]),
        }
    }
}

#[test]
fn rsa_sha256_and_ecdsa_verify_with_the_public_key() {
    let url = "https://d111111abcdef8.cloudfront.net/fw/sensor-x/2.0.0.bin?m=1";
    let canned = Policy::expiring_at(2_000_000_000).unwrap();
    let custom = canned
        .clone()
        .not_before(1_000)
        .unwrap()
        .for_resource("https://d111111abcdef8.cloudfront.net/fw/*");
    for (private, public) in [
        ("rsa2048_pkcs8.pem", "rsa2048_public.pem"),
        ("ec_p256_pkcs8.pem", "ec_p256_public.pem"),
        ("ec_p256_sec1.pem", "ec_p256_public.pem"),
    ] {
        let signer = signer(private, Some(HashAlgorithm::Sha256));
        for policy in [&canned, &custom] {
            let signed = signer.sign(url, policy).unwrap();
            assert!(signed.ends_with("&Key-Pair-Id=K2JCJMDEHXQW5F&Hash-Algorithm=SHA256"));
            assert_eq!(
                verifier(public).verify(&signed, 1_500, None),
                Ok(url.to_owned()),
                "{private}"
            );
        }
    }
}

#[test]
fn ecdsa_signatures_are_der_encoded() {
    let signed = signer("ec_p256_sec1.pem", None)
        .sign("https://d.example/a", &Policy::expiring_at(10).unwrap())
        .unwrap();
    let signature = signed
        .split("Signature=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let der = decode(signature).unwrap();
    assert_eq!(der[0], 0x30, "an ASN.1 SEQUENCE of r and s");
    assert_eq!(usize::from(der[1]), der.len() - 2);
}

#[test]
fn tampering_with_any_part_fails() {
    let url = "https://d111111abcdef8.cloudfront.net/fw/a.bin?model=x";
    let policies = [
        Policy::expiring_at(2_000_000_000).unwrap(),
        Policy::expiring_at(2_000_000_000)
            .unwrap()
            .not_before(10)
            .unwrap()
            .from_ip("10.0.0.0/8".parse().unwrap()),
    ];
    let ip = Some("10.1.1.1".parse().unwrap());
    for (private, public, hash) in [
        (
            "rsa2048_pkcs1.pem",
            "rsa2048_public.pem",
            HashAlgorithm::Sha1,
        ),
        (
            "rsa2048_pkcs1.pem",
            "rsa2048_public.pem",
            HashAlgorithm::Sha256,
        ),
        (
            "ec_p256_sec1.pem",
            "ec_p256_public.pem",
            HashAlgorithm::Sha256,
        ),
    ] {
        let verifier = verifier(public);
        for policy in &policies {
            let signed = signer(private, Some(hash)).sign(url, policy).unwrap();
            assert!(verifier.verify(&signed, 100, ip).is_ok());
            let tampered = [
                signed.replace("/fw/a.bin", "/fw/b.bin"),
                signed.replace("model=x", "model=y"),
                signed.replace("Expires=2000000000", "Expires=2000000001"),
                signed.replace("Policy=eyJ", "Policy=eyK"),
                signed.replace("Key-Pair-Id=K2JCJMDEHXQW5F", "Key-Pair-Id=K2JCJMDEHXQW5G"),
                flip_signature(&signed),
                match hash {
                    HashAlgorithm::Sha1 => format!("{signed}&Hash-Algorithm=SHA256"),
                    HashAlgorithm::Sha256 => signed.replace("&Hash-Algorithm=SHA256", ""),
                },
            ];
            for (i, bad) in tampered.iter().enumerate() {
                if *bad == signed {
                    continue; // that part is not in this URL (Expires vs Policy)
                }
                assert!(
                    verifier.verify(bad, 100, ip).is_err(),
                    "{private} {hash:?} case {i}: {bad}"
                );
            }
        }
    }
}

fn flip_signature(signed: &str) -> String {
    let start = signed.find("Signature=").unwrap() + "Signature=".len();
    let mut bytes = signed.as_bytes().to_vec();
    bytes[start + 5] = if bytes[start + 5] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn conditions_are_enforced_after_the_signature() {
    let url = "https://d.example/fw/a.bin";
    let policy = Policy::expiring_at(200)
        .unwrap()
        .not_before(100)
        .unwrap()
        .from_ip("192.0.2.7".parse().unwrap());
    let signed = signer("rsa2048_pkcs1.pem", None)
        .sign(url, &policy)
        .unwrap();
    let verifier = verifier("rsa2048_public.pem");
    let ip = Some("192.0.2.7".parse().unwrap());
    assert_eq!(verifier.verify(&signed, 150, ip), Ok(url.to_owned()));
    assert_eq!(
        verifier.verify(&signed, 200, ip),
        Err(VerifyError::Refused("expired"))
    );
    assert_eq!(
        verifier.verify(&signed, 99, ip),
        Err(VerifyError::Refused("not yet valid"))
    );
    let other = Some("192.0.2.8".parse().unwrap());
    assert_eq!(
        verifier.verify(&signed, 150, other),
        Err(VerifyError::Refused("source address not allowed"))
    );
}

#[test]
fn refuses_urls_it_cannot_sign_correctly() {
    let signer = signer("rsa2048_pkcs1.pem", None);
    let policy = Policy::expiring_at(100).unwrap();
    for url in [
        "d111111abcdef8.cloudfront.net/a",
        "ftp://d/a",
        "https://",
        "https:///path",
        "https://d/a#part",
        "https://d/a b",
        "https://d/a?Expires=5",
        "https://d/a?x=1&Signature=abc",
    ] {
        assert!(
            matches!(signer.sign(url, &policy), Err(SignError::BadUrl { .. })),
            "{url}"
        );
    }
    assert!(signer.sign("https://d/a?Expiresx=1", &policy).is_ok());
}

#[test]
fn key_pair_id_and_hash_are_checked() {
    let key = || SigningKey::from_pem(&fixture("rsa2048_pkcs1.pem")).unwrap();
    assert!(matches!(
        UrlSigner::new("", key(), None),
        Err(SignError::BadKeyPairId(_))
    ));
    assert!(matches!(
        UrlSigner::new("K1&x=y", key(), None),
        Err(SignError::BadKeyPairId(_))
    ));
    let ec = SigningKey::from_pem(&fixture("ec_p256_sec1.pem")).unwrap();
    assert_eq!(
        UrlSigner::new("K1", ec, Some(HashAlgorithm::Sha1)).unwrap_err(),
        SignError::Key(KeyError::EcdsaNeedsSha256)
    );
    assert_eq!("SHA256".parse::<HashAlgorithm>(), Ok(HashAlgorithm::Sha256));
    assert!("md5".parse::<HashAlgorithm>().is_err());
}
