"""KMS `CiphertextForRecipient`: a CMS EnvelopedData (RFC 5652 section 6) opened inside the enclave.

What KMS sends (and what `open_enveloped_data` accepts, nothing looser), BER or DER:

    ContentInfo { contentType id-envelopedData, content [0] EXPLICIT EnvelopedData {
        version 2,
        recipientInfos SET OF exactly one KeyTransRecipientInfo {
            version 2, rid [0] subjectKeyIdentifier,
            keyEncryptionAlgorithm id-RSAES-OAEP { SHA-256, MGF1 with SHA-256, empty label },
            encryptedKey (the content-encryption key, RSA-OAEP wrapped to our public key) },
        encryptedContentInfo { contentType id-data, aes256-CBC with a 16-byte IV,
            encryptedContent [0] IMPLICIT (PKCS#7-padded, primitive or constructed) } } }

`cryptography`'s pkcs7 module cannot decrypt this (as of 50.x), so asn1crypto parses it and the
unwrapping is two `cryptography` primitives: RSA-OAEP-SHA256, then AES-256-CBC with strict
PKCS#7 unpadding.

The CMS itself is not authenticated (CBC, no MAC). Its integrity comes from the channel: the
enclave's TLS session to KMS ends inside the enclave, so the parent relaying the bytes cannot
change them. Every failure after parsing (RSA-OAEP, padding, length) is reported with one and the
same message, so even a caller that could submit altered structures learns nothing from which
step failed. And should an altered envelope still unpad, the 32 bytes it yields are not the data
key of the weights message, whose key commitment (suite 0x0478) then refuses it.

The recipient identifier is checked for its kind only (subjectKeyIdentifier). Its value is
compared with RFC 5280 method 1 (SHA-1 of the subjectPublicKey bits) and the outcome is returned
for logging, not enforced: how KMS derives it is not documented, the identifier is unauthenticated
metadata anyway, and the RSA-OAEP unwrap under our private key is the actual test that the
envelope is ours.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CEK_LENGTH = 32  # AES-256
AES_BLOCK = 16
# Bounds the work on a hostile envelope; KMS answers carry at most 4 KiB of plaintext
# (GenerateRandom), data keys are 32 bytes.
MAX_ENVELOPE_LENGTH = 64 * 1024
_UNWRAP_FAILED = "CiphertextForRecipient does not decrypt with this enclave's key"


class CmsError(ValueError):
    """The envelope is not one this enclave accepts, or does not open with its key."""


@dataclass(frozen=True)
class OpenedEnvelope:
    plaintext: bytes
    recipient_key_identifier: bytes  # the rid, as sent
    recipient_matches_rfc5280: bool  # rid == SHA-1 of our subjectPublicKey (see the module doc)


def subject_key_identifier(public_key: rsa.RSAPublicKey) -> bytes:
    """RFC 5280 section 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key).digest


def oaep_sha256() -> OAEP:
    return OAEP(mgf=MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _check_oaep_parameters(algorithm: Any) -> None:
    if algorithm["algorithm"].native != "rsaes_oaep":
        raise CmsError(f"key encryption algorithm {algorithm['algorithm'].dotted}; expected "
                       "RSAES-OAEP (1.2.840.113549.1.1.7)")
    # Absent parameters mean the RFC 8017 defaults (SHA-1), which KMS does not use: refuse them.
    if not algorithm["parameters"].contents:
        raise CmsError("RSAES-OAEP without parameters (SHA-1 defaults); expected SHA-256")
    parameters = algorithm["parameters"]
    hash_name = parameters["hash_algorithm"]["algorithm"].native
    mask = parameters["mask_gen_algorithm"]
    mask_hash = mask["parameters"]["algorithm"].native if mask["algorithm"].native == "mgf1" else None
    source = parameters["p_source_algorithm"]
    label = source["parameters"].native if source["algorithm"].native == "p_specified" else None
    if hash_name != "sha256" or mask_hash != "sha256" or label != b"":
        raise CmsError(f"RSAES-OAEP with hash {hash_name}, MGF1 hash {mask_hash}, label {label!r}; "
                       "expected SHA-256, MGF1-SHA-256 and the empty label")


def _parse(data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(rid, encrypted key, IV, ciphertext) from a KMS-shaped EnvelopedData, or CmsError."""
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].native != "enveloped_data":
            raise CmsError(f"content type {info['content_type'].dotted}; expected envelopedData")
        enveloped = info["content"]
        if enveloped["version"].native != "v2":
            raise CmsError(f"EnvelopedData version {enveloped['version'].native}; expected v2")
        recipients = enveloped["recipient_infos"]
        if len(recipients) != 1:
            raise CmsError(f"{len(recipients)} recipients; KMS addresses exactly one")
        recipient = recipients[0]
        if recipient.name != "ktri":
            raise CmsError(f"recipient is a {recipient.name}; expected a KeyTransRecipientInfo")
        transport = recipient.chosen
        if transport["version"].native != "v2":
            raise CmsError(f"KeyTransRecipientInfo version {transport['version'].native}; expected v2")
        rid = transport["rid"]
        if rid.name != "subject_key_identifier":
            raise CmsError(f"recipient identified by {rid.name}; expected subjectKeyIdentifier")
        _check_oaep_parameters(transport["key_encryption_algorithm"])
        content = enveloped["encrypted_content_info"]
        if content["content_type"].native != "data":
            raise CmsError(f"encrypted content type {content['content_type'].dotted}; expected id-data")
        algorithm = content["content_encryption_algorithm"]
        if algorithm["algorithm"].native != "aes256_cbc":
            raise CmsError(f"content encryption {algorithm['algorithm'].dotted}; expected AES-256-CBC "
                           "(2.16.840.1.101.3.4.1.42)")
        iv = algorithm["parameters"].native
        ciphertext = content["encrypted_content"].native
        result = (rid.chosen.native, transport["encrypted_key"].native, iv, ciphertext)
    except CmsError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        # asn1crypto parses lazily: malformed or truncated input surfaces on first access.
        raise CmsError(f"CiphertextForRecipient is not a well-formed CMS EnvelopedData ({error})") from None
    rid_value, encrypted_key, iv, ciphertext = result
    if not isinstance(iv, bytes) or len(iv) != AES_BLOCK:
        raise CmsError("AES-256-CBC parameters are not a 16-byte IV")
    if not isinstance(ciphertext, bytes) or not ciphertext or len(ciphertext) % AES_BLOCK:
        raise CmsError("encrypted content is absent or not a whole number of AES blocks")
    if not isinstance(rid_value, bytes) or not isinstance(encrypted_key, bytes):
        raise CmsError("recipient identifier or encrypted key is not an octet string")
    return rid_value, encrypted_key, iv, ciphertext


def open_enveloped_data(data: bytes, private_key: rsa.RSAPrivateKey) -> OpenedEnvelope:
    """Decrypt a KMS CiphertextForRecipient with the enclave's RSA private key."""
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        raise CmsError("CiphertextForRecipient is empty or not bytes")
    data = bytes(data)
    if len(data) > MAX_ENVELOPE_LENGTH:
        raise CmsError(f"CiphertextForRecipient is {len(data)} bytes; at most {MAX_ENVELOPE_LENGTH}")
    rid, encrypted_key, iv, ciphertext = _parse(data)
    if len(encrypted_key) != private_key.key_size // 8:
        raise CmsError(_UNWRAP_FAILED)
    try:
        content_key = private_key.decrypt(encrypted_key, oaep_sha256())
    except ValueError:
        raise CmsError(_UNWRAP_FAILED) from None
    if len(content_key) != CEK_LENGTH:
        raise CmsError(_UNWRAP_FAILED)
    decryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    # cryptography's PKCS7 unpadder checks the whole pad in constant time and refuses 0 or > 16.
    unpadder = padding.PKCS7(AES_BLOCK * 8).unpadder()
    try:
        plaintext = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise CmsError(_UNWRAP_FAILED) from None
    expected = subject_key_identifier(private_key.public_key())
    return OpenedEnvelope(plaintext, rid, hmac.compare_digest(rid, expected))
