"""PLACEHOLDER for the OCSF mapping (the real module is written on its own branch).

Only the signature is fixed: `to_ocsf(message, log_group=...)` returns one OCSF event as a dict, or
None when the line is not a kind the mapping knows (the caller forwards it as-is and counts it).
This stand-in maps a CloudTrail record (a JSON object with eventName and eventSource) to a minimal
API Activity shape so the transform can be exercised; it never raises.
"""

from __future__ import annotations

import json
from typing import Any

OCSF_VERSION = "1.7.0"


def to_ocsf(message: str, *, log_group: str = "") -> dict[str, Any] | None:
    """One OCSF event for a CloudTrail line, None for anything else."""
    try:
        record = json.loads(message)
    except (TypeError, ValueError):
        return None
    if not isinstance(record, dict) or "eventName" not in record or "eventSource" not in record:
        return None
    return {
        "class_uid": 6003, "category_uid": 6, "activity_id": 99, "type_uid": 600399,
        "severity_id": 1, "time": 0,
        "metadata": {"version": OCSF_VERSION, "product": {"name": "CloudTrail", "vendor_name": "AWS"},
                     "uid": record.get("eventID"), "log_name": log_group},
        "api": {"operation": record.get("eventName"), "service": {"name": record.get("eventSource")}},
        "unmapped": {"raw": record},
        "raw_data": message,
    }
