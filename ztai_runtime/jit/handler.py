"""The two functions of just-in-time elevation.

`api`: behind a Lambda function URL with AWS_IAM authorization, the only way requests, approvals,
denials and revocations are made. Lambda verifies the caller's SigV4 signature and passes its ARN
(`requestContext.authorizer.iam.userArn`); the requester and approvers are taken from there, never
from the body, so nobody can approve as someone else. Only this function's role may change the
elevation roles: approvers hold no IAM rights on them, so an approver cannot grant themselves.

`expire`: called by the one-time EventBridge Scheduler schedule at a grant's expiry with
`{"request_id": ...}`. It can only end a grant whose time is up, so a stray call is harmless.

Environment: JIT_TABLE (the requests table); for `api` also JIT_CATALOGUE (JSON: name ->
{roleArn, maxMinutes, approvers, approvalsNeeded, sessionMinutes, keyArn}) and JIT_EXPIRY_ARN,
JIT_SCHEDULER_ROLE_ARN (the expiry function and the role Scheduler invokes it with).
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from typing import Any

from ztai_runtime.jit.grants import (
    LOGGER,
    STATES,
    Elevation,
    JitError,
    JitRefusedError,
    JitStore,
    caller_from_arn,
)
from ztai_runtime.jsonlog import log_decision

ACTIONS = ("request", "approve", "deny", "revoke", "list")


def _clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def catalogue_from_json(text: str) -> dict[str, Elevation]:
    entries = json.loads(text)
    return {name: Elevation(name=name, role_arn=entry["roleArn"], max_minutes=int(entry["maxMinutes"]),
                            approver_roles=tuple(entry["approvers"]),
                            approvals_needed=int(entry["approvalsNeeded"]),
                            session_minutes=(int(entry["sessionMinutes"])
                                             if entry.get("sessionMinutes") else None),
                            key_arn=entry.get("keyArn") or None)
            for name, entry in entries.items()}


def _clients() -> dict[str, Any]:
    import boto3

    return {name: boto3.client(name) for name in ("dynamodb", "iam", "scheduler", "kms")}


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body, sort_keys=True)}


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise JitError(f"field {name!r}: expected a {kind.__name__}, got {value!r}")
    return value


def api(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """One request of `ztai access`: 200 done (or nothing to do), 400 bad input, 403 refused."""
    try:
        caller_arn = event["requestContext"]["authorizer"]["iam"]["userArn"]
    except (KeyError, TypeError):
        log_decision(LOGGER, "jit.api.unauthenticated")
        return _response(403, {"error": "no IAM caller: the function URL must use AWS_IAM authorization"})
    try:
        caller = caller_from_arn(caller_arn)
        raw = event.get("body") or ""
        text = base64.b64decode(raw).decode("utf-8") if event.get("isBase64Encoded") else raw
        try:
            body = json.loads(text)
        except ValueError:
            raise JitError("the request body is not JSON") from None
        if not isinstance(body, dict) or body.get("action") not in ACTIONS:
            raise JitError(f"action: one of {', '.join(ACTIONS)}")
        store = JitStore(table=os.environ["JIT_TABLE"],
                         catalogue=catalogue_from_json(os.environ["JIT_CATALOGUE"]),
                         expiry_target={"Arn": os.environ["JIT_EXPIRY_ARN"],
                                        "RoleArn": os.environ["JIT_SCHEDULER_ROLE_ARN"]},
                         clock=lambda: _clock(), **_clients())
        action = body["action"]
        if action == "list":
            state = body.get("state")
            if state is not None and state not in STATES:
                raise JitError(f"state {state!r} is not one of {', '.join(STATES)}")
            # A caller sees their own requests and those they may approve, nobody else's.
            return _response(200, {"requests": store.list(state=state, viewer=caller)})
        if action == "request":
            result = store.request(caller, _field(body, "elevation", str), _field(body, "minutes", int),
                                   _field(body, "reason", str),
                                   policy=_field(body, "policy", str) if "policy" in body else None)
        elif action == "approve":
            result = store.approve(caller, _field(body, "request_id", str),
                                   policy_sha256=(_field(body, "policy_sha256", str)
                                                  if "policy_sha256" in body else None))
        elif action == "deny":
            result = store.deny(caller, _field(body, "request_id", str), _field(body, "reason", str))
        else:
            result = store.revoke(caller, _field(body, "request_id", str), _field(body, "reason", str))
    except JitRefusedError as refused:
        log_decision(LOGGER, "jit.api.refused", caller=caller_arn, error=str(refused))
        return _response(403, {"error": str(refused)})
    except JitError as error:
        log_decision(LOGGER, "jit.api.bad-request", caller=caller_arn, error=str(error))
        return _response(400, {"error": str(error)})
    return _response(200, {"changed": result.changed, "message": result.message, "request": result.request})


def expire(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    request_id = event.get("request_id") if isinstance(event, dict) else None
    if not isinstance(request_id, str):
        log_decision(LOGGER, "jit.expire.bad-event", received=event)
        return {"changed": False, "message": "the event names no request_id"}
    # Ending a grant needs only what the request's item holds (its role): no catalogue.
    store = JitStore(table=os.environ["JIT_TABLE"], catalogue={}, clock=lambda: _clock(), **_clients())
    try:
        result = store.expire(request_id)
    except JitError as error:
        log_decision(LOGGER, "jit.expire.refused", request_id=request_id, error=str(error))
        return {"changed": False, "message": str(error)}
    return {"changed": result.changed, "message": result.message}
