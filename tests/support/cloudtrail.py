"""A CloudTrail trail's local copy, written in the documented format with test RSA keys generated
at runtime: hourly digests chained newest to oldest, each signed with SHA256withRSA over the
data-signing string of the AWS CloudTrail User Guide ("Custom implementations of CloudTrail log
file integrity validation"), its signature in a head-object sidecar, and the log files it lists
(hashValue: SHA-256 of the uncompressed log)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ACCOUNT = "111122223333"
REGION = "eu-west-1"
TRAIL = "zero-trust-ai"
BUCKET = "zero-trust-ai-log-archive"
PREFIX = "org-prefix"  # the bucket's key prefix: S3 keys carry it, the local copy does not
START = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def fingerprint(key: rsa.RSAPrivateKey) -> str:
    """A test fingerprint (the MD5 of the DER key): the validator trusts the key list's mapping."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return hashlib.md5(der, usedforsecurity=False).hexdigest()


def key_list(*keys: rsa.RSAPrivateKey) -> dict[str, Any]:
    """As `aws cloudtrail list-public-keys` prints it (base64 DER PKCS#1 values)."""
    return {"PublicKeyList": [
        {"ValidityStartTime": 1772359200.0, "ValidityEndTime": 1774951200.0,
         "Value": base64.b64encode(key.public_key().public_bytes(
             serialization.Encoding.DER, serialization.PublicFormat.PKCS1)).decode(),
         "Fingerprint": fingerprint(key)} for key in keys]}


def sign(key: rsa.RSAPrivateKey, document: dict[str, Any], content: bytes) -> str:
    previous = document["previousDigestSignature"]
    text = "\n".join((str(document["digestEndTime"]),
                      f"{document['digestS3Bucket']}/{document['digestS3Object']}",
                      hashlib.sha256(content).hexdigest(), "null" if previous is None else str(previous)))
    return key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()


@dataclass
class Digest:
    relative: str  # AWSLogs/... in the copy
    document: dict[str, Any]
    signature: str


@dataclass
class Trail:
    root: Path
    key: rsa.RSAPrivateKey
    digests: list[Digest] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def keys_file(self) -> Path:
        return self.root / "public-keys.json"

    def path(self, relative: str) -> Path:
        return self.root / relative

    def write_digest(self, relative: str, document: dict[str, Any], signature: str | None,
                     algorithm: str = "SHA256withRSA", content: bytes | None = None) -> None:
        path = self.path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(content if content is not None
                                       else json.dumps(document).encode()))
        sidecar = path.with_name(path.name + ".metadata.json")
        metadata = {} if signature is None else {"signature": signature,
                                                 "signature-algorithm": algorithm}
        sidecar.write_text(json.dumps({"AcceptRanges": "bytes", "ContentType": "application/json",
                                       "ContentEncoding": "gzip", "Metadata": metadata}))

    def resign(self, index: int, key: rsa.RSAPrivateKey | None = None,
               fingerprint_of: rsa.RSAPrivateKey | None = None) -> None:
        """Rewrite digest `index` (as changed in .document) signed by `key` (default: the trail's)."""
        digest = self.digests[index]
        signer = key or self.key
        digest.document["digestPublicKeyFingerprint"] = fingerprint(fingerprint_of or signer)
        content = json.dumps(digest.document).encode()
        digest.signature = sign(signer, digest.document, content)
        self.write_digest(digest.relative, digest.document, digest.signature, content=content)

    def relink(self, index: int) -> None:
        """Re-sign every digest after `index` so each names its predecessor's new signature, as
        CloudTrail would have delivered them after a re-signed `index`."""
        for later in range(index + 1, len(self.digests)):
            self.digests[later].document["previousDigestSignature"] = self.digests[later - 1].signature
            self.resign(later)


def log_key(when: datetime, unique: str) -> str:
    return (f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{when:%Y/%m/%d}/"
            f"{ACCOUNT}_CloudTrail_{REGION}_{when:%Y%m%dT%H%MZ}_{unique}.json.gz")


def digest_key(end: datetime) -> str:
    return (f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}/{end:%Y/%m/%d}/{ACCOUNT}_CloudTrail-"
            f"Digest_{REGION}_{TRAIL}_{REGION}_{end:%Y%m%dT%H%M%SZ}.json.gz")


def build_trail(root: Path, key: rsa.RSAPrivateKey, hours: int = 4, logs_per_hour: int = 2,
                empty_hours: frozenset[int] = frozenset()) -> Trail:
    """`hours` hourly digests, each listing `logs_per_hour` log files delivered in its hour."""
    trail = Trail(root, key)
    trail.keys_file.parent.mkdir(parents=True, exist_ok=True)
    trail.keys_file.write_text(json.dumps(key_list(key)))
    previous: Digest | None = None
    for hour in range(hours):
        start, end = START + timedelta(hours=hour), START + timedelta(hours=hour + 1)
        entries = []
        for number in range(0 if hour in empty_hours else logs_per_hour):
            when = start + timedelta(minutes=5 + 20 * number)
            relative = log_key(when, f"h{hour}n{number}")
            content = json.dumps({"Records": [{"eventVersion": "1.09", "eventTime": stamp(when),
                                               "eventName": "GetObject",
                                               "requestID": f"{hour}-{number}"}]}).encode()
            trail.path(relative).parent.mkdir(parents=True, exist_ok=True)
            trail.path(relative).write_bytes(gzip.compress(content))
            trail.logs.append(relative)
            entries.append({"s3Bucket": BUCKET, "s3Object": f"{PREFIX}/{relative}",
                            "hashValue": hashlib.sha256(content).hexdigest(),
                            "hashAlgorithm": "SHA-256", "newestEventTime": stamp(when),
                            "oldestEventTime": stamp(when)})
        relative = digest_key(end)
        document: dict[str, Any] = {
            "awsAccountId": ACCOUNT, "digestStartTime": stamp(start), "digestEndTime": stamp(end),
            "digestS3Bucket": BUCKET, "digestS3Object": f"{PREFIX}/{relative}",
            "digestPublicKeyFingerprint": fingerprint(key),
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": stamp(end), "oldestEventTime": stamp(start),
            "previousDigestS3Bucket": BUCKET if previous else None,
            "previousDigestS3Object": previous.document["digestS3Object"] if previous else None,
            "previousDigestHashValue": None, "previousDigestHashAlgorithm": None,
            "previousDigestSignature": previous.signature if previous else None,
            "logFiles": entries}
        content = json.dumps(document).encode()
        digest = Digest(relative, document, sign(key, document, content))
        trail.write_digest(relative, document, digest.signature, content=content)
        trail.digests.append(digest)
        previous = digest
    return trail
