"""Per-domain secret keys derived from the hierarchy's KMS HMAC key, with one KMS call per domain.

    domain key = KMS GenerateMac(HMAC_SHA_256, tokens key, label)
    label      = b"zero-trust-ai/" + purpose + b"/v1" || 0x00 || len(domain) (2 bytes, big endian) || domain

The 32-byte MAC is a pseudo-random function of the label under a key that never leaves KMS, so it
serves as a key: it is held in memory only, and every value is then MACed locally (stdlib `hmac`,
keyed once per run: `KeyedMac`), which is what makes hundreds of thousands of rows a second
possible. The label is versioned and length-prefixed, so no two (purpose, domain) pairs produce the
same message, and the purposes stay apart: the key of joinable tokens never equals the key that
indexes the vault.

Who can derive a domain key: anyone allowed `kms:GenerateMac` on the tokens key. KMS has no
condition key on the message, so that permission covers every domain; grant it narrowly (the
hierarchy's `grant_generate_mac`). KMS cannot rotate HMAC keys, which is what keeps tokens stable:
deleting or replacing the tokens key changes every token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from ztai_runtime.jsonlog import get_logger, log_decision
from ztai_runtime.tokenize._aws import KmsClient, call
from ztai_runtime.tokenize.errors import InputError, TokenizeError

# Letters, digits and . _ : @ / - ; no '#' (it separates the parts of a vault item key) and no
# '*' or '?' (IAM StringLike wildcards in the per-domain grants). components/token_vault.py keeps
# a copy of this rule, and a test holds the two equal.
DOMAIN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
DOMAIN_RULE = "1-128 characters: letters, digits and . _ : @ / -, starting with a letter or digit"

PURPOSE_TOKEN = "token-key"          # deterministic, joinable tokens
PURPOSE_VAULT_INDEX = "vault-index-key"  # the vault's lookup of a value's existing token
LABEL_VERSION = 1
MAC_ALGORITHM = "HMAC_SHA_256"
# Not valid UTF-8, so no value (always a UTF-8 string) is ever MACed to the same bytes.
_KEY_CHECK_LABEL = b"\xffzero-trust-ai/key-check/v1"

_log = get_logger("ztai.tokenize")


class KeyedMac:
    """HMAC-SHA256 under one fixed key, for millions of short messages: the standard library's
    `hmac`, keyed once.

    `hmac.new(key, digestmod="sha256")` sets up the key (its inner and outer pads) once; each
    message then costs a copy of that keyed state (OpenSSL's HMAC_CTX copy), an update and a
    digest. `hmac.digest(key, message)` would set the key up again for every message: ~2.4 µs a
    call on the development machine, against ~1.6 µs.
    """

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def digest(self, message: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(message)
        return mac.digest()


def check_domain(domain: str) -> str:
    if not isinstance(domain, str) or not DOMAIN_PATTERN.fullmatch(domain):
        raise InputError(f"domain {domain!r} is not allowed; a domain is {DOMAIN_RULE}")
    return domain


def derivation_label(purpose: str, domain: str) -> bytes:
    """The message MACed by KMS; versioned and length-prefixed so it is unambiguous."""
    encoded = check_domain(domain).encode("utf-8")
    return (f"zero-trust-ai/{purpose}/v{LABEL_VERSION}".encode() + b"\x00"
            + struct.pack(">H", len(encoded)) + encoded)


@dataclass(frozen=True)
class DomainKey:
    """A 32-byte key for one (purpose, domain), and the KMS key it came from."""

    purpose: str
    domain: str
    kms_key_arn: str
    secret: bytes = field(repr=False)

    def check_value(self) -> str:
        """A short public fingerprint of the secret: a resumed run proves it uses the same key
        (an alias moved to another key would change every token) without storing the key."""
        return hmac.digest(self.secret, _KEY_CHECK_LABEL, hashlib.sha256)[:8].hex()

    def mac(self) -> KeyedMac:
        """HMAC-SHA256 under the secret, keyed once, for MACing many values."""
        return KeyedMac(self.secret)


def derive_domain_key(kms: KmsClient, key_id: str, domain: str, purpose: str = PURPOSE_TOKEN) -> DomainKey:
    """One `GenerateMac` call; `key_id` is the tokens key (id, ARN, alias name or alias ARN)."""
    response: dict[str, Any] = call("KMS GenerateMac", kms.generate_mac, KeyId=key_id,
                                    MacAlgorithm=MAC_ALGORITHM,
                                    Message=derivation_label(purpose, domain))
    secret = bytes(response["Mac"])
    if len(secret) != hashlib.sha256().digest_size:
        raise TokenizeError(f"KMS key {key_id} returned a {len(secret)}-byte MAC; tokens need an "
                         "HMAC_256 key (the key hierarchy's tokens key)")
    key = DomainKey(purpose=purpose, domain=domain, kms_key_arn=str(response.get("KeyId", key_id)),
                    secret=secret)
    log_decision(_log, "token-key-derived", purpose=purpose, domain=domain, kms_key=key.kms_key_arn,
                 label_version=LABEL_VERSION, key_check=key.check_value())
    return key
