"""Deterministic, joinable tokens: `tk1_` + 32 lowercase hex digits (128 bits).

    token = "tk1_" + hex(HMAC-SHA256(domain key, UTF-8 bytes of the value)[:16])

The same value in the same domain always gives the same token, so tokenized datasets still join
and group; another domain gives an unrelated token. What the tokens reveal, precisely:

- equality and frequency within a domain: equal values have equal tokens, so a histogram of tokens is
  the histogram of values (a rare value stays rare);
- nothing about length or content: every token has the same length;
- to anyone who can derive the domain key (`kms:GenerateMac` on the tokens key), everything a
  dictionary of guesses reveals: low-entropy values (phone numbers, dates of birth) can be
  enumerated offline once the key is known. The key lives only in the memory of the tokenizing
  process; grant GenerateMac to the tokenizing role alone.

128 bits keep the chance of two values sharing a token negligible (birthday bound: about 2^-64 at
2^32 distinct values). Lowercase hex is safe in CSV, JSON, identifiers and file names, survives
case-insensitive collations (base64 would not), and is encoded in C (Python's base32 is not, and
cost more than the MAC). `tk1_` names the scheme version: a
future scheme gets a new prefix, so tokens of two schemes never compare equal by accident.
"""

from __future__ import annotations

from collections.abc import Sequence

from ztai_runtime.tokenize.keys import PURPOSE_TOKEN, DomainKey

TOKEN_PREFIX = "tk1_"
TOKEN_BYTES = 16  # 128 bits
TOKEN_LENGTH = len(TOKEN_PREFIX) + 2 * TOKEN_BYTES


class DeterministicTokenizer:
    """Tokens for one domain; no AWS call after the key was derived."""

    def __init__(self, key: DomainKey) -> None:
        if key.purpose != PURPOSE_TOKEN:
            raise ValueError(f"a {key.purpose} key cannot make deterministic tokens")
        self.key = key
        self._mac = key.mac()

    def token(self, value: str) -> str:
        return TOKEN_PREFIX + self._mac.digest(value.encode("utf-8"))[:TOKEN_BYTES].hex()

    def tokens(self, values: Sequence[str]) -> list[str]:
        # One comprehension with locals: this is the per-row cost of the batch CLI.
        digest = self._mac.digest
        return [TOKEN_PREFIX + digest(value.encode("utf-8"))[:TOKEN_BYTES].hex() for value in values]
