"""Envelope encryption of model weights in the AWS Encryption SDK message format (see format.py)."""

from ztai_runtime.weights.files import DestinationExistsError, decrypt_file, encrypt_file
from ztai_runtime.weights.format import (
    AuthenticationError,
    EncryptedDataKey,
    NotAMessageError,
    TruncatedHeaderError,
    WeightsFormatError,
    read_header,
)
from ztai_runtime.weights.keys import (
    AliasMovedError,
    DataKeySource,
    DataKeyUnwrapper,
    KeyPinError,
    KmsDataKeySource,
    KmsUnwrapper,
    StaticUnwrapper,
    UnwrapError,
    key_arn_parts,
    pinned_key_arn,
)
from ztai_runtime.weights.stream import MessageInfo, decrypt_stream, encrypt_stream

__all__ = [
    "AliasMovedError", "AuthenticationError", "DataKeySource", "DataKeyUnwrapper", "DestinationExistsError",
    "EncryptedDataKey", "KeyPinError", "KmsDataKeySource", "KmsUnwrapper", "MessageInfo", "NotAMessageError",
    "StaticUnwrapper", "TruncatedHeaderError", "UnwrapError", "WeightsFormatError", "decrypt_file",
    "decrypt_stream", "encrypt_file", "encrypt_stream", "key_arn_parts", "pinned_key_arn", "read_header",
]
