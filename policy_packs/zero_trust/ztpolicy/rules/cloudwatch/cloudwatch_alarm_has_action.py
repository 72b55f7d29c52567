"""Every alarm notifies someone, through a topic of this stack (control: alarms that notify).

An alarm without an action only changes state: a key administrator who disables a key, or a
rotation that stops running, is then seen by whoever happens to open the console. Every
CloudWatch metric alarm must:

- not turn its actions off (`actionsEnabled` false): the alarm then changes state and notifies
  nobody, whatever its `alarmActions` say;
- name among its `alarmActions` an Amazon SNS topic (an ARN
  `arn:<partition>:sns:<region>:<account>:<topic>`) that is this stack's: the `arn` of an
  `aws.sns.Topic` of the stack (by value once known; by the property dependency Pulumi records
  when the topic's ARN is not known yet), or, in a workload (stack key `layer: workload`), one
  of its key layer's alarm topics, which the workload names by their fixed names
  (components/alarm_topics.py `alarm_actions_by_name`): `zero-trust-ai-<env>-alarms-<severity>`
  of the stack's environment, in the stack's own account and region (those of the known ARNs of
  the stack's resources; when none is known yet, the name decides until one is).

An Auto Scaling policy, an EC2 action or a Lambda function alone notifies no person; a topic of
another account, or one the stack does not declare, is one whose subscriptions and policy this
stack neither writes nor sees, and an alarm notifying another account's topic also sends its state
out of the account. In a preview, an action still unknown (the ARN of a topic created in the same
update) is checked when its value is known, at update.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_items, of_type
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.stack import ENVIRONMENTS, StackSettings, stack_settings

METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
# Topic names: 1-256 letters, digits, hyphens and underscores, `.fifo` for FIFO topics (Amazon SNS
# API Reference, CreateTopic).
_TOPIC_ARN = re.compile(
    r"^arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>[A-Za-z0-9_-]{1,256}(\.fifo)?)$")
# components/alarm_topics.py SEVERITIES and alarm_topic_name (a test keeps them equal).
SEVERITIES = ("critical", "high", "medium")


def key_layer_topic_names(environment: str | None) -> set[str]:
    """The names of a key layer's alarm topics a workload of `environment` may notify."""
    environments = (environment,) if environment else ENVIRONMENTS
    return {f"zero-trust-ai-{env}-alarms-{severity}" for env in environments for severity in SEVERITIES}


def stack_places(resources: Sequence[Resource]) -> tuple[set[str], set[str]]:
    """The accounts and regions of the known ARNs of the stack's resources."""
    accounts, regions = set(), set()
    for resource in resources:
        arn = known(resource, "arn")
        parts = arn.split(":") if isinstance(arn, str) and arn.startswith("arn:") else []
        if len(parts) > 5:
            if re.fullmatch(r"\d{12}", parts[4]):
                accounts.add(parts[4])
            if parts[3]:
                regions.add(parts[3])
    return accounts, regions


class _Stack:
    """What decides whether a topic ARN is the stack's."""

    def __init__(self, resources: Sequence[Resource], settings: StackSettings) -> None:
        self.topics = of_type(resources, TOPIC)
        self.settings = settings
        self.accounts, self.regions = stack_places(resources)

    def owns(self, item: str, alarm: Resource) -> bool:
        match = _TOPIC_ARN.match(item)
        if match is None:
            return False
        dependencies = alarm.property_dependencies.get("alarmActions", ())
        for topic in self.topics:
            arn = known(topic, "arn")
            if isinstance(arn, str) and arn:
                if arn == item:
                    return True
            elif topic.urn in dependencies:
                return True  # the topic's ARN is not known yet: the dependency links them
        return self.settings.is_workload and self._key_layer_topic(match)

    def _key_layer_topic(self, match: re.Match[str]) -> bool:
        return (match["name"] in key_layer_topic_names(self.settings.environment)
                and (not self.accounts or match["account"] in self.accounts)
                and (not self.regions or match["region"] in self.regions))


def alarm_problem(alarm: Resource, stack: _Stack) -> str | None:
    if known(alarm, "actionsEnabled") is False:
        return (f"alarm {alarm.name} notifies no one: its actions are turned off (actionsEnabled "
                "false), so it only changes state where nobody looks")
    actions = known(alarm, "alarmActions")
    items = known_items(actions)
    if any(isinstance(item, str) and stack.owns(item, alarm) for item in items):
        return None
    if actions is UNKNOWN or any(item is UNKNOWN for item in items):
        return None  # a preview's ARN of a topic created in this update: checked once known
    given = ", ".join(str(item) for item in items) or "none"
    if not any(isinstance(item, str) and _TOPIC_ARN.match(item) for item in items):
        return (f"alarm {alarm.name} notifies no one: its alarmActions ({given}) name no SNS topic, "
                "so it only changes state where nobody looks")
    where = (" (nor the key layer's zero-trust-ai-<env>-alarms-<severity> of the stack's account "
             "and region)" if stack.settings.is_workload else "")
    return (f"alarm {alarm.name} notifies no SNS topic of this stack{where}: its alarmActions "
            f"({given}) name a topic whose subscriptions and policy the stack neither writes nor "
            "sees (another account's receives the alarm's state)")


def cloudwatch_alarm_has_action(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    stack = _Stack(resources, stack_settings(config))
    return [Finding(alarm.urn, problem) for alarm in of_type(resources, METRIC_ALARM)
            if (problem := alarm_problem(alarm, stack)) is not None]


RULE = Rule(
    name="cloudwatch-alarm-has-action",
    description="Every CloudWatch metric alarm notifies an SNS topic of the stack (in a workload, "
                "or its key layer's alarm topic of the stack's account and region), with its "
                "actions enabled.",
    control="alarms that notify",
    severity=Severity.HIGH,
    remediation="Create the alarm with components.alarms.occurrence_alarm or missed_run_alarm and the "
                "stack's AlarmActions (components.alarm_topics.AlarmTopics.actions, or "
                "alarm_actions_by_name in a workload stack), and leave actions_enabled on.",
    stack_check=cloudwatch_alarm_has_action,
)
