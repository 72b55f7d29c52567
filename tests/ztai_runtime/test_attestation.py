"""Attestation: documents (parse, verify, every tamper), CMS CiphertextForRecipient, and the
attested decrypt of weights through the KMS stand-in, with every refusal ending without plaintext."""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import cbor2
import pytest
from asn1crypto import cms
from botocore.exceptions import ClientError, ParamValidationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from moto import mock_aws

from tests.support.attestation import (
    ZERO_PCR,
    Forgery,
    TestAttestationSource,
    TestPki,
    make_certificate,
    measurement,
    measurements,
    payload_fields,
    sign_document,
)
from tests.support.key_policy import Request, UnsupportedPolicyError, evaluate
from tests.support.kms_standin import KmsStandIn, build_ciphertext_for_recipient
from ztai_runtime.attestation import (
    AttestationError,
    AttestedKmsUnwrapper,
    CmsError,
    NsmAttestationSource,
    NsmError,
    RecipientKey,
    open_enveloped_data,
    pcrs_all_zero,
    verify_attestation_document,
)
from ztai_runtime.attestation.document import REQUIRED_FIELDS
from ztai_runtime.attestation.nsm import (
    NSM_IOCTL_RAW,
    decode_attestation_response,
    encode_attestation_request,
)
from ztai_runtime.weights import (
    AuthenticationError,
    KmsDataKeySource,
    KmsUnwrapper,
    UnwrapError,
    decrypt_stream,
    encrypt_stream,
)
from ztai_runtime.weights.format import read_header

ROLE = "arn:aws:iam::123456789012:role/zero-trust-ai-inference"
CONTEXT = {"model": "digits-classifier", "version": "3"}
PCRS = measurements()


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return TestPki.create()


@pytest.fixture(scope="module")
def recipient() -> RecipientKey:
    return RecipientKey()  # RSA-2048 keygen once for the module


def attest(pki: TestPki, recipient: RecipientKey, **options: Any) -> bytes:
    return TestAttestationSource(pki, PCRS, **options).attest(recipient.public_key_der, b"user", b"nonce")


def refused(reason: str, document: bytes, pki: TestPki, **options: Any) -> AttestationError:
    with pytest.raises(AttestationError) as caught:
        verify_attestation_document(document, pki.root_der, **options)
    assert caught.value.reason == reason, str(caught.value)
    return caught.value


# -- documents: the good one ------------------------------------------------------------------------

def test_a_document_built_like_the_nsm_verifies(pki: TestPki, recipient: RecipientKey) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    data = attest(pki, recipient)
    assert data[:7] == bytes.fromhex("8444a1013822a0")  # untagged array(4), bstr {1: -35}, {}
    document = verify_attestation_document(data, pki.root_der)
    assert document.module_id.startswith("i-") and document.digest == "SHA384"
    assert dict(document.pcrs) == PCRS and all(len(value) == 48 for value in document.pcrs.values())
    assert document.pcr_hex(0) == PCRS[0].hex() and document.pcr_hex(31) is None
    assert (document.public_key, document.user_data, document.nonce) == (recipient.public_key_der,
                                                                        b"user", b"nonce")
    assert document.cabundle == tuple(pki.cabundle) and before <= document.timestamp <= datetime.now(UTC)
    assert not document.debug_mode
    with pytest.raises(TypeError):
        document.pcrs[0] = ZERO_PCR  # type: ignore[index]


def test_absent_optional_fields_are_null_as_the_nsm_writes_them(pki: TestPki) -> None:
    data = sign_document(payload_fields(pki, PCRS), pki.leaf.key)
    document = verify_attestation_document(data, pki.root_der)
    assert (document.public_key, document.user_data, document.nonce) == (None, None, None)
    fields = payload_fields(pki, PCRS)
    del fields["public_key"], fields["user_data"], fields["nonce"]
    assert verify_attestation_document(sign_document(fields, pki.leaf.key), pki.root_der).nonce is None


def test_the_tagged_form_is_accepted_and_other_tags_are_not(pki: TestPki, recipient: RecipientKey) -> None:
    tagged = attest(pki, recipient, tagged=True)
    assert tagged[0] == 0xD2  # tag 18
    assert verify_attestation_document(tagged, pki.root_der).nonce == b"nonce"
    retagged = bytes(cbor2.dumps(cbor2.CBORTag(98, cbor2.loads(attest(pki, recipient)))))
    refused("malformed", retagged, pki)


# -- documents: every tamper -------------------------------------------------------------------------

@pytest.mark.parametrize(("forgery", "reason"), [
    ("payload", "signature"), ("signature", "signature"), ("foreign-chain", "chain"),
    ("expired-leaf", "expired")])
def test_forged_documents_are_refused(pki: TestPki, recipient: RecipientKey, forgery: Forgery,
                                      reason: str) -> None:
    refused(reason, attest(pki, recipient, forgery=forgery), pki)


def test_every_payload_byte_is_covered_by_the_signature(pki: TestPki, recipient: RecipientKey) -> None:
    data = attest(pki, recipient)
    payload = cbor2.loads(data)[2]
    start = data.index(payload)
    for position in range(start, start + len(payload), 97):  # a spread of positions, all fields
        tampered = bytearray(data)
        tampered[position] ^= 0x40
        with pytest.raises(AttestationError):
            verify_attestation_document(bytes(tampered), pki.root_der)


def test_a_document_from_an_expired_leaf_or_outside_its_validity_is_refused(
        pki: TestPki, recipient: RecipientKey) -> None:
    data = attest(pki, recipient)
    refused("expired", data, pki, now=datetime.now(UTC) + timedelta(hours=4))
    # Signed while the leaf was valid, but dated before it: the timestamp is checked too.
    early = sign_document(payload_fields(pki, PCRS, timestamp=datetime.now(UTC) - timedelta(hours=1)),
                          pki.leaf.key)
    refused("expired", early, pki)


def test_freshness_when_asked_and_no_future_documents(pki: TestPki, recipient: RecipientKey) -> None:
    old = attest(pki, recipient, clock=lambda: datetime.now(UTC) - timedelta(minutes=10))
    verify_attestation_document(old, pki.root_der)  # no max_age: accepted
    refused("stale", old, pki, max_age=timedelta(minutes=5))
    future = attest(pki, recipient, clock=lambda: datetime.now(UTC) + timedelta(minutes=20))
    refused("stale", future, pki)


def test_a_foreign_root_is_refused_even_with_a_consistent_chain(pki: TestPki,
                                                                recipient: RecipientKey) -> None:
    foreign = TestPki.create(name="foreign.nitro-enclaves")
    data = attest(foreign, recipient)
    verify_attestation_document(data, foreign.root_der)  # consistent in itself
    error = refused("chain", data, pki)
    assert "not the trusted root" in str(error)


def test_the_chain_must_link_leaf_to_root(pki: TestPki, recipient: RecipientKey) -> None:
    foreign = TestPki.create(name="foreign.nitro-enclaves")
    # Our root first, but a foreign intermediate and leaf: the intermediate is not issued by it.
    fields = payload_fields(foreign, PCRS)
    fields["cabundle"] = [pki.root_der, foreign.cabundle[1]]
    refused("chain", sign_document(fields, foreign.leaf.key), pki)
    # Bundle in the wrong order (intermediate first).
    fields = payload_fields(pki, PCRS)
    fields["cabundle"] = list(reversed(pki.cabundle))
    refused("chain", sign_document(fields, pki.leaf.key), pki)


def test_ca_constraints_are_enforced(pki: TestPki) -> None:
    now = datetime.now(UTC)
    # An intermediate that is not a CA issues the leaf.
    fake_key = ec.generate_private_key(ec.SECP384R1())
    not_ca = make_certificate("region.not-a-ca", fake_key, pki.root.subject, pki.root_key,
                              now - timedelta(days=1), now + timedelta(days=1), ca=False)
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    leaf = make_certificate("instance", leaf_key, not_ca.subject, fake_key, now - timedelta(hours=1),
                            now + timedelta(hours=1), ca=False)
    fields = payload_fields(pki, PCRS)
    fields["certificate"] = leaf.public_bytes(serialization.Encoding.DER)
    fields["cabundle"] = [pki.root_der, not_ca.public_bytes(serialization.Encoding.DER)]
    assert "not a CA" in str(refused("chain", sign_document(fields, leaf_key), pki))
    # A signing certificate that is itself a CA.
    ca_leaf = make_certificate("instance", leaf_key, pki.intermediate.subject, pki.intermediate_key,
                               now - timedelta(hours=1), now + timedelta(hours=1), ca=True)
    fields["certificate"] = ca_leaf.public_bytes(serialization.Encoding.DER)
    fields["cabundle"] = pki.cabundle
    assert "not an end entity" in str(refused("chain", sign_document(fields, leaf_key), pki))
    # pathLen 0 on the intermediate forbids another CA below it.
    sub_key = ec.generate_private_key(ec.SECP384R1())
    sub_ca = make_certificate("zone", sub_key, pki.intermediate.subject, pki.intermediate_key,
                              now - timedelta(days=1), now + timedelta(days=1), ca=True)
    leaf = make_certificate("instance", leaf_key, sub_ca.subject, sub_key, now - timedelta(hours=1),
                            now + timedelta(hours=1), ca=False)
    fields["certificate"] = leaf.public_bytes(serialization.Encoding.DER)
    fields["cabundle"] = [*pki.cabundle, sub_ca.public_bytes(serialization.Encoding.DER)]
    assert "allows 0 CA(s)" in str(refused("chain", sign_document(fields, leaf_key), pki))
    # Non-critical basicConstraints on a CA.
    lax = make_certificate("region.lax", sub_key, pki.root.subject, pki.root_key, now - timedelta(days=1),
                           now + timedelta(days=1), ca=True, basic_critical=False)
    leaf = make_certificate("instance", leaf_key, lax.subject, sub_key, now - timedelta(hours=1),
                            now + timedelta(hours=1), ca=False)
    fields["certificate"] = leaf.public_bytes(serialization.Encoding.DER)
    fields["cabundle"] = [pki.root_der, lax.public_bytes(serialization.Encoding.DER)]
    refused("chain", sign_document(fields, leaf_key), pki)


def test_a_document_signed_by_a_key_other_than_the_leafs_is_refused(pki: TestPki) -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    refused("signature", sign_document(payload_fields(pki, PCRS), other), pki)


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_a_missing_or_null_required_field_is_refused(pki: TestPki, field: str) -> None:
    fields = payload_fields(pki, PCRS)
    del fields[field]
    assert field in str(refused("malformed", sign_document(fields, pki.leaf.key), pki))
    fields = payload_fields(pki, PCRS)
    fields[field] = None
    refused("malformed", sign_document(fields, pki.leaf.key), pki)


@pytest.mark.parametrize(("change", "reason"), [
    ({"digest": "SHA256"}, "algorithm"),
    ({"module_id": ""}, "malformed"),
    ({"timestamp": 0}, "malformed"),
    ({"timestamp": "1700000000000"}, "malformed"),
    ({"pcrs": {}}, "malformed"),
    ({"pcrs": {**PCRS, 1: measurement("x")[:32]}}, "malformed"),  # short PCR
    ({"pcrs": {**PCRS, 2: measurement("x") + b"\x00"}}, "malformed"),
    ({"pcrs": {**PCRS, 32: measurement("x")}}, "malformed"),  # index out of range
    ({"pcrs": {"0": measurement("x")}}, "malformed"),
    ({"cabundle": []}, "malformed"),
    ({"cabundle": "root"}, "malformed"),
    ({"public_key": b""}, "malformed"),
    ({"user_data": b"u" * 513}, "malformed"),
    ({"nonce": "text"}, "malformed"),
    ({"unexpected": b"x"}, "malformed"),
])
def test_field_contents_are_checked_after_a_valid_signature(pki: TestPki, change: dict[str, Any],
                                                            reason: str) -> None:
    fields = {**payload_fields(pki, PCRS, public_key=b"k"), **change}
    refused(reason, sign_document(fields, pki.leaf.key), pki)


@pytest.mark.parametrize(("protected", "unprotected"), [
    ({1: -7}, {}),  # ES256
    ({}, {1: -35}),  # alg only unprotected
    ({1: -35, 2: [99]}, {}),  # crit
    (b"", {}),  # no protected header at all
])
def test_only_es384_in_the_protected_header_is_accepted(pki: TestPki, protected: Any,
                                                        unprotected: dict[int, Any]) -> None:
    data = sign_document(payload_fields(pki, PCRS), pki.leaf.key, protected=protected,
                         unprotected=unprotected)
    refused("algorithm", data, pki)


def test_structural_damage_is_refused(pki: TestPki, recipient: RecipientKey) -> None:
    data = attest(pki, recipient)
    refused("malformed", data + b"\x00", pki)  # trailing byte
    refused("malformed", data[:-10], pki)  # truncated
    refused("malformed", b"", pki)
    refused("malformed", b"\xff" * 10, pki)
    refused("malformed", bytes(cbor2.dumps(cbor2.loads(data)[:3])), pki)  # 3 items
    refused("malformed", bytes(cbor2.dumps({"not": "cose"})), pki)
    refused("malformed", b"\x84" + b"\x00" * (70 * 1024), pki)  # oversized
    protected, unprotected, payload, signature = cbor2.loads(data)
    refused("signature", bytes(cbor2.dumps([protected, unprotected, payload, signature[:64]])), pki)
    refused("malformed", bytes(cbor2.dumps([protected, unprotected, None, signature])), pki)
    refused("malformed", bytes(cbor2.dumps([protected, [], payload, signature])), pki)


def test_duplicate_keys_and_indefinite_lengths_are_refused(pki: TestPki) -> None:
    fields = payload_fields(pki, PCRS)
    pairs = [bytes(cbor2.dumps(key)) + bytes(cbor2.dumps(value)) for key, value in fields.items()]
    duplicated = bytes([0xA0 + len(pairs) + 1]) + b"".join(pairs) + pairs[0]
    refused("malformed", sign_document(duplicated, pki.leaf.key), pki)
    indefinite = b"\xbf" + b"".join(pairs) + b"\xff"
    refused("malformed", sign_document(indefinite, pki.leaf.key), pki)


def test_cbor_tags_and_types_documents_do_not_use_are_refused(pki: TestPki) -> None:
    for change in ({"timestamp": cbor2.CBORTag(1, 1_700_000_000)},  # decoded to a datetime
                   {"user_data": 1.5}, {"nonce": cbor2.CBORTag(258, [b"a"])}):  # float, set
        document = sign_document({**payload_fields(pki, PCRS), **change}, pki.leaf.key)
        assert "type documents do not use" in str(refused("malformed", document, pki))
    refused("malformed", b"\xd8\x1c\x81\xd8\x1d\x00", pki)  # an array containing itself (tags 28/29)


def test_debug_mode_documents_are_recognised(pki: TestPki) -> None:
    debug = {**PCRS, 0: ZERO_PCR, 1: ZERO_PCR, 2: ZERO_PCR}
    document = verify_attestation_document(sign_document(payload_fields(pki, debug), pki.leaf.key),
                                           pki.root_der)
    assert document.debug_mode and pcrs_all_zero(document.pcrs)
    assert pcrs_all_zero({**PCRS, 2: ZERO_PCR}) and not pcrs_all_zero(PCRS)
    assert not pcrs_all_zero({8: ZERO_PCR})  # unused PCRs are zero in every document


# -- NSM interface -------------------------------------------------------------------------------------

def test_nsm_request_and_response_encoding() -> None:
    assert NSM_IOCTL_RAW == 0xC0200A00  # _IOWR(0x0A, 0, struct nsm_raw of 32 bytes)
    request = cbor2.loads(encode_attestation_request(b"key", None, b"n"))
    assert request == {"Attestation": {"user_data": None, "nonce": b"n", "public_key": b"key"}}
    assert decode_attestation_response(bytes(cbor2.dumps({"Attestation": {"document": b"doc"}}))
                                       + b"\x00" * 100) == b"doc"
    with pytest.raises(NsmError, match="InvalidArgument"):
        decode_attestation_response(bytes(cbor2.dumps({"Error": "InvalidArgument"})))
    with pytest.raises(NsmError):
        decode_attestation_response(b"\xff\xff")
    with pytest.raises(ValueError, match="at most 512"):
        encode_attestation_request(b"key", b"u" * 513, None)
    with pytest.raises(ValueError, match="public_key is required"):
        encode_attestation_request(b"", None, None)


def test_the_nsm_source_says_clearly_where_it_works(tmp_path: Any) -> None:
    with pytest.raises(NsmError, match="only inside a Nitro Enclave"):
        NsmAttestationSource(str(tmp_path / "no-nsm")).attest(b"key", None, None)


# -- CMS CiphertextForRecipient --------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["ber", "der"])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 32, 4096])
def test_cms_round_trip(recipient: RecipientKey, encoding: Any, size: int) -> None:
    plaintext = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    envelope = build_ciphertext_for_recipient(plaintext, recipient.public_key_der, encoding=encoding,
                                              chunk=1000 if size < 4096 else 7)
    assert recipient.open(envelope) == plaintext


def test_cms_rid_is_reported_not_enforced(recipient: RecipientKey) -> None:
    ours = build_ciphertext_for_recipient(b"k" * 32, recipient.public_key_der)
    # RecipientKey keeps its private key; open_enveloped_data is tested with a key held here.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    matching = open_enveloped_data(build_ciphertext_for_recipient(b"k" * 32, public), key)
    assert matching.recipient_matches_rfc5280 and matching.plaintext == b"k" * 32
    other = open_enveloped_data(build_ciphertext_for_recipient(b"k" * 32, public, rid=b"\x01" * 20), key)
    assert not other.recipient_matches_rfc5280 and other.plaintext == b"k" * 32
    with pytest.raises(CmsError, match="does not decrypt with this enclave's key"):
        open_enveloped_data(ours, key)  # wrapped to another key


def test_cms_for_another_key_is_refused(recipient: RecipientKey) -> None:
    other = RecipientKey()
    envelope = build_ciphertext_for_recipient(b"k" * 32, other.public_key_der)
    with pytest.raises(CmsError, match="does not decrypt with this enclave's key"):
        recipient.open(envelope)


@pytest.mark.parametrize("encoding", ["ber", "der"])
def test_truncated_cms_is_refused(recipient: RecipientKey, encoding: Any) -> None:
    envelope = build_ciphertext_for_recipient(b"k" * 32, recipient.public_key_der, encoding=encoding)
    for length in (0, 1, 10, 40, len(envelope) // 2, len(envelope) - 17, len(envelope) - 1):
        with pytest.raises(CmsError):
            recipient.open(envelope[:length])
    with pytest.raises(CmsError):
        recipient.open(envelope + b"\x00")


def test_bad_padding_is_refused_with_the_same_message(recipient: RecipientKey) -> None:
    envelope = bytearray(build_ciphertext_for_recipient(b"k" * 32, recipient.public_key_der, encoding="der"))
    # DER: the 48 ciphertext bytes end the structure. Flipping the last byte of the middle block
    # turns the final pad byte 0x10 into 0x11: invalid PKCS#7.
    envelope[-17] ^= 0x01
    with pytest.raises(CmsError, match="does not decrypt with this enclave's key"):
        recipient.open(bytes(envelope))


def _mutated(recipient: RecipientKey, change: str) -> bytes:
    info = cms.ContentInfo.load(build_ciphertext_for_recipient(b"k" * 32, recipient.public_key_der,
                                                               encoding="der"))
    enveloped = info["content"]
    transport = enveloped["recipient_infos"][0].chosen
    if change == "oaep-sha1":
        transport["key_encryption_algorithm"] = {"algorithm": "rsaes_oaep"}
    elif change == "pkcs1v15":
        transport["key_encryption_algorithm"] = {"algorithm": "rsaes_pkcs1v15"}
    elif change == "aes128":
        enveloped["encrypted_content_info"]["content_encryption_algorithm"] = {
            "algorithm": "aes128_cbc", "parameters": b"\x00" * 16}
    elif change == "two-recipients":
        enveloped["recipient_infos"] = [enveloped["recipient_infos"][0], enveloped["recipient_infos"][0]]
    elif change == "issuer-serial":
        transport["rid"] = cms.RecipientIdentifier(name="issuer_and_serial_number", value={
            "issuer": cms.Name.build({"common_name": "x"}), "serial_number": 1})
    elif change == "version":
        enveloped["version"] = "v0"
    elif change == "short-iv":
        enveloped["encrypted_content_info"]["content_encryption_algorithm"] = {
            "algorithm": "aes256_cbc", "parameters": b"\x00" * 8}
    elif change == "no-content":
        enveloped["encrypted_content_info"]["encrypted_content"] = None
    elif change == "signed-data":
        return bytes(cms.ContentInfo({"content_type": "signed_data", "content": {
            "version": "v1", "digest_algorithms": [], "encap_content_info": {"content_type": "data"},
            "signer_infos": []}}).dump())
    return bytes(info.dump(force=True))


@pytest.mark.parametrize(("change", "message"), [
    ("oaep-sha1", "SHA-1 defaults"), ("pkcs1v15", "expected RSAES-OAEP"), ("aes128", "AES-256-CBC"),
    ("two-recipients", "exactly one"), ("issuer-serial", "expected subjectKeyIdentifier"),
    ("version", "version v0"),
    ("short-iv", "16-byte IV"), ("no-content", "encrypted content"), ("signed-data", "envelopedData")])
def test_cms_shapes_other_than_kms_are_refused(recipient: RecipientKey, change: str, message: str) -> None:
    with pytest.raises(CmsError, match=message):
        recipient.open(_mutated(recipient, change))


def test_the_recipient_key_does_not_leave_its_object(recipient: RecipientKey) -> None:
    assert "PRIVATE" not in repr(recipient) and recipient.subject_key_identifier.hex() in repr(recipient)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(recipient)
    assert not [name for name in vars(recipient) if "private" in name.lower() and not name.startswith("_")]


# -- key policy evaluation -----------------------------------------------------------------------------

def attested_policy(pcrs: Mapping[int, bytes] = PCRS, *, role: str = ROLE,
                    indices: tuple[int, ...] = (0, 1, 2), deny_without_attestation: bool = True,
                    conditions: bool = True) -> str:
    """A key policy in the attested-decryption shape (what KeyHierarchy renders for the weights key)."""
    allow: dict[str, Any] = {"Sid": "DecryptWithAttestation", "Effect": "Allow", "Principal": {"AWS": role},
                             "Action": ["kms:Decrypt"], "Resource": "*"}
    if conditions:
        allow["Condition"] = {"StringEqualsIgnoreCase": {
            f"kms:RecipientAttestation:PCR{index}": pcrs[index].hex().upper() for index in indices}}
    statements: list[dict[str, Any]] = [
        {"Sid": "AdministerWithoutUse", "Effect": "Allow",
         "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": ["kms:DescribeKey"],
         "Resource": "*"},
        allow]
    if deny_without_attestation:
        statements.append({"Sid": "DenyWithoutAttestation", "Effect": "Deny", "Principal": {"AWS": role},
                           "Action": ["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
                           "Resource": "*",
                           "Condition": {"Null": {"kms:RecipientAttestation:PCR0": "true"}}})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def decide(policy: str, context: Mapping[str, str], action: str = "kms:Decrypt",
           principal: str = ROLE) -> str:
    key = "arn:aws:kms:eu-west-1:123456789012:key/k"
    return evaluate(policy, Request(principal, action, key, context)).effect


def test_policy_evaluation_follows_iam_semantics() -> None:
    policy = attested_policy()
    attested = {f"kms:RecipientAttestation:PCR{index}": PCRS[index].hex() for index in range(3)}
    assert decide(policy, attested) == "allow"
    assert decide(policy, {key.upper(): value for key, value in attested.items()}) == "allow"  # key names
    assert decide(policy, {**attested, "kms:RecipientAttestation:PCR1": "00" * 48}) == "implicit-deny"
    assert decide(policy, {}) == "explicit-deny"
    assert decide(policy, {}, action="kms:ReEncryptFrom") == "explicit-deny"
    assert decide(policy, {}, action="kms:DescribeKey") == "allow"  # the account delegates to IAM
    assert decide(policy, attested, principal="arn:aws:iam::999999999999:role/other") == "implicit-deny"

    def one(condition: dict[str, Any], context: Mapping[str, str]) -> str:
        return decide(json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*",
                                                 "Resource": "*", "Condition": condition}]}), context)

    assert one({"StringNotEquals": {"k": "a"}}, {}) == "allow"  # absent key: negated operators hold
    assert one({"StringEquals": {"k": "a"}}, {}) == "implicit-deny"
    assert one({"StringEqualsIfExists": {"k": "a"}}, {}) == "allow"
    assert one({"StringEquals": {"k": ["a", "b"]}}, {"k": "b"}) == "allow"
    assert one({"StringEquals": {"k": "A"}}, {"k": "a"}) == "implicit-deny"
    assert one({"StringNotEqualsIgnoreCase": {"k": "A"}}, {"k": "a"}) == "implicit-deny"
    assert one({"Null": {"k": "false"}}, {"k": "x"}) == "allow"
    assert one({"Bool": {"aws:MultiFactorAuthPresent": True}}, {}) == "implicit-deny"
    log_group = {"k": "arn:aws:logs:r:log-group:xy"}
    assert one({"ArnLike": {"k": "arn:aws:logs:*:log-group:x*"}}, log_group) == "allow"
    for unsupported in ({"ForAllValues:StringEquals": {"k": "a"}}, {"NumericLessThan": {"k": "1"}},
                        {"StringEquals": {"k": "${aws:username, 'nobody'}"}}):
        with pytest.raises(UnsupportedPolicyError):
            one(unsupported, {"k": "a"})
    with pytest.raises(UnsupportedPolicyError, match="NotPrincipal"):
        decide(json.dumps({"Statement": [{"Effect": "Deny", "NotPrincipal": {"AWS": ROLE},
                                          "Action": "kms:*", "Resource": "*"}]}), {})


def test_negated_operators_hold_without_the_key_and_deny_every_value_not_listed() -> None:
    # What the per-PCR denies of the model key rely on (IAM: a negated operator is true when the
    # key is absent; several values of one negated operator are NORed).
    pinned = PCRS[0].hex()
    allow = {"Sid": "Allow", "Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}

    def with_deny(condition: dict[str, Any], context: Mapping[str, str]) -> str:
        deny = {"Sid": "Deny", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt",
                "Resource": "*", "Condition": condition}
        return decide(json.dumps({"Statement": [allow, deny]}), context)

    unless = {"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": pinned}}
    assert with_deny(unless, {}) == "explicit-deny"  # no attestation at all
    assert with_deny(unless, {"kms:RecipientAttestation:PCR0": "ee" * 48}) == "explicit-deny"
    assert with_deny(unless, {"kms:RecipientAttestation:PCR0": pinned.upper()}) == "allow"  # case
    assert with_deny(unless, {"kms:RecipientAttestation:PCR1": pinned}) == "explicit-deny"  # other key
    listed = {"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": ["aa" * 48, pinned]}}
    assert with_deny(listed, {"kms:RecipientAttestation:PCR0": pinned}) == "allow"  # NOR: one matches
    assert with_deny(listed, {"kms:RecipientAttestation:PCR0": "ee" * 48}) == "explicit-deny"
    if_exists = {"StringNotEqualsIgnoreCaseIfExists": {"kms:RecipientAttestation:PCR0": pinned}}
    assert with_deny(if_exists, {}) == "explicit-deny"
    assert with_deny({"StringNotEquals": {"kms:RecipientAttestation:PCR0": pinned}},
                     {"kms:RecipientAttestation:PCR0": pinned.upper()}) == "explicit-deny"  # case-sensitive
    # Bool, as the break-glass statement uses it: the key absent (long-term keys) or false is no MFA.
    mfa = json.dumps({"Statement": [{**allow, "Condition": {
        "Bool": {"aws:MultiFactorAuthPresent": "true"}}}]})
    assert decide(mfa, {}) == "implicit-deny"
    assert decide(mfa, {"aws:MultiFactorAuthPresent": "false"}) == "implicit-deny"
    assert decide(mfa, {"aws:MultiFactorAuthPresent": "true"}) == "allow"


# -- the attested decrypt, end to end at library level --------------------------------------------------

@dataclass
class Weights:
    kms: Any
    key_arn: str
    message: bytes
    plaintext: bytes
    pki: TestPki
    recipient: RecipientKey

    def standin(self, policy: str | None = None, **options: Any) -> KmsStandIn:
        policies = {self.key_arn: policy if policy is not None else attested_policy()}
        return KmsStandIn(self.kms, policies, self.pki.root_der, ROLE, **options)

    def unwrapper(self, kms: Any, pcrs: Mapping[int, bytes] = PCRS, **source: Any) -> AttestedKmsUnwrapper:
        return AttestedKmsUnwrapper(kms, TestAttestationSource(self.pki, pcrs, **source),
                                    key_arns=[self.key_arn], recipient=self.recipient)

    def decrypt(self, unwrapper: Any) -> bytes:
        sink = io.BytesIO()
        try:
            decrypt_stream(io.BytesIO(self.message), sink, unwrapper, expected_context=CONTEXT)
        except UnwrapError:
            assert sink.getvalue() == b""  # refused before a byte of plaintext
            raise
        return sink.getvalue()


@pytest.fixture(scope="module")
def weights(pki: TestPki, recipient: RecipientKey) -> Iterator[Weights]:
    """One moto KMS key and one encrypted message for the module: the tests only decrypt."""
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "eu-west-1"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        kms = boto3.client("kms", region_name="eu-west-1")
        key_arn = kms.create_key()["KeyMetadata"]["Arn"]
        plaintext = bytes(range(256)) * 1000
        sink = io.BytesIO()
        encrypt_stream(io.BytesIO(plaintext), sink, KmsDataKeySource(kms, key_arn), CONTEXT,
                       frame_length=64 * 1024)
        yield Weights(kms, key_arn, sink.getvalue(), plaintext, pki, recipient)


def no_plaintext_left(standin: KmsStandIn) -> None:
    assert not [r for r in standin.requests if r.result in ("plaintext", "ciphertext-for-recipient")]


def test_an_attested_enclave_decrypts_the_weights(weights: Weights) -> None:
    standin = weights.standin()
    assert weights.decrypt(weights.unwrapper(standin)) == weights.plaintext
    [outcome] = standin.requests
    assert (outcome.key_arn, outcome.recipient, outcome.result) == (weights.key_arn, True,
                                                                     "ciphertext-for-recipient")


def test_pcr8_and_image_sha384_conditions_and_the_der_form(weights: Weights) -> None:
    pcrs = measurements(signed=True)
    policy = json.loads(attested_policy(pcrs, indices=(0, 1, 2, 8)))
    policy["Statement"][1]["Condition"]["StringEquals"] = {
        "kms:RecipientAttestation:ImageSha384": pcrs[0].hex()}
    standin = weights.standin(json.dumps(policy), cms_encoding="der")
    assert weights.decrypt(weights.unwrapper(standin, pcrs)) == weights.plaintext
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(weights.unwrapper(standin, measurements(signed=False)))  # PCR8 absent


@pytest.mark.parametrize(("case", "pcrs", "source", "code"), [
    ("wrong PCR0", {**PCRS, 0: measurement("other-image")}, {}, "AccessDeniedException"),
    ("wrong PCR2", {**PCRS, 2: measurement("other-app")}, {}, "AccessDeniedException"),
    ("all-zero PCRs", {index: ZERO_PCR for index in range(16)}, {}, "AccessDeniedException"),
    ("tampered document", PCRS, {"forgery": "payload"}, "ValidationException"),
    ("forged signature", PCRS, {"forgery": "signature"}, "ValidationException"),
    ("expired certificate", PCRS, {"forgery": "expired-leaf"}, "ValidationException"),
    ("foreign certificate chain", PCRS, {"forgery": "foreign-chain"}, "ValidationException"),
    ("stale document", PCRS, {"clock": lambda: datetime.now(UTC) - timedelta(minutes=10)},
     "ValidationException"),
])
def test_refusals_end_without_plaintext(weights: Weights, case: str, pcrs: Mapping[int, bytes],
                                        source: dict[str, Any], code: str) -> None:
    standin = weights.standin()
    with pytest.raises(UnwrapError, match=code):
        weights.decrypt(weights.unwrapper(standin, pcrs, **source))
    assert [r.result for r in standin.requests] == [code], case
    no_plaintext_left(standin)


def test_zero_pcrs_are_refused_even_if_a_policy_pins_zeros(weights: Weights) -> None:
    zeros = {index: ZERO_PCR for index in range(16)}
    standin = weights.standin(attested_policy(zeros))
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(weights.unwrapper(standin, zeros))
    assert "debug-mode" in standin.requests[0].detail


def test_a_request_without_recipient_gets_no_plaintext_under_the_component_policy(weights: Weights) -> None:
    # The parent instance holds the same role credentials and simply calls Decrypt.
    standin = weights.standin()
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(KmsUnwrapper(standin, key_arns=[weights.key_arn]))
    assert "explicit deny" in standin.requests[0].detail
    # The allow alone (no deny statement) still releases nothing without a document: implicit deny.
    allow_only = weights.standin(attested_policy(deny_without_attestation=False))
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(KmsUnwrapper(allow_only, key_arns=[weights.key_arn]))
    no_plaintext_left(standin)
    no_plaintext_left(allow_only)


def test_a_policy_without_attestation_conditions_would_hand_the_parent_plaintext(weights: Weights) -> None:
    # Why the conditions and the deny matter: with a plain allow, KMS (and the stand-in) answers a
    # Decrypt without Recipient with the plaintext data key, so the parent decrypts the weights.
    unconditioned = weights.standin(attested_policy(conditions=False, deny_without_attestation=False))
    assert weights.decrypt(KmsUnwrapper(unconditioned, key_arns=[weights.key_arn])) == weights.plaintext
    assert unconditioned.requests[0].result == "plaintext"
    # The deny-without-attestation statement closes that road even next to an unconditioned allow.
    with_deny = weights.standin(attested_policy(conditions=False))
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(KmsUnwrapper(with_deny, key_arns=[weights.key_arn]))
    no_plaintext_left(with_deny)


def test_a_key_without_policy_or_with_an_unknown_operator_is_refused(weights: Weights) -> None:
    nothing = KmsStandIn(weights.kms, {}, weights.pki.root_der, ROLE)
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(weights.unwrapper(nothing))
    policy = json.loads(attested_policy())
    policy["Statement"][1]["Condition"] = {
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "model"}}
    unknown = weights.standin(json.dumps(policy))
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(weights.unwrapper(unknown))
    assert "refused closed" in unknown.requests[0].detail
    no_plaintext_left(nothing)
    no_plaintext_left(unknown)


def test_the_encryption_context_still_binds(weights: Weights) -> None:
    standin = weights.standin()
    unwrapper = weights.unwrapper(standin)
    header, _ = read_header(io.BytesIO(weights.message))
    with pytest.raises(UnwrapError, match="InvalidCiphertextException"):
        unwrapper.unwrap(header.encrypted_data_keys, {**CONTEXT, "version": "4"})
    no_plaintext_left(standin)


class _Answering:
    """A KMS client that answers Decrypt with whatever it is given (a lying or broken KMS)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def decrypt(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return self.answer


def test_an_answer_with_plaintext_or_without_envelope_is_refused(weights: Weights) -> None:
    arn = weights.key_arn
    answers: list[tuple[dict[str, Any], str]] = [
        ({"KeyId": arn, "Plaintext": b"k" * 32, "CiphertextForRecipient": b"x"}, "returned Plaintext"),
        ({"KeyId": arn}, "without CiphertextForRecipient"),
        ({"KeyId": arn, "CiphertextForRecipient": b"\x30\x03\x02\x01\x00"}, "well-formed"),
    ]
    for answer, message in answers:
        kms = _Answering(answer)
        with pytest.raises(UnwrapError, match=message):
            weights.decrypt(weights.unwrapper(kms))
        [call] = kms.calls
        assert call["Recipient"]["KeyEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
        document = verify_attestation_document(call["Recipient"]["AttestationDocument"], weights.pki.root_der)
        assert document.public_key == weights.recipient.public_key_der
    other_key = _Answering({"KeyId": arn.replace("key/", "key/0"), "CiphertextForRecipient": b"x"})
    with pytest.raises(UnwrapError, match="another key"):
        weights.decrypt(weights.unwrapper(other_key))


def test_a_malleated_envelope_cannot_slip_in_another_data_key(weights: Weights) -> None:
    # CBC is malleable: a changed ciphertext block still unpads and yields a different 32-byte key.
    # The weights format commits to its data key, so that key decrypts nothing.
    header, _ = read_header(io.BytesIO(weights.message))
    data_key = weights.kms.decrypt(CiphertextBlob=header.encrypted_data_keys[0].ciphertext,
                                   EncryptionContext=CONTEXT)["Plaintext"]
    envelope = bytearray(build_ciphertext_for_recipient(data_key, weights.recipient.public_key_der,
                                                        encoding="der"))
    envelope[-48] ^= 0x01  # first ciphertext block: garbles plaintext block 1, flips a bit of block 2
    assert len(weights.recipient.open(bytes(envelope))) == 32
    kms = _Answering({"KeyId": weights.key_arn, "CiphertextForRecipient": bytes(envelope)})
    sink = io.BytesIO()
    with pytest.raises(AuthenticationError):
        decrypt_stream(io.BytesIO(weights.message), sink, weights.unwrapper(kms))
    assert sink.getvalue() == b""


def test_only_allowed_keys_are_tried(weights: Weights) -> None:
    standin = weights.standin()
    other = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    unwrapper = AttestedKmsUnwrapper(standin, TestAttestationSource(weights.pki, PCRS), key_arns=[other],
                                     recipient=weights.recipient)
    with pytest.raises(UnwrapError, match="not an allowed key"):
        weights.decrypt(unwrapper)
    assert standin.requests == []
    with pytest.raises(ValueError, match="key ARNs"):
        AttestedKmsUnwrapper(standin, TestAttestationSource(weights.pki, PCRS), key_arns=[])
    with pytest.raises(ValueError, match="not a KMS key ARN"):
        AttestedKmsUnwrapper(standin, TestAttestationSource(weights.pki, PCRS), key_arns=["alias/x"])


def test_the_standin_validates_like_boto3_and_kms(weights: Weights) -> None:
    standin = weights.standin()
    document = TestAttestationSource(weights.pki, PCRS).attest(weights.recipient.public_key_der, None, None)
    header, _ = read_header(io.BytesIO(weights.message))
    blob = header.encrypted_data_keys[0].ciphertext
    with pytest.raises(ParamValidationError):
        standin.decrypt(CiphertextBlob=blob, Recipent={})
    with pytest.raises(ClientError) as caught:
        standin.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT,
                        Recipient={"AttestationDocument": document,
                                   "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_1"})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    no_key = sign_document(payload_fields(weights.pki, PCRS), weights.pki.leaf.key)
    with pytest.raises(ClientError, match="no public key"):
        standin.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT,
                        Recipient={"AttestationDocument": no_key,
                                   "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"})
    answer = standin.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT,
                             Recipient={"AttestationDocument": document,
                                        "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"})
    assert "Plaintext" not in answer and answer["KeyId"] == weights.key_arn
    assert len(weights.recipient.open(answer["CiphertextForRecipient"])) == 32


# -- the policy KeyHierarchy renders, evaluated by the stand-in -----------------------------------------

def test_the_policy_the_component_renders_gates_the_attested_decrypt(weights: Weights) -> None:
    import pulumi_aws as aws

    from components.keys import EnclaveMeasurements, KeyHierarchy, KeyHierarchyArgs
    from tests.components.test_keys import build, named, statements

    def compose(keys: KeyHierarchy) -> None:
        inference = aws.iam.Role("inference", assume_role_policy=json.dumps({"Version": "2012-10-17",
                                                                             "Statement": []}))
        keys.grant_decrypt_with_attestation("model-weights", inference, EnclaveMeasurements(
            pcr0=PCRS[0].hex().upper(), pcr1=PCRS[1].hex(), pcr2=PCRS[2].hex()))
        # As __main__.py composes it: the model key's policy changes only in a key-admin elevation.
        keys.grant_key_administration("model-weights", aws.iam.Role(
            "key-admin-elevation", assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": []})),
            policy_writer="arn:aws:iam::111122223333:role/zero-trust-ai-dev-jit-api-role")
        keys.seal()

    stack = build(KeyHierarchyArgs(environment="prod", owner="ml", region="eu-west-1",
                                   administrator_role_arns=("arn:aws:iam::123456789012:role/kms-admin",)),
                  compose)
    policy_resource = named(stack, "keys-model-weights-policy")
    rendered = policy_resource.inputs["policy"]
    [role_arn] = {s["Principal"]["AWS"] for sid, s in statements(policy_resource).items()
                  if sid.startswith("DecryptWithAttestation")}
    standin = KmsStandIn(weights.kms, {weights.key_arn: rendered}, weights.pki.root_der, role_arn)
    assert weights.decrypt(weights.unwrapper(standin)) == weights.plaintext
    for pcrs in ({**PCRS, 0: measurement("other")}, {**PCRS, 1: measurement("other")}):
        with pytest.raises(UnwrapError, match="AccessDeniedException"):
            weights.decrypt(weights.unwrapper(standin, pcrs))
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(KmsUnwrapper(standin, key_arns=[weights.key_arn]))  # the parent, no Recipient
    assert "explicit deny" in standin.requests[-1].detail
    # Any other principal in the account (an administrator, say) gets no plaintext either.
    admin = KmsStandIn(weights.kms, {weights.key_arn: rendered}, weights.pki.root_der,
                       role_arn.rsplit("/", 1)[0] + "/administrator")
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(KmsUnwrapper(admin, key_arns=[weights.key_arn]))
    assert [r.result for r in standin.requests] == ["ciphertext-for-recipient", "AccessDeniedException",
                                                    "AccessDeniedException", "AccessDeniedException"]


# -- break-glass, administrators and grants under the rendered policy (the review's finding) ------------
# Before the per-PCR denies, the deny for everyone only checked that SOME attestation was present:
# break-glass (kms:* with MFA), or anyone it gave a grant, could have the data key wrapped for any
# attested enclave (a debug-mode one, or its own EIF) whose memory the parent reads.
GLASS = "arn:aws:iam::123456789012:role/break-glass"
KEY_ADMIN = "arn:aws:iam::123456789012:role/kms-admin"
ROOT = "arn:aws:iam::123456789012:root"
OWN_EIF = measurements("break-glass-image")  # another image: PCR0 and PCR2 differ, same kernel
DEBUG = {**PCRS, 0: ZERO_PCR, 1: ZERO_PCR, 2: ZERO_PCR}


@dataclass(frozen=True)
class Rendered:
    policy: str  # what KeyHierarchy wrote for the model-weights key
    sids: dict[str, str]  # "PCR0" -> the Sid of its deny for everyone


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    import pulumi_aws as aws

    from components.keys import EnclaveMeasurements, KeyHierarchy, KeyHierarchyArgs
    from tests.components.test_keys import build, named, statements

    def compose(keys: KeyHierarchy) -> None:
        inference = aws.iam.Role("inference", assume_role_policy=json.dumps({"Version": "2012-10-17",
                                                                             "Statement": []}))
        keys.grant_decrypt_with_attestation("model-weights", inference, EnclaveMeasurements(
            pcr0=PCRS[0].hex(), pcr1=PCRS[1].hex(), pcr2=PCRS[2].hex()))
        # As __main__.py composes it: the model key's policy changes only in a key-admin elevation.
        keys.grant_key_administration("model-weights", aws.iam.Role(
            "key-admin-elevation", assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": []})),
            policy_writer="arn:aws:iam::111122223333:role/zero-trust-ai-dev-jit-api-role")
        keys.seal()

    stack = build(KeyHierarchyArgs(environment="prod", owner="ml", region="eu-west-1",
                                   administrator_role_arns=(KEY_ADMIN,), break_glass_role_arn=GLASS),
                  compose)
    resource = named(stack, "keys-model-weights-policy")
    sids = {sid.removeprefix("DenyPlaintextUnless")[:4]: sid for sid in statements(resource)
            if sid.startswith("DenyPlaintextUnless")}
    assert set(sids) == {"PCR0", "PCR1", "PCR2"}
    return Rendered(resource.inputs["policy"], sids)


def as_if_granted(policy: str, principal: str) -> str:
    """The policy plus an Allow of kms:Decrypt for `principal`, standing in for what a KMS grant (or
    an IAM policy) would add: the stand-in evaluates one document, and KMS honours an explicit Deny
    of the key policy whatever allows the request elsewhere ("explicitly allowed, and never
    denied"; a grant "can allow access ... but not deny access")."""
    document = json.loads(policy)
    document["Statement"].append({"Sid": "AsIfGranted", "Effect": "Allow", "Principal": {"AWS": principal},
                                  "Action": "kms:Decrypt", "Resource": "*"})
    return json.dumps(document)


def null_only(policy: str) -> str:
    """The reviewed shape: the per-PCR denies replaced by one Deny for everyone without attestation."""
    document = json.loads(policy)
    document["Statement"] = [s for s in document["Statement"]
                             if not s["Sid"].startswith("DenyPlaintextUnless")]
    document["Statement"].append({
        "Sid": "DenyPlaintextWithoutAttestation", "Effect": "Deny", "Principal": {"AWS": "*"},
        "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*",
        "Condition": {"Null": {"kms:RecipientAttestation:PCR0": "true"}}})
    return json.dumps(document)


def denied_by(weights: Weights, standin: KmsStandIn, pcrs: Mapping[int, bytes] | None) -> str:
    unwrapper = (KmsUnwrapper(standin, key_arns=[weights.key_arn]) if pcrs is None
                 else weights.unwrapper(standin, pcrs))
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(unwrapper)
    detail = standin.requests[-1].detail
    assert "explicit deny" in detail, detail
    return detail


def test_the_null_only_deny_let_break_glass_unwrap_for_any_enclave(weights: Weights,
                                                                  rendered: Rendered) -> None:
    # Why the policy changed: under the old shape break-glass gets the data key for its own EIF
    # and for a debug-mode enclave (the stand-in's own debug refusal off: KMS has none).
    old = KmsStandIn(weights.kms, {weights.key_arn: null_only(rendered.policy)}, weights.pki.root_der,
                     GLASS, mfa=True, refuse_debug_documents=False)
    for pcrs in (OWN_EIF, DEBUG):
        assert weights.decrypt(weights.unwrapper(old, pcrs)) == weights.plaintext
    assert [r.result for r in old.requests] == ["ciphertext-for-recipient"] * 2


def test_break_glass_gets_no_data_key_for_an_enclave_other_than_the_pinned_one(
        weights: Weights, rendered: Rendered) -> None:
    standin = KmsStandIn(weights.kms, {weights.key_arn: rendered.policy}, weights.pki.root_der, GLASS,
                         mfa=True, refuse_debug_documents=False)
    # Its own EIF: PCR0 and PCR2 differ from the pinned ones, each deny refuses on its own.
    detail = denied_by(weights, standin, OWN_EIF)
    assert rendered.sids["PCR0"] in detail and rendered.sids["PCR2"] in detail
    assert rendered.sids["PCR1"] not in detail  # same kernel
    # One PCR off is enough (a statement naming all PCRs would have let this through: ANDed keys).
    assert rendered.sids["PCR1"] in denied_by(weights, standin, {**PCRS, 1: measurement("other-kernel")})
    # A debug-mode enclave: refused by the POLICY (the stand-in's own check is off), every PCR deny.
    detail = denied_by(weights, standin, DEBUG)
    assert all(sid in detail for sid in rendered.sids.values()), detail
    # No attestation at all: plaintext to the caller.
    assert all(sid in denied_by(weights, standin, None) for sid in rendered.sids.values())
    no_plaintext_left(standin)
    # The pinned enclave still decrypts, for break-glass as for the instance role: the weights
    # stay inside the enclave the stack trusts.
    assert weights.decrypt(weights.unwrapper(standin)) == weights.plaintext
    # Without MFA break-glass has no allow at all.
    no_mfa = KmsStandIn(weights.kms, {weights.key_arn: rendered.policy}, weights.pki.root_der, GLASS,
                        mfa=False, refuse_debug_documents=False)
    with pytest.raises(UnwrapError, match="AccessDeniedException"):
        weights.decrypt(weights.unwrapper(no_mfa))
    assert "no resource-based policy allows" in no_mfa.requests[-1].detail


@pytest.mark.parametrize("caller", [ROOT, KEY_ADMIN], ids=["account-root", "key-administrator"])
def test_the_account_and_administrators_get_no_data_key_outside_the_pinned_enclave_even_if_granted(
        weights: Weights, rendered: Rendered, caller: str) -> None:
    policy = as_if_granted(rendered.policy, caller)
    standin = KmsStandIn(weights.kms, {weights.key_arn: policy}, weights.pki.root_der, caller,
                         mfa=True, refuse_debug_documents=False)
    assert rendered.sids["PCR0"] in denied_by(weights, standin, OWN_EIF)
    assert all(sid in denied_by(weights, standin, DEBUG) for sid in rendered.sids.values())
    assert all(sid in denied_by(weights, standin, None) for sid in rendered.sids.values())
    no_plaintext_left(standin)
