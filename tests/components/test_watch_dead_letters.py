"""Watches that cannot fail silently: every EventBridge watch target (`notify_on_rule`) has a
dead-letter queue of its own under the logs key, whose policy admits only its rule and only over
TLS, an alarm on a dead letter and one on the rule's FailedInvocations; the logs key admits
EventBridge for those queues only, from its creation; the bad inputs are refused by name; and the
dev stack as `ztai preview` records it holds all of this for every watch."""

from __future__ import annotations

import json
from typing import Any

import pulumi_aws as aws
import pytest

from components.alarm_topics import AlarmActions
from components.alarms import (
    WATCH_DEAD_LETTER_RETENTION_SECONDS,
    notify_on_rule,
    watch_dead_letter_queue_name,
    watch_dead_letter_queue_policy,
)
from components.keys import KeyHierarchy, KeyHierarchyArgs
from tests.support.alarms import ACCOUNT, ALARMS, LOGS_KEY_ARN, REGION, TOPIC_ARNS
from tests.support.key_policy import Request, evaluate
from tests.support.stacks import record_stack
from ztai.preview.recorder import RecordedResource, RecordedStack, record

TARGET = "aws:cloudwatch/eventTarget:EventTarget"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RULE_NAME = "zero-trust-ai-dev-test-used"
RULE_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{RULE_NAME}"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{RULE_NAME}-dlq"


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def of_type(stack: RecordedStack, token: str) -> list[RecordedResource]:
    return [r for r in stack.resources if r.type == token]


def one_watch(severity: str = "critical", rule_name: str = RULE_NAME,
              actions: AlarmActions | None = ALARMS) -> RecordedStack:
    def program() -> None:
        rule = aws.cloudwatch.EventRule("watch", name=rule_name, event_pattern='{"source": ["aws.sts"]}')
        notify_on_rule("watch-notify", rule=rule, actions=actions, severity=severity)

    return record(program, project="zero-trust-ai", stack="test", config={}, region=REGION)


# --- one watch ------------------------------------------------------------------------------------

def test_the_target_dead_letters_to_its_own_queue_under_the_logs_key() -> None:
    stack = one_watch()
    target, queue = named(stack, "watch-notify"), named(stack, "watch-notify-dlq")
    assert target.inputs["arn"] == TOPIC_ARNS["critical"]
    assert target.inputs["deadLetterConfig"] == {"arn": queue.outputs["arn"]}
    assert queue.inputs["name"] == f"{RULE_NAME}-dlq"
    assert queue.inputs["kmsMasterKeyId"] == LOGS_KEY_ARN
    assert queue.inputs["messageRetentionSeconds"] == WATCH_DEAD_LETTER_RETENTION_SECONDS == 14 * 86_400
    # EventBridge's default and maximum retries are kept: a passing outage is retried for a day.
    assert target.inputs["retryPolicy"] == {"maximumRetryAttempts": 185, "maximumEventAgeInSeconds": 86_400}


def test_the_target_waits_for_the_queues_policy() -> None:
    # First deploy: EventBridge can write a dead letter from the target's first event.
    stack = one_watch()
    target = named(stack, "watch-notify")
    assert named(stack, "watch-notify-dlq-policy").urn in target.dependencies


def _send(policy: str, source_arn: str, tls: bool = True, principal: str = "events.amazonaws.com",
          action: str = "sqs:SendMessage") -> str:
    return evaluate(policy, Request(principal, action, QUEUE_ARN, {
        "aws:SourceArn": source_arn, "aws:SecureTransport": "true" if tls else "false"})).effect


def test_the_queue_admits_its_rule_alone_and_only_over_tls() -> None:
    stack = one_watch()
    policy = named(stack, "watch-notify-dlq-policy").inputs["policy"]
    # The mocks' ARNs are the resources' own; the policy names them, and these are the real forms.
    assert policy == watch_dead_letter_queue_policy(named(stack, "watch-notify-dlq").outputs["arn"],
                                                    named(stack, "watch").outputs["arn"])
    policy = watch_dead_letter_queue_policy(QUEUE_ARN, RULE_ARN)
    assert _send(policy, RULE_ARN) == "allow"
    # Another watch of the account, another account's rule of the same name, another service.
    assert _send(policy, RULE_ARN.replace("test-used", "other-used")) == "implicit-deny"
    assert _send(policy, RULE_ARN.replace(ACCOUNT, "444455556666")) == "implicit-deny"
    assert _send(policy, RULE_ARN, principal="sns.amazonaws.com") == "implicit-deny"
    # Sending is all EventBridge may do; nobody reaches the queue without TLS.
    assert _send(policy, RULE_ARN, action="sqs:ReceiveMessage") == "implicit-deny"
    assert _send(policy, RULE_ARN, tls=False) == "explicit-deny"


@pytest.mark.parametrize("severity", ["critical", "high"])
def test_a_dead_letter_and_a_failed_invocation_each_alarm_at_the_watchs_severity(severity: str) -> None:
    stack = one_watch(severity)
    dlq = named(stack, "watch-notify-dlq-alarm").inputs
    assert (dlq["namespace"], dlq["metricName"], dlq["statistic"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum")
    assert dlq["dimensions"] == {"QueueName": named(stack, "watch-notify-dlq").outputs["name"]}
    assert dlq["name"] == f"{RULE_NAME}-dlq"
    failed = named(stack, "watch-notify-failed-invocations-alarm").inputs
    assert (failed["namespace"], failed["metricName"], failed["statistic"]) == (
        "AWS/Events", "FailedInvocations", "Sum")
    assert failed["dimensions"] == {"RuleName": RULE_NAME}
    assert failed["name"] == f"{RULE_NAME}-failed-invocations"
    for alarm in (dlq, failed):
        assert alarm["alarmActions"] == [TOPIC_ARNS[severity]]
        assert alarm["tags"]["ztai:alarm-severity"] == severity
        assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanOrEqualToThreshold", 1)


# --- bad inputs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rule_name", ["watch", "zero-trust-ai-dev-break-glass", "my-team-break-glass-used"])
def test_a_rule_not_named_as_a_watch_is_refused(rule_name: str) -> None:
    # The logs key would refuse its dead letters: the run fails, naming the rule and the form.
    assert one_watch(rule_name=rule_name).errors == [
        f"watch-notify: watch rule '{rule_name}': a rule that notifies an alarm topic is named "
        "zero-trust-ai-<env>-<what>-used (the logs key admits its dead-letter queue under that name only)"]


def test_a_watch_named_as_a_watch_logs_no_error() -> None:
    assert one_watch().errors == []


def test_alarm_actions_without_a_key_are_refused() -> None:
    with pytest.raises(Exception, match="watch-notify: the alarm actions name no key for the watch's "
                                        "dead letters; pass the AlarmActions of the stack's AlarmTopics"):
        one_watch(actions=AlarmActions(TOPIC_ARNS))


def test_no_alarm_actions_are_refused() -> None:
    with pytest.raises(Exception, match="watch-notify: no alarm actions"):
        one_watch(actions=None)


def test_the_queue_name_is_the_rules_with_dlq() -> None:
    assert watch_dead_letter_queue_name("zero-trust-ai-prod-audit-trail-used") == \
        "zero-trust-ai-prod-audit-trail-used-dlq"


# --- the logs key ---------------------------------------------------------------------------------

def _logs_creation_policy(alarm_topics: bool) -> str:
    def program() -> None:
        KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="ml-platform", region=REGION,
                                              alarm_topics=alarm_topics))

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region=REGION)
    policy: str = named(stack, "keys-logs").inputs["policy"]
    return policy


def _use(policy: str, action: str, queue_arn: str, principal: str = "events.amazonaws.com") -> str:
    return evaluate(policy, Request(principal, action, f"arn:aws:kms:{REGION}:{ACCOUNT}:key/logs", {
        "kms:EncryptionContext:aws:sqs:arn": queue_arn, "aws:SourceArn": RULE_ARN,
        "aws:SourceAccount": ACCOUNT})).effect


def test_the_logs_key_admits_eventbridge_for_the_watch_dead_letter_queues_only() -> None:
    policy = _logs_creation_policy(True)
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert _use(policy, action, QUEUE_ARN) == "allow"
        assert _use(policy, action, QUEUE_ARN.replace("test-used", "audit-trail-used")) == "allow"
        # Any other queue of the account, the other environment's, another account's: refused.
        for other in (f"arn:aws:sqs:{REGION}:{ACCOUNT}:zero-trust-ai-dev-jit-api-failures",
                      QUEUE_ARN.replace("-dev-", "-prod-"), QUEUE_ARN.replace(ACCOUNT, "444455556666"),
                      QUEUE_ARN.replace(REGION, "us-east-1"), QUEUE_ARN.removesuffix("-dlq")):
            assert _use(policy, action, other) == "implicit-deny", other
        # Nor another service under the same context.
        assert _use(policy, action, QUEUE_ARN, principal="sqs.amazonaws.com") == "implicit-deny"
    # Nothing but the data keys of SQS's envelope.
    assert _use(policy, "kms:Encrypt", QUEUE_ARN) == "implicit-deny"
    assert _use(policy, "kms:ReEncryptFrom", QUEUE_ARN) == "implicit-deny"


def test_a_key_without_alarm_topics_admits_no_dead_letters() -> None:
    policy = _logs_creation_policy(False)
    assert _use(policy, "kms:GenerateDataKey", QUEUE_ARN) == "implicit-deny"
    assert "EventBridgeWatchDeadLetters" not in policy


# --- the dev stack --------------------------------------------------------------------------------

def _resolved(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_every_watch_of_the_dev_stack_dead_letters_under_the_logs_key_and_alarms() -> None:
    stack = record_stack("dev")
    by_urn_name = {r.name: r for r in stack.resources}
    logs_key = named(stack, "keys-logs").outputs["arn"]
    watches = [t for t in of_type(stack, TARGET) if t.inputs["arn"] in TOPIC_ARNS.values()]
    # The audit trail's eight, break-glass used, and each break-glass elevation's.
    assert len(watches) >= 9
    alarms = {a.inputs["name"]: a.inputs for a in of_type(stack, METRIC_ALARM)}
    queues = {q.outputs["arn"]: q for q in of_type(stack, QUEUE)}
    policies = {p.inputs["queueUrl"]: _resolved(p.inputs["policy"]) for p in of_type(stack, QUEUE_POLICY)}
    rules = {r.outputs["name"]: r for r in stack.resources if r.type == "aws:cloudwatch/eventRule:EventRule"}
    for target in watches:
        rule = rules[target.inputs["rule"]]
        queue = queues[target.inputs["deadLetterConfig"]["arn"]]
        assert queue.inputs["kmsMasterKeyId"] == logs_key, target.name
        assert queue.inputs["name"] == f"{rule.outputs['name']}-dlq"
        statements = policies[queue.outputs["id"]]["Statement"]
        allowed = [s for s in statements if s["Effect"] == "Allow"]
        assert allowed == [{"Sid": "ThisRuleDeadLetters", "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
                            "Resource": queue.outputs["arn"],
                            "Condition": {"ArnEquals": {"aws:SourceArn": rule.outputs["arn"]}}}], target.name
        severity = next(s for s, arn in TOPIC_ARNS.items() if arn == target.inputs["arn"])
        for alarm_name in (f"{rule.outputs['name']}-dlq", f"{rule.outputs['name']}-failed-invocations"):
            assert alarms[alarm_name]["alarmActions"] == [TOPIC_ARNS[severity]], alarm_name
        assert by_urn_name[f"{target.name}-dlq-alarm"].inputs["dimensions"] == {
            "QueueName": queue.outputs["name"]}
    # The dev stack's logs key admits EventBridge for these queues (its sealed policy).
    sealed = [p for p in stack.resources if p.type == "aws:kms/keyPolicy:KeyPolicy"
              and p.inputs["keyId"] == named(stack, "keys-logs").outputs["id"]]
    assert sealed and all("EventBridgeWatchDeadLetters" in p.inputs["policy"] for p in sealed)


def test_the_key_layer_holds_the_watches_and_their_dead_letters() -> None:
    stack = record_stack("prod-keys")
    watches = [t for t in of_type(stack, TARGET) if "deadLetterConfig" in t.inputs]
    assert len(watches) >= 9
    assert all(t.inputs["deadLetterConfig"]["arn"] for t in watches)
    # Before the workload's first deploy the logs key keeps its creation policy: it already
    # admits EventBridge for the dead letters.
    assert "EventBridgeWatchDeadLetters" in named(stack, "keys-logs").inputs["policy"]
