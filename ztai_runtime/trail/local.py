"""A local copy of a trail's S3 prefix, read for `validation.verify_trail`.

Layout (what `aws s3 sync s3://BUCKET/PREFIX/AWSLogs/ ROOT/AWSLogs/` writes):

    ROOT/AWSLogs/[O-ID/]ACCOUNT/CloudTrail-Digest/REGION/YYYY/MM/DD/<digest>.json.gz
    ROOT/AWSLogs/[O-ID/]ACCOUNT/CloudTrail-Digest/REGION/YYYY/MM/DD/<digest>.json.gz.metadata.json
    ROOT/AWSLogs/[O-ID/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/<log>.json.gz

A sync cannot carry an object's metadata, where CloudTrail puts each digest's signature, so each
digest has a sidecar `<digest>.json.gz.metadata.json`: the JSON that
`aws s3api head-object --bucket BUCKET --key KEY` prints (its `Metadata` object is read; a bare
`{"signature": ..., "signature-algorithm": ...}` object is accepted too). Format version: the
head-object output as the AWS CLI prints it; nothing is added.

Public keys: the JSON that `aws cloudtrail list-public-keys --region REGION --start-time T`
prints (`PublicKeyList`, each `Fingerprint` and `Value`, the base64 DER PKCS#1 key); a `Value`
may also be a PEM public key.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ztai_runtime.trail.validation import DigestFile, DigestFormatError, gunzip

SIDECAR_SUFFIX = ".metadata.json"
_DIGEST_NAME = re.compile(r"^(?P<account>\d{12})_CloudTrail-Digest_(?P<region>[a-z0-9-]+)_"
                          r"(?P<trail>.+)_(?P<time>\d{8}T\d{6}Z)(?P<backfill>_backfill)?\.json\.gz$")
_LOG_TIME = re.compile(r"_(\d{8}T\d{4}Z)_[^_/]+\.json\.gz$")


class TrailInputError(ValueError):
    """The copy, a sidecar or the key file cannot be used: the message names the file."""


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _files_under(root: Path, folder: str) -> Iterator[Path]:
    """Every file under ROOT/AWSLogs/**/<folder>/, organisation trails' extra level included."""
    for base in sorted((root / "AWSLogs").glob(f"**/{folder}")):
        if base.is_dir():
            yield from sorted(path for path in base.rglob("*") if path.is_file())


def load_metadata(sidecar: Path) -> dict[str, str] | None:
    if not sidecar.is_file():
        return None
    try:
        document = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise TrailInputError(f"{sidecar}: not JSON ({error}); it must be the output of "
                              "`aws s3api head-object` for the digest") from None
    metadata = document.get("Metadata", document) if isinstance(document, dict) else None
    if not isinstance(metadata, dict) or not all(isinstance(value, str)
                                                 for value in metadata.values()):
        raise TrailInputError(f"{sidecar}: no Metadata object of strings; it must be the output "
                              "of `aws s3api head-object` for the digest")
    return {str(key).lower(): value for key, value in metadata.items()}


def load_digests(root: Path) -> list[DigestFile]:
    """Every digest of the copy with its sidecar's metadata. TrailInputError when ROOT holds no
    AWSLogs folder; DigestFormatError for a digest that is not gzip."""
    if not (root / "AWSLogs").is_dir():
        raise TrailInputError(f"{root}: no AWSLogs folder; give the directory `aws s3 sync` copied "
                              "the trail's AWSLogs/ prefix into")
    digests: list[DigestFile] = []
    for path in _files_under(root, "CloudTrail-Digest"):
        if path.name.endswith(SIDECAR_SUFFIX):
            continue
        name = _DIGEST_NAME.match(path.name)
        if name is None:
            raise TrailInputError(f"{path}: not a CloudTrail digest file name "
                                  "(ACCOUNT_CloudTrail-Digest_REGION_TRAIL_HOMEREGION_"
                                  "YYYYMMDDTHHMMSSZ[_backfill].json.gz)")
        relative = _relative(root, path)
        chain = f"{relative.split('/CloudTrail-Digest/')[0]}/{name['region']}/{name['trail']}"
        digests.append(DigestFile(location=relative, content=gunzip(path.read_bytes(), relative),
                                  metadata=load_metadata(path.with_name(path.name + SIDECAR_SUFFIX)),
                                  chain=chain, backfill=bool(name["backfill"])))
    return digests


def present_logs(root: Path) -> list[str]:
    return [_relative(root, path) for path in _files_under(root, "CloudTrail")]


def log_reader(root: Path) -> Callable[[str], bytes | None]:
    def read(key: str) -> bytes | None:
        # A key is read only under the copy: a digest's key with `..` or a NUL byte (none that
        # CloudTrail signed) names no file of it.
        if "\x00" in key or ".." in key.split("/"):
            return None
        path = root / key
        return path.read_bytes() if path.is_file() else None
    return read


def log_time(key: str) -> datetime | None:
    """The delivery time CloudTrail writes in a log file's name (minute precision)."""
    found = _LOG_TIME.search(key)
    if found is None:
        return None
    return datetime.strptime(found[1], "%Y%m%dT%H%MZ").replace(tzinfo=UTC)


def _public_key(value: str, where: str) -> rsa.RSAPublicKey:
    try:
        if "-----BEGIN" in value:
            key = serialization.load_pem_public_key(value.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode(value, validate=True))
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError) as error:
        raise TrailInputError(f"{where}: not a public key (base64 DER or PEM): {error}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise TrailInputError(f"{where}: not an RSA public key; CloudTrail signs with RSA")
    return key


def load_public_keys(path: Path) -> dict[str, rsa.RSAPublicKey]:
    """Fingerprint -> key, from the output of `aws cloudtrail list-public-keys`."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrailInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise TrailInputError(f"{path}: not a JSON key list ({error}); it must be the output of "
                              "`aws cloudtrail list-public-keys`") from None
    entries = document.get("PublicKeyList") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TrailInputError(f"{path}: no PublicKeyList with keys; it must be the output of "
                              "`aws cloudtrail list-public-keys`")
    keys: dict[str, rsa.RSAPublicKey] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: PublicKeyList[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Fingerprint"), str) \
                or not isinstance(entry.get("Value"), str):
            raise TrailInputError(f"{where}: needs a Fingerprint and a Value (strings)")
        keys[entry["Fingerprint"]] = _public_key(entry["Value"], where)
    return keys


__all__ = ["DigestFormatError", "TrailInputError", "load_digests", "load_metadata",
           "load_public_keys", "log_reader", "log_time", "present_logs"]
