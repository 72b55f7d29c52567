"""One structured JSON line per decision, on the logger the caller names.

Lambda ships stdout/stderr lines to CloudWatch Logs as they are; one JSON object per line keeps every
decision queryable with Logs Insights and forwardable to the SIEM (control map: audit logging) unchanged.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_HANDLER_FLAG = "_ztai_jsonlog"


def get_logger(name: str) -> logging.Logger:
    """A logger that writes bare JSON lines to stderr, configured once per name."""
    logger = logging.getLogger(name)
    if not any(getattr(handler, _HANDLER_FLAG, False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        setattr(handler, _HANDLER_FLAG, True)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        # The Lambda runtime installs a root handler with its own text format: do not log twice.
        logger.propagate = False
    return logger


def log_decision(logger: logging.Logger, event: str, **fields: Any) -> dict[str, Any]:
    """Write `{"event": ..., "time": ..., **fields}` as one line and return it (tests read it back)."""
    record: dict[str, Any] = {"event": event, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    record.update(fields)
    logger.info(json.dumps(record, sort_keys=True, default=str))
    return record
