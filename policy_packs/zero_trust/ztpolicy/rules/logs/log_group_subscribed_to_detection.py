"""Every log group the SIEM stream carries is watched by the detection function too (control:
detection stream).

The detection function (components/detection.py, handler `ztai_runtime.detect.stream.handler`)
runs the detection rules and models on the same events the SIEM stream sends out, and puts each
finding on the playbooks' bus as it happens. An insider who removes its subscription from a log
group (or points it at something else, or narrows it with a filter pattern) leaves the SIEM copy
intact and the alarms quiet: nobody is paged for what that group shows. So every log group with a
subscription filter to a Firehose stream of the stack (the SIEM stream, which
`log-group-subscribed-to-siem` requires) needs a second subscription filter whose `destinationArn`
is a Lambda function of the stack with that handler and whose `filterPattern` is empty or absent
(every event). CloudWatch Logs allows two subscription filters per log group ("CloudWatch Logs
quotas"): one each.

Exempt, and only this: the detection function's own log group, which carries the tag
`ztai:detection-own-log` naming a detection function of the stack and is named exactly
`/aws/lambda/<that function>`. It holds the function's findings; subscribing it would feed the
function its own output. The SIEM stream subscribes it.

Not suppressible: a group left out is one whose behaviour nobody is alerted on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import known, of_type, refers_to_by_value
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.logs.log_group_subscribed_to_siem import (
    FIREHOSE_STREAM,
    LOG_GROUP,
    SUBSCRIPTION_FILTER,
    forwards_everything,
)

FUNCTION = "aws:lambda/function:Function"
# components/detection.py: DETECT_HANDLER and DETECTION_OWN_LOG_TAG (a test keeps them equal).
DETECT_HANDLER = "ztai_runtime.detect.stream.handler"
OWN_LOG_TAG = "ztai:detection-own-log"


def detection_functions(resources: Sequence[Resource]) -> list[Resource]:
    return [f for f in of_type(resources, FUNCTION) if known(f, "handler") == DETECT_HANDLER]


def _own_group(group: Resource, function_names: set[str]) -> bool:
    for prop in ("tags", "tagsAll"):
        tags = known(group, prop)
        owner = tags.get(OWN_LOG_TAG) if isinstance(tags, Mapping) else None
        if isinstance(owner, str) and owner in function_names:
            return bool(known(group, "name") == f"/aws/lambda/{owner}")
    return False


def log_group_subscribed_to_detection(resources: Sequence[Resource],
                                      _config: Mapping[str, Any]) -> list[Finding]:
    streams = of_type(resources, FIREHOSE_STREAM)
    functions = detection_functions(resources)
    names = {name for name in (known(f, "name") for f in functions) if isinstance(name, str)}
    filters = of_type(resources, SUBSCRIPTION_FILTER)
    to_siem = [f for f in filters
               if any(refers_to_by_value(f, "destinationArn", stream, "arn") for stream in streams)]
    to_detection = [f for f in filters
                    if any(refers_to_by_value(f, "destinationArn", fn, "arn") for fn in functions)]
    findings = []
    for group in of_type(resources, LOG_GROUP):
        if _own_group(group, names):
            continue
        if not any(refers_to_by_value(f, "logGroup", group, "name") for f in to_siem):
            continue  # not carried to the SIEM: log-group-subscribed-to-siem reports it
        mine = [f for f in to_detection if refers_to_by_value(f, "logGroup", group, "name")]
        if not mine:
            findings.append(Finding(group.urn, (
                f"log group {group.name} goes to the SIEM but no detection function of the stack "
                f"(handler {DETECT_HANDLER}) is subscribed to it: nothing is alerted on its events")))
        elif not any(forwards_everything(f) for f in mine):
            patterns = ", ".join(repr(known(f, "filterPattern")) for f in mine)
            findings.append(Finding(group.urn, (
                f"log group {group.name} reaches the detection function only through a filter "
                f"pattern ({patterns}): the events it leaves out are never looked at; the pattern "
                "must be empty (every event)")))
    return findings


RULE = Rule(
    name="log-group-subscribed-to-detection",
    description="Every log group subscribed to the SIEM stream also has a subscription filter with an "
                "empty pattern to the stack's detection function; only that function's own log "
                "group, by its exact name, is exempt.",
    control="detection stream",
    severity=Severity.HIGH,
    remediation="Subscribe the log group to DetectionStream (components/detection.py): "
                "DetectionStreamArgs.log_groups or detection.subscribe(group), with the same groups "
                "as the SiemStream.",
    stack_check=log_group_subscribed_to_detection,
    suppressible=False,
)
