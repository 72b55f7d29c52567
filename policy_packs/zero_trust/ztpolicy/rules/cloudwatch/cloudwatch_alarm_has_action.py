"""Every alarm notifies someone (control: alarms that notify).

An alarm without an action only changes state: a key administrator who disables a key, or a
rotation that stops running, is then seen by whoever happens to open the console. Every
CloudWatch metric alarm must name at least one Amazon SNS topic among its `alarmActions` (an ARN
`arn:<partition>:sns:<region>:<account>:<topic>`); an Auto Scaling policy, an EC2 action or a
Lambda function alone notifies no person. In a preview, an action still unknown (the ARN of a
topic created in the same update) is checked when its value is known, at update.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_items
from ztpolicy.rule import Resource, Rule

METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
# Topic names: 1-256 letters, digits, hyphens and underscores, `.fifo` for FIFO topics (Amazon SNS
# API Reference, CreateTopic).
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


def cloudwatch_alarm_has_action(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    actions = known(resource, "alarmActions")
    items = known_items(actions)
    if any(isinstance(item, str) and _TOPIC_ARN.match(item) for item in items):
        return []
    if actions is UNKNOWN or any(item is UNKNOWN for item in items):
        return []  # a preview's ARN of a topic created in this update: checked once known
    given = ", ".join(str(item) for item in items) or "none"
    return [f"alarm {resource.name} notifies no one: its alarmActions ({given}) name no SNS topic, "
            "so it only changes state where nobody looks"]


RULE = Rule(
    name="cloudwatch-alarm-has-action",
    description="Every CloudWatch metric alarm notifies an SNS topic (at least one alarm action "
                "is a topic ARN).",
    control="alarms that notify",
    severity=Severity.HIGH,
    remediation="Create the alarm with components.alarms.occurrence_alarm or missed_run_alarm and the "
                "stack's AlarmActions (components.alarm_topics.AlarmTopics.actions, or "
                "alarm_actions_by_name in a workload stack), or set alarm_actions to an SNS topic ARN.",
    resource_check=cloudwatch_alarm_has_action,
    resource_types=frozenset({METRIC_ALARM}),
)
