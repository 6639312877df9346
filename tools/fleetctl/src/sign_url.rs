//! `fleetctl sign-url`: the same signer firmware-url uses, for operators and scripts.

use std::path::PathBuf;

use fleetwire::cloudfront::{HashAlgorithm, IpCidr, Policy, SigningKey, UrlSigner};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The URL to sign, percent-encoded as it will be requested.
    #[arg(long)]
    url: String,
    /// The id of the CloudFront public key whose private key is given.
    #[arg(long)]
    key_pair_id: String,
    /// PEM private key: RSA (PKCS#1 or PKCS#8) or ECDSA P-256 (SEC1 or PKCS#8).
    #[arg(long, value_name = "PEM_FILE")]
    private_key: PathBuf,
    /// Expiry, Unix seconds (exclusive).
    #[arg(long, value_name = "EPOCH", allow_hyphen_values = true)]
    expires: String,
    /// Not valid before, Unix seconds (makes the policy custom).
    #[arg(long, value_name = "EPOCH", allow_hyphen_values = true)]
    not_before: Option<String>,
    /// Only from this address or CIDR block (makes the policy custom).
    #[arg(long, value_name = "CIDR")]
    ip_cidr: Option<String>,
    /// Digest to sign: sha1 (RSA default) or sha256 (required for ECDSA).
    #[arg(long, value_name = "sha1|sha256")]
    hash: Option<String>,
}

pub fn run(args: &Args) -> Result<String, String> {
    let hash = args
        .hash
        .as_deref()
        .map(str::parse::<HashAlgorithm>)
        .transpose()?;
    let mut policy =
        Policy::expiring_at(epoch("--expires", &args.expires)?).map_err(|e| e.to_string())?;
    if let Some(not_before) = &args.not_before {
        policy = policy
            .not_before(epoch("--not-before", not_before)?)
            .map_err(|e| e.to_string())?;
    }
    if let Some(cidr) = &args.ip_cidr {
        policy = policy.from_ip(IpCidr::parse(cidr).map_err(|e| e.to_string())?);
    }
    let pem = std::fs::read(&args.private_key)
        .map_err(|e| format!("cannot read {}: {e}", args.private_key.display()))?;
    let key =
        SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", args.private_key.display()))?;
    let signer = UrlSigner::new(&args.key_pair_id, key, hash).map_err(|e| e.to_string())?;
    signer.sign(&args.url, &policy).map_err(|e| e.to_string())
}

fn epoch(flag: &str, text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| format!("{flag} {text:?} is not a Unix time in seconds"))
}
