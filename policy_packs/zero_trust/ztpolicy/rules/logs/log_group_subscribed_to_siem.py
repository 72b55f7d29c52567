"""Every log group streams to the SIEM (controls: SIEM stream, audit logging).

Evidence that stays in the account it describes can be erased or ignored by whoever administers
that account. Every `aws:cloudwatch/logGroup:LogGroup` of the stack needs an
`aws.cloudwatch.LogSubscriptionFilter` whose `logGroup` is that group and whose `destinationArn` is
a Firehose stream of the same stack (components/siem_stream.py), so that its events leave for the
SIEM as they are written.

Exempt, and only these: the SIEM stream's own log groups (its transform function's, Firehose's
error log). Subscribing them would feed the stream its own output, a loop. They are recognised by
the tag `ztai:siem-own-log`, whose value must be the name of a Firehose stream of the stack, and
by their name, which must contain that stream's name: a tag on any other group exempts nothing.

Not suppressible: a group left out is a source the SIEM never sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import known, of_type, refers_to_by_value
from ztpolicy.rule import Finding, Resource, Rule

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SUBSCRIPTION_FILTER = "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter"
FIREHOSE_STREAM = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
# Set by components/siem_stream.py (SIEM_OWN_LOG_TAG) on the stream's own log groups.
OWN_LOG_TAG = "ztai:siem-own-log"


def _tag(resource: Resource, name: str) -> Any:
    for prop in ("tags", "tagsAll"):
        tags = known(resource, prop)
        if isinstance(tags, Mapping) and isinstance(tags.get(name), str):
            return tags[name]
    return None


def _own_group(group: Resource, stream_names: set[str]) -> bool:
    owner = _tag(group, OWN_LOG_TAG)
    name = known(group, "name")
    return (isinstance(owner, str) and owner in stream_names and isinstance(name, str)
            and owner in name)


def log_group_subscribed_to_siem(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    streams = of_type(resources, FIREHOSE_STREAM)
    stream_names = {name for name in (known(s, "name") for s in streams) if isinstance(name, str)}
    filters = [f for f in of_type(resources, SUBSCRIPTION_FILTER)
               if any(refers_to_by_value(f, "destinationArn", stream, "arn") for stream in streams)]
    findings = []
    for group in of_type(resources, LOG_GROUP):
        if _own_group(group, stream_names):
            continue
        if not any(refers_to_by_value(f, "logGroup", group, "name") for f in filters):
            findings.append(Finding(group.urn, f"log group {group.name} is not subscribed to a SIEM "
                                    "stream of the stack: its events never leave the account"))
    return findings


RULE = Rule(
    name="log-group-subscribed-to-siem",
    description="Every log group must have a subscription filter to a Firehose stream of the stack "
                "(the SIEM stream); only the stream's own log groups are exempt.",
    control="SIEM stream",
    severity=Severity.HIGH,
    remediation="Pass the log group to SiemStream (components/siem_stream.py): "
                "SiemStreamArgs.log_groups or stream.subscribe(group).",
    stack_check=log_group_subscribed_to_siem,
    suppressible=False,
)
