"""A KMS stand-in for `Decrypt` with `Recipient`, in front of a moto KMS client.

Real KMS accepts only documents signed by the AWS Nitro PKI, so offline tests cannot call it with
a test enclave. `KmsStandIn.decrypt(**kwargs)` takes boto3's arguments and answers as KMS does:

1. parameters as boto3 validates them (unknown names: ParamValidationError);
2. with `Recipient`: KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256, the attestation document
   must verify against the configured root (`verify_attestation_document`: signature, chain,
   validity, fields; documents older than `max_document_age` are refused) and carry an RSA public
   key of at least 2048 bits; otherwise ValidationException;
3. the ciphertext is decrypted by the wrapped moto client, which checks the encryption context and
   KeyId and reports moto's errors as they are (InvalidCiphertextException, IncorrectKeyException);
4. the key policy configured for the key that moto names is evaluated (tests/support/key_policy.py)
   for the caller, kms:Decrypt, and the request's condition keys: kms:CallerAccount,
   kms:EncryptionAlgorithm, kms:EncryptionContext:<key>, aws:PrincipalArn, aws:PrincipalAccount,
   aws:MultiFactorAuthPresent when `mfa` is given (absent otherwise, as for long-term keys),
   and, from the VERIFIED document only, kms:RecipientAttestation:PCR<n> and
   kms:RecipientAttestation:ImageSha384 (= PCR0) as lower-case hex. Explicit deny or no allow:
   AccessDeniedException (KMS's wording); a policy construct the evaluator does not know:
   AccessDeniedException too (refused closed, the message says why);
5. without Recipient: `Plaintext`, only when the policy allowed it; with Recipient:
   `CiphertextForRecipient`, a CMS EnvelopedData built for the document's public key (random
   AES-256 content key, AES-256-CBC with PKCS#7 padding, key transport RSAES-OAEP-SHA256 with MGF1
   SHA-256, rid = subjectKeyIdentifier) and no `Plaintext` key at all.

Stricter than KMS on one point, by default: a document whose image PCRs (0, 1, 2) are zero (debug
mode) is refused with AccessDeniedException even if a policy would match zeros. KMS itself has no
such rule; only the key policy refuses a debug-mode enclave. Tests of a key policy therefore pass
`refuse_debug_documents=False`, so that the POLICY is what refuses. Every answer is recorded in
`requests` with its outcome, for tests to read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn

from asn1crypto import cms
from botocore.exceptions import ClientError, ParamValidationError
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.support.key_policy import Request, UnsupportedPolicyError, evaluate
from ztai_runtime.attestation.cms import oaep_sha256, subject_key_identifier
from ztai_runtime.attestation.document import (
    AttestationDocument,
    AttestationError,
    verify_attestation_document,
)

KEY_ENCRYPTION_ALGORITHM = "RSAES_OAEP_SHA_256"
DECRYPT_PARAMETERS = frozenset({"CiphertextBlob", "EncryptionContext", "GrantTokens", "KeyId",
                                "EncryptionAlgorithm", "Recipient", "DryRun"})
CmsEncoding = Literal["ber", "der"]


# -- CMS EnvelopedData, as KMS builds CiphertextForRecipient ----------------------------------------

def _ber_indefinite(tag: int, *parts: bytes) -> bytes:
    """A constructed BER element with indefinite length: tag, 0x80, contents, end-of-contents."""
    return bytes([tag, 0x80]) + b"".join(parts) + b"\x00\x00"


def build_ciphertext_for_recipient(plaintext: bytes, public_key_der: bytes, *,
                                   encoding: CmsEncoding = "ber", rid: bytes | None = None,
                                   chunk: int = 1000) -> bytes:
    """CMS ContentInfo(EnvelopedData) carrying `plaintext` for the RSA key `public_key_der`.

    encoding "ber": indefinite lengths down to the encrypted content, itself a constructed OCTET
    STRING in `chunk`-byte pieces (the streaming form KMS answers in, which the AWS Nitro
    Enclaves SDK parses); "der": one definite-length encoding.
    rid: the recipient identifier (default the RFC 5280 method 1 SHA-1 key identifier).
    """
    public_key = serialization.load_der_public_key(public_key_der)
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("the recipient key is not RSA")
    content_key, iv = os.urandom(32), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).encryptor()
    encrypted_content = encryptor.update(padded) + encryptor.finalize()
    sha256 = {"algorithm": "sha256"}
    transport = cms.KeyTransRecipientInfo({
        "version": "v2",
        "rid": cms.RecipientIdentifier(name="subject_key_identifier",
                                       value=subject_key_identifier(public_key) if rid is None else rid),
        "key_encryption_algorithm": {
            "algorithm": "rsaes_oaep",
            "parameters": {"hash_algorithm": sha256,
                           "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": sha256}},
        },
        "encrypted_key": public_key.encrypt(content_key, oaep_sha256()),
    })
    recipient_infos = cms.RecipientInfos([cms.RecipientInfo(name="ktri", value=transport)])
    algorithm = cms.EncryptionAlgorithm({"algorithm": "aes256_cbc", "parameters": iv})
    if encoding == "der":
        return bytes(cms.ContentInfo({
            "content_type": "enveloped_data",
            "content": cms.EnvelopedData({
                "version": "v2", "recipient_infos": recipient_infos,
                "encrypted_content_info": cms.EncryptedContentInfo({
                    "content_type": "data", "content_encryption_algorithm": algorithm,
                    "encrypted_content": encrypted_content})}),
        }).dump())
    pieces = [cms.OctetString(encrypted_content[start:start + chunk]).dump()
              for start in range(0, len(encrypted_content), chunk)]
    encrypted_content_info = _ber_indefinite(
        0x30, cms.ContentType("data").dump(), algorithm.dump(), _ber_indefinite(0xA0, *pieces))
    enveloped = _ber_indefinite(0x30, cms.CMSVersion("v2").dump(), recipient_infos.dump(),
                                encrypted_content_info)
    return _ber_indefinite(0x30, cms.ContentType("enveloped_data").dump(), _ber_indefinite(0xA0, enveloped))


# -- the stand-in ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    key_arn: str | None
    recipient: bool
    result: str  # "plaintext", "ciphertext-for-recipient", or the error code
    detail: str = ""


class KmsStandIn:
    """KMS `Decrypt` with attestation over a moto client; see the module docstring.

    kms_client: a boto3 KMS client inside `mock_aws()` (holds the keys and decrypts the blobs).
    key_policies: key ARN -> key policy JSON (what the component rendered). A key without one is
        refused.
    trusted_root_der: the attestation root (the test PKI's; AWS Nitro Enclaves Root-G1 for KMS).
    caller_arn: the role the caller's credentials belong to (the instance role).
    now: the time of verification (a datetime, or a clock; default the current time).
    max_document_age: attestation documents older than this are refused (5 minutes; assumed, KMS
        does not document its limit).
    cms_encoding: "ber" (streaming, as KMS) or "der".
    extra_context: further condition keys for every request.
    mfa: aws:MultiFactorAuthPresent ("true"/"false") for the caller's session; None (default): the
        key is absent, as for long-term access keys.
    refuse_debug_documents: refuse documents with all-zero image PCRs before the policy is evaluated
        (default True; stricter than KMS). False leaves the decision to the key policy, as in KMS.
    """

    def __init__(self, kms_client: Any, key_policies: Mapping[str, str], trusted_root_der: bytes,
                 caller_arn: str, *, now: datetime | Callable[[], datetime] | None = None,
                 max_document_age: timedelta = timedelta(minutes=5), cms_encoding: CmsEncoding = "ber",
                 extra_context: Mapping[str, str] | None = None, mfa: bool | None = None,
                 refuse_debug_documents: bool = True) -> None:
        self._kms = kms_client
        self.meta = kms_client.meta  # region_name, as a boto3 client has
        self.key_policies = dict(key_policies)
        self._root = trusted_root_der
        self.caller_arn = caller_arn
        self._now = now
        self._max_age = max_document_age
        self._encoding: CmsEncoding = cms_encoding
        self._extra_context = dict(extra_context or {})
        if mfa is not None:
            self._extra_context["aws:MultiFactorAuthPresent"] = "true" if mfa else "false"
        self._refuse_debug = refuse_debug_documents
        self.requests: list[Outcome] = []

    # -- errors, as botocore raises them ---------------------------------------------------------
    def _fail(self, code: str, message: str, *, key_arn: str | None, recipient: bool,
              status: int = 400) -> NoReturn:
        self.requests.append(Outcome(key_arn, recipient, code, message))
        raise ClientError({"Error": {"Code": code, "Message": message},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, "Decrypt")

    def _time(self) -> datetime:
        if isinstance(self._now, datetime):
            return self._now
        return self._now() if self._now is not None else datetime.now(UTC)

    # -- Decrypt ---------------------------------------------------------------------------------
    def decrypt(self, **kwargs: Any) -> dict[str, Any]:
        unknown = sorted(set(kwargs) - DECRYPT_PARAMETERS)
        if unknown or "CiphertextBlob" not in kwargs:
            report = (f"Unknown parameter in input: {unknown[0]!r}, must be one of: "
                      f"{', '.join(sorted(DECRYPT_PARAMETERS))}" if unknown
                      else "Missing required parameter in input: \"CiphertextBlob\"")
            raise ParamValidationError(report=report)
        recipient = kwargs.get("Recipient")
        document = self._verify_recipient(recipient) if recipient is not None else None
        moto_arguments = {name: value for name, value in kwargs.items()
                          if name not in ("Recipient", "DryRun", "GrantTokens")}
        try:
            answer = self._kms.decrypt(**moto_arguments)
        except ClientError as error:
            self.requests.append(Outcome(None, recipient is not None, error.response["Error"]["Code"]))
            raise
        key_arn: str = answer["KeyId"]
        plaintext: bytes = answer["Plaintext"]
        self._authorize(key_arn, kwargs.get("EncryptionContext") or {}, document)
        metadata = {"HTTPStatusCode": 200}
        if document is None:
            self.requests.append(Outcome(key_arn, False, "plaintext"))
            return {"KeyId": key_arn, "Plaintext": plaintext, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                    "ResponseMetadata": metadata}
        assert document.public_key is not None  # checked in _verify_recipient
        envelope = build_ciphertext_for_recipient(plaintext, document.public_key, encoding=self._encoding)
        self.requests.append(Outcome(key_arn, True, "ciphertext-for-recipient"))
        return {"KeyId": key_arn, "CiphertextForRecipient": envelope,
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT", "ResponseMetadata": metadata}

    def _verify_recipient(self, recipient: Any) -> AttestationDocument:
        def invalid(message: str) -> NoReturn:
            self._fail("ValidationException", message, key_arn=None, recipient=True)

        if not isinstance(recipient, Mapping):
            raise ParamValidationError(report="Invalid type for parameter Recipient, must be a dict")
        unknown = sorted(set(recipient) - {"AttestationDocument", "KeyEncryptionAlgorithm"})
        if unknown:
            raise ParamValidationError(report=f"Unknown parameter in Recipient: {unknown[0]!r}")
        if recipient.get("KeyEncryptionAlgorithm") != KEY_ENCRYPTION_ALGORITHM:
            invalid(f"KeyEncryptionAlgorithm must be {KEY_ENCRYPTION_ALGORITHM}")
        data = recipient.get("AttestationDocument")
        if not isinstance(data, bytes) or not data:
            invalid("Recipient.AttestationDocument is required")
        try:
            document = verify_attestation_document(data, self._root, now=self._time(),
                                                   max_age=self._max_age)
        except AttestationError as error:
            invalid(f"The attestation document is not valid: {error}")
        if document.public_key is None:
            invalid("The attestation document has no public key")
        try:
            public_key = serialization.load_der_public_key(document.public_key)
        except ValueError:
            invalid("The attestation document's public key is not a DER SubjectPublicKeyInfo")
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < 2048:
            invalid("The attestation document's public key must be RSA, 2048 bits or more")
        if self._refuse_debug and document.debug_mode:
            self._fail("AccessDeniedException", "The attestation document reports all-zero image "
                       "PCRs (a debug-mode enclave); refused", key_arn=None, recipient=True)
        return document

    def _context(self, encryption_context: Mapping[str, str],
                 document: AttestationDocument | None) -> dict[str, str]:
        account = self.caller_arn.split(":")[4]
        context = {"kms:CallerAccount": account, "aws:PrincipalArn": self.caller_arn,
                   "aws:PrincipalAccount": account, "kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                   **{f"kms:EncryptionContext:{key}": value for key, value in encryption_context.items()},
                   **self._extra_context}
        if document is not None:
            for index, value in document.pcrs.items():
                context[f"kms:RecipientAttestation:PCR{index}"] = value.hex()
            if 0 in document.pcrs:
                context["kms:RecipientAttestation:ImageSha384"] = document.pcrs[0].hex()
        return context

    def _authorize(self, key_arn: str, encryption_context: Mapping[str, str],
                   document: AttestationDocument | None) -> None:
        recipient = document is not None
        policy = self.key_policies.get(key_arn)
        denied = (f"User: {self.caller_arn} is not authorized to perform: kms:Decrypt on resource: "
                  f"{key_arn}")
        if policy is None:
            self._fail("AccessDeniedException", f"{denied} because no resource-based policy allows the "
                       "kms:Decrypt action (the stand-in has no policy for this key)",
                       key_arn=key_arn, recipient=recipient)
        request = Request(self.caller_arn, "kms:Decrypt", key_arn,
                          self._context(encryption_context, document))
        try:
            decision = evaluate(policy, request)
        except UnsupportedPolicyError as error:
            self._fail("AccessDeniedException", f"{denied}: the key policy could not be evaluated and is "
                       f"refused closed ({error})", key_arn=key_arn, recipient=recipient)
        if decision.effect == "explicit-deny":
            self._fail("AccessDeniedException", f"{denied} with an explicit deny in a resource-based "
                       f"policy ({', '.join(decision.statements)})", key_arn=key_arn, recipient=recipient)
        if decision.effect != "allow":
            self._fail("AccessDeniedException", f"{denied} because no resource-based policy allows the "
                       "kms:Decrypt action", key_arn=key_arn, recipient=recipient)
