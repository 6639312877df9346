//! Signing one CloudFront URL, per algorithm, against a baseline measured in the same run:
//! aws-lc-rs signing the same policy bytes with RSA-SHA256 and nothing else. A ratio near
//! 1.0 means URL building costs nothing next to the signature. `scripts/bench` prints them.

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use criterion::Criterion;
use fleetwire::cloudfront::{HashAlgorithm, Policy, SigningKey, UrlSigner};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

const URL: &str = "https://d111111abcdef8.cloudfront.net/firmware/sensor-x/1.4.2.bin";

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/cloudfront/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn signing(c: &mut Criterion) {
    let policy = Policy::expiring_at(1_767_225_600).unwrap();
    let mut group = c.benchmark_group("cloudfront_sign");

    let statement = policy.to_json(URL);
    let der = PrivateKeyDer::from_pem_slice(&pem("rsa2048_pkcs8.pem")).unwrap();
    let PrivateKeyDer::Pkcs8(der) = der else {
        panic!("fixture is PKCS#8")
    };
    let raw = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let rng = SystemRandom::new();
    let mut out = vec![0; raw.public_modulus_len()];
    group.bench_function("baseline_raw_rsa_sha256", |b| {
        b.iter(|| {
            raw.sign(
                &RSA_PKCS1_SHA256,
                &rng,
                black_box(statement.as_bytes()),
                &mut out,
            )
        })
    });

    for (name, key, hash) in [
        ("rsa_sha1", "rsa2048_pkcs1.pem", HashAlgorithm::Sha1),
        ("rsa_sha256", "rsa2048_pkcs1.pem", HashAlgorithm::Sha256),
        (
            "ecdsa_p256_sha256",
            "ec_p256_sec1.pem",
            HashAlgorithm::Sha256,
        ),
    ] {
        let signer = UrlSigner::new(
            "K2JCJMDEHXQW5F",
            SigningKey::from_pem(&pem(key)).unwrap(),
            Some(hash),
        )
        .unwrap();
        group.bench_function(name, |b| {
            b.iter(|| signer.sign(black_box(URL), &policy).unwrap())
        });
    }
    group.finish();
}

criterion::criterion_group!(benches, signing);
criterion::criterion_main!(benches);
