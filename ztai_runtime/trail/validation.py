"""Validate CloudTrail digest files and the log files they list, as `aws cloudtrail validate-logs`
does, without AWS: the caller hands the digests (their decompressed bytes, where they were
delivered and their S3 metadata), the public keys and a way to read the log files.

The rules, from the AWS CloudTrail User Guide ("CloudTrail digest file structure" and "Custom
implementations of CloudTrail log file integrity validation"):

- A digest is signed with SHA256withRSA (RSA PKCS#1 v1.5 over SHA-256). The signature, hex
  encoded, is not in the file but in the digest object's S3 metadata (`x-amz-meta-signature`,
  read back as the `signature` key of the object's metadata, with `signature-algorithm`).
- The signed data is four lines joined by `\\n`: the digest's `digestEndTime` as written, the
  digest's S3 path `digestS3Bucket/digestS3Object`, the hex SHA-256 of the digest file (the guide
  does not say which form: the uncompressed JSON, as the AWS CLI's `validate-logs` hashes it),
  and `previousDigestSignature` (the string `null` for the first digest of a chain).
- The key is the one of the digest's Region whose fingerprint is `digestPublicKeyFingerprint`
  (`aws cloudtrail list-public-keys` gives them: DER, PKCS#1).
- Each log file's `hashValue` is the hex SHA-256 of its uncompressed content ("compute the
  SHA-256 hash value on its uncompressed content").
- Each digest names the previous one (`previousDigestS3Bucket`, `previousDigestS3Object`,
  `previousDigestSignature`): a chain, newest to oldest. A chain starts with nulls: a trail's
  first digest, or the first after logging or validation was stopped and started again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGNATURE_ALGORITHM = "SHA256withRSA"
LOG_HASH_ALGORITHM = "SHA-256"
# Fields without which a digest cannot be checked at all.
REQUIRED_FIELDS = ("digestStartTime", "digestEndTime", "digestS3Bucket", "digestS3Object",
                   "digestPublicKeyFingerprint", "previousDigestSignature", "logFiles")

# Problem kinds: each names one way the trail differs from what CloudTrail delivered.
DIGEST_INVALID = "digest-invalid"                # required fields absent or of the wrong type
DIGEST_NO_SIGNATURE = "digest-no-signature"      # no signature in the object's metadata
DIGEST_BAD_ALGORITHM = "digest-bad-algorithm"    # an algorithm other than SHA256withRSA
DIGEST_UNKNOWN_KEY = "digest-unknown-key"        # no public key with the digest's fingerprint
DIGEST_BAD_SIGNATURE = "digest-bad-signature"    # content altered, or signed by another key
DIGEST_MOVED = "digest-moved"                    # not where its own (signed) content says it was
DIGEST_MISSING = "digest-missing"                # named by the next digest, absent (deleted)
DIGEST_REORDERED = "digest-reordered"            # names a digest that is not the one before it
DIGEST_CHAIN_MISMATCH = "digest-chain-mismatch"  # previous signature or bucket not the previous one's
DIGEST_GAP = "digest-gap"                        # a chain restarts, or time between two digests
LOG_MISSING = "log-missing"                      # listed by a digest, absent (deleted)
LOG_ALTERED = "log-altered"                      # SHA-256 differs from the digest's hashValue
LOG_ADDED = "log-added"                          # present, listed by no digest
PROBLEM_KINDS = (DIGEST_INVALID, DIGEST_NO_SIGNATURE, DIGEST_BAD_ALGORITHM, DIGEST_UNKNOWN_KEY,
                 DIGEST_BAD_SIGNATURE, DIGEST_MOVED, DIGEST_MISSING, DIGEST_REORDERED,
                 DIGEST_CHAIN_MISMATCH, DIGEST_GAP, LOG_MISSING, LOG_ALTERED, LOG_ADDED)


@dataclass(frozen=True)
class DigestFile:
    """One delivered digest: `location` is its S3 key as found (relative to the bucket, or to the
    local copy's root: compared with the `AWSLogs/` part of `digestS3Object`), `content` its
    uncompressed bytes, `metadata` its S3 user metadata (`signature`, `signature-algorithm`), or
    None when none was given."""

    location: str
    content: bytes
    metadata: Mapping[str, str] | None
    chain: str = ""  # digests of one trail and Region form one chain; the caller names it
    backfill: bool = False  # a backfill digest stands outside the chain


@dataclass(frozen=True)
class Problem:
    kind: str
    file: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "file": self.file, "message": self.message}


@dataclass
class TrailReport:
    problems: list[Problem] = field(default_factory=list)
    digests_checked: int = 0
    digests_valid: int = 0
    logs_checked: int = 0
    logs_valid: int = 0
    logs_not_yet_digested: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"valid": self.ok, "problems": [problem.as_json() for problem in self.problems],
                "summary": {"digests": self.digests_checked, "digests_valid": self.digests_valid,
                            "logs": self.logs_checked, "logs_valid": self.logs_valid,
                            "logs_not_yet_digested": self.logs_not_yet_digested,
                            "problems": len(self.problems)}}


class DigestFormatError(ValueError):
    """A file that cannot be read as a digest or a log at all (not gzip, not JSON)."""


def gunzip(data: bytes, name: str) -> bytes:
    """The uncompressed content of a gzip file (every member, as S3 delivers CloudTrail's)."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DigestFormatError(f"{name}: not a gzip file ({error})") from None


def parse_time(value: str) -> datetime:
    """CloudTrail's UTC timestamps (`2015-08-17T15:01:31Z`); ValueError otherwise."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return parsed.astimezone(UTC)


def aws_logs_part(key: str) -> str:
    """The key from its `AWSLogs/` segment on: what stays the same whatever the bucket's prefix
    and wherever the copy was synced to."""
    if key.startswith("AWSLogs/"):
        return key
    index = key.find("/AWSLogs/")
    return key[index + 1:] if index >= 0 else key


def string_to_sign(document: Mapping[str, Any], content: bytes) -> bytes:
    previous = document["previousDigestSignature"]
    lines = (str(document["digestEndTime"]),
             f"{document['digestS3Bucket']}/{document['digestS3Object']}",
             hashlib.sha256(content).hexdigest(), "null" if previous is None else str(previous))
    return "\n".join(lines).encode("utf-8")


@dataclass
class _Parsed:
    file: DigestFile
    document: dict[str, Any]
    end: datetime
    start: datetime
    signature: str | None
    verified: bool = False


def _parse(digest: DigestFile) -> tuple[_Parsed | None, Problem | None]:
    try:
        document = json.loads(digest.content)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise DigestFormatError(f"{digest.location}: not a JSON digest ({error!r})") from None
    if not isinstance(document, dict):
        raise DigestFormatError(f"{digest.location}: not a JSON object")
    absent = [name for name in REQUIRED_FIELDS if name not in document]
    if absent:
        return None, Problem(DIGEST_INVALID, digest.location,
                             f"the digest lacks {', '.join(absent)}: it cannot be checked")
    try:
        end, start = parse_time(document["digestEndTime"]), parse_time(document["digestStartTime"])
        if not isinstance(document["logFiles"], list):
            raise ValueError("logFiles is not a list")
    except (TypeError, ValueError, AttributeError) as error:
        return None, Problem(DIGEST_INVALID, digest.location, f"the digest is malformed: {error}")
    signature = (digest.metadata or {}).get("signature")
    return _Parsed(digest, document, end, start, signature), None


def _verify_signature(parsed: _Parsed, keys: Mapping[str, rsa.RSAPublicKey]) -> Problem | None:
    where, document, metadata = parsed.file.location, parsed.document, parsed.file.metadata or {}
    if not parsed.signature:
        return Problem(DIGEST_NO_SIGNATURE, where,
                       "no signature in the digest's S3 metadata (x-amz-meta-signature): its "
                       "metadata was not fetched, or the object was replaced by one without it")
    # The metadata's algorithm is the one the signature was made with; the file's own field, when
    # present, must say the same.
    algorithms = [metadata.get("signature-algorithm"),
                  document.get("digestSignatureAlgorithm", SIGNATURE_ALGORITHM)]
    if any(algorithm != SIGNATURE_ALGORITHM for algorithm in algorithms):
        named = " and ".join(json.dumps(algorithm)[:60] for algorithm in algorithms)
        return Problem(DIGEST_BAD_ALGORITHM, where,
                       f"signature algorithm {named}; CloudTrail signs with {SIGNATURE_ALGORITHM}")
    fingerprint = document["digestPublicKeyFingerprint"]
    key = keys.get(fingerprint) if isinstance(fingerprint, str) else None
    if key is None:
        return Problem(DIGEST_UNKNOWN_KEY, where,
                       f"no public key with fingerprint {fingerprint} among the keys given "
                       "(`aws cloudtrail list-public-keys` in the digest's Region lists them)")
    try:
        signature = bytes.fromhex(parsed.signature)
        key.verify(signature, string_to_sign(document, parsed.file.content), padding.PKCS1v15(),
                   hashes.SHA256())
    except (ValueError, TypeError, InvalidSignature):
        return Problem(DIGEST_BAD_SIGNATURE, where,
                       f"the signature does not verify with key {fingerprint}: the digest was "
                       "altered, or signed by another key")
    return None


def _check_location(parsed: _Parsed) -> Problem | None:
    claimed = parsed.document["digestS3Object"]
    if not isinstance(claimed, str) or aws_logs_part(claimed) != aws_logs_part(parsed.file.location):
        return Problem(DIGEST_MOVED, parsed.file.location,
                       f"the digest says it was delivered to {claimed}: it was moved or copied here")
    return None


def _check_chain(chain: Sequence[_Parsed], by_location: Mapping[str, _Parsed],
                 unreadable: set[str], start: datetime | None) -> list[Problem]:
    """`chain` oldest first. Each digest must name the one just before it; the oldest may name
    one before the window (`start`) that was not fetched."""
    problems: list[Problem] = []
    for index, current in enumerate(chain):
        document, where = current.document, current.file.location
        previous_object = document.get("previousDigestS3Object")
        previous_bucket = document.get("previousDigestS3Bucket")
        before = chain[index - 1] if index > 0 else None
        if previous_object is None:
            if before is not None:
                problems.append(Problem(DIGEST_GAP, where,
                                        f"a new chain starts here after {before.file.location}: "
                                        "no digest covers the time between them (logging or "
                                        "validation was stopped, or digests were removed)"))
            continue
        named = by_location.get(aws_logs_part(str(previous_object)))
        if named is None and aws_logs_part(str(previous_object)) in unreadable:
            continue  # present but lacking fields: reported as such already
        if named is None:
            if before is None and start is not None and current.start <= start:
                continue  # its predecessor lies before the window asked for
            problems.append(Problem(DIGEST_MISSING, str(previous_object),
                                    f"named as the previous digest by {where}, but absent"))
            continue
        if before is not None and named is not before:
            problems.append(Problem(DIGEST_REORDERED, where,
                                    f"names {named.file.location} as its previous digest, but the "
                                    f"digest before it is {before.file.location}"))
            continue
        if before is None:
            # The oldest digest of the window names one before the window: it must be of the
            # same chain and older; then it is checked as any predecessor.
            if named.file.chain != current.file.chain or named.end > current.start:
                problems.append(Problem(DIGEST_REORDERED, where,
                                        f"names {named.file.location} as its previous digest, "
                                        "which is not of its chain or not older"))
                continue
            before = named
        if before.signature is None:
            continue  # no signature to compare: reported as such already
        if document.get("previousDigestSignature") != before.signature:
            problems.append(Problem(DIGEST_CHAIN_MISMATCH, where,
                                    f"its previousDigestSignature is not the signature of "
                                    f"{before.file.location}: that digest was replaced"))
        elif previous_bucket != before.document.get("digestS3Bucket"):
            problems.append(Problem(DIGEST_CHAIN_MISMATCH, where,
                                    f"names bucket {previous_bucket} for its previous digest, "
                                    f"which was delivered to {before.document.get('digestS3Bucket')}"))
        elif current.start > before.end:
            problems.append(Problem(DIGEST_GAP, where,
                                    f"starts at {document['digestStartTime']}, after the previous "
                                    f"digest ended ({before.document['digestEndTime']})"))
    return problems


def _in_window(parsed: _Parsed, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or parsed.end >= start) and (end is None or parsed.start <= end)


def verify_trail(digests: Iterable[DigestFile], public_keys: Mapping[str, rsa.RSAPublicKey],
                 read_log: Callable[[str], bytes | None], present_logs: Iterable[str],
                 log_time: Callable[[str], datetime | None] = lambda _key: None,
                 start: datetime | None = None, end: datetime | None = None) -> TrailReport:
    """Check every digest in the window [start, end], its chain and the log files it lists.

    `read_log(key)` returns a log file's delivered (gzip) bytes, or None when it is absent, for
    the `AWSLogs/...` part of its S3 key; `present_logs` are the log keys found (same form), and a
    found log listed by no digest is reported as added when `log_time` places it in the window
    (or always, without a window). Raises DigestFormatError for a digest that is not JSON."""
    report = TrailReport()
    parsed_all: list[_Parsed] = []
    unreadable: set[str] = set()
    for digest in digests:
        parsed, problem = _parse(digest)
        if problem is not None:
            report.problems.append(problem)
            report.digests_checked += 1
            unreadable.add(aws_logs_part(digest.location))
        elif parsed is not None:
            parsed_all.append(parsed)
    by_location = {aws_logs_part(parsed.file.location): parsed for parsed in parsed_all}
    selected = [parsed for parsed in parsed_all if _in_window(parsed, start, end)]
    # A log file counts as listed when a digest of the window lists it (a digest that fails is
    # reported on its own), or a digest outside the window that verifies: a forged digest dated
    # outside the window cannot hide a log file added inside it.
    listed: set[str] = set()
    for parsed in parsed_all:
        if parsed not in selected and (_check_location(parsed)
                                       or _verify_signature(parsed, public_keys)):
            continue
        for entry in parsed.document["logFiles"]:
            if isinstance(entry, dict) and isinstance(entry.get("s3Object"), str):
                listed.add(aws_logs_part(entry["s3Object"]))

    for parsed in sorted(selected, key=lambda item: (item.end, item.file.location)):
        report.digests_checked += 1
        problem = _check_location(parsed) or _verify_signature(parsed, public_keys)
        if problem is not None:
            report.problems.append(problem)
            continue
        parsed.verified = True
        report.digests_valid += 1
        report.problems.extend(_check_logs(parsed, read_log, report))

    chains: dict[str, list[_Parsed]] = {}
    for parsed in selected:
        if not parsed.file.backfill:
            chains.setdefault(parsed.file.chain, []).append(parsed)
    for name in sorted(chains):
        chain = sorted(chains[name], key=lambda item: (item.end, item.file.location))
        report.problems.extend(_check_chain(chain, by_location, unreadable, start))

    # Without an end to the window, log files delivered after the newest digest ended are in no
    # digest yet (the next one will list them): counted, not reported. With an end, the window is
    # taken as closed: every log file in it must be listed (the newest digest cannot be shown
    # deleted otherwise, there being no later digest to name it).
    newest = None if end is not None else max(
        (parsed.end for parsed in selected if parsed.verified), default=None)
    for key in sorted(set(present_logs) - listed):
        when = log_time(key)
        if when is not None and newest is not None and when > newest:
            report.logs_not_yet_digested += 1
        elif when is None or ((start is None or when >= start) and (end is None or when <= end)):
            report.problems.append(Problem(LOG_ADDED, key, "a log file no digest lists: it was "
                                           "added after delivery, or its digest is missing"))
    return report


def _check_logs(parsed: _Parsed, read_log: Callable[[str], bytes | None],
                report: TrailReport) -> list[Problem]:
    problems: list[Problem] = []
    for entry in parsed.document["logFiles"]:
        report.logs_checked += 1
        if not isinstance(entry, dict) or not isinstance(entry.get("s3Object"), str):
            problems.append(Problem(DIGEST_INVALID, parsed.file.location,
                                    f"a logFiles entry without s3Object: {json.dumps(entry)[:200]}"))
            continue
        key = aws_logs_part(entry["s3Object"])
        if entry.get("hashAlgorithm") != LOG_HASH_ALGORITHM:
            problems.append(Problem(DIGEST_INVALID, parsed.file.location,
                                    f"{key}: hash algorithm {entry.get('hashAlgorithm')}; "
                                    f"CloudTrail uses {LOG_HASH_ALGORITHM}"))
            continue
        delivered = read_log(key)
        if delivered is None:
            problems.append(Problem(LOG_MISSING, key,
                                    f"listed by {parsed.file.location}, but absent (deleted)"))
            continue
        try:
            actual = hashlib.sha256(gunzip(delivered, key)).hexdigest()
        except DigestFormatError:
            actual = None
        if actual != entry.get("hashValue"):
            problems.append(Problem(LOG_ALTERED, key,
                                    f"its SHA-256 is not the hashValue {parsed.file.location} lists"
                                    + ("" if actual else " (it is not even gzip any more)")))
            continue
        report.logs_valid += 1
    return problems
