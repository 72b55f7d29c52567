"""The alarm shapes the components share, each notifying the topic of its severity.

- `occurrence_alarm`: "this happened at least once in the period" (an error, a dead letter).
- `missed_run_alarm`: "the scheduled function did not run" (no invocation in its period).
- `notify_on_rule`: an EventBridge watch rule delivers its events to a topic; what it cannot
  deliver lands in the watch's dead-letter queue, and both the failure and the dead letter alarm.

Every one takes the stack's `AlarmActions` (components/alarm_topics.py) and a severity: no alarm
of the stack is created without an action, because an alarm nobody hears is no control.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from components.alarm_topics import SEVERITIES, AlarmActions

# CloudWatch's window limits (botocore cloudwatch: PutMetricAlarmInput.Period): "Period multiplied
# by EvaluationPeriods can't be more than 604,800 seconds. For alarms with a period of less than
# one hour (3,600 seconds), the total evaluation period can't be longer than one day"; a period is
# 10, 20, 30 or a multiple of 60 seconds.
MAX_EVALUATION_SECONDS, MAX_SHORT_EVALUATION_SECONDS = 604_800, 86_400
HIGH_RESOLUTION_PERIODS = (10, 20, 30)


def checked_actions(actions: AlarmActions | None, severity: str, what: str) -> list[pulumi.Input[str]]:
    """The actions of `severity`, or a ValueError: an alarm without an action is refused."""
    if severity not in SEVERITIES:
        raise ValueError(f"{what}: unknown alarm severity {severity!r}; severities are "
                         f"{', '.join(SEVERITIES)}")
    if actions is None:
        raise ValueError(f"{what}: no alarm actions; pass the stack's AlarmActions "
                         "(AlarmTopics.actions, or alarm_actions_by_name in a workload stack)")
    arns = actions(severity)
    if not arns:
        raise ValueError(f"{what}: the {severity} alarms have no action")
    return arns


def _checked_window(what: str, period: int, evaluation_periods: int) -> None:
    if period not in HIGH_RESOLUTION_PERIODS and (period <= 0 or period % 60):
        raise ValueError(f"{what}: period {period} s is not 10, 20, 30 or a multiple of 60 (CloudWatch)")
    total = period * evaluation_periods
    limit = MAX_SHORT_EVALUATION_SECONDS if period < 3600 else MAX_EVALUATION_SECONDS
    if evaluation_periods < 1 or total > limit:
        raise ValueError(f"{what}: {evaluation_periods} periods of {period} s span {total} s; CloudWatch "
                         f"allows at most {limit} s for this period")


def occurrence_alarm(resource_name: str, *, alarm_name: pulumi.Input[str], description: str,
                     namespace: str, metric_name: str, dimensions: Mapping[str, pulumi.Input[str]] | None,
                     statistic: str, period: int, actions: AlarmActions | None, severity: str,
                     tags: Mapping[str, str], parent: pulumi.Resource) -> aws.cloudwatch.MetricAlarm:
    """Alarms on one occurrence of `metric_name` (>= 1 in one `period`); missing data is quiet,
    because these metrics are only emitted when something goes wrong. Notifies `severity`'s topic."""
    arns = checked_actions(actions, severity, resource_name)
    _checked_window(resource_name, period, 1)
    return aws.cloudwatch.MetricAlarm(
        resource_name, name=alarm_name, alarm_description=f"[{severity}] {description}",
        namespace=namespace, metric_name=metric_name, dimensions=dict(dimensions) if dimensions else None,
        statistic=statistic, period=period, evaluation_periods=1, threshold=1,
        comparison_operator="GreaterThanOrEqualToThreshold", treat_missing_data="notBreaching",
        alarm_actions=arns, tags={**tags, "ztai:alarm-severity": severity},
        opts=pulumi.ResourceOptions(parent=parent))


def missed_run_alarm(resource_name: str, *, alarm_name: pulumi.Input[str], description: str,
                     function_name: pulumi.Input[str], period: int, evaluation_periods: int,
                     actions: AlarmActions | None, severity: str, tags: Mapping[str, str],
                     parent: pulumi.Resource) -> aws.cloudwatch.MetricAlarm:
    """Alarms when the scheduled function `function_name` was not invoked in `evaluation_periods`
    consecutive periods of `period` seconds (its schedule's interval).

    Lambda emits `Invocations` only in periods with an invocation, so a period without a run has
    no data point: missing data is breaching here. Every one of the periods must be empty
    (datapoints to alarm = evaluation periods): the period in progress is empty until the day's
    run, and must not alarm by itself. The whole window stays within CloudWatch's limits (seven
    days; one day for periods under an hour), so a function that runs less often than weekly
    cannot be watched this way: give it a daily run (the key rotation runs daily for this)."""
    arns = checked_actions(actions, severity, resource_name)
    _checked_window(resource_name, period, evaluation_periods)
    return aws.cloudwatch.MetricAlarm(
        resource_name, name=alarm_name, alarm_description=f"[{severity}] {description}",
        namespace="AWS/Lambda", metric_name="Invocations", dimensions={"FunctionName": function_name},
        statistic="Sum", period=period, evaluation_periods=evaluation_periods,
        datapoints_to_alarm=evaluation_periods, threshold=1, comparison_operator="LessThanThreshold",
        treat_missing_data="breaching", alarm_actions=arns,
        # Back to OK is news too: the run someone fixed happened.
        ok_actions=arns, tags={**tags, "ztai:alarm-severity": severity},
        opts=pulumi.ResourceOptions(parent=parent))


def shortfall_alarm(resource_name: str, *, alarm_name: pulumi.Input[str], description: str,
                    namespace: str, metric_name: str, dimensions: Mapping[str, pulumi.Input[str]],
                    statistic: str, threshold: float, period: int, missing: str,
                    actions: AlarmActions | None, severity: str, tags: Mapping[str, str],
                    parent: pulumi.Resource) -> aws.cloudwatch.MetricAlarm:
    """Alarms when `metric_name` falls below `threshold` in one `period` (a success rate that
    dropped, a stream that fell silent). `missing`: CloudWatch's TreatMissingData, "breaching"
    where no data point means nothing arrived, "notBreaching" where it means nothing was tried."""
    arns = checked_actions(actions, severity, resource_name)
    _checked_window(resource_name, period, 1)
    return aws.cloudwatch.MetricAlarm(
        resource_name, name=alarm_name, alarm_description=f"[{severity}] {description}",
        namespace=namespace, metric_name=metric_name, dimensions=dict(dimensions), statistic=statistic,
        period=period, evaluation_periods=1, threshold=threshold,
        comparison_operator="LessThanThreshold", treat_missing_data=missing, alarm_actions=arns,
        ok_actions=arns, tags={**tags, "ztai:alarm-severity": severity},
        opts=pulumi.ResourceOptions(parent=parent))


# What EventBridge keeps of an undelivered watch event: the SQS maximum, 14 days (botocore sqs:
# SetQueueAttributes, MessageRetentionPeriod "up to 1,209,600 seconds"), time to mend and redrive.
WATCH_DEAD_LETTER_RETENTION_SECONDS = 1_209_600
# The retry policy of a watch target: EventBridge's default and maximum (24 hours, 185 attempts).
WATCH_RETRY_ATTEMPTS, WATCH_MAX_EVENT_AGE = 185, 86_400
# Every watch rule is `zero-trust-ai-<env>-...-used` (components/identity.py, components/audit.py):
# the CI boundary and the guardrails keep rules of that name to the key layer's deployer, and the
# logs key admits EventBridge for the dead-letter queues of those names only
# (KeyHierarchy.grant_watch_dead_letters).
WATCH_RULE_SUFFIX, WATCH_DEAD_LETTER_SUFFIX = "-used", "-dlq"


def watch_name_problem(rule_name: str) -> str | None:
    """What is wrong with `rule_name` as a watch's name, or None."""
    if rule_name.startswith("zero-trust-ai-") and rule_name.endswith(WATCH_RULE_SUFFIX):
        return None
    return (f"watch rule {rule_name!r}: a rule that notifies an alarm topic is named "
            f"zero-trust-ai-<env>-<what>{WATCH_RULE_SUFFIX} (the logs key admits its dead-letter "
            "queue under that name only)")


def watch_dead_letter_queue_name(rule_name: str) -> str:
    """The dead-letter queue of the watch rule `rule_name`: `<rule name>-dlq` (at most 68
    characters: a rule name is at most 64, a queue name 80)."""
    return f"{rule_name}{WATCH_DEAD_LETTER_SUFFIX}"


def watch_dead_letter_queue_policy(queue_arn: str, rule_arn: str) -> str:
    """EventBridge may send to the queue for the one rule `rule_arn` (aws:SourceArn, the
    confused-deputy condition of "Using dead-letter queues to process undelivered events in
    EventBridge", EventBridge user guide: "Granting permissions to the dead-letter queue"); nobody
    reaches it without TLS. Reading the dead letters is the account's IAM business (responders)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ThisRuleDeadLetters", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
         "Action": "sqs:SendMessage", "Resource": queue_arn,
         "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}},
        # A missing aws:SecureTransport key (a service's own call) does not match `false`.
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sqs:*",
         "Resource": queue_arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]}, sort_keys=True)


def notify_on_rule(resource_name: str, *, rule: aws.cloudwatch.EventRule, actions: AlarmActions | None,
                   severity: str) -> aws.cloudwatch.EventTarget:
    """Deliver every event `rule` matches to `severity`'s topic (the topic's policy admits this
    account's rules; the logs key admits EventBridge for the topics), and make its failure loud.

    A delivery can fail: a topic policy or a key statement broken by hand, the key disabled.
    EventBridge then retries for up to a day, or at once gives up on a permission error, and drops
    the event ("Event retry policy and using dead-letter queues", EventBridge user guide). So:

    - the target has a dead-letter queue of its own, `<rule name>-dlq`, encrypted with the logs
      key (`AlarmActions.key_arn`, the topics' key), 14 days' retention, TLS only, whose policy
      admits this rule alone; the logs key admits EventBridge for these queues from its creation
      (KeyHierarchy.grant_watch_dead_letters, with `alarm_topics`). One queue per watch, not one
      shared: each policy names one rule, and a dead letter's queue says which watch it was;
    - an alarm of `severity` on a message in that queue, and one on the rule's `AWS/Events`
      `FailedInvocations` (every event not delivered, whether or not its dead letter was
      written). Both are CloudWatch's, published through the CloudWatch statements of the topic
      policy and the key, not EventBridge's: a broken EventBridge statement still pages.

    First deploy: the queue waits for the key (its ARN), the target for the queue's policy, so
    EventBridge can write a dead letter from the target's first event."""
    [arn] = checked_actions(actions, severity, resource_name)  # refuses None
    if actions is None or actions.key_arn is None:
        raise ValueError(f"{resource_name}: the alarm actions name no key for the watch's dead "
                         "letters; pass the AlarmActions of the stack's AlarmTopics (their key is "
                         "the logs key)")
    def checked(rule_name: str) -> str:
        # The name is known only once Pulumi resolves it: an error logged here fails the run with
        # this message, where an exception would bury it under every resource that waits on it.
        problem = watch_name_problem(rule_name)
        if problem is not None:
            pulumi.log.error(f"{resource_name}: {problem}", resource=rule)
        return watch_dead_letter_queue_name(rule_name)

    queue_name = rule.name.apply(checked)
    tags: dict[str, pulumi.Input[str]] = {"Name": queue_name, "ztai:alarm-severity": severity}
    child = pulumi.ResourceOptions(parent=rule)
    queue = aws.sqs.Queue(
        f"{resource_name}-dlq", name=queue_name, kms_master_key_id=actions.key_arn,
        kms_data_key_reuse_period_seconds=300,
        message_retention_seconds=WATCH_DEAD_LETTER_RETENTION_SECONDS, tags=tags, opts=child)
    queue_policy = aws.sqs.QueuePolicy(
        f"{resource_name}-dlq-policy", queue_url=queue.id,  # a queue's id is its URL
        policy=pulumi.Output.all(queue.arn, rule.arn).apply(
            lambda arns: watch_dead_letter_queue_policy(arns[0], arns[1])),
        opts=pulumi.ResourceOptions(parent=queue))
    target = aws.cloudwatch.EventTarget(
        resource_name, rule=rule.name, arn=arn,
        retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
            maximum_retry_attempts=WATCH_RETRY_ATTEMPTS, maximum_event_age_in_seconds=WATCH_MAX_EVENT_AGE),
        dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=queue.arn),
        opts=pulumi.ResourceOptions(parent=rule, depends_on=[queue_policy]))
    occurrence_alarm(
        f"{resource_name}-dlq-alarm", alarm_name=queue_name,
        description="A watch event could not reach its alarm topic and waits in this dead-letter "
                    "queue (docs/alarms.md, when a watch fails)",
        namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": queue.name}, statistic="Maximum", period=300, actions=actions,
        severity=severity, tags={}, parent=queue)
    occurrence_alarm(
        f"{resource_name}-failed-invocations-alarm",
        alarm_name=rule.name.apply(lambda name: f"{name}-failed-invocations"),
        description="EventBridge could not deliver an event of this watch rule to its alarm topic "
                    "(docs/alarms.md, when a watch fails)",
        namespace="AWS/Events", metric_name="FailedInvocations", dimensions={"RuleName": rule.name},
        statistic="Sum", period=300, actions=actions, severity=severity, tags={}, parent=rule)
    return target
