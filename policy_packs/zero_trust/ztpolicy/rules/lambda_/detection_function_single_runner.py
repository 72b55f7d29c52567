"""The detection function runs one invocation at a time (control: detection stream).

The detection function (components/detection.py, handler `ztai_runtime.detect.stream.handler`)
reads its learned state from S3, learns from a batch and writes the state back with a conditional
write. Its reserved concurrency of 1 is what keeps two invocations from racing: without it, a burst
of log events runs many copies at once, all but one fail their write and are retried, and a flood
of traffic (an insider's bulk reads among them) delays detection until events age out into the
failure queue. Its `reservedConcurrentExecutions` must be 1. (Its failure queue is
`lambda-failure-destination`'s.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known
from ztpolicy.rule import Resource, Rule

FUNCTION = "aws:lambda/function:Function"
# components/detection.py: DETECT_HANDLER (a test keeps them equal).
DETECT_HANDLER = "ztai_runtime.detect.stream.handler"


def detection_function_single_runner(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if known(resource, "handler") != DETECT_HANDLER:
        return []
    reserved = known(resource, "reservedConcurrentExecutions")
    if reserved is UNKNOWN or reserved == 1:
        return []
    shown = "none (-1, unreserved)" if reserved in (None, -1) else repr(reserved)
    return [f"detection function {resource.name} has reserved concurrency {shown}: it must be 1, "
            "so that one invocation at a time reads and writes the learned state"]


RULE = Rule(
    name="detection-function-single-runner",
    description="The detection stream function keeps reserved concurrency 1 (one learner at a time).",
    control="detection stream",
    severity=Severity.MEDIUM,
    remediation="Build the function with DetectionStream (components/detection.py), which sets "
                "reserved concurrency 1 through logged_function(reserve_concurrency=True).",
    resource_check=detection_function_single_runner,
    resource_types=frozenset({FUNCTION}),
)
