"""A production SIEM stream delivers outside the account (control: SIEM stream). Advisory.

`SiemStream` (components/siem_stream.py) delivers by default to its own encrypted bucket only
(stack key `siem` unset): the events are kept, but they stay in the account they describe, where
its administrators can erase them, and no SIEM sees them. That is allowed, so that an environment
can deploy before its SIEM exists, but in production it is reported: a Firehose stream that a
subscription filter of the stack feeds, in a production stack or environment (as
`dynamodb-deletion-protection` decides it), whose destination is `extended_s3`, is a finding.

Advisory, not mandatory: whether the bucket copy is enough is the operator's call, made in the
stack configuration, which the report names. Set `siem` to an `http`, `splunk` or `opensearch`
destination (docs/siem-stream.md), or exclude the rule with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, Severity

from ztpolicy.graph import known, of_type, refers_to_by_value
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.dynamodb.dynamodb_deletion_protection import (
    DEFAULT_PROTECTED_ENVIRONMENTS,
    DEFAULT_PROTECTED_STACKS,
    why_protected,
)

FIREHOSE_STREAM = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
SUBSCRIPTION_FILTER = "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter"


def siem_stream_leaves_the_account(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    filters = of_type(resources, SUBSCRIPTION_FILTER)
    findings = []
    for stream in of_type(resources, FIREHOSE_STREAM):
        reason = why_protected(stream, config)
        if reason is None or known(stream, "destination") != "extended_s3":
            continue
        if any(refers_to_by_value(f, "destinationArn", stream, "arn") for f in filters):
            findings.append(Finding(stream.urn, f"SIEM stream {stream.name} ({reason}) delivers only to "
                                    "its own bucket in the account: no SIEM sees the events, and the "
                                    "account's administrators can erase them; set the stack key siem "
                                    "to an http, splunk or opensearch destination"))
    return findings


RULE = Rule(
    name="siem-stream-leaves-the-account",
    description="In production, a Firehose stream fed by the stack's log groups should deliver to a "
                "SIEM outside the account, not only to its own bucket.",
    control="SIEM stream",
    severity=Severity.MEDIUM,
    remediation="Set the stack key zero-trust-ai:siem to destination=http, splunk or opensearch "
                "(docs/siem-stream.md).",
    stack_check=siem_stream_leaves_the_account,
    enforcement_level=EnforcementLevel.ADVISORY,
    config={
        "protectedStacks": {"type": "array", "items": {"type": "string"},
                            "default": DEFAULT_PROTECTED_STACKS,
                            "description": "Stack name patterns (globs) counted as production."},
        "protectedEnvironments": {"type": "array", "items": {"type": "string"},
                                  "default": DEFAULT_PROTECTED_ENVIRONMENTS,
                                  "description": "`environment` tag values counted as production."},
    },
)
