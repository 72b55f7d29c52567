"""What the rules and the models say about one event, and who the event's principal is.

Every detector (a Sigma rule, a behavioural model) looks at one `Event` and returns zero or more
`Signal`s. The engine (`ztai_runtime.detect.engine`) groups signals into findings: one finding per
burst of signals with the same rule, principal and `group`, not one per event.

`principal_of(event)` is the one place that decides whose behaviour an event is, so that the rules,
the models and the findings all name the same principal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVar

from ztai_runtime.detect.sources import Event

# Sigma's levels, lowest first (https://sigmahq.io/docs/basics/rules.html#level).
SEVERITIES: tuple[str, ...] = ("informational", "low", "medium", "high", "critical")
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

# Session names that name a machine, not a person: an EC2 instance (`i-0123...`), or none worth
# separating (a Lambda function's session is the function's name, which the role already names).
# A human's session (SSO: the user's e-mail or name; `--role-session-name`) stays in the principal,
# so two engineers sharing one role are two principals.
_INSTANCE_SESSION = re.compile(r"^i-[0-9a-f]{8,17}$")
_ASSUMED = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/(.+)$")


K = TypeVar("K")
V = TypeVar("V")
# What a memo of the detectors' hot paths holds at most: cleared whole when full (cheaper than an
# LRU's bookkeeping on every hit, and the few hundred principals, agents and names of an account
# refill it at once). Callers read the dict directly (a `.get` is cheaper than a call).
MEMO_ENTRIES = 16_384


def remember(memo: dict[K, V], key: K, value: V, limit: int = MEMO_ENTRIES) -> V:
    """Store `value` under `key` in a bounded memo (cleared when it holds `limit` entries)."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value


@dataclass(frozen=True, slots=True)
class Signal:
    """One detector's verdict on one event."""

    rule: str
    """The rule's id (a Sigma rule's `name`, or its `id` when it has none) or the model's kind
    (`model:<kind>`, e.g. `model:new-network`)."""
    severity: str
    """One of SEVERITIES."""
    principal: str
    """`principal_of(event)` unless the detector knows better (a model of an API client)."""
    reason: str
    """What a person reads: what happened and why it stands out, with the figures."""
    technique: str | None = None
    """The MITRE ATT&CK technique id (`T1562.008`), where one applies."""
    group: str = ""
    """What else separates bursts beyond rule and principal (a bucket, a key): signals with the same
    (rule, principal, group) close in time make one finding."""


def severity_rank(severity: str) -> int:
    """The rank of a severity (ValueError naming the allowed ones when it is not one)."""
    try:
        return SEVERITY_RANK[severity]
    except KeyError:
        raise ValueError(f"unknown severity {severity!r}: allowed are {', '.join(SEVERITIES)}") from None


def principal_of(event: Event) -> str:
    """Whose behaviour the event is, as one stable string.

    - CloudTrail: an assumed role is `arn:...:role/<role>` plus `/<session>` when the session names
      a person (SSO user, a named CLI session) and not an instance or a function; an IAM user, root,
      a federated user or a web identity is its ARN (or `principalId` / `userName` when the record
      has no ARN); a service acting for the account is its `invokedBy` (`service:ec2.amazonaws.com`).
    - Gateway and inference events: the API client, `client:<clientId>` (`client:-` when the
      request carried no identity).
    - JIT lines: `jit:<requester>`.
    - OCSF: the actor's user uid or name, else `unknown`.
    """
    record = event.record
    if event.kind == "cloudtrail":
        return _cloudtrail_principal(record)
    if event.kind in ("gateway", "inference"):
        client = record.get("clientId") or record.get("client_id")
        return f"client:{client}" if isinstance(client, str) and client else "client:-"
    if event.kind == "jit":
        requester = record.get("requester") or record.get("requested_by")
        return f"jit:{requester}" if isinstance(requester, str) and requester else "jit:-"
    actor = record.get("actor")
    if isinstance(actor, dict):
        user = actor.get("user")
        if isinstance(user, dict):
            for name in ("uid", "name"):
                value = user.get(name)
                if isinstance(value, str) and value:
                    return value
    return "unknown"


# The parsed assumed-role ARNs (`arn` -> (role ARN, session, role ARN/session, session names an
# instance), or None when the ARN is not an assumed role's): a stream repeats a handful of
# principals, and the regular expressions cost most of the principal's decision. Bounded: cleared
# whole when full.
_ARN_CACHE: dict[str, tuple[str, str, str, bool] | None] = {}


def _assumed(arn: str) -> tuple[str, str, str, bool] | None:
    match = _ASSUMED.match(arn)
    if match is None:
        parsed = None
    else:
        partition, account, role, session = match.groups()
        base = f"arn:{partition}:iam::{account}:role/{role}"
        parsed = (base, session, f"{base}/{session}", _INSTANCE_SESSION.match(session) is not None)
    return remember(_ARN_CACHE, arn, parsed)


def _cloudtrail_principal(record: dict[str, Any]) -> str:
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        return "unknown"
    kind = identity.get("type")
    arn = identity.get("arn")
    if kind == "AssumedRole" and isinstance(arn, str):
        parsed = _ARN_CACHE[arn] if arn in _ARN_CACHE else _assumed(arn)
        if parsed is None:
            return arn
        base, session, person, instance = parsed
        if instance or _is_function_session(record, identity, session):
            return base
        return person
    if kind == "AWSService":
        invoked = identity.get("invokedBy") or record.get("sourceIPAddress")
        return f"service:{invoked}" if isinstance(invoked, str) else "service:-"
    if isinstance(arn, str) and arn:
        return arn
    for name in ("principalId", "userName", "invokedBy"):
        value = identity.get(name)
        if isinstance(value, str) and value:
            return value
    return "unknown"


def _is_function_session(record: dict[str, Any], identity: dict[str, Any], session: str) -> bool:
    """A Lambda function's credentials: its user agent names the Lambda execution environment
    (`exec-env/AWS_Lambda_python3.13`), or the session is named after the role itself."""
    agent = record.get("userAgent")
    if isinstance(agent, str) and "exec-env/AWS_Lambda" in agent:
        return True
    context = identity.get("sessionContext")
    issuer = context.get("sessionIssuer") if isinstance(context, dict) else None
    role = issuer.get("userName") if isinstance(issuer, dict) else None
    return isinstance(role, str) and session == role
