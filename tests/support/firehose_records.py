"""Firehose transformation batches as the SIEM stream sees them: CloudWatch Logs subscription
payloads (gzip'd JSON, base64 in the record), in the documented shapes."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.datasets import shared_dir

STREAM_NAME = "zero-trust-ai-dev-siem"
STREAM_ARN = f"arn:aws:firehose:eu-west-1:111122223333:deliverystream/{STREAM_NAME}"
LOG_GROUP = "/zero-trust-ai/dev/cloudtrail"

# The real CloudTrail records of the data set, found beside the checkout (the main tree)
# or beside the worktrees' directory.
_ROOT = Path(__file__).resolve().parent.parent.parent
# The shared folder as tests/support/datasets.py finds it (ZTAI_SHARED_DIR, else beside the clone).
STRATUS_CANDIDATES = (shared_dir() / "datasets" / "stratus-red-team",
                      _ROOT.parent.parent / "shared" / "datasets" / "stratus-red-team")


def cloudtrail_record(name: str = "GetObject", index: int = 0) -> dict[str, Any]:
    """A small CloudTrail management or data event record."""
    return {
        "eventVersion": "1.10", "eventTime": "2026-12-01T10:00:00Z", "eventSource": "s3.amazonaws.com",
        "eventName": name, "awsRegion": "eu-west-1", "sourceIPAddress": "192.0.2.10",
        "userAgent": "test", "eventID": f"00000000-0000-0000-0000-{index:012d}",
        "eventType": "AwsApiCall", "readOnly": True, "managementEvent": False,
        "recipientAccountId": "111122223333", "eventCategory": "Data",
        "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLE:alice",
                         "arn": "arn:aws:sts::111122223333:assumed-role/reader/alice",
                         "accountId": "111122223333"},
        "requestParameters": {"bucketName": "models", "key": f"weights/{index:06d}.bin"},
        "responseElements": None, "requestID": f"REQ{index:06d}",
    }


def payload(messages: Sequence[str], *, message_type: str = "DATA_MESSAGE",
            log_group: str = LOG_GROUP, owner: str = "111122223333",
            filters: Sequence[str] = (STREAM_NAME,)) -> dict[str, Any]:
    """A subscription payload of these messages (CONTROL_MESSAGE carries none), as the stream's
    own subscription filter (named like the stream) writes it."""
    return {
        "owner": owner, "logGroup": log_group, "logStream": "111122223333_CloudTrail_eu-west-1",
        "subscriptionFilters": list(filters), "messageType": message_type,
        "logEvents": [{"id": str(36000000000000000000000000000000000000000000000000000000 + index),
                       "timestamp": 1764583200000 + index, "message": message}
                      for index, message in enumerate(messages)],
    }


def encode(document: Any) -> str:
    """A record's data: base64 of gzip (level 6, as CloudWatch Logs writes) of the JSON."""
    return base64.b64encode(gzip.compress(json.dumps(document).encode(), 6)).decode("ascii")


def record(record_id: str, data: str) -> dict[str, Any]:
    return {"recordId": record_id, "approximateArrivalTimestamp": 1764583260000, "data": data}


def event(records: Sequence[dict[str, Any]], *, arn: str = STREAM_ARN) -> dict[str, Any]:
    """The transformation Lambda's input event (Direct PUT source)."""
    return {"invocationId": "11111111-2222-3333-4444-555555555555", "deliveryStreamArn": arn,
            "region": "eu-west-1", "records": list(records)}


def decoded_lines(output: dict[str, str]) -> list[str]:
    """The newline-delimited lines of one output record."""
    text = base64.b64decode(output["data"], validate=True).decode()
    assert text.endswith("\n"), "every line, the last included, ends with a line break"
    return text[:-1].split("\n")


def stratus_messages() -> list[str] | None:
    """Every record of the data set as one CloudTrail line (a log event's message), or None when
    the data set is not beside the checkout."""
    for directory in STRATUS_CANDIDATES:
        files = sorted(directory.glob("*.json")) if directory.is_dir() else []
        if files:
            return [json.dumps(item) for path in files for item in json.loads(path.read_text())]
    return None
