"""Whether anyone hears the alarms, as SNS says: the alarm topics' subscriptions for `ztai verify`.

The stack key `alarmSubscriptions` lists who should be notified, and the program makes those
subscriptions; but SNS delivers nothing to an email or HTTPS endpoint until its owner confirms it
("Subscribe", Amazon SNS API Reference: an HTTP/S or email endpoint must confirm). Until then a
critical alarm pages nobody, however well the configuration reads. So verify reads, in prod, each
topic `zero-trust-ai-<env>-alarms-<severity>` (components/alarm_topics.py names them so) and its
subscriptions:

- a topic of a severity that is missing: blocking (its alarms go nowhere);
- the critical topic without one confirmed subscription that the stack file lists
  (`alarmSubscriptions`) and that has no filter policy: blocking. A confirmed subscription
  someone added by hand is not someone the stack names (it may be an insider's endpoint), and a
  filter policy may let nothing through;
- any subscription still pending, one the stack file does not list, one with a filter policy:
  reported, not blocking when critical has a listed, confirmed, unfiltered one.

A subscription is pending when SNS lists it without an ARN (ListSubscriptionsByTopic gives
`PendingConfirmation` in place of the ARN) or its attributes say `PendingConfirmation` `true`
(GetSubscriptionAttributes). Read-only calls: sns:ListTopics, sns:ListSubscriptionsByTopic,
sns:GetSubscriptionAttributes (docs/drift.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# components/alarm_topics.py SEVERITIES and alarm_topic_name (the CLI imports no component; a test
# holds them equal).
SEVERITIES = ("critical", "high", "medium")
# Where verify checks the subscriptions: the environment whose alarms must reach a person.
CHECKED_ENVIRONMENTS = ("prod",)


def alarm_topic_name(environment: str, severity: str) -> str:
    return f"zero-trust-ai-{environment}-alarms-{severity}"


@dataclass(frozen=True)
class TopicSubscriptions:
    """One alarm topic as SNS holds it. topic_arn None: no such topic in the Region."""

    severity: str
    topic_name: str
    topic_arn: str | None
    confirmed: tuple[str, ...] = ()  # "<protocol>:<endpoint>" of each confirmed subscription
    pending: tuple[str, ...] = ()  # the same, for each still waiting for its owner
    filtered: tuple[str, ...] = ()  # confirmed, but with a filter policy: it may hear nothing


@dataclass(frozen=True)
class AlarmFinding:
    """A finding of verify's kind (ztai/verify_cmd.py Finding)."""

    kind: str
    resource: str
    message: str
    blocking: bool


def is_confirmed(subscription: Mapping[str, Any], attributes: Mapping[str, Any] | None) -> bool:
    """A ListSubscriptionsByTopic item, with its GetSubscriptionAttributes attributes if read."""
    arn = str(subscription.get("SubscriptionArn", ""))
    if not arn.startswith("arn:"):  # "PendingConfirmation" (or "Deleted"): no subscription yet
        return False
    return str((attributes or {}).get("PendingConfirmation", "false")).lower() != "true"


def _pages(client: Any, operation: str, result: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    for page in client.get_paginator(operation).paginate(**params):
        items.extend(page.get(result, []))
    return items


def read_alarm_topics(sns: Any, environment: str) -> list[TopicSubscriptions]:
    """Each severity's topic and its subscriptions, through the boto3 SNS client `sns` of the
    stack's Region. A ClientError (AccessDenied) is the caller's to word."""
    wanted = {alarm_topic_name(environment, severity): severity for severity in SEVERITIES}
    found: dict[str, str] = {}
    for topic in _pages(sns, "list_topics", "Topics"):
        arn = str(topic.get("TopicArn", ""))
        name = arn.rsplit(":", 1)[-1]
        if name in wanted:
            found[name] = arn
    topics = []
    for name, severity in wanted.items():
        topic_arn = found.get(name)
        if topic_arn is None:
            topics.append(TopicSubscriptions(severity, name, None))
            continue
        confirmed: list[str] = []
        pending: list[str] = []
        filtered: list[str] = []
        for subscription in _pages(sns, "list_subscriptions_by_topic", "Subscriptions",
                                   TopicArn=topic_arn):
            attributes = None
            if str(subscription.get("SubscriptionArn", "")).startswith("arn:"):
                attributes = sns.get_subscription_attributes(
                    SubscriptionArn=subscription["SubscriptionArn"]).get("Attributes", {})
            endpoint = f"{subscription.get('Protocol', '?')}:{subscription.get('Endpoint', '?')}"
            if not is_confirmed(subscription, attributes):
                pending.append(endpoint)
            elif (attributes or {}).get("FilterPolicy"):
                filtered.append(endpoint)
            else:
                confirmed.append(endpoint)
        topics.append(TopicSubscriptions(severity, name, topic_arn, tuple(confirmed), tuple(pending),
                                         tuple(filtered)))
    return topics


def configured_endpoints(value: Any) -> dict[str, set[str]]:
    """The stack key `alarmSubscriptions` (a list, or its JSON text) as {severity: {"<protocol>:
    <endpoint>"}}; items that are not `<severity>:<protocol>:<endpoint>` are left out (the
    program refuses them: components/alarm_topics.py)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    endpoints: dict[str, set[str]] = {}
    for item in value if isinstance(value, list) else []:
        severity, _, rest = str(item).partition(":")
        if severity in SEVERITIES and ":" in rest:
            endpoints.setdefault(severity, set()).add(rest)
    return endpoints


def subscription_findings(topics: list[TopicSubscriptions], environment: str, region: str,
                          configured: Mapping[str, set[str]] | None = None) -> list[AlarmFinding]:
    """What the topics lack (see the module docstring); nothing outside CHECKED_ENVIRONMENTS.
    `configured`: the stack file's subscriptions (`configured_endpoints`); None counts every
    confirmed subscription (a stack file that lists none is the program's to refuse)."""
    if environment not in CHECKED_ENVIRONMENTS:
        return []
    findings = []
    for topic in topics:
        if topic.topic_arn is None:
            findings.append(AlarmFinding(
                "no-alarm-topic", topic.topic_name,
                f"no SNS topic {topic.topic_name} in {region}: the {topic.severity} alarms notify "
                "nobody (the key layer, or the combined stack, deploys it: docs/alarms.md)", True))
            continue
        for endpoint in topic.pending:
            findings.append(AlarmFinding(
                "alarm-subscription-pending", topic.topic_arn,
                f"the {topic.severity} subscription {endpoint} is not confirmed: SNS delivers "
                "nothing to it until its owner follows the confirmation message (docs/alarms.md)",
                False))
        listed = configured.get(topic.severity, set()) if configured is not None else None
        unlisted = [e for e in topic.confirmed if listed is not None and e not in listed]
        for endpoint in unlisted:
            findings.append(AlarmFinding(
                "alarm-subscription-unlisted", topic.topic_arn,
                f"the {topic.severity} subscription {endpoint} is not in the stack's "
                "zero-trust-ai:alarmSubscriptions: someone added it outside the program; it hears "
                "every alarm of the topic, and it is not counted as someone on call", False))
        for endpoint in topic.filtered:
            findings.append(AlarmFinding(
                "alarm-subscription-filtered", topic.topic_arn,
                f"the {topic.severity} subscription {endpoint} has a filter policy: it may let no "
                "alarm through, so it is not counted as someone on call (the program sets none)",
                False))
        heard = [e for e in topic.confirmed if e not in unlisted]
        if topic.severity == "critical" and not heard:
            waiting = f" ({len(topic.pending)} pending)" if topic.pending else ""
            others = len(unlisted) + len(topic.filtered)
            aside = (f"; {others} confirmed but not listed in the stack file or filtered"
                     if others else "")
            findings.append(AlarmFinding(
                "no-confirmed-critical-subscription", topic.topic_arn,
                f"topic {topic.topic_name} has no confirmed subscription"
                f"{' the stack lists' if configured is not None else ''}{waiting}"
                f"{aside}: a critical alarm (break-glass used, the audit trail changed) may page "
                "nobody; confirm one (docs/alarms.md) or add one to zero-trust-ai:alarmSubscriptions",
                True))
    return findings
