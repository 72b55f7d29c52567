"""Inference events: one JSON line per inference request, in one fixed shape.

The parent agent (enclave_images/parent/agent.py) writes one line for every request it answers,
served or refused, to its journal and to the log group `/zero-trust-ai/<env>/inference-events`
(docs/inference-events.md). The shape is what the SIEM stream's transform reads, so its names do
not change without that transform changing with them:

    {"event": "inference", "time": "2026-12-07T16:22:43.123Z", "source": "enclave",
     "requestId": "Ab1cD2eF3gH4=", "clientId": "4f0c...", "partner": "acme", "route": "POST /v1/infer",
     "rows": 3, "requestBytes": 812, "responseBytes": 21, "latencyMs": 4.25, "model": "digits",
     "modelVersion": "7", "decision": "served", "reason": null, "status": 200}

`source` names who decided: "enclave" when the enclave answered (it verified the caller, or
refused it, and ran the model), "parent" when the agent decided alone (a malformed request, an
enclave that did not answer). What a line never holds: the request or response body, the
Authorization header or any token, the client certificate or its headers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

EVENT = "inference"
SOURCES = ("parent", "enclave")
DECISIONS = ("served", "refused")
# Text fields are bounded, so a caller's header cannot make a line of any size.
MAX_TEXT = 512

_TEXT = (str,)
_OPTIONAL_TEXT = (str, type(None))
# Each field and the types it may hold, in the order a line lists them.
FIELDS: dict[str, tuple[type, ...]] = {
    "event": _TEXT, "time": _TEXT, "source": _TEXT, "requestId": _TEXT, "clientId": _OPTIONAL_TEXT,
    "partner": _OPTIONAL_TEXT, "route": _TEXT, "rows": (int,), "requestBytes": (int,),
    "responseBytes": (int,), "latencyMs": (float,), "model": _OPTIONAL_TEXT,
    "modelVersion": _OPTIONAL_TEXT, "decision": _TEXT, "reason": _OPTIONAL_TEXT, "status": (int,),
}
# What the enclave reports of its own decision (its answer's `audit` object), by the same names.
ENCLAVE_AUDIT_FIELDS = ("clientId", "partner", "route", "rows", "model", "modelVersion", "decision",
                        "reason")


def event_time(seconds: float | None = None) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. 2026-12-07T16:22:43.123Z."""
    now = time.time() if seconds is None else seconds
    whole = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((now - whole) * 1000):03d}Z"


def bounded(text: str | None) -> str | None:
    """`text` cut to MAX_TEXT characters (None stays None)."""
    if text is None:
        return None
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def inference_event(*, source: str, request_id: str, client_id: str | None, partner: str | None,
                    route: str, rows: int, request_bytes: int, response_bytes: int,
                    latency_ms: float, model: str | None, model_version: str | None, decision: str,
                    reason: str | None, status: int, at: float | None = None) -> dict[str, Any]:
    """One event, checked: ValueError naming the field when a value is not of its type."""
    record: dict[str, Any] = {
        "event": EVENT, "time": event_time(at), "source": source, "requestId": bounded(request_id),
        "clientId": bounded(client_id), "partner": bounded(partner), "route": bounded(route),
        "rows": rows, "requestBytes": request_bytes, "responseBytes": response_bytes,
        "latencyMs": round(float(latency_ms), 3), "model": bounded(model),
        "modelVersion": bounded(model_version), "decision": decision, "reason": bounded(reason),
        "status": status}
    problems = event_problems(record)
    if problems:
        raise ValueError("inference event: " + "; ".join(problems))
    return record


def event_problems(record: Mapping[str, Any]) -> list[str]:
    """What makes `record` not an inference event of this shape; empty when it is one."""
    problems = [f"{name} missing" for name in FIELDS if name not in record]
    problems += [f"{name} is not a field of the event" for name in record if name not in FIELDS]
    for name, types in FIELDS.items():
        value = record.get(name)
        # bool is an int to Python, not to a reader of the line.
        if name in record and (not isinstance(value, types) or isinstance(value, bool)):
            allowed = " or ".join("null" if kind is type(None) else kind.__name__ for kind in types)
            problems.append(f"{name} {value!r}: expected {allowed}")
    if record.get("event") != EVENT:
        problems.append(f"event {record.get('event')!r}: expected {EVENT!r}")
    if record.get("source") not in SOURCES:
        problems.append(f"source {record.get('source')!r}: one of {', '.join(SOURCES)}")
    if record.get("decision") not in DECISIONS:
        problems.append(f"decision {record.get('decision')!r}: one of {', '.join(DECISIONS)}")
    for name in ("rows", "requestBytes", "responseBytes"):
        if isinstance(record.get(name), int) and record[name] < 0:
            problems.append(f"{name} {record[name]}: not negative")
    return problems
