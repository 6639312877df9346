"""The Python peer of CloudFront URL signing, for scripts/bench only: botocore's
CloudFrontSigner with a `cryptography` signer, as the AWS docs show it, on the same keys and
URL as the Rust benchmark (shared/benches/cloudfront.rs). Prints URLs per second as JSON.

botocore signs with whatever its callback returns; CloudFront's default is RSA-SHA1. The
SHA256 and ECDSA rows use the same signer with the other algorithm (botocore adds no
Hash-Algorithm parameter, which changes nothing in the cost).

usage: python sign_urls.py KEY_DIR SECONDS_PER_ALGORITHM
"""

import datetime
import json
import sys
import time

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

URL = "https://d111111abcdef8.cloudfront.net/firmware/sensor-x/1.4.2.bin"
EXPIRES = datetime.datetime.fromtimestamp(1_767_225_600, datetime.timezone.utc)


def load(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def rate(signer, seconds):
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        signer.generate_presigned_url(URL, date_less_than=EXPIRES)
        count += 1
        if count % 16 == 0 and time.perf_counter() >= deadline:
            return count / (time.perf_counter() - started)


def main():
    key_dir, seconds = sys.argv[1], float(sys.argv[2])
    rsa = load(f"{key_dir}/rsa2048_pkcs8.pem")
    ecdsa = load(f"{key_dir}/ec_p256_pkcs8.pem")
    signers = {
        "rsa_sha1": lambda m: rsa.sign(m, padding.PKCS1v15(), hashes.SHA1()),
        "rsa_sha256": lambda m: rsa.sign(m, padding.PKCS1v15(), hashes.SHA256()),
        "ecdsa_p256_sha256": lambda m: ecdsa.sign(m, ec.ECDSA(hashes.SHA256())),
    }
    result = {name: rate(CloudFrontSigner("K2JCJMDEHXQW5F", sign), seconds) for name, sign in signers.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
