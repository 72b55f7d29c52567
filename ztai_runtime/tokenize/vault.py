"""Reversible tokens kept in a DynamoDB token vault: `tv1_` + 32 lowercase hex digits.

A vault token is drawn at random (128 bits from `secrets`), so it cannot be computed from its
value; only the vault maps it back. It still reveals equality and frequency within a domain (one
token per value, for good), and anyone allowed to tokenize can test a guess by tokenizing it.
One table (hash key `pk`, a string) holds two kinds of item per value:

    lookup item  pk = "L#<domain>#<hex HMAC-SHA256(vault index key of the domain, value)>"
                 t  = the token
    token item   pk = "T#<domain>#<token>"
                 v  = 1 (item format version)
                 k  = the data key, wrapped by KMS (GenerateDataKey on the secrets key)
                 c  = 12-byte nonce || AES-256-GCM(value) with its tag
                 a  = ARN of the KMS key that wrapped k (decrypt uses it: aliases move)

Both are written in one `TransactWriteItems`, each with `attribute_not_exists(pk)`. Two runs that
meet the same new value race on the lookup item: exactly one transaction commits, the other is
cancelled with ConditionalCheckFailed and reads the winner's token. So a value has one token per
domain for ever, which is what lets an interrupted run resume without tokenizing anything twice
differently.

Why the value is also encrypted on the client when the table is already encrypted with the
secrets CMK: table encryption is transparent to every principal that may read the table, and to
its exports and backups (an export to S3 is plaintext JSON). Encrypting the value under a data
key that only `kms:Decrypt` on the secrets key unwraps makes detokenization a second,
cryptographic permission, and records a KMS Decrypt in CloudTrail whose encryption context names
the domain. The AES-GCM associated data binds the ciphertext to its domain and token,
so an item copied under another token or domain fails to decrypt. One data key serves up to 2^20
values of a run (one KMS call, not one per value); detokenization caches unwrapped data keys.

The item keys are laid out for IAM: `dynamodb:LeadingKeys` lets the tokenizing role read only
`L#...` items and the detokenizing role read only `T#<domain>#...` items (see
`components/token_vault.py`).
"""

from __future__ import annotations

import random
import re
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ztai_runtime.jsonlog import get_logger, log_decision
from ztai_runtime.tokenize._aws import DynamoDbClient, KmsClient, StsClient, call
from ztai_runtime.tokenize.errors import AwsCallError, InputError, VaultError
from ztai_runtime.tokenize.keys import (
    PURPOSE_VAULT_INDEX,
    DomainKey,
    KeyedMac,
    check_domain,
    derive_domain_key,
)

VAULT_TOKEN_PREFIX = "tv1_"
VAULT_TOKEN_PATTERN = re.compile(r"tv1_[0-9a-f]{32}")
PARTITION_KEY = "pk"
LOOKUP_KEY_PREFIX = "L#"
TOKEN_KEY_PREFIX = "T#"
ITEM_FORMAT_VERSION = 1
# DynamoDB items stop at 400 KB and a transaction at 4 MB; 25 values of 64 KiB stay well inside.
MAX_VALUE_BYTES = 64 * 1024
VALUES_PER_TRANSACTION = 25  # two items each: 50 of TransactWriteItems' 100 actions
BATCH_GET_LIMIT = 100  # BatchGetItem's maximum keys per call
# Random 96-bit nonces stay safe far beyond this (NIST: 2^32 per key); the bound limits what one
# leaked data key exposes.
MAX_ENCRYPTIONS_PER_DATA_KEY = 1 << 20
DEFAULT_CACHE_ENTRIES = 100_000
_VALUE_AAD_LABEL = b"zero-trust-ai/vault-value/v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
# AWS answers that mean "not allowed", logged as a denied detokenization.
DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
_RETRYABLE_CANCELLATIONS = frozenset({"TransactionConflict", "ThrottlingError",
                                      "ProvisionedThroughputExceeded", "RequestLimitExceeded"})

_log = get_logger("ztai.tokenize")


# -- layout ----------------------------------------------------------------------------------------
def new_vault_token() -> str:
    return VAULT_TOKEN_PREFIX + secrets.token_bytes(16).hex()


def lookup_item_key(index_key: DomainKey, value: str) -> str:
    return _lookup_item_key(index_key.domain, index_key.mac(), value.encode("utf-8"))


def _lookup_item_key(domain: str, index_mac: KeyedMac, encoded: bytes) -> str:
    # A tokenizer keys its MAC once and reuses it for every value.
    return f"{LOOKUP_KEY_PREFIX}{domain}#{index_mac.digest(encoded).hex()}"


def token_item_key(domain: str, token: str) -> str:
    return f"{TOKEN_KEY_PREFIX}{domain}#{token}"


def encryption_context(domain: str) -> dict[str, str]:
    """KMS encryption context of a vault data key: shown in CloudTrail, required to unwrap.

    The table name is left out on purpose: a point-in-time restore always creates a table with a
    new name, and its tokens must still resolve there.
    """
    return {"zero-trust-ai:purpose": "token-vault", "zero-trust-ai:domain": domain}


def _length_prefixed(text: str) -> bytes:
    encoded = text.encode("utf-8")
    return struct.pack(">H", len(encoded)) + encoded


def value_aad(domain: str, token: str) -> bytes:
    return _VALUE_AAD_LABEL + _length_prefixed(domain) + _length_prefixed(token)


def mask(token: str) -> str:
    """Enough of a token to find it in a file, not enough to use it."""
    return token[:8] + "…" if len(token) > 8 else "…"


# -- plumbing shared by both directions ------------------------------------------------------------
@dataclass
class Backoff:
    """Exponential backoff with full jitter for throttled or conflicting DynamoDB requests."""

    attempts: int = 8
    base_seconds: float = 0.05
    cap_seconds: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield random.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** attempt))


class _Lru:
    """A bounded cache: a run over a file with many distinct values keeps bounded memory."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._entries: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)


def _batch_get(dynamodb: DynamoDbClient, table: str, keys: Sequence[str], attributes: Sequence[str],
               backoff: Backoff) -> dict[str, dict[str, Any]]:
    """Items by partition key, 100 keys per BatchGetItem; unprocessed keys retried with backoff.

    Strongly consistent: a token committed a moment ago by another run must be seen, or the
    caller would take a race it already lost for a new value.
    """
    names = {f"#a{i}": name for i, name in enumerate((PARTITION_KEY, *attributes))}
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        chunk = keys[start:start + BATCH_GET_LIMIT]
        request: dict[str, Any] = {table: {
            "Keys": [{PARTITION_KEY: {"S": key}} for key in chunk], "ConsistentRead": True,
            "ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}}
        delays = backoff.delays()
        while True:
            response = call("DynamoDB BatchGetItem", dynamodb.batch_get_item, RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                found[item[PARTITION_KEY]["S"]] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            delay = next(delays, None)
            if delay is None:
                left = len(request.get(table, {}).get("Keys", []))
                raise AwsCallError("DynamoDB BatchGetItem", "UnprocessedKeys",
                                   f"{left} keys still unprocessed after {backoff.attempts} attempts "
                                   "(the table is throttled); retry later, with --resume for files")
            backoff.sleep(delay)
    return found


def _lookup_token(item: dict[str, Any]) -> str:
    """The token a lookup item names. It is checked: whatever it holds is written into the
    tokenized output, so a damaged or planted item must not put anything else there."""
    attribute = item.get("t")
    token = attribute.get("S") if isinstance(attribute, dict) else None
    if not isinstance(token, str) or not VAULT_TOKEN_PATTERN.fullmatch(token):
        raise VaultError(f"lookup item {item[PARTITION_KEY]['S'][:40]}… has no token (attribute t, a "
                         f"string {VAULT_TOKEN_PREFIX} + 32 hex digits): the item is damaged or was not "
                         "written by zero-trust-ai; repair it from a backup")
    return token


def _binary_attribute(item: dict[str, Any], name: str, token: str) -> bytes:
    """Attribute `name` (binary) of the token item of `token`."""
    attribute = item.get(name)
    value = attribute.get("B") if isinstance(attribute, dict) else None
    if not isinstance(value, (bytes, bytearray)):
        raise VaultError(f"the vault item of token {mask(token)} has no attribute {name!r} of type binary; "
                         f"format {ITEM_FORMAT_VERSION} items hold k (the wrapped data key) and c (the "
                         "sealed value): the item is damaged or was not written by zero-trust-ai")
    return bytes(value)


# -- tokenize --------------------------------------------------------------------------------------
class VaultTokenizer:
    """Values → vault tokens for one domain; the same value always gets the same token."""

    def __init__(self, dynamodb: DynamoDbClient, kms: KmsClient, *, table: str, index_key: DomainKey,
                 vault_key_id: str, backoff: Backoff | None = None,
                 cache_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        if index_key.purpose != PURPOSE_VAULT_INDEX:
            raise ValueError(f"a {index_key.purpose} key cannot index the vault")
        self.dynamodb, self.kms = dynamodb, kms
        self.table, self.domain = table, index_key.domain
        self.index_key, self.vault_key_id = index_key, vault_key_id
        self._index_mac = index_key.mac()
        self.backoff = backoff or Backoff()
        self._cache = _Lru(cache_entries)
        self._aead: AESGCM | None = None
        self._wrapped_key = b""
        self._wrapping_key_arn = vault_key_id
        self._encryptions = 0

    @classmethod
    def open(cls, dynamodb: DynamoDbClient, kms: KmsClient, *, table: str, domain: str,
             mac_key_id: str, vault_key_id: str, **options: Any) -> VaultTokenizer:
        """Derive the domain's vault index key (one GenerateMac on `mac_key_id`) and open."""
        index_key = derive_domain_key(kms, mac_key_id, check_domain(domain), PURPOSE_VAULT_INDEX)
        return cls(dynamodb, kms, table=table, index_key=index_key, vault_key_id=vault_key_id, **options)

    def tokenize(self, values: Sequence[str]) -> list[str]:
        """Tokens in the order of `values`; one JSON decision line per call."""
        resolved: dict[str, str] = {}
        # Each value not in the cache is encoded once: the same bytes are size-checked, MACed for
        # its lookup key and, if new, encrypted.
        missing: dict[str, bytes] = {}
        for value in values:
            if value in resolved or value in missing:
                continue
            token = self._cache.get(value)
            if token is not None:
                resolved[value] = token
                continue
            encoded = value.encode("utf-8")
            # The file engine refuses longer values first, naming their line; this check is for
            # callers that hand values in directly, before any AWS call.
            if len(encoded) > MAX_VALUE_BYTES:
                raise InputError(f"a value of {len(encoded)} bytes is larger than the vault's limit "
                                 f"of {MAX_VALUE_BYTES} bytes")
            missing[value] = encoded
        hits = len(resolved)
        existing = created = raced = 0
        if missing:
            keys = {value: _lookup_item_key(self.domain, self._index_mac, encoded)
                    for value, encoded in missing.items()}
            found = _batch_get(self.dynamodb, self.table, list(keys.values()), ("t",), self.backoff)
            new: dict[str, str] = {}
            for value, key in keys.items():
                if key in found:
                    resolved[value] = _lookup_token(found[key])
                    existing += 1
                else:
                    new[value] = key
            created, raced = self._create(new, missing, resolved)
            for value in missing:
                self._cache.put(value, resolved[value])
        log_decision(_log, "vault-tokenize", table=self.table, domain=self.domain, values=len(values),
                     distinct=len(resolved), from_cache=hits, existing=existing, created=created,
                     lost_race=raced)
        return [resolved[value] for value in values]

    # A new value: a random token, and its value encrypted for the token item.
    def _token_item(self, key: str, token: str, encoded: bytes) -> dict[str, Any]:
        aead, wrapped = self._data_key()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = nonce + aead.encrypt(nonce, encoded, value_aad(self.domain, token))
        # "a": the key ARN that wrapped the data key. An alias moves (a rotation successor), the
        # ARN does not: detokenize decrypts with the ARN the item names.
        return {PARTITION_KEY: {"S": key}, "v": {"N": str(ITEM_FORMAT_VERSION)},
                "k": {"B": wrapped}, "c": {"B": sealed}, "a": {"S": self._wrapping_key_arn}}

    def _data_key(self) -> tuple[AESGCM, bytes]:
        if self._aead is None or self._encryptions >= MAX_ENCRYPTIONS_PER_DATA_KEY:
            response = call("KMS GenerateDataKey", self.kms.generate_data_key, KeyId=self.vault_key_id,
                            KeySpec="AES_256",
                            EncryptionContext=encryption_context(self.domain))
            self._aead, self._wrapped_key = AESGCM(bytes(response["Plaintext"])), bytes(
                response["CiphertextBlob"])
            self._wrapping_key_arn = str(response["KeyId"])
            self._encryptions = 0
            log_decision(_log, "vault-data-key", table=self.table, domain=self.domain,
                         kms_key=response.get("KeyId", self.vault_key_id))
        self._encryptions += 1
        return self._aead, self._wrapped_key

    def _create(self, new: dict[str, str], encoded: dict[str, bytes],
                resolved: dict[str, str]) -> tuple[int, int]:
        """Write new tokens (`new`: value → lookup item key; `encoded`: value → its UTF-8 bytes)
        into `resolved`; returns (created, lost races). A value whose race was lost adopts the
        winner's token."""
        created = raced = 0
        pending = list(new.items())
        for start in range(0, len(pending), VALUES_PER_TRANSACTION):
            group = {value: (key, new_vault_token()) for value, key in
                     pending[start:start + VALUES_PER_TRANSACTION]}
            delays = self.backoff.delays()
            while group:
                items: list[dict[str, Any]] = []
                for value, (key, token) in group.items():
                    items.append(self._put({PARTITION_KEY: {"S": key}, "t": {"S": token}}))
                    items.append(self._put(self._token_item(token_item_key(self.domain, token),
                                                            token, encoded[value])))
                try:
                    call("DynamoDB TransactWriteItems", self.dynamodb.transact_write_items,
                         TransactItems=items)
                except AwsCallError as error:
                    if error.code != "TransactionCanceledException":
                        raise
                    lost = self._after_cancellation(group, error)
                    if lost:
                        raced += self._adopt_winners(group, lost, resolved)
                    if group:
                        delay = next(delays, None)
                        if delay is None:
                            raise
                        self.backoff.sleep(delay)
                    continue
                for value, (_, token) in group.items():
                    resolved[value] = token
                created += len(group)
                group = {}
        return created, raced

    def _put(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"Put": {"TableName": self.table, "Item": item,
                        "ConditionExpression": "attribute_not_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": PARTITION_KEY}}}

    def _after_cancellation(self, group: dict[str, tuple[str, str]], error: AwsCallError) -> list[str]:
        """Read the cancellation reasons (one per action, in order): the values whose lookup item
        exists now (a race lost), fresh tokens for token-key collisions, errors that cannot pass."""
        reasons = error.response.get("CancellationReasons") or []
        if len(reasons) != 2 * len(group):
            raise error
        lost = []
        for index, (value, (key, _)) in enumerate(list(group.items())):
            lookup_code = reasons[2 * index].get("Code") or "None"
            token_code = reasons[2 * index + 1].get("Code") or "None"
            if lookup_code == "ConditionalCheckFailed":
                lost.append(value)
            elif token_code == "ConditionalCheckFailed":  # a 2^-128 event: draw again
                group[value] = (key, new_vault_token())
            for code in (lookup_code, token_code):
                if code not in ("None", "ConditionalCheckFailed") and code not in _RETRYABLE_CANCELLATIONS:
                    message = reasons[2 * index].get("Message") or reasons[2 * index + 1].get("Message")
                    raise AwsCallError("DynamoDB TransactWriteItems", code, str(message or error))
        return lost

    def _adopt_winners(self, group: dict[str, tuple[str, str]], lost: Sequence[str],
                       resolved: dict[str, str]) -> int:
        winners = _batch_get(self.dynamodb, self.table, [group[value][0] for value in lost], ("t",),
                             self.backoff)
        adopted = 0
        for value in lost:
            item = winners.get(group[value][0])
            if item is not None:  # else it vanished again (restored table?): write it anew
                resolved[value] = _lookup_token(item)
                del group[value]
                adopted += 1
        return adopted


# -- detokenize ------------------------------------------------------------------------------------
class VaultDetokenizer:
    """Vault tokens → values for one domain. Every call is logged with the caller's identity."""

    def __init__(self, dynamodb: DynamoDbClient, kms: KmsClient, sts: StsClient, *, table: str,
                 domain: str, vault_key_id: str, backoff: Backoff | None = None,
                 cache_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self.dynamodb, self.kms, self.sts = dynamodb, kms, sts
        self.table, self.domain, self.vault_key_id = table, check_domain(domain), vault_key_id
        self.backoff = backoff or Backoff()
        self._values = _Lru(cache_entries)
        self._data_keys = _Lru(1024)
        self._caller: dict[str, str] | None = None

    def caller(self) -> dict[str, str]:
        """Who is detokenizing (STS GetCallerIdentity needs no permission). Without an identity to
        log, nothing is detokenized."""
        if self._caller is None:
            identity = call("STS GetCallerIdentity", self.sts.get_caller_identity)
            self._caller = {"arn": str(identity.get("Arn", "")), "account": str(identity.get("Account", ""))}
        return self._caller

    def detokenize(self, tokens: Sequence[str]) -> list[str]:
        """Values in the order of `tokens`; raises VaultError if any token is not in this domain."""
        try:
            caller = self.caller()
        except AwsCallError as error:
            self._log("failed", {"arn": "unknown", "account": "unknown"}, tokens=len(tokens),
                      error=error.code)
            raise
        for position, token in enumerate(tokens):
            if not VAULT_TOKEN_PATTERN.fullmatch(token):
                self._log("failed", caller, tokens=len(tokens), error="NotAVaultToken")
                raise VaultError(f"value {position + 1} of the batch ({mask(token)}) is not a vault "
                                 f"token; vault tokens are {VAULT_TOKEN_PREFIX} followed by 32 "
                                 "lowercase hex digits (tk1_ tokens are one-way and cannot be reversed)")
        resolved: dict[str, str] = {}
        for token in tokens:
            if token not in resolved:
                value = self._values.get(token)
                if value is not None:
                    resolved[token] = value
        missing = [token for token in dict.fromkeys(tokens) if token not in resolved]
        try:
            decrypts = self._resolve(missing, resolved) if missing else 0
        except AwsCallError as error:
            self._log("denied" if error.code in DENIED_CODES else "failed", caller, tokens=len(tokens),
                      error=error.code)
            raise
        except VaultError:
            self._log("failed", caller, tokens=len(tokens), error="VaultError")
            raise
        for token in missing:
            self._values.put(token, resolved[token])
        self._log("allowed", caller, tokens=len(tokens), distinct=len(resolved),
                  vault_reads=len(missing), kms_decrypts=decrypts)
        return [resolved[token] for token in tokens]

    def _resolve(self, tokens: Sequence[str], resolved: dict[str, str]) -> int:
        """Read and decrypt `tokens` into `resolved`; returns the number of KMS Decrypt calls."""
        keys = {token: token_item_key(self.domain, token) for token in tokens}
        items = _batch_get(self.dynamodb, self.table, list(keys.values()), ("v", "k", "c", "a"),
                           self.backoff)
        unknown = [token for token, key in keys.items() if key not in items]
        if unknown:
            raise VaultError(f"{len(unknown)} of {len(tokens)} tokens are not in vault {self.table} for "
                             f"domain {self.domain} (first: {mask(unknown[0])}); check --table and "
                             "--domain: a token resolves only in the domain that issued it")
        decrypts = 0
        for token, key in keys.items():
            item = items[key]
            if item.get("v", {}).get("N") != str(ITEM_FORMAT_VERSION):
                raise VaultError(f"token {mask(token)} has item format {item.get('v')}; this version "
                                 f"reads format {ITEM_FORMAT_VERSION}")
            wrapped = _binary_attribute(item, "k", token)
            aead = self._data_keys.get(wrapped)
            if aead is None:
                response = call("KMS Decrypt", self.kms.decrypt, CiphertextBlob=wrapped,
                                KeyId=self._wrapping_key(item, token),
                                EncryptionContext=encryption_context(self.domain))
                aead = AESGCM(bytes(response["Plaintext"]))
                self._data_keys.put(wrapped, aead)
                decrypts += 1
            sealed = _binary_attribute(item, "c", token)
            if len(sealed) < _NONCE_BYTES + _TAG_BYTES:
                raise VaultError(f"the vault item of token {mask(token)} holds a {len(sealed)}-byte "
                                 f"sealed value; format {ITEM_FORMAT_VERSION} seals a value in at least "
                                 f"{_NONCE_BYTES + _TAG_BYTES} bytes (nonce and tag): the item is damaged")
            try:
                plaintext = aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:],
                                         value_aad(self.domain, token))
            except InvalidTag:
                raise VaultError(f"the vault item of token {mask(token)} fails its integrity check "
                                 "(altered, or copied from another token or domain)") from None
            resolved[token] = plaintext.decode("utf-8")
        return decrypts

    def _wrapping_key(self, item: dict[str, Any], token: str) -> str:
        """The key ARN the item names (items written before it was recorded: --vault-key-id).

        Only keys of the vault key's account are accepted (the account in --vault-key-id when it
        is an ARN, else the caller's, as KMS resolves a bare alias or key id), so a planted item
        cannot send our Decrypt call, and its CloudTrail record, to another account's key.
        """
        arn: str | None = item.get("a", {}).get("S")
        if arn is None:
            return self.vault_key_id
        given = self.vault_key_id.split(":")
        account = given[4] if self.vault_key_id.startswith("arn:") and len(given) == 6 else \
            self.caller()["account"]
        parts = arn.split(":")
        if len(parts) != 6 or parts[2] != "kms" or parts[4] != account or not parts[5].startswith("key/"):
            raise VaultError(f"the vault item of token {mask(token)} names key {arn!r}, not a key of "
                             f"account {account} (that of {self.vault_key_id}): refused")
        return arn

    def _log(self, outcome: str, caller: dict[str, str], *, tokens: int, distinct: int = 0,
             vault_reads: int = 0, kms_decrypts: int = 0, error: str | None = None) -> None:
        """One line per call: who, which vault and domain, how many tokens; never a token or a
        value."""
        fields: dict[str, Any] = {"outcome": outcome, "caller": caller["arn"], "account": caller["account"],
                                  "table": self.table, "domain": self.domain, "tokens": tokens,
                                  "distinct": distinct, "vault_reads": vault_reads,
                                  "kms_decrypts": kms_decrypts}
        if error is not None:
            fields["error"] = error
        log_decision(_log, "detokenize", **fields)
