"""One alarm shape the components share: "this happened at least once in the period"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws


def occurrence_alarm(resource_name: str, *, alarm_name: pulumi.Input[str], description: str,
                     namespace: str, metric_name: str, dimensions: Mapping[str, pulumi.Input[str]] | None,
                     statistic: str, period: int, alarm_actions: Sequence[pulumi.Input[str]],
                     tags: Mapping[str, str], parent: pulumi.Resource) -> aws.cloudwatch.MetricAlarm:
    """Alarms on one occurrence of `metric_name` (>= 1 in one `period`); missing data is quiet,
    because these metrics are only emitted when something goes wrong."""
    return aws.cloudwatch.MetricAlarm(
        resource_name, name=alarm_name, alarm_description=description, namespace=namespace,
        metric_name=metric_name, dimensions=dict(dimensions) if dimensions else None,
        statistic=statistic, period=period, evaluation_periods=1, threshold=1,
        comparison_operator="GreaterThanOrEqualToThreshold", treat_missing_data="notBreaching",
        alarm_actions=list(alarm_actions), tags=dict(tags), opts=pulumi.ResourceOptions(parent=parent))
