"""What can go wrong while tokenizing, as exceptions whose message is the user-facing explanation.

Each class tells the caller what to do with the output: an `InputError` means the input itself is
wrong (nothing is kept, fix the input); an `AwsCallError` is a refusal or outage of AWS (the partial
output and its checkpoint are kept, so `--resume` continues once it is fixed).
"""

from __future__ import annotations

from typing import Any


class TokenizeError(Exception):
    """Base class; `str(error)` names what is wrong and what is allowed."""


class InputError(TokenizeError):
    """The input file or the requested columns are wrong (missing column, malformed line, ...)."""


class ResumeError(TokenizeError):
    """A checkpoint cannot be used: it belongs to another input, other parameters, or is damaged."""


class VaultError(TokenizeError):
    """The vault cannot answer: unknown token, an item that fails its integrity check, ..."""


class AwsCallError(TokenizeError):
    """AWS refused or failed a call; `code` is the AWS error code (e.g. AccessDeniedException)."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"AWS {operation} failed: {code}: {message}")
        self.operation = operation
        self.code = code
        # The service's parsed error response (e.g. TransactWriteItems' CancellationReasons).
        self.response: dict[str, Any] = {}
