"""An EventBridge target that notifies an SNS topic keeps what it cannot deliver (control: alarms
that notify).

The watches (the audit trail changed, break-glass assumed) reach a person through an EventBridge
target on an SNS alarm topic. When that delivery fails (a topic policy or key statement edited, a
key disabled), EventBridge retries for up to a day, or gives up at once on a permission error, and
drops the event unless the target has a dead-letter queue ("Event retry policy and using
dead-letter queues", EventBridge user guide). Every `aws.cloudwatch.EventTarget` whose `arn` is an
SNS topic (a known ARN `arn:<partition>:sns:...`, or a property dependency on an `aws.sns.Topic`
of the stack, as in a preview where the topic's ARN is not known yet) must set
`deadLetterConfig.arn` to an SQS queue (a known ARN `arn:<partition>:sqs:...`; unknown in a preview,
the ARN of a queue created in the same update, it is checked at update).
components/alarms.py `notify_on_rule` makes such targets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field, of_type
from ztpolicy.rule import Finding, Resource, Rule

TARGET = "aws:cloudwatch/eventTarget:EventTarget"
TOPIC = "aws:sns/topic:Topic"
_SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:")
# A queue of one account and region, named without wildcards (the name's own form is SQS's to
# check: CreateQueue refuses a bad one).
_SQS_ARN = re.compile(r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[^*?\s:]+$")


def _notifies_a_topic(target: Resource, topics: set[str]) -> bool:
    """A known SNS ARN, or the property dependency on a topic of the stack: in a preview the
    topic's ARN may not be known yet, and an export's outputs may not carry it (the offline
    preview's mocks give every resource an ARN of its own)."""
    arn = known(target, "arn")
    if isinstance(arn, str) and _SNS_ARN.match(arn):
        return True
    return bool(topics & set(target.property_dependencies.get("arn", ())))


def target_problem(target: Resource) -> str | None:
    queue = known_field(known(target, "deadLetterConfig"), "arn")
    if queue is UNKNOWN:
        return None  # a queue created in this update: checked once its ARN is known
    if not isinstance(queue, str) or not queue:
        return (f"EventBridge target {target.name} notifies an SNS topic without a dead-letter "
                "queue: an event it cannot deliver (a broken topic policy or key statement) is "
                "dropped after its retries, and the watch fails unseen")
    if not _SQS_ARN.match(queue):
        return (f"EventBridge target {target.name}'s dead-letter queue {queue!r} is not an SQS queue "
                "ARN (arn:<partition>:sqs:<region>:<account>:<name>)")
    return None


def events_target_has_dlq(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    topics = {topic.urn for topic in of_type(resources, TOPIC)}
    return [Finding(target.urn, problem) for target in of_type(resources, TARGET)
            if _notifies_a_topic(target, topics) and (problem := target_problem(target)) is not None]


RULE = Rule(
    name="events-target-has-dlq",
    description="Every EventBridge target that notifies an SNS topic (the watches on the alarm "
                "topics) has an SQS dead-letter queue.",
    control="alarms that notify",
    severity=Severity.HIGH,
    remediation="Deliver the rule with components.alarms.notify_on_rule and the stack's AlarmActions: "
                "it gives the target its own dead-letter queue under the logs key, and alarms on a "
                "dead letter and on the rule's FailedInvocations.",
    stack_check=events_target_has_dlq,
)
