//! Firmware images and the fleet's code signature: what `fleetctl firmware publish` computes
//! and what a device checks before it flashes.
//!
//! The signature is ECDSA P-256 with SHA-256 over the whole image, DER-encoded and then
//! base64 (standard alphabet) in the Firmware table and the firmware answer. It is the
//! same signature OpenSSL makes with `openssl dgst -sha256 -sign key.pem image.bin` and
//! checks with `openssl dgst -sha256 -verify public.pem -signature sig.der image.bin`.

use std::io::Read;

use aws_lc_rs::digest::{Context, Digest, SHA256};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

/// Why an image could not be signed or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageKeyError {
    #[error("no PEM private key found (expected an EC P-256 key, SEC1 or PKCS#8)")]
    NoPrivateKey,
    #[error("no PEM public key found (expected -----BEGIN PUBLIC KEY-----)")]
    NoPublicKey,
    #[error("the code-signing key must be ECDSA P-256")]
    NotP256,
}

/// The SHA-256 and length of an image, computed while reading it once.
#[derive(Clone)]
pub struct ImageDigest {
    digest: Digest,
    pub size: u64,
}

impl ImageDigest {
    /// Streams `reader` to its end (images can be larger than memory should hold).
    pub fn of_reader(mut reader: impl Read) -> std::io::Result<Self> {
        let mut context = Context::new(&SHA256);
        let mut buffer = vec![0; 1 << 16];
        let mut size = 0u64;
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            context.update(&buffer[..read]);
            size += read as u64;
        }
        Ok(Self {
            digest: context.finish(),
            size,
        })
    }

    pub fn of_bytes(image: &[u8]) -> Self {
        Self {
            digest: aws_lc_rs::digest::digest(&SHA256, image),
            size: image.len() as u64,
        }
    }

    /// Lower-case hex, as the Firmware table and the device answer carry it.
    pub fn sha256_hex(&self) -> String {
        self.digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl std::fmt::Debug for ImageDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ImageDigest({}, {} bytes)", self.sha256_hex(), self.size)
    }
}

/// The fleet's code-signing private key (kept by the release team, never by a function).
pub struct ImageSigner {
    key: EcdsaKeyPair,
}

impl ImageSigner {
    /// An EC P-256 private key in PEM, SEC1 (`EC PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, ImageKeyError> {
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| ImageKeyError::NoPrivateKey)?;
        let key = match &der {
            PrivateKeyDer::Sec1(der) => {
                EcdsaKeyPair::from_private_key_der(alg, der.secret_sec1_der())
            }
            PrivateKeyDer::Pkcs8(der) => EcdsaKeyPair::from_pkcs8(alg, der.secret_pkcs8_der()),
            _ => return Err(ImageKeyError::NotP256),
        }
        .map_err(|_| ImageKeyError::NotP256)?;
        Ok(Self { key })
    }

    /// The base64 DER signature of the image `digest` was computed over.
    pub fn sign(&self, digest: &ImageDigest) -> String {
        let signature = self
            .key
            .sign_digest(&digest.digest)
            .expect("ECDSA P-256 signing of a SHA-256 digest with a validated key");
        STANDARD.encode(signature.as_ref())
    }

    /// The public key devices verify with, as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer;
        self.key
            .public_key()
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for ImageSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImageSigner(ECDSA P-256, redacted)")
    }
}

/// The public half, built into device firmware (and the fleet simulator).
#[derive(Debug, Clone)]
pub struct ImageVerifier {
    spki_der: Vec<u8>,
}

impl ImageVerifier {
    /// `-----BEGIN PUBLIC KEY-----` PEM of an EC P-256 key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, ImageKeyError> {
        let spki =
            SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| ImageKeyError::NoPublicKey)?;
        Ok(Self::from_der(spki.as_ref()))
    }

    pub fn from_der(spki_der: &[u8]) -> Self {
        Self {
            spki_der: spki_der.to_vec(),
        }
    }

    /// Whether `signature_b64` is the fleet's signature of `image`.
    pub fn verify(&self, image: &[u8], signature_b64: &str) -> bool {
        let Ok(signature) = STANDARD.decode(signature_b64) else {
            return false;
        };
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.spki_der)
            .verify(image, &signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/data/cloudfront/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn streamed_digest_equals_the_one_shot_digest() {
        let image: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let streamed = ImageDigest::of_reader(&image[..]).unwrap();
        assert_eq!(
            streamed.sha256_hex(),
            ImageDigest::of_bytes(&image).sha256_hex()
        );
        assert_eq!(streamed.size, 200_000);
        assert_eq!(
            ImageDigest::of_bytes(b"abc").sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_signed_image_verifies_and_a_changed_one_does_not() {
        for name in ["ec_p256_sec1.pem", "ec_p256_pkcs8.pem"] {
            let signer = ImageSigner::from_pem(&fixture(name)).unwrap();
            let verifier = ImageVerifier::from_pem(&fixture("ec_p256_public.pem")).unwrap();
            let image = b"firmware 1.5.0".to_vec();
            let signature = signer.sign(&ImageDigest::of_bytes(&image));
            assert!(verifier.verify(&image, &signature), "{name}");
            assert!(!verifier.verify(b"firmware 1.5.1", &signature));
            assert!(!verifier.verify(&image, "not base64!"));
            assert!(ImageVerifier::from_der(&signer.public_key_der()).verify(&image, &signature));
        }
    }

    #[test]
    fn only_p256_keys_sign_images() {
        assert_eq!(
            ImageSigner::from_pem(&fixture("rsa2048_pkcs8.pem")).unwrap_err(),
            ImageKeyError::NotP256
        );
        assert_eq!(
            ImageSigner::from_pem(&fixture("rsa2048_pkcs1.pem")).unwrap_err(),
            ImageKeyError::NotP256
        );
        assert_eq!(
            ImageSigner::from_pem(b"nothing").unwrap_err(),
            ImageKeyError::NoPrivateKey
        );
    }
}
