#!/usr/bin/env python3
"""Regenerates the CloudFront signed-URL test vectors with botocore's own CloudFrontSigner.

The Rust signer in shared/src/cloudfront must produce these URLs byte for byte. RSA
PKCS#1 v1.5 is deterministic, so the same key, URL and times always give the same URL.

    .local/venv/bin/python scripts/gen-cloudfront-vectors.py

(`scripts/setup` installs botocore and cryptography into .local/venv with the AWS CLIs.)
It writes test-only keys (never use them for anything else) and vectors.json into
shared/tests/data/cloudfront/. Keys are kept if they exist, so a rerun only adds cases.
"""
import json
import pathlib
from datetime import datetime, timezone

import botocore
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

OUT = pathlib.Path(__file__).resolve().parent.parent / "shared/tests/data/cloudfront"
KEY_PAIR_ID = "K2JCJMDEHXQW5F"


def write_key(name, key, fmt):
    path = OUT / name
    if not path.exists():
        path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        )
    return serialization.load_pem_private_key(path.read_bytes(), None)


def at(epoch):
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rsa_key = write_key(
        "rsa2048_pkcs1.pem",
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        serialization.PrivateFormat.TraditionalOpenSSL,
    )
    write_key("rsa2048_pkcs8.pem", rsa_key, serialization.PrivateFormat.PKCS8)
    ec_key = write_key(
        "ec_p256_sec1.pem",
        ec.generate_private_key(ec.SECP256R1()),
        serialization.PrivateFormat.TraditionalOpenSSL,
    )
    write_key("ec_p256_pkcs8.pem", ec_key, serialization.PrivateFormat.PKCS8)
    for name, key in (("rsa2048_public.pem", rsa_key), ("ec_p256_public.pem", ec_key)):
        (OUT / name).write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def signer(hash_algorithm):
        return CloudFrontSigner(
            KEY_PAIR_ID, lambda message: rsa_key.sign(message, padding.PKCS1v15(), hash_algorithm)
        )

    base = "https://d111111abcdef8.cloudfront.net"
    cases = [
        {"name": "canned", "url": f"{base}/firmware/sensor-x/1.4.2.bin", "expires": 1767225600},
        {"name": "canned_query", "url": f"{base}/firmware/sensor-x/1.4.2.bin?model=sensor-x&v=1",
         "expires": 1767225600},
        {"name": "canned_percent_encoded", "url": f"{base}/firmware/caf%C3%A9%20v2/image.bin",
         "expires": 1767225601},
        {"name": "canned_non_ascii", "url": f"{base}/firmware/차량/ünïcode-😀.bin",
         "expires": 1767225602},
        {"name": "custom_not_before", "url": f"{base}/firmware/sensor-x/1.4.2.bin",
         "expires": 1767225600, "not_before": 1767222000},
        {"name": "custom_ip_cidr", "url": f"{base}/firmware/sensor-x/1.4.2.bin",
         "expires": 1767225600, "ip": "192.0.2.0/24"},
        {"name": "custom_ip_without_prefix", "url": f"{base}/firmware/sensor-x/1.4.2.bin",
         "expires": 1767225600, "ip": "198.51.100.7"},
        {"name": "custom_all_conditions", "url": f"{base}/firmware/sensor-x/1.4.2.bin?model=sensor-x",
         "expires": 1767225600, "not_before": 1767222000, "ip": "203.0.113.0/25"},
        {"name": "custom_wildcard", "url": f"{base}/firmware/sensor-x/1.4.2.bin",
         "resource": f"{base}/firmware/sensor-x/*", "expires": 1767225600},
        {"name": "custom_wildcard_non_ascii", "url": f"{base}/firmware/차량/1.0.bin?a=b",
         "resource": f"{base}/firmware/차량/*", "expires": 1767225600, "not_before": 1767222000},
    ]
    vectors = []
    for hash_name, hash_algorithm, suffix in (
        ("sha1", hashes.SHA1(), ""),
        ("sha256", hashes.SHA256(), "&Hash-Algorithm=SHA256"),
    ):
        cf = signer(hash_algorithm)
        for case in cases:
            custom = any(k in case for k in ("not_before", "ip", "resource"))
            if custom:
                policy = cf.build_policy(
                    case.get("resource", case["url"]),
                    at(case["expires"]),
                    date_greater_than=at(case["not_before"]) if "not_before" in case else None,
                    ip_address=case.get("ip"),
                )
                signed = cf.generate_presigned_url(case["url"], policy=policy)
            else:
                policy = cf.build_policy(case["url"], at(case["expires"]))
                signed = cf.generate_presigned_url(case["url"], date_less_than=at(case["expires"]))
            vectors.append({**case, "hash": hash_name, "policy": policy, "signed_url": signed + suffix})
    document = {
        "generator": f"botocore {botocore.__version__} CloudFrontSigner (scripts/gen-cloudfront-vectors.py)",
        "key_pair_id": KEY_PAIR_ID,
        "private_key": "rsa2048_pkcs1.pem",
        "note": "sha256 cases: botocore's URL with an RSA-SHA256 signer, plus &Hash-Algorithm=SHA256",
        "vectors": vectors,
    }
    (OUT / "vectors.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"{len(vectors)} vectors written to {OUT / 'vectors.json'}")


if __name__ == "__main__":
    main()
