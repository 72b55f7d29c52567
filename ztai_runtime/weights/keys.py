"""Where a message's data key comes from (encrypt) and how it is unwrapped again (decrypt).

Both are small protocols so that the caller chooses: the CLI uses KMS `GenerateDataKey` / `Decrypt`
with the standard boto3 configuration; the enclave supplies its own unwrapper, which calls KMS
`Decrypt` with an attestation `Recipient` and opens the `CiphertextForRecipient` inside the enclave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ztai_runtime.weights.format import DATA_KEY_LENGTH, KMS_PROVIDER_ID, EncryptedDataKey


class UnwrapError(Exception):
    """No encrypted data key of the message could be unwrapped (wrong key, no access, ...)."""


# KMS answers that mean "this key will not unwrap this data key for you": try the next one.
# Anything else (throttling after retries, no credentials, no network, a bug) is not a verdict on
# the message and propagates, so it is reported as what it is.
KMS_REFUSALS = frozenset({
    "AccessDeniedException", "IncorrectKeyException", "InvalidCiphertextException", "DisabledException",
    "NotFoundException", "KMSInvalidStateException", "KeyUnavailableException",
    "InvalidKeyUsageException",
})


class DataKeySource(Protocol):
    def generate(self, context: Mapping[str, str]) -> tuple[bytes, list[EncryptedDataKey]]:
        """A fresh 32-byte data key and its wrapped copies, bound to `context`."""
        ...


class DataKeyUnwrapper(Protocol):
    def unwrap(self, encrypted_data_keys: Sequence[EncryptedDataKey], context: Mapping[str, str]) -> bytes:
        """The 32-byte data key from one of `encrypted_data_keys`, or raise UnwrapError."""
        ...


def error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def key_arn_parts(arn: str) -> tuple[str, str, str] | None:
    """(partition, region, account) of a KMS *key* ARN (not an alias ARN), else None."""
    parts = arn.split(":")
    if (len(parts) != 6 or parts[0] != "arn" or parts[2] != "kms" or not parts[5].startswith("key/")
            or not parts[3] or not parts[4].isdigit()):
        return None
    return parts[1], parts[3], parts[4]


class KeyPinError(ValueError):
    """The key a request names is not the key the caller expects; nothing was encrypted."""


class AliasMovedError(KeyPinError):
    """An alias (or key id) resolves to another key than the expected one: what an insider allowed
    kms:UpdateAlias would arrange, so a security refusal rather than a mistyped argument."""


def pinned_key_arn(kms: Any, key_id: str, expected_arn: str | None) -> str:
    """The ARN of the key to encrypt under, pinned to `expected_arn`.

    A key ARN is used as given (it must equal `expected_arn` when one is given). Anything else (an
    alias name or alias ARN, a bare key id) is resolved with KMS `DescribeKey` and must resolve to
    `expected_arn`: anyone allowed `kms:UpdateAlias` can point an alias at a key of their own, whose
    policy lets them decrypt outside an enclave. The caller then encrypts under the returned ARN,
    never the alias, so a move after the check cannot switch the key either.

    Raises KeyPinError when there is nothing to pin against or the keys differ; botocore errors of
    DescribeKey propagate.
    """
    if expected_arn is not None and key_arn_parts(expected_arn) is None:
        raise KeyPinError(f"expected key {expected_arn!r} is not a KMS key ARN "
                          "(arn:<partition>:kms:<region>:<account>:key/<key id>)")
    if key_arn_parts(key_id) is not None:
        if expected_arn is not None and key_id != expected_arn:
            raise KeyPinError(f"key {key_id} is not the expected key {expected_arn}")
        return key_id
    if expected_arn is None:
        raise KeyPinError(f"{key_id} is not a key ARN and no expected key ARN was given: an alias "
                          "can be moved to another key by anyone allowed kms:UpdateAlias")
    resolved = str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])
    if resolved != expected_arn:
        raise AliasMovedError(f"{key_id} names key {resolved}, not the expected key {expected_arn}: "
                              "the alias may have been moved (kms:UpdateAlias); check CloudTrail for "
                              "UpdateAlias and the stack before publishing")
    return resolved


class KmsDataKeySource:
    """`GenerateDataKey` (AES_256) under one KMS key, with the message's encryption context.

    The wrapped key records the key ARN KMS answers with (never an alias), as the SDKs do, so a
    later alias move (rotation successor) does not change which key decrypts the message.
    """

    def __init__(self, kms: Any, key_id: str) -> None:
        self._kms, self._key_id = kms, key_id

    def generate(self, context: Mapping[str, str]) -> tuple[bytes, list[EncryptedDataKey]]:
        response = self._kms.generate_data_key(KeyId=self._key_id, KeySpec="AES_256",
                                               EncryptionContext=dict(context))
        plaintext = response["Plaintext"]
        if len(plaintext) != DATA_KEY_LENGTH:
            raise UnwrapError(f"KMS returned a {len(plaintext)}-byte data key; expected {DATA_KEY_LENGTH}")
        return plaintext, [EncryptedDataKey(KMS_PROVIDER_ID, response["KeyId"].encode("utf-8"),
                                            response["CiphertextBlob"])]


class KmsUnwrapper:
    """KMS `Decrypt` of the message's `aws-kms` data keys, naming the key explicitly.

    Strict (`key_arns`): only data keys wrapped under those key ARNs are tried, as the SDKs' strict
    KMS keyring does. Discovery (`discovery_accounts`, with `partition`): any `aws-kms` data key
    whose key ARN is in that partition and one of those accounts, as the SDKs' discovery filter.
    One of the two is required: trying whatever key a file names would let a crafted file make us
    call keys in other accounts. The client is regional: keys of other regions are skipped.
    """

    def __init__(self, kms: Any, *, key_arns: Sequence[str] = (),
                 discovery_accounts: Sequence[str] = (), partition: str = "aws") -> None:
        if not key_arns and not discovery_accounts:
            raise ValueError("KmsUnwrapper needs key ARNs (strict) or discovery accounts")
        for arn in key_arns:
            if key_arn_parts(arn) is None:
                raise ValueError(f"{arn!r} is not a KMS key ARN (arn:<partition>:kms:<region>:"
                                 "<account>:key/<id>); aliases cannot be matched against a message")
        for account in discovery_accounts:
            if not (len(account) == 12 and account.isdigit()):
                raise ValueError(f"{account!r} is not an AWS account id (12 digits)")
        self._kms = kms
        self._key_arns = tuple(key_arns)
        self._accounts = tuple(discovery_accounts)
        self._partition = partition
        self._region = getattr(getattr(kms, "meta", None), "region_name", None)

    def _skip_reason(self, arn: str) -> str | None:
        parts = key_arn_parts(arn)
        if parts is None:
            return "not a KMS key ARN"
        if self._key_arns:
            if arn not in self._key_arns:
                return "not an allowed key"
        elif parts[0] != self._partition or parts[2] not in self._accounts:
            return "not an allowed key (outside the discovery partition and accounts)"
        if self._region and parts[1] != self._region:
            return f"in region {parts[1]}; this KMS client is for {self._region}"
        return None

    def unwrap(self, encrypted_data_keys: Sequence[EncryptedDataKey], context: Mapping[str, str]) -> bytes:
        tried: list[str] = []
        for edk in encrypted_data_keys:
            if edk.provider_id != KMS_PROVIDER_ID:
                continue
            arn = edk.provider_info.decode("utf-8", errors="replace")
            reason = self._skip_reason(arn)
            if reason:
                tried.append(f"{arn}: {reason}")
                continue
            try:
                response = self._kms.decrypt(CiphertextBlob=edk.ciphertext, KeyId=arn,
                                             EncryptionContext=dict(context),
                                             EncryptionAlgorithm="SYMMETRIC_DEFAULT")
            except Exception as error:
                code = error_code(error)
                if code not in KMS_REFUSALS:
                    raise
                tried.append(f"{arn}: {code}")
                continue
            if response.get("KeyId") != arn:
                tried.append(f"{arn}: KMS answered for another key ({response.get('KeyId')})")
                continue
            plaintext: bytes = response["Plaintext"]
            if len(plaintext) != DATA_KEY_LENGTH:
                tried.append(f"{arn}: unwrapped key has {len(plaintext)} bytes")
                continue
            return plaintext
        detail = "; ".join(tried) if tried else "the message has no aws-kms data key"
        raise UnwrapError(f"no data key of the message could be unwrapped ({detail})")


class StaticUnwrapper:
    """A data key already in hand (e.g. obtained through attestation by the enclave)."""

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != DATA_KEY_LENGTH:
            raise ValueError(f"data key must be {DATA_KEY_LENGTH} bytes")
        self._data_key = data_key

    def unwrap(self, encrypted_data_keys: Sequence[EncryptedDataKey], context: Mapping[str, str]) -> bytes:
        del encrypted_data_keys, context  # the commitment check still proves it is the message's key
        return self._data_key
