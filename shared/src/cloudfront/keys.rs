//! CloudFront key pairs: the private key that signs (PEM, parsed once) and the public key
//! that verifies (PEM `PUBLIC KEY`, as uploaded to CloudFront).

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

use super::HashAlgorithm;
use super::rsa_sha1::Sha1RsaKey;

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no PEM private key found (expected RSA PKCS#1, PKCS#8, or EC SEC1)")]
    NoPrivateKey,
    #[error("no PEM public key found (expected -----BEGIN PUBLIC KEY-----)")]
    NoPublicKey,
    #[error("the key is neither RSA (2048 to 8192 bits) nor ECDSA P-256, or it is corrupt")]
    Unsupported,
    #[error("ECDSA keys sign with SHA256 only; use --hash sha256 (Hash-Algorithm=SHA256)")]
    EcdsaNeedsSha256,
}

enum Private {
    Rsa {
        sha1: Sha1RsaKey,
        sha256: RsaKeyPair,
    },
    EcdsaP256(EcdsaKeyPair),
}

/// A private key CloudFront trusts through its public key and key group.
pub struct SigningKey {
    key: Private,
    rng: SystemRandom,
}

impl SigningKey {
    /// Parses a PEM private key: RSA (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`) or
    /// ECDSA P-256 (SEC1 `EC PRIVATE KEY` or PKCS#8).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NoPrivateKey)?;
        let p256 = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let key = match &der {
            PrivateKeyDer::Pkcs1(der) => Private::Rsa {
                sha1: Sha1RsaKey::from_pkcs1_der(der.secret_pkcs1_der())
                    .ok_or(KeyError::Unsupported)?,
                sha256: RsaKeyPair::from_der(der.secret_pkcs1_der())
                    .map_err(|_| KeyError::Unsupported)?,
            },
            PrivateKeyDer::Sec1(der) => Private::EcdsaP256(
                EcdsaKeyPair::from_private_key_der(p256, der.secret_sec1_der())
                    .map_err(|_| KeyError::Unsupported)?,
            ),
            PrivateKeyDer::Pkcs8(der) => {
                let der = der.secret_pkcs8_der();
                match RsaKeyPair::from_pkcs8(der) {
                    Ok(sha256) => Private::Rsa {
                        sha1: Sha1RsaKey::from_pkcs8_der(der).ok_or(KeyError::Unsupported)?,
                        sha256,
                    },
                    Err(_) => Private::EcdsaP256(
                        EcdsaKeyPair::from_pkcs8(p256, der).map_err(|_| KeyError::Unsupported)?,
                    ),
                }
            }
            _ => return Err(KeyError::NoPrivateKey),
        };
        Ok(Self {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// The hash CloudFront assumes when the URL names none: SHA1 for RSA; ECDSA always
    /// signs with SHA256.
    pub fn default_hash(&self) -> HashAlgorithm {
        match self.key {
            Private::Rsa { .. } => HashAlgorithm::Sha1,
            Private::EcdsaP256(_) => HashAlgorithm::Sha256,
        }
    }

    /// Checks that this key can sign with `hash`.
    pub fn supports(&self, hash: HashAlgorithm) -> Result<(), KeyError> {
        match (&self.key, hash) {
            (Private::EcdsaP256(_), HashAlgorithm::Sha1) => Err(KeyError::EcdsaNeedsSha256),
            _ => Ok(()),
        }
    }

    /// The public key, as `-----BEGIN PUBLIC KEY-----` PEM would hold it (SPKI DER).
    pub fn public_key(&self) -> VerifyingKey {
        use aws_lc_rs::encoding::AsDer;
        match &self.key {
            Private::Rsa { sha256, .. } => VerifyingKey {
                kind: PublicKind::Rsa,
                der: sha256.public_key().as_ref().to_vec(),
            },
            Private::EcdsaP256(key) => VerifyingKey {
                kind: PublicKind::EcdsaP256,
                der: key
                    .public_key()
                    .as_der()
                    .map(|d| d.as_ref().to_vec())
                    .unwrap_or_default(),
            },
        }
    }

    /// Signs `message` with `hash` (checked by [`SigningKey::supports`] beforehand).
    pub(crate) fn sign(&self, hash: HashAlgorithm, message: &[u8]) -> Vec<u8> {
        match (&self.key, hash) {
            (Private::Rsa { sha1, .. }, HashAlgorithm::Sha1) => sha1.sign(message),
            (Private::Rsa { sha256, .. }, HashAlgorithm::Sha256) => {
                let mut out = vec![0; sha256.public_modulus_len()];
                sha256
                    .sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut out)
                    .expect("RSA-SHA256 signing with a validated key and a sized buffer");
                out
            }
            (Private::EcdsaP256(key), _) => key
                .sign(&self.rng, message)
                .expect("ECDSA P-256 signing with a validated key")
                .as_ref()
                .to_vec(),
        }
    }
}

impl fmt::Debug for SigningKey {
    /// Names the key type only: a private key never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.key {
            Private::Rsa { .. } => "RSA",
            Private::EcdsaP256(_) => "ECDSA P-256",
        };
        write!(f, "SigningKey({kind}, redacted)")
    }
}

/// The kind of key pair [`generate_key`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSA 2048: CloudFront's default, signs with SHA1 or SHA256.
    Rsa2048,
    /// ECDSA P-256: smaller and about 20 times faster to sign; SHA256 only.
    EcdsaP256,
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "rsa" | "rsa2048" => Ok(Self::Rsa2048),
            "ecdsa" | "ecdsa-p256" | "p256" => Ok(Self::EcdsaP256),
            _ => Err(format!("{text:?} is not a key algorithm (rsa or ecdsa)")),
        }
    }
}

/// A new key pair in PEM: the private key (PKCS#8) for the signing secret and the public
/// key (SubjectPublicKeyInfo) for CloudFront.
pub struct GeneratedKey {
    pub private_pem: String,
    pub public_pem: String,
}

impl fmt::Debug for GeneratedKey {
    /// The public half only: a private key never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("private_pem", &"redacted")
            .field("public_pem", &self.public_pem)
            .finish()
    }
}

/// Generates a key pair with AWS-LC's random generator.
pub fn generate_key(algorithm: KeyAlgorithm) -> Result<GeneratedKey, KeyError> {
    use aws_lc_rs::encoding::AsDer;
    let failed = |_| KeyError::Unsupported;
    let (private_der, public_der) = match algorithm {
        KeyAlgorithm::Rsa2048 => {
            let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(failed)?;
            let private = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key)
                .map_err(failed)?
                .as_ref()
                .to_vec();
            let public = key.public_key().as_der().map_err(failed)?.as_ref().to_vec();
            (private, public)
        }
        KeyAlgorithm::EcdsaP256 => {
            let key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)
                .map_err(failed)?;
            let private = key.to_pkcs8v1().map_err(failed)?.as_ref().to_vec();
            let public = key.public_key().as_der().map_err(failed)?.as_ref().to_vec();
            (private, public)
        }
    };
    Ok(GeneratedKey {
        private_pem: pem("PRIVATE KEY", &private_der),
        public_pem: pem("PUBLIC KEY", &public_der),
    })
}

/// PEM armour: base64 in lines of 64, as OpenSSL writes it.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PublicKind {
    Rsa,
    EcdsaP256,
}

/// A CloudFront public key, for checking signed URLs (tests and the local CloudFront).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    kind: PublicKind,
    der: Vec<u8>,
}

impl VerifyingKey {
    /// Parses `-----BEGIN PUBLIC KEY-----` PEM (SubjectPublicKeyInfo), RSA or EC P-256.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let spki =
            SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| KeyError::NoPublicKey)?;
        let der = spki.as_ref();
        // The algorithm OID sits near the front of the SPKI: rsaEncryption or id-ecPublicKey.
        const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
        const EC_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        let head = &der[..der.len().min(32)];
        let kind = if head.windows(RSA_OID.len()).any(|w| w == RSA_OID) {
            PublicKind::Rsa
        } else if head.windows(EC_OID.len()).any(|w| w == EC_OID) {
            PublicKind::EcdsaP256
        } else {
            return Err(KeyError::Unsupported);
        };
        Ok(Self {
            kind,
            der: der.to_vec(),
        })
    }

    /// Whether `signature` is this key's signature of `message` with `hash`.
    pub fn verify(&self, hash: HashAlgorithm, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &dyn signature::VerificationAlgorithm = match (self.kind, hash) {
            (PublicKind::Rsa, HashAlgorithm::Sha1) => {
                &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
            }
            (PublicKind::Rsa, HashAlgorithm::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (PublicKind::EcdsaP256, HashAlgorithm::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (PublicKind::EcdsaP256, HashAlgorithm::Sha1) => return false,
        };
        UnparsedPublicKey::new(algorithm, &self.der)
            .verify(message, signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/data/cloudfront/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn parses_every_supported_form() {
        for (name, hash) in [
            ("rsa2048_pkcs1.pem", HashAlgorithm::Sha1),
            ("rsa2048_pkcs8.pem", HashAlgorithm::Sha1),
            ("ec_p256_sec1.pem", HashAlgorithm::Sha256),
            ("ec_p256_pkcs8.pem", HashAlgorithm::Sha256),
        ] {
            let key = SigningKey::from_pem(&fixture(name)).unwrap();
            assert_eq!(key.default_hash(), hash, "{name}");
        }
    }

    #[test]
    fn derived_public_key_matches_the_pem_one() {
        for (private, public) in [
            ("rsa2048_pkcs8.pem", "rsa2048_public.pem"),
            ("ec_p256_sec1.pem", "ec_p256_public.pem"),
        ] {
            let key = SigningKey::from_pem(&fixture(private)).unwrap();
            let from_pem = VerifyingKey::from_pem(&fixture(public)).unwrap();
            let signature = key.sign(HashAlgorithm::Sha256, b"m");
            assert!(
                from_pem.verify(HashAlgorithm::Sha256, b"m", &signature),
                "{private}"
            );
            assert!(
                key.public_key()
                    .verify(HashAlgorithm::Sha256, b"m", &signature),
                "{private}"
            );
        }
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert_eq!(
            SigningKey::from_pem(b"").unwrap_err(),
            KeyError::NoPrivateKey
        );
        let public = fixture("rsa2048_public.pem");
        assert_eq!(
            SigningKey::from_pem(&public).unwrap_err(),
            KeyError::NoPrivateKey
        );
        let corrupt = b"-----BEGIN PRIVATE KEY-----\nMIIBVAIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            SigningKey::from_pem(corrupt).unwrap_err(),
            KeyError::Unsupported
        );
        let ec = SigningKey::from_pem(&fixture("ec_p256_sec1.pem")).unwrap();
        assert_eq!(
            ec.supports(HashAlgorithm::Sha1),
            Err(KeyError::EcdsaNeedsSha256)
        );
        assert_eq!(
            VerifyingKey::from_pem(b"nope").unwrap_err(),
            KeyError::NoPublicKey
        );
    }

    #[test]
    fn generated_keys_sign_and_verify_through_their_pem() {
        for (algorithm, hash) in [
            (KeyAlgorithm::Rsa2048, HashAlgorithm::Sha1),
            (KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256),
            (KeyAlgorithm::EcdsaP256, HashAlgorithm::Sha256),
        ] {
            let generated = generate_key(algorithm).unwrap();
            assert!(
                generated
                    .private_pem
                    .starts_with("-----BEGIN PRIVATE KEY-----\n")
            );
            assert!(generated.public_pem.ends_with("-----END PUBLIC KEY-----\n"));
            let key = SigningKey::from_pem(generated.private_pem.as_bytes()).unwrap();
            let public = VerifyingKey::from_pem(generated.public_pem.as_bytes()).unwrap();
            let signature = key.sign(hash, b"firmware");
            assert!(
                public.verify(hash, b"firmware", &signature),
                "{algorithm:?}"
            );
            assert!(
                !public.verify(hash, b"firmwarE", &signature),
                "{algorithm:?}"
            );
            assert!(!format!("{generated:?}").contains("PRIVATE"));
        }
        assert_eq!("ECDSA".parse::<KeyAlgorithm>(), Ok(KeyAlgorithm::EcdsaP256));
        assert!("dsa".parse::<KeyAlgorithm>().is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = SigningKey::from_pem(&fixture("rsa2048_pkcs1.pem")).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(RSA, redacted)");
    }
}
