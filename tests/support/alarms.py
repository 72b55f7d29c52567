"""The alarm topics a component test passes (the dev stack's names in the mock account)."""

from __future__ import annotations

from components.alarm_topics import SEVERITIES, AlarmActions, alarm_topic_arn

ACCOUNT, REGION = "111122223333", "eu-west-1"
TOPIC_ARNS = {severity: alarm_topic_arn("aws", REGION, ACCOUNT, "dev", severity) for severity in SEVERITIES}
# The key the topics, and the watches' dead-letter queues, are encrypted with (the logs key).
LOGS_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1111bbbb-1111-bbbb-1111-bbbb1111bbbb"
ALARMS = AlarmActions(TOPIC_ARNS, key_arn=LOGS_KEY_ARN)
