"""The alarm shapes the components share, each notifying the topic of its severity.

- `occurrence_alarm`: "this happened at least once in the period" (an error, a dead letter).
- `missed_run_alarm`: "the scheduled function did not run" (no invocation in its period).
- `notify_on_rule`: an EventBridge watch rule delivers its events to a topic.

Every one takes the stack's `AlarmActions` (components/alarm_topics.py) and a severity: no alarm
of the stack is created without an action, because an alarm nobody hears is no control.
"""

from __future__ import annotations

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


def notify_on_rule(resource_name: str, *, rule: aws.cloudwatch.EventRule, actions: AlarmActions | None,
                   severity: str) -> aws.cloudwatch.EventTarget:
    """Deliver every event `rule` matches to `severity`'s topic (the topic's policy admits this
    account's rules; the logs key admits EventBridge for the topics)."""
    [arn] = checked_actions(actions, severity, resource_name)
    return aws.cloudwatch.EventTarget(
        resource_name, rule=rule.name, arn=arn,
        retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
            maximum_retry_attempts=185, maximum_event_age_in_seconds=86_400),
        opts=pulumi.ResourceOptions(parent=rule))
