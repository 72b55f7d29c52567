"""Every log group streams to the SIEM (controls: SIEM stream, audit logging).

Evidence that stays in the account it describes can be erased or ignored by whoever administers
that account. Every `aws:cloudwatch/logGroup:LogGroup` of the stack needs an
`aws.cloudwatch.LogSubscriptionFilter` whose `logGroup` is that group and whose `destinationArn` is
a Firehose stream of the same stack (components/siem_stream.py), so that its events leave for the
SIEM as they are written. The filter must forward every event: its `filterPattern` empty (or
absent), which matches every event (pulumi-aws `aws.cloudwatch.LogSubscriptionFilter`,
`filterPattern`: "Use empty string \"\" to match everything"; `SiemStream` always writes "").
Any other pattern forwards only what it matches, and one that matches nothing would subscribe
the group in name only.

Exempt, and only these: the SIEM stream's own log groups (its transform function's, Firehose's
error log). Subscribing them would feed the stream its own output, a loop. They are recognised by
the tag `ztai:siem-own-log`, whose value must be the name `<stream>` of a Firehose stream of the
stack, and by their exact name, one of the two `SiemStream` makes: `/aws/lambda/<stream>-transform`
(the transform's, components/siem_stream.py `transform_function_name`) and
`/zero-trust-ai/<env>/siem/<stream>` (`error_log_group_name`), where the stream is named
`zero-trust-ai-<env>-<layer>-siem`. A tag on any other group exempts nothing, a real source group
whose name merely contains the stream's name included.

Not suppressible: a group left out is a source the SIEM never sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, of_type, refers_to_by_value
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.stack import ENVIRONMENTS, LAYERS

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


def own_group_names(stream: str) -> set[str]:
    """The two log groups SiemStream makes for the stream named `stream` (components/siem_stream.py
    `transform_function_name` and `error_log_group_name`; a test keeps them equal)."""
    names = {f"/aws/lambda/{stream}-transform"}
    names |= {f"/zero-trust-ai/{environment}/siem/{stream}" for environment in ENVIRONMENTS
              for layer in LAYERS if stream == f"zero-trust-ai-{environment}-{layer}-siem"}
    return names


def _own_group(group: Resource, stream_names: set[str]) -> bool:
    owner = _tag(group, OWN_LOG_TAG)
    name = known(group, "name")
    return (isinstance(owner, str) and owner in stream_names and isinstance(name, str)
            and name in own_group_names(owner))


def forwards_everything(subscription: Resource) -> bool:
    """An empty (or absent) filter pattern: every event. A pattern not known yet in a preview
    counts, checked once known."""
    pattern = known(subscription, "filterPattern")
    return pattern is UNKNOWN or pattern is None or pattern == ""


def log_group_subscribed_to_siem(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    streams = of_type(resources, FIREHOSE_STREAM)
    stream_names = {name for name in (known(s, "name") for s in streams) if isinstance(name, str)}
    filters = [f for f in of_type(resources, SUBSCRIPTION_FILTER)
               if any(refers_to_by_value(f, "destinationArn", stream, "arn") for stream in streams)]
    findings = []
    for group in of_type(resources, LOG_GROUP):
        if _own_group(group, stream_names):
            continue
        mine = [f for f in filters if refers_to_by_value(f, "logGroup", group, "name")]
        if not mine:
            findings.append(Finding(group.urn, f"log group {group.name} is not subscribed to a SIEM "
                                    "stream of the stack: its events never leave the account"))
        elif not any(forwards_everything(f) for f in mine):
            patterns = ", ".join(repr(known(f, "filterPattern")) for f in mine)
            findings.append(Finding(group.urn, (
                f"log group {group.name} is subscribed to a SIEM stream of the stack only through a "
                f"filter pattern ({patterns}): only the events it matches leave the account; the "
                "pattern must be empty (every event)")))
    return findings


RULE = Rule(
    name="log-group-subscribed-to-siem",
    description="Every log group must have a subscription filter with an empty pattern (every "
                "event) to a Firehose stream of the stack (the SIEM stream); only the stream's two "
                "own log groups, by their exact names, are exempt.",
    control="SIEM stream",
    severity=Severity.HIGH,
    remediation="Pass the log group to SiemStream (components/siem_stream.py): "
                "SiemStreamArgs.log_groups or stream.subscribe(group).",
    stack_check=log_group_subscribed_to_siem,
    suppressible=False,
)
