"""The alarm topics a component test passes (the dev stack's names in the mock account)."""

from __future__ import annotations

from components.alarm_topics import SEVERITIES, AlarmActions, alarm_topic_arn

ACCOUNT, REGION = "111122223333", "eu-west-1"
TOPIC_ARNS = {severity: alarm_topic_arn("aws", REGION, ACCOUNT, "dev", severity) for severity in SEVERITIES}
ALARMS = AlarmActions(TOPIC_ARNS)
