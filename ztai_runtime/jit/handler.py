"""The expiry function: a one-time EventBridge Scheduler schedule calls it at a grant's expiry.

Environment: JIT_TABLE, the requests table. The event is `{"request_id": ...}`. Ending a grant
needs only what the request's item holds (its role), so the function reads no catalogue: an
empty one is passed. Idempotent: a grant revoked by hand before its schedule fired is left as it is.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from ztai_runtime.jit.grants import LOGGER, JitError, JitStore
from ztai_runtime.jsonlog import log_decision


def _clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def expire(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    import boto3

    store = JitStore(table=os.environ["JIT_TABLE"], catalogue={}, dynamodb=boto3.client("dynamodb"),
                     iam=boto3.client("iam"), scheduler=boto3.client("scheduler"),
                     clock=lambda: _clock())
    request_id = event.get("request_id") if isinstance(event, dict) else None
    if not isinstance(request_id, str):
        log_decision(LOGGER, "jit.expire.bad-event", received=event)
        return {"changed": False, "message": "the event names no request_id"}
    try:
        result = store.expire(request_id)
    except JitError as error:
        log_decision(LOGGER, "jit.expire.refused", request_id=request_id, error=str(error))
        return {"changed": False, "message": str(error)}
    return {"changed": result.changed, "message": result.message}
