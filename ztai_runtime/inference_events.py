"""Inference events: one JSON line per inference request, in one fixed shape.

The parent agent (enclave_images/parent/agent.py) writes one line for every request it answers,
served or refused, to its journal and to the log group `/zero-trust-ai/<env>/inference-events`
(docs/inference-events.md). The shape is what the SIEM stream's transform reads, so its names do
not change without that transform changing with them:

    {"event": "inference", "time": "2026-12-07T16:22:43.123Z", "source": "enclave",
     "requestId": "Ab1cD2eF3gH4=", "clientId": "4f0c...", "partner": "acme", "route": "POST /v1/infer",
     "rows": 3, "requestBytes": 812, "responseBytes": 21, "latencyMs": 4.25, "model": "digits",
     "modelVersion": "7", "decision": "served", "reason": null, "status": 200,
     "inputCells": [3, 41, 172], "inputCellCount": 3}

`source` names who decided: "enclave" when the enclave answered (it verified the caller, or
refused it, and ran the model), "parent" when the agent decided alone (a malformed request, an
enclave that did not answer). What a line never holds: the request or response body, the
Authorization header or any token, the client certificate or its headers.

`inputCells` and `inputCellCount` (OPTIONAL_FIELDS) are the enclave's coarse summary of the inputs
of a request it served (enclave_images/enclave/input_cells.py), for the model-extraction detector:
which of the 2**CELL_BITS cells of a locality-sensitive hash the rows fall in (at most
MAX_INPUT_CELLS ids, sorted) and how many distinct cells. They are absent from refused requests and
from events written before the enclave reported them; a reader treats their absence as "unknown".
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from itertools import pairwise
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
# The enclave's input summary: present only when the enclave served the request.
OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {"inputCells": (list,), "inputCellCount": (int,)}
# 8 bits: 256 cells. Enough to tell natural inputs (about 100 cells) from probing that fills the space;
# each row's cell says at most 8 bits about it (docs/inference-events.md, the input summary).
CELL_BITS = 8
CELL_SPACE = 1 << CELL_BITS
# At most this many cell ids per request, whatever its rows.
MAX_INPUT_CELLS = 16
# What the enclave reports of its own decision (its answer's `audit` object), by the same names.
ENCLAVE_AUDIT_FIELDS = ("clientId", "partner", "route", "rows", "model", "modelVersion", "decision",
                        "reason", *OPTIONAL_FIELDS)


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
                    reason: str | None, status: int, at: float | None = None,
                    input_cells: list[int] | None = None,
                    input_cell_count: int | None = None) -> dict[str, Any]:
    """One event, checked: ValueError naming the field when a value is not of its type. The input
    summary is written only when given (both or neither)."""
    record: dict[str, Any] = {
        "event": EVENT, "time": event_time(at), "source": source, "requestId": bounded(request_id),
        "clientId": bounded(client_id), "partner": bounded(partner), "route": bounded(route),
        "rows": rows, "requestBytes": request_bytes, "responseBytes": response_bytes,
        "latencyMs": round(float(latency_ms), 3), "model": bounded(model),
        "modelVersion": bounded(model_version), "decision": decision, "reason": bounded(reason),
        "status": status}
    if input_cells is not None or input_cell_count is not None:
        record["inputCells"] = input_cells
        record["inputCellCount"] = input_cell_count
    problems = event_problems(record)
    if problems:
        raise ValueError("inference event: " + "; ".join(problems))
    return record


def event_problems(record: Mapping[str, Any]) -> list[str]:
    """What makes `record` not an inference event of this shape; empty when it is one."""
    problems = [f"{name} missing" for name in FIELDS if name not in record]
    problems += [f"{name} is not a field of the event" for name in record
                 if name not in FIELDS and name not in OPTIONAL_FIELDS]
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
    problems += summary_problems(record)
    return problems


def summary_problems(record: Mapping[str, Any]) -> list[str]:
    """What is wrong with the input summary of `record` (none when it has none, or a good one)."""
    if "inputCells" not in record and "inputCellCount" not in record:
        return []
    cells, count = record.get("inputCells"), record.get("inputCellCount")
    problems = []
    if "inputCells" not in record or "inputCellCount" not in record:
        problems.append("inputCells and inputCellCount go together")
    if not isinstance(cells, list) or len(cells) > MAX_INPUT_CELLS or not all(
            isinstance(cell, int) and not isinstance(cell, bool) and 0 <= cell < CELL_SPACE
            for cell in cells) or any(a >= b for a, b in pairwise(cells)):
        problems.append(f"inputCells {_shown(cells)}: expected at most {MAX_INPUT_CELLS} distinct "
                        f"integers 0..{CELL_SPACE - 1} in ascending order")
    elif (not isinstance(count, int) or isinstance(count, bool) or not len(cells) <= count <= CELL_SPACE
          or (len(cells) < MAX_INPUT_CELLS and count != len(cells))):
        problems.append(f"inputCellCount {_shown(count)}: expected the number of distinct cells, "
                        f"{len(cells)}..{CELL_SPACE} (equal to the ids listed when fewer than "
                        f"{MAX_INPUT_CELLS})")
    if record.get("decision") != "served" and ("inputCells" in record or "inputCellCount" in record):
        problems.append("inputCells: only a served request has an input summary")
    return problems


def input_summary(audit: Mapping[str, Any]) -> dict[str, Any]:
    """The enclave audit's input summary as an event carries it, or nothing when the audit has none
    or a malformed one (the parent relays it; it never makes the request fail)."""
    summary = {name: audit[name] for name in OPTIONAL_FIELDS if name in audit}
    if len(summary) != len(OPTIONAL_FIELDS) or summary_problems({**summary, "decision": "served"}):
        return {}
    return summary


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
