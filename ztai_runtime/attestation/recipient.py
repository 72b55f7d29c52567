"""The enclave side of KMS `Decrypt` with a `Recipient`: the data key reaches enclave memory only.

    RecipientKey          an RSA-2048 key pair generated in enclave memory; the public half goes
                          into the attestation document, the private half never leaves the object
    AttestedKmsUnwrapper  a `ztai_runtime.weights.DataKeyUnwrapper`: for each allowed `aws-kms`
                          data key, KMS `Decrypt` with Recipient={AttestationDocument,
                          RSAES_OAEP_SHA_256}; KMS checks the document's measurements against the
                          key policy and answers with `CiphertextForRecipient` (CMS, see cms.py),
                          which only this object can open

Refused outright, whatever the other data keys: a KMS answer that carries `Plaintext` although a
Recipient was sent (the plaintext data key would have crossed the parent in the clear, or
something between us and KMS dropped the Recipient: either way the answer is not trusted), and
one that lacks `CiphertextForRecipient`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ztai_runtime.attestation.cms import CmsError, open_enveloped_data, subject_key_identifier
from ztai_runtime.attestation.nsm import AttestationSource
from ztai_runtime.jsonlog import get_logger, log_decision
from ztai_runtime.weights.format import DATA_KEY_LENGTH, KMS_PROVIDER_ID, EncryptedDataKey
from ztai_runtime.weights.keys import KMS_REFUSALS, UnwrapError, error_code, key_arn_parts

KEY_ENCRYPTION_ALGORITHM = "RSAES_OAEP_SHA_256"  # the only value KMS accepts for Recipient
RSA_KEY_SIZE = 2048
# What KMS answers when it will not release a key to this document: try the next data key. A
# ValidationException about the Recipient is the same for every key, but still a refusal.
ATTESTED_REFUSALS = KMS_REFUSALS | {"ValidationException"}

_log = get_logger("ztai.attestation")


class RecipientKey:
    """An RSA key pair that lives in this object only (in enclave memory).

    There is no accessor for the private key, and the object refuses to be pickled or copied;
    Python cannot make memory unreadable to code running in the same process, so this keeps the
    key from leaving by accident, not from code inside the enclave.
    """

    def __init__(self, key_size: int = RSA_KEY_SIZE) -> None:
        if key_size < RSA_KEY_SIZE:
            raise ValueError(f"RSA keys below {RSA_KEY_SIZE} bits are not accepted")
        self.__private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        public = self.__private_key.public_key()
        self.public_key_der: bytes = public.public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
        self.subject_key_identifier: bytes = subject_key_identifier(public)

    def open(self, ciphertext_for_recipient: bytes) -> bytes:
        """The plaintext of a KMS CiphertextForRecipient addressed to this key; CmsError if not."""
        envelope = open_enveloped_data(ciphertext_for_recipient, self.__private_key)
        if not envelope.recipient_matches_rfc5280:
            log_decision(_log, "cms-recipient-identifier-differs",
                         rid=envelope.recipient_key_identifier.hex(),
                         rfc5280_sha1=self.subject_key_identifier.hex())
        return envelope.plaintext

    def __repr__(self) -> str:
        return f"RecipientKey(ski={self.subject_key_identifier.hex()})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a RecipientKey cannot be pickled or copied: its private key stays here")


class AttestedKmsUnwrapper:
    """KMS `Decrypt` with attestation, for the data keys of a weights message.

    kms: a boto3 KMS client (inside the enclave: pointed at KMS through the parent's vsock-proxy,
        TLS ending in the enclave), or anything with the same `decrypt` (tests: the KMS stand-in).
    attestation_source: the NSM (`NsmAttestationSource`) or a test source.
    key_arns: the KMS key ARNs whose data keys may be tried (strict, as `KmsUnwrapper`); required.
    recipient: the RSA key pair; default a fresh RSA-2048 key per unwrapper.
    user_data, nonce: passed into every attestation document (default none).
    """

    def __init__(self, kms: Any, attestation_source: AttestationSource, *, key_arns: Sequence[str],
                 recipient: RecipientKey | None = None, user_data: bytes | None = None,
                 nonce: bytes | None = None) -> None:
        if isinstance(key_arns, str) or not key_arns:
            raise ValueError("AttestedKmsUnwrapper needs the key ARNs it may use (a list, not empty)")
        for arn in key_arns:
            if key_arn_parts(arn) is None:
                raise ValueError(f"{arn!r} is not a KMS key ARN (arn:<partition>:kms:<region>:"
                                 "<account>:key/<id>)")
        self._kms = kms
        self._source = attestation_source
        self._key_arns = tuple(key_arns)
        self._recipient = recipient or RecipientKey()
        self._user_data, self._nonce = user_data, nonce

    @property
    def public_key_der(self) -> bytes:
        return self._recipient.public_key_der

    def unwrap(self, encrypted_data_keys: Sequence[EncryptedDataKey], context: Mapping[str, str]) -> bytes:
        document: bytes | None = None  # one document for all the keys of this message
        tried: list[str] = []
        for edk in encrypted_data_keys:
            if edk.provider_id != KMS_PROVIDER_ID:
                continue
            arn = edk.provider_info.decode("utf-8", errors="replace")
            if arn not in self._key_arns:
                tried.append(f"{arn}: not an allowed key")
                continue
            if document is None:
                document = self._source.attest(self._recipient.public_key_der, self._user_data, self._nonce)
            try:
                response = self._kms.decrypt(
                    CiphertextBlob=edk.ciphertext, KeyId=arn, EncryptionContext=dict(context),
                    EncryptionAlgorithm="SYMMETRIC_DEFAULT",
                    Recipient={"AttestationDocument": document,
                               "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM})
            except Exception as error:
                code = error_code(error)
                if code not in ATTESTED_REFUSALS:
                    raise
                log_decision(_log, "attested-decrypt-refused", key_arn=arn, code=code)
                tried.append(f"{arn}: {code}")
                continue
            data_key = self._open(response, arn)
            if data_key is None:
                tried.append(f"{arn}: KMS answered for another key ({response.get('KeyId')})")
                continue
            log_decision(_log, "attested-decrypt", key_arn=arn)
            return data_key
        detail = "; ".join(tried) if tried else "the message has no aws-kms data key"
        raise UnwrapError(f"no data key of the message could be unwrapped with attestation ({detail})")

    def _open(self, response: Mapping[str, Any], arn: str) -> bytes | None:
        if response.get("Plaintext"):
            log_decision(_log, "attested-decrypt-plaintext-refused", key_arn=arn)
            raise UnwrapError(f"{arn}: KMS returned Plaintext although a Recipient was sent; the answer "
                              "is refused (the data key must only ever arrive wrapped to the enclave)")
        if response.get("KeyId") != arn:
            return None
        envelope = response.get("CiphertextForRecipient")
        if not envelope:
            raise UnwrapError(f"{arn}: KMS answered without CiphertextForRecipient")
        try:
            data_key = self._recipient.open(envelope)
        except CmsError as error:
            raise UnwrapError(f"{arn}: {error}") from None
        if len(data_key) != DATA_KEY_LENGTH:
            raise UnwrapError(f"{arn}: the unwrapped data key has {len(data_key)} bytes; "
                              f"expected {DATA_KEY_LENGTH}")
        return data_key
