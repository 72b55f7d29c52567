"""CloudTrail digest validation (ztai_runtime/trail): a valid chain of digests over log files,
generated in the documented format with test keys, passes; every tampering is reported as its own
problem kind, naming the file."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.cloudtrail import START, Digest, Trail, build_trail, log_key, new_key, stamp
from ztai_runtime.trail import local
from ztai_runtime.trail.validation import (
    DIGEST_BAD_ALGORITHM,
    DIGEST_BAD_SIGNATURE,
    DIGEST_CHAIN_MISMATCH,
    DIGEST_GAP,
    DIGEST_MISSING,
    DIGEST_MOVED,
    DIGEST_NO_SIGNATURE,
    DIGEST_REORDERED,
    DIGEST_UNKNOWN_KEY,
    LOG_ADDED,
    LOG_ALTERED,
    LOG_MISSING,
    DigestFormatError,
    TrailReport,
    verify_trail,
)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture
def trail(tmp_path: Path, key: rsa.RSAPrivateKey) -> Trail:
    return build_trail(tmp_path / "copy", key)


def check(trail: Trail, **window: object) -> TrailReport:
    return verify_trail(local.load_digests(trail.root), local.load_public_keys(trail.keys_file),
                        local.log_reader(trail.root), local.present_logs(trail.root),
                        log_time=local.log_time, **window)  # type: ignore[arg-type]


def kinds(report: TrailReport) -> set[tuple[str, str]]:
    return {(problem.kind, problem.file) for problem in report.problems}


def test_a_valid_chain_passes(trail: Trail) -> None:
    report = check(trail)
    assert report.problems == []
    assert (report.digests_checked, report.digests_valid) == (4, 4)
    assert (report.logs_checked, report.logs_valid) == (8, 8)


def test_a_valid_chain_with_an_hour_without_logs_passes(tmp_path: Path,
                                                        key: rsa.RSAPrivateKey) -> None:
    report = check(build_trail(tmp_path, key, empty_hours=frozenset({1})))
    assert report.ok and report.logs_checked == 6


def test_an_altered_log_file_is_reported(trail: Trail) -> None:
    altered = trail.path(trail.logs[3])
    altered.write_bytes(gzip.compress(b'{"Records": []}'))
    assert kinds(check(trail)) == {(LOG_ALTERED, trail.logs[3])}


def test_a_log_file_recompressed_with_the_same_content_is_valid(trail: Trail) -> None:
    """The hash is of the uncompressed content, as the guide says: recompressing changes nothing."""
    path = trail.path(trail.logs[0])
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=0))
    assert check(trail).ok


def test_a_log_file_that_is_no_longer_gzip_is_altered(trail: Trail) -> None:
    trail.path(trail.logs[1]).write_bytes(b"plain text")
    assert kinds(check(trail)) == {(LOG_ALTERED, trail.logs[1])}


def test_a_deleted_log_file_is_reported(trail: Trail) -> None:
    trail.path(trail.logs[5]).unlink()
    assert kinds(check(trail)) == {(LOG_MISSING, trail.logs[5])}


def test_an_added_log_file_is_reported(trail: Trail) -> None:
    added = log_key(START + timedelta(minutes=50), "planted")
    trail.path(added).write_bytes(gzip.compress(b'{"Records": []}'))
    assert kinds(check(trail)) == {(LOG_ADDED, added)}


def test_an_altered_digest_is_reported(trail: Trail) -> None:
    digest = trail.digests[2]
    digest.document["logFiles"] = digest.document["logFiles"][:1]  # hide a log file
    trail.write_digest(digest.relative, digest.document, digest.signature)
    assert (DIGEST_BAD_SIGNATURE, digest.relative) in kinds(check(trail))


def test_a_deleted_digest_breaks_the_chain(trail: Trail) -> None:
    deleted = trail.digests[1]
    trail.path(deleted.relative).unlink()
    report = check(trail)
    assert (DIGEST_MISSING, deleted.document["digestS3Object"]) in kinds(report)
    # Its log files are now listed by no digest: each reported as added.
    assert {(LOG_ADDED, log) for log in trail.logs[2:4]} <= kinds(report)


def test_the_first_digest_deleted_is_reported(trail: Trail) -> None:
    trail.path(trail.digests[0].relative).unlink()
    assert (DIGEST_MISSING, trail.digests[0].document["digestS3Object"]) in kinds(check(trail))


def test_swapped_digest_files_are_reported_as_moved(trail: Trail) -> None:
    first, second = (trail.path(trail.digests[index].relative) for index in (1, 2))
    for suffix in ("", ".metadata.json"):
        a, b = first.with_name(first.name + suffix), second.with_name(second.name + suffix)
        data = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(data)
    found = kinds(check(trail))
    assert {(DIGEST_MOVED, trail.digests[1].relative), (DIGEST_MOVED, trail.digests[2].relative)} <= found


def test_a_digest_naming_an_older_digest_than_its_predecessor_is_reordered(trail: Trail) -> None:
    """Signed with the trail's key: the signature holds, the chain does not."""
    last = trail.digests[3]
    last.document["previousDigestS3Object"] = trail.digests[1].document["digestS3Object"]
    last.document["previousDigestSignature"] = trail.digests[1].signature
    trail.resign(3)
    assert kinds(check(trail)) == {(DIGEST_REORDERED, last.relative)}


def test_a_digest_signed_by_another_key_is_reported(trail: Trail, other_key: rsa.RSAPrivateKey) -> None:
    """Signed by another key but naming the trail's key: the signature does not verify."""
    trail.resign(2, key=other_key, fingerprint_of=trail.key)
    found = kinds(check(trail))
    assert (DIGEST_BAD_SIGNATURE, trail.digests[2].relative) in found


def test_a_digest_with_an_unknown_fingerprint_is_reported(trail: Trail,
                                                          other_key: rsa.RSAPrivateKey) -> None:
    trail.resign(3, key=other_key)
    assert kinds(check(trail)) == {(DIGEST_UNKNOWN_KEY, trail.digests[3].relative)}


def test_a_digest_without_signature_metadata_is_reported(trail: Trail) -> None:
    digest = trail.digests[1]
    trail.write_digest(digest.relative, digest.document, None)
    assert (DIGEST_NO_SIGNATURE, digest.relative) in kinds(check(trail))


def test_a_digest_without_a_sidecar_is_reported(trail: Trail) -> None:
    digest = trail.path(trail.digests[0].relative)
    digest.with_name(digest.name + ".metadata.json").unlink()
    assert (DIGEST_NO_SIGNATURE, trail.digests[0].relative) in kinds(check(trail))


def test_another_signature_algorithm_is_refused(trail: Trail) -> None:
    digest = trail.digests[1]
    trail.write_digest(digest.relative, digest.document, digest.signature, algorithm="SHA1withRSA")
    assert (DIGEST_BAD_ALGORITHM, digest.relative) in kinds(check(trail))


def test_a_replaced_previous_digest_breaks_the_previous_signature(trail: Trail) -> None:
    """Digest 1 re-created and signed with the trail's key (as if CloudTrail had signed another
    version): its own signature holds, but digest 2 names the original's signature."""
    trail.digests[1].document["logFiles"] = []
    trail.resign(1)
    found = kinds(check(trail))
    assert (DIGEST_CHAIN_MISMATCH, trail.digests[2].relative) in found


def test_a_restarted_chain_is_a_gap(trail: Trail) -> None:
    digest = trail.digests[2]
    digest.document.update(previousDigestS3Bucket=None, previousDigestS3Object=None,
                           previousDigestSignature=None)
    trail.resign(2)
    trail.relink(2)
    assert kinds(check(trail)) == {(DIGEST_GAP, digest.relative)}


def test_time_between_two_linked_digests_is_a_gap(trail: Trail) -> None:
    digest = trail.digests[2]
    digest.document["digestStartTime"] = stamp(START + timedelta(hours=2, minutes=30))
    trail.resign(2)
    trail.relink(2)
    assert kinds(check(trail)) == {(DIGEST_GAP, digest.relative)}


def test_a_window_checks_only_its_digests_and_logs(trail: Trail) -> None:
    """Outside the window, a deleted digest and an added log are not this run's business; the
    oldest digest in the window may name one before it."""
    trail.path(trail.digests[0].relative).unlink()
    report = check(trail, start=START + timedelta(hours=1), end=START + timedelta(hours=4))
    assert report.ok and report.digests_checked == 3
    trail.path(trail.logs[6]).unlink()
    assert kinds(check(trail, start=START + timedelta(hours=1))) == {(LOG_MISSING, trail.logs[6])}


def test_a_digest_that_is_not_gzip_cannot_be_read(trail: Trail) -> None:
    trail.path(trail.digests[0].relative).write_bytes(b"not gzip")
    with pytest.raises(DigestFormatError, match="not a gzip file"):
        local.load_digests(trail.root)


def test_a_digest_that_is_not_json_cannot_be_read(trail: Trail) -> None:
    trail.path(trail.digests[0].relative).write_bytes(gzip.compress(b"{not json"))
    with pytest.raises(DigestFormatError, match="not a JSON digest"):
        check(trail)


def test_a_sidecar_that_is_not_json_cannot_be_read(trail: Trail) -> None:
    digest = trail.path(trail.digests[0].relative)
    digest.with_name(digest.name + ".metadata.json").write_text("{")
    with pytest.raises(local.TrailInputError, match="head-object"):
        local.load_digests(trail.root)


def test_keys_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "keys.json"
    for text, message in (("[", "not a JSON key list"), ("{}", "no PublicKeyList"),
                          ('{"PublicKeyList": [{"Fingerprint": "ab"}]}', "Fingerprint and a Value"),
                          ('{"PublicKeyList": [{"Fingerprint": "ab", "Value": "bm90IGEga2V5"}]}',
                           "not a public key")):
        bad.write_text(text)
        with pytest.raises(local.TrailInputError, match=message):
            local.load_public_keys(bad)
    with pytest.raises(local.TrailInputError, match="no such file"):
        local.load_public_keys(tmp_path / "absent.json")


def test_a_pem_public_key_is_accepted(trail: Trail, key: rsa.RSAPrivateKey) -> None:
    from cryptography.hazmat.primitives import serialization
    document = json.loads(trail.keys_file.read_text())
    document["PublicKeyList"][0]["Value"] = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    trail.keys_file.write_text(json.dumps(document))
    assert check(trail).ok


def test_a_copy_without_awslogs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(local.TrailInputError, match="no AWSLogs folder"):
        local.load_digests(tmp_path)


def test_a_copy_synced_under_another_root_is_the_same(trail: Trail, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    shutil.copytree(trail.root, moved)
    assert verify_trail(local.load_digests(moved), local.load_public_keys(trail.keys_file),
                        local.log_reader(moved), local.present_logs(moved)).ok


def test_a_window_still_checks_the_link_to_the_digest_before_it(trail: Trail) -> None:
    """The digest before the window, when present, must be the one the window's oldest names."""
    trail.digests[0].document["logFiles"] = []
    trail.resign(0)
    found = kinds(check(trail, start=START + timedelta(hours=1, minutes=30)))
    assert found == {(DIGEST_CHAIN_MISMATCH, trail.digests[1].relative)}


def test_a_backfill_digest_is_checked_outside_the_chain(trail: Trail) -> None:
    """A late log file listed by a signed backfill digest is valid; the chain is unaffected; the
    backfill digest's own signature is still checked."""
    import copy
    import hashlib

    late = log_key(START + timedelta(minutes=55), "late")
    content = b'{"Records": [{"eventName": "PutObject"}]}'
    trail.path(late).write_bytes(gzip.compress(content))
    relative = trail.digests[0].relative.replace(".json.gz", "_backfill.json.gz")
    document = copy.deepcopy(trail.digests[0].document)
    document["digestS3Object"] = document["digestS3Object"].replace(".json.gz", "_backfill.json.gz")
    document["logFiles"] = [{"s3Bucket": "b", "s3Object": late, "hashAlgorithm": "SHA-256",
                             "hashValue": hashlib.sha256(content).hexdigest()}]
    trail.digests.append(Digest(relative, document, ""))
    trail.resign(len(trail.digests) - 1)
    report = check(trail)
    assert report.ok and report.digests_valid == 5
    trail.write_digest(relative, document, trail.digests[1].signature)
    assert kinds(check(trail)) == {(DIGEST_BAD_SIGNATURE, relative)}


def test_a_digest_without_required_fields_is_invalid_once(trail: Trail) -> None:
    from ztai_runtime.trail.validation import DIGEST_INVALID
    del trail.digests[1].document["digestPublicKeyFingerprint"]
    digest = trail.digests[1]
    trail.write_digest(digest.relative, digest.document, digest.signature)
    found = kinds(check(trail))
    assert (DIGEST_INVALID, digest.relative) in found
    assert DIGEST_MISSING not in {kind for kind, _ in found}


def test_a_log_key_outside_the_copy_is_not_read(trail: Trail) -> None:
    read = local.log_reader(trail.root)
    (trail.root.parent / "outside.json.gz").write_bytes(b"x")
    assert read("AWSLogs/../../outside.json.gz") is None
    assert read("AWSLogs/\x00") is None
    assert read(trail.logs[0]) is not None


def test_each_region_is_its_own_chain(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    """Two Regions' chains side by side: each starts with nulls, neither is a gap of the other."""
    from tests.support import cloudtrail
    first = build_trail(tmp_path, key, hours=2)
    original = cloudtrail.REGION
    try:
        cloudtrail.REGION = "us-east-1"
        second = build_trail(tmp_path, key, hours=2)
    finally:
        cloudtrail.REGION = original
    assert {digest.relative.split("/")[3] for digest in first.digests + second.digests} == {
        "eu-west-1", "us-east-1"}
    report = check(first)
    assert report.ok and report.digests_checked == 4


def test_a_log_delivered_after_the_newest_digest_is_not_yet_added(trail: Trail) -> None:
    late = log_key(START + timedelta(hours=4, minutes=10), "next-hour")
    trail.path(late).write_bytes(gzip.compress(b'{"Records": []}'))
    report = check(trail)
    assert report.ok and report.logs_not_yet_digested == 1
    # The newest digest deleted: without an end, its logs look not yet digested; with an end
    # (the window is closed) they are listed by no digest: added.
    trail.path(trail.digests[3].relative).unlink()
    assert check(trail).logs_not_yet_digested == 3
    closed = kinds(check(trail, end=START + timedelta(hours=4)))
    assert {(LOG_ADDED, trail.logs[6]), (LOG_ADDED, trail.logs[7])} <= closed


def test_a_forged_digest_outside_the_window_does_not_hide_an_added_log(
        trail: Trail, other_key: rsa.RSAPrivateKey) -> None:
    added = log_key(START + timedelta(hours=2, minutes=50), "planted")
    trail.path(added).write_bytes(gzip.compress(b'{"Records": []}'))
    trail.digests[0].document["logFiles"].append(
        {"s3Bucket": "b", "s3Object": added, "hashAlgorithm": "SHA-256", "hashValue": "00"})
    trail.resign(0, key=other_key, fingerprint_of=trail.key)  # forged: fails its signature
    found = kinds(check(trail, start=START + timedelta(hours=1, minutes=30)))
    assert (LOG_ADDED, added) in found
