"""Where alarms go (`AlarmTopics`): one encrypted SNS topic per severity, subscribed from config.

Every CloudWatch alarm and every EventBridge watch of the stack publishes to the topic of its
severity (components/alarms.py), so that a key administrator who disables a key, or a failed
rotation, reaches a person. Three severities, because three answers exist to an alarm:

- `critical`: someone may be acting against the controls right now (break-glass assumed, an image
  the pipeline did not build, the key rotation not running). Page, day or night.
- `high`: a control failed and stays failed until fixed (a security function erring, an event
  dropped after every retry). The same working day.
- `medium`: notice to act on within weeks (a key will need a successor). A ticket.

A fourth, lower level would be a dashboard, not a notification: it is left out.

The topics are named `zero-trust-ai-<env>-alarms-<severity>` (`alarm_topic_name`), so a split
deployment's workload names the key layer's topics by ARN (`alarm_topic_arn`, `AlarmActions`)
without reading its outputs. They are encrypted with the stack's `logs` key: the AWS managed key
`alias/aws/sns` cannot be used for alarms, because its policy does not let CloudWatch use it and
cannot be changed (AWS re:Post Knowledge Center, "Why didn't I receive an SNS notification for my
CloudWatch alarm trigger?"); the logs key admits CloudWatch and EventBridge for these topics only
(`KeyHierarchy.grant_alarm_topics`). Each topic's policy admits CloudWatch alarms and EventBridge
rules of this account only (`aws:SourceArn`, `aws:SourceAccount`: the confused-deputy
conditions of the Amazon SNS developer guide) and refuses any publish without TLS.

Subscriptions come from the stack key `alarmSubscriptions`, a list of
`<severity>:<protocol>:<endpoint>` strings (Pulumi.yaml's config schema has no object type, so a
list of strings is what the project file can declare and check):

    zero-trust-ai:alarmSubscriptions:
      - critical:email:security-oncall@example.com
      - critical:https:https://oncall.example.com/hooks/sns
      - medium:email:ml-platform@example.com

`email` and `https` only: plain HTTP would carry the alarm (and SNS's confirmation token) in the
clear, and SMS or mobile push are not an on-call path this project tests. Every subscription must
be confirmed by its endpoint before SNS delivers anything to it (docs/alarms.md); a production
stack that holds the topics needs at least one `critical` subscription.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

from components.aws_facts import partition_for_region
from components.config_values import KEY_LAYERS, StackKey, as_string_list, full, show

SEVERITIES = ("critical", "high", "medium")
PROTOCOLS = ("email", "https")
# A plain address: one @, no spaces, a dot in the domain. SNS checks deliverability itself (the
# confirmation message); this catches the typo before a deploy leaves a subscription pending.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[^@\s:]+@{_LABEL}(?:\.{_LABEL})+$")
_EXAMPLE = "e.g. critical:email:security-oncall@example.com or critical:https:https://oncall.example.com/sns"


def alarm_topic_name(environment: str, severity: str) -> str:
    """The topic of `severity` in `environment`: a fixed name the workload can rebuild."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown alarm severity {severity!r}; severities are {', '.join(SEVERITIES)}")
    return f"zero-trust-ai-{environment}-alarms-{severity}"


def alarm_topic_arn(partition: str, region: str, account: str, environment: str, severity: str) -> str:
    """The ARN of the topic of `severity` (`arn:<partition>:sns:<region>:<account>:<name>`)."""
    return f"arn:{partition}:sns:{region}:{account}:{alarm_topic_name(environment, severity)}"


@dataclass(frozen=True)
class AlarmSubscription:
    """One endpoint notified of the alarms of one severity."""

    severity: str
    protocol: str
    endpoint: str

    def __str__(self) -> str:
        return f"{self.severity}:{self.protocol}:{self.endpoint}"


def parse_subscription(key: str, text: str) -> AlarmSubscription:
    """`<severity>:<protocol>:<endpoint>`, each part checked; ValueError naming what is wrong."""
    severity, _, rest = text.partition(":")
    protocol, _, endpoint = rest.partition(":")
    severity, protocol, endpoint = severity.strip(), protocol.strip(), endpoint.strip()
    given = f"{full(key)} item {show(text)}"
    if not rest or not endpoint:
        raise ValueError(f"{given}: expected <severity>:<protocol>:<endpoint>, {_EXAMPLE}")
    if severity not in SEVERITIES:
        raise ValueError(f"{given}: unknown severity {severity!r}; severities are {', '.join(SEVERITIES)}")
    if protocol not in PROTOCOLS:
        why = " (plain HTTP would carry the alarm and the confirmation token in the clear)" \
            if protocol == "http" else ""
        raise ValueError(f"{given}: protocol {protocol!r} is not allowed{why}; protocols are "
                         f"{', '.join(PROTOCOLS)}")
    if protocol == "email" and not _EMAIL.match(endpoint):
        raise ValueError(f"{given}: {endpoint!r} is not an email address (name@domain.example)")
    if protocol == "https":
        try:
            url = urlsplit(endpoint)
            url.port  # noqa: B018 - a port that is not a number raises here
        except ValueError:
            url = None
        if url is None or url.scheme != "https" or not url.hostname or any(c.isspace() for c in endpoint):
            raise ValueError(f"{given}: {endpoint!r} is not an https:// URL with a host "
                             "(e.g. https://oncall.example.com/hooks/sns)")
    return AlarmSubscription(severity, protocol, endpoint)


def parse_alarm_subscriptions(key: str, value: Any) -> tuple[AlarmSubscription, ...]:
    """The stack key's list, each item parsed; the same endpoint twice on one severity refused
    (as_string_list refuses exact copies)."""
    subscriptions = tuple(parse_subscription(key, item) for item in as_string_list(key, value))
    seen: set[tuple[str, str, str]] = set()
    for subscription in subscriptions:
        # An address's case does not matter to mail delivery; a URL's path may.
        endpoint = subscription.endpoint
        if subscription.protocol == "email":
            endpoint = endpoint.lower()
        same = (subscription.severity, subscription.protocol, endpoint)
        if same in seen:
            raise ValueError(f"{full(key)}: {str(subscription)!r} is given twice (SNS would hold "
                             "one subscription; remove the copy)")
        seen.add(same)
    return subscriptions


def subscription_problems(environment: str | None,
                          subscriptions: Sequence[AlarmSubscription] | None) -> list[str]:
    """What the stack's subscriptions lack: in prod, someone on the `critical` topic."""
    if environment == "prod" and not any(s.severity == "critical" for s in subscriptions or ()):
        return [f"{full('alarmSubscriptions')}: a prod stack that holds the alarm topics needs at least "
                "one critical subscription (an on-call address or webhook), or a critical alarm "
                f"reaches nobody; {_EXAMPLE}"]
    return []


# The stack key, declared here and added to components/stack_config.py's KEYS.
ALARM_KEYS: dict[str, StackKey] = {
    "alarmSubscriptions": StackKey(
        "Who the alarms notify: <severity>:<protocol>:<endpoint> items, severity critical, high or "
        "medium, protocol email or https (e.g. critical:email:oncall@example.com, "
        "critical:https:https://oncall.example.com/sns); each must be confirmed by its endpoint "
        "(docs/alarms.md). A prod stack holding the topics needs one on critical. Read by the "
        "stacks that hold the topics (combined, keys).",
        False, parse_alarm_subscriptions, [], type="array", layers=KEY_LAYERS),
}


@dataclass(frozen=True)
class AlarmActions:
    """Severity -> the ARN an alarm of that severity notifies. Every severity has one: an alarm is
    never created without an action (components/alarms.py).

    key_arn: the key the topics are encrypted with (the logs key), which also encrypts the
    dead-letter queues of the watches that publish to them (`notify_on_rule`). Set by
    `AlarmTopics`; None for topics named from another stack (`alarm_actions_by_name`), whose
    stack holds the watches."""

    topic_arns: Mapping[str, pulumi.Input[str]]
    key_arn: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        missing = [s for s in SEVERITIES if not self.topic_arns.get(s)]
        unknown = sorted(set(self.topic_arns) - set(SEVERITIES))
        if missing or unknown:
            raise ValueError(f"AlarmActions needs one topic ARN for each of {', '.join(SEVERITIES)}"
                             f"{'; missing ' + ', '.join(missing) if missing else ''}"
                             f"{'; unknown ' + ', '.join(unknown) if unknown else ''}")

    def __call__(self, severity: str) -> list[pulumi.Input[str]]:
        if severity not in SEVERITIES:
            raise ValueError(f"unknown alarm severity {severity!r}; severities are {', '.join(SEVERITIES)}")
        return [self.topic_arns[severity]]


def alarm_actions_by_name(region: str, environment: str,
                          account_id: pulumi.Input[str]) -> AlarmActions:
    """The topics of another stack of the environment (a split deployment's key layer), by their
    fixed names in this account and region."""
    partition = partition_for_region(region)

    def arn(severity: str) -> pulumi.Output[str]:
        return pulumi.Output.from_input(account_id).apply(
            lambda account: alarm_topic_arn(partition, region, account, environment, severity))

    return AlarmActions({severity: arn(severity) for severity in SEVERITIES})


def topic_policy(partition: str, region: str, account: str, topic_arn: str) -> str:
    """Publish from this account's CloudWatch alarms and EventBridge rules only, over TLS only.

    The SourceArn/SourceAccount conditions on service principals are the Amazon SNS developer
    guide's against the confused deputy ("Example cases for Amazon SNS access control"); the
    CloudWatch statement is AWS re:Post's "Allow_Publish_Alarms". No statement names the account:
    its principals publish or manage the topic through their IAM policies, as before."""
    same_account = {"aws:SourceAccount": account}
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "CloudWatchAlarmsOfThisAccount", "Effect": "Allow",
         "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish",
         "Resource": topic_arn,
         "Condition": {"ArnLike": {"aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account}:alarm:*"},
                       "StringEquals": same_account}},
        {"Sid": "EventBridgeRulesOfThisAccount", "Effect": "Allow",
         "Principal": {"Service": "events.amazonaws.com"}, "Action": "sns:Publish",
         "Resource": topic_arn,
         "Condition": {"ArnLike": {"aws:SourceArn": f"arn:{partition}:events:{region}:{account}:rule/*"},
                       "StringEquals": same_account}},
        # A missing aws:SecureTransport key (a service's own call) does not match `false`.
        {"Sid": "DenyWithoutTls", "Effect": "Deny", "Principal": "*", "Action": "sns:Publish",
         "Resource": topic_arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]}, sort_keys=True)


@dataclass(frozen=True)
class AlarmTopicsArgs:
    """environment, region: the stack's. key_arn: the `logs` key (`keys.key_arn("logs")`), whose
    policy admits CloudWatch and EventBridge for these topics (`KeyHierarchy.grant_alarm_topics`).
    subscriptions: from the stack key `alarmSubscriptions`; default none (dev: the alarms still
    change state, and the topics wait for a subscriber). protect: prod."""

    environment: str
    region: str
    key_arn: pulumi.Input[str]
    subscriptions: Sequence[AlarmSubscription] = field(default_factory=tuple)
    protect: bool = False


class AlarmTopics(pulumi.ComponentResource):
    """Type token `zero-trust-ai:alarm_topics:AlarmTopics`."""

    topics: dict[str, aws.sns.Topic]
    actions: AlarmActions

    def __init__(self, name: str, args: AlarmTopicsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zero-trust-ai:alarm_topics:AlarmTopics", name, None, opts)
        for subscription in args.subscriptions:  # typed values built by hand are checked too
            parse_subscription("alarmSubscriptions", str(subscription))
        partition = partition_for_region(args.region)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        self.topics = {}
        for severity in SEVERITIES:
            topic_name = alarm_topic_name(args.environment, severity)
            topic = aws.sns.Topic(
                f"{name}-{severity}", name=topic_name,
                display_name=f"zero-trust-ai {args.environment} {severity}",
                kms_master_key_id=args.key_arn,
                tags={"Name": topic_name, "ztai:alarm-severity": severity},
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
            aws.sns.TopicPolicy(
                f"{name}-{severity}-policy", arn=topic.arn,
                policy=pulumi.Output.all(account_id, topic.arn).apply(
                    lambda values: topic_policy(partition, args.region, values[0], values[1])),
                opts=pulumi.ResourceOptions(parent=topic))
            self.topics[severity] = topic
        for subscription in args.subscriptions:
            # Not auto-confirmed: the endpoint's owner confirms (docs/alarms.md); until then SNS
            # delivers nothing to it and Pulumi shows it pending. Named by its endpoint, not its
            # place in the list: reordering the list replaces nothing (Pulumi cannot delete a
            # pending subscription, so a replacement would leave one behind).
            digest = hashlib.sha256(str(subscription).encode()).hexdigest()[:12]
            aws.sns.TopicSubscription(
                f"{name}-{subscription.severity}-{digest}", topic=self.topics[subscription.severity].arn,
                protocol=subscription.protocol, endpoint=subscription.endpoint,
                opts=pulumi.ResourceOptions(parent=self.topics[subscription.severity]))
        self.actions = AlarmActions({severity: topic.arn for severity, topic in self.topics.items()},
                                    key_arn=args.key_arn)
        self.register_outputs({"topicArns": {s: t.arn for s, t in self.topics.items()}})
