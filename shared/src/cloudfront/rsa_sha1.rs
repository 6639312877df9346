//! RSA PKCS#1 v1.5 signatures over SHA-1, CloudFront's default algorithm.
//!
//! aws-lc-rs verifies RSA-SHA1 but, on purpose, offers no safe API to *sign* with it. The
//! alternatives were RustCrypto's `rsa` (pure Rust, about 7× slower here and carrying the
//! unfixed RUSTSEC-2023-0071 timing advisory) or this wrapper over the same AWS-LC that
//! aws-lc-rs and the SDK's TLS already link: `RSA_sign` with `NID_sha1`. It is the only
//! `unsafe` code in fleetwire. Its invariants:
//!
//! - `Sha1RsaKey` owns exactly one reference to a non-null `RSA*`, released once in `Drop`.
//! - The key is parsed from DER that AWS-LC copies; no pointer into Rust memory is kept.
//! - `RSA_sign` only reads the key (AWS-LC locks its blinding cache internally), so a
//!   shared key may sign from several threads: hence `Send` and `Sync`.
//! - The output buffer is `RSA_size` bytes, the most `RSA_sign` writes, and is truncated
//!   to the length it reports.

use aws_lc_rs::digest;
use aws_lc_sys as ffi;

/// An RSA private key that signs SHA-1 digests (PKCS#1 v1.5).
pub(crate) struct Sha1RsaKey {
    rsa: std::ptr::NonNull<ffi::RSA>,
}

// SAFETY: see the module documentation; AWS-LC's RSA objects are safe to use from several
// threads for private-key operations once constructed.
unsafe impl Send for Sha1RsaKey {}
// SAFETY: as above; `sign` takes `&self` and AWS-LC synchronises its internal caches.
unsafe impl Sync for Sha1RsaKey {}

impl Sha1RsaKey {
    /// From a PKCS#1 `RSAPrivateKey` DER.
    pub(crate) fn from_pkcs1_der(der: &[u8]) -> Option<Self> {
        // SAFETY: AWS-LC reads `der.len()` bytes from a valid slice and returns a new RSA
        // object (or null) that does not borrow the input.
        let rsa = unsafe { ffi::RSA_private_key_from_bytes(der.as_ptr(), der.len()) };
        Self::checked(rsa)
    }

    /// From a PKCS#8 `PrivateKeyInfo` DER holding an RSA key.
    pub(crate) fn from_pkcs8_der(der: &[u8]) -> Option<Self> {
        // SAFETY: the CBS borrows `der` only for the duration of `EVP_parse_private_key`,
        // which returns an owned EVP_PKEY (or null). `EVP_PKEY_get1_RSA` returns a new
        // reference (or null for a non-RSA key), after which the EVP_PKEY is released.
        let rsa = unsafe {
            let mut cbs = std::mem::MaybeUninit::<ffi::CBS>::uninit();
            ffi::CBS_init(cbs.as_mut_ptr(), der.as_ptr(), der.len());
            let pkey = ffi::EVP_parse_private_key(cbs.as_mut_ptr());
            if pkey.is_null() {
                return None;
            }
            let rsa = ffi::EVP_PKEY_get1_RSA(pkey);
            ffi::EVP_PKEY_free(pkey);
            rsa
        };
        Self::checked(rsa)
    }

    fn checked(rsa: *mut ffi::RSA) -> Option<Self> {
        let rsa = std::ptr::NonNull::new(rsa)?;
        let key = Self { rsa };
        // SAFETY: `key.rsa` is a valid RSA object owned by `key`.
        let valid = unsafe { ffi::RSA_check_key(key.rsa.as_ptr()) } == 1;
        valid.then_some(key)
    }

    /// The PKCS#1 v1.5 signature of SHA-1(`message`).
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, message);
        let hash = hash.as_ref();
        // SAFETY: `self.rsa` is valid for the lifetime of `self`.
        let size = unsafe { ffi::RSA_size(self.rsa.as_ptr()) } as usize;
        let mut signature = vec![0u8; size];
        let mut written: std::os::raw::c_uint = 0;
        // SAFETY: `signature` has room for `RSA_size` bytes, the most RSA_sign writes;
        // `hash` is a valid 20-byte SHA-1 digest; `self.rsa` is valid.
        let ok = unsafe {
            ffi::RSA_sign(
                ffi::NID_sha1,
                hash.as_ptr(),
                hash.len(),
                signature.as_mut_ptr(),
                &mut written,
                self.rsa.as_ptr(),
            )
        };
        // A key that passed RSA_check_key and a well-formed digest cannot fail to sign
        // short of memory exhaustion, which Rust treats as fatal too.
        assert_eq!(ok, 1, "AWS-LC RSA_sign failed on a checked key");
        signature.truncate(written as usize);
        signature
    }
}

impl Drop for Sha1RsaKey {
    fn drop(&mut self) {
        // SAFETY: `self.rsa` holds the one reference this value owns.
        unsafe { ffi::RSA_free(self.rsa.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, UnparsedPublicKey};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cloudfront/");

    fn der(name: &str) -> Vec<u8> {
        let pem = std::fs::read(format!("{DATA}{name}")).unwrap();
        PrivateKeyDer::from_pem_slice(&pem)
            .unwrap()
            .secret_der()
            .to_vec()
    }

    fn verifies(signature: &[u8], message: &[u8]) -> bool {
        let pem = std::fs::read(format!("{DATA}rsa2048_public.pem")).unwrap();
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(&pem).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, spki.as_ref())
            .verify(message, signature)
            .is_ok()
    }

    #[test]
    fn pkcs1_and_pkcs8_forms_of_one_key_sign_alike_and_verify() {
        let pkcs1 = Sha1RsaKey::from_pkcs1_der(&der("rsa2048_pkcs1.pem")).unwrap();
        let pkcs8 = Sha1RsaKey::from_pkcs8_der(&der("rsa2048_pkcs8.pem")).unwrap();
        let a = pkcs1.sign(b"policy");
        assert_eq!(a.len(), 256);
        assert_eq!(a, pkcs8.sign(b"policy"), "PKCS#1 v1.5 is deterministic");
        assert!(verifies(&a, b"policy"));
        assert!(!verifies(&a, b"policz"));
    }

    #[test]
    fn rejects_garbage_and_non_rsa_keys() {
        assert!(Sha1RsaKey::from_pkcs1_der(b"not a key").is_none());
        assert!(Sha1RsaKey::from_pkcs8_der(b"").is_none());
        assert!(Sha1RsaKey::from_pkcs8_der(&der("ec_p256_pkcs8.pem")).is_none());
    }

    #[test]
    fn signs_from_several_threads() {
        let key =
            std::sync::Arc::new(Sha1RsaKey::from_pkcs1_der(&der("rsa2048_pkcs1.pem")).unwrap());
        let expected = key.sign(b"same");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let key = key.clone();
                std::thread::spawn(move || key.sign(b"same"))
            })
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap(), expected);
        }
    }
}
