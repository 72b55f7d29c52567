"""How the runtime's Lambda functions retry their AWS calls: one policy, one place.

botocore's standard retry mode: exponential backoff with jitter on throttling (ThrottlingException
and its kin) and transient errors (5xx, dropped connections), `total_max_attempts` attempts per
call in total (botocore's `max_attempts` would count retries only). Adaptive mode would add
client-side rate limiting, which a function making one call at a time does not need. Connections
and reads time out instead of holding a run until Lambda's own timeout.

This module imports only botocore: it ships, with the functions that use it, as a Lambda asset.
"""

from __future__ import annotations

from botocore.config import Config

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 20


def retry_config(total_max_attempts: int) -> Config:
    """A client configuration with standard retries, `total_max_attempts` attempts per call in
    total (1: never retry, for calls that are not idempotent)."""
    return Config(retries={"mode": "standard", "total_max_attempts": total_max_attempts},
                  connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS)
