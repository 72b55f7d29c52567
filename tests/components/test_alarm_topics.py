"""Alarms that notify: AlarmTopics under Pulumi's mock monitor (three encrypted topics, their
policies judged by the policy evaluator, subscriptions from config), the logs key's grant to
CloudWatch and EventBridge, the alarm helpers that refuse an alarm without an action, the
missed-run alarm's window, the stack key alarmSubscriptions and every bad value of it, and the dev
stack as `ztai preview` records it: every alarm notifies the topic of its severity."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.alarm_topics import (
    SEVERITIES,
    AlarmActions,
    AlarmSubscription,
    AlarmTopics,
    AlarmTopicsArgs,
    alarm_actions_by_name,
    alarm_topic_arn,
    alarm_topic_name,
    parse_alarm_subscriptions,
    topic_policy,
)
from components.alarms import missed_run_alarm, notify_on_rule, occurrence_alarm
from components.key_rotation import MonthlyKeyRotation, runs_at_least_daily
from components.keys import KeyHierarchy, KeyHierarchyArgs
from components.stack_config import StackConfigError, parse_layer_config
from tests.components.test_key_rotation import ARGS as ROTATION_ARGS
from tests.conftest import ROOT
from tests.support.alarms import ACCOUNT, ALARMS, REGION, TOPIC_ARNS
from tests.support.key_policy import Request, evaluate
from tests.support.stacks import record_stack
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztai.stackfile import load_stack

KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0000aaaa-0000-aaaa-0000-aaaa0000aaaa"
SUBSCRIPTIONS = (AlarmSubscription("critical", "email", "security-oncall@example.com"),
                 AlarmSubscription("critical", "https", "https://oncall.example.com/hooks/sns"),
                 AlarmSubscription("medium", "email", "ml-platform@example.com"))
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def of_type(stack: RecordedStack, token: str) -> list[RecordedResource]:
    return [r for r in stack.resources if r.type == token]


def build_topics(subscriptions: tuple[AlarmSubscription, ...] = SUBSCRIPTIONS) -> RecordedStack:
    def program() -> None:
        AlarmTopics("alarms", AlarmTopicsArgs(environment="dev", region=REGION, key_arn=KEY,
                                              subscriptions=subscriptions))

    return record(program, project="zero-trust-ai", stack="test", config={}, region=REGION)


_TOPICS: list[RecordedStack] = []


def topics_once() -> RecordedStack:
    """The topics with SUBSCRIPTIONS, recorded once per process."""
    if not _TOPICS:
        _TOPICS.append(build_topics())
    return _TOPICS[0]


def test_one_topic_per_severity_with_its_fixed_name_under_the_logs_key() -> None:
    topics = topics_once()
    for severity in SEVERITIES:
        topic = named(topics, f"alarms-{severity}")
        assert topic.inputs["name"] == alarm_topic_name("dev", severity)
        assert alarm_topic_name("dev", severity) == f"zero-trust-ai-dev-alarms-{severity}"
        assert topic.inputs["kmsMasterKeyId"] == KEY
        assert topic.outputs["arn"] == TOPIC_ARNS[severity]  # what a workload names by ARN
    assert len(of_type(topics, "aws:sns/topic:Topic")) == 3


def _publish(principal: str, source_arn: str, account: str = ACCOUNT, tls: bool = True,
             severity: str = "critical") -> str:
    policy = named(topics_once(), f"alarms-{severity}-policy").inputs["policy"]
    return evaluate(policy, Request(principal, "sns:Publish", TOPIC_ARNS[severity], {
        "aws:SourceArn": source_arn, "aws:SourceAccount": account,
        "aws:SecureTransport": "true" if tls else "false"})).effect


def test_only_this_accounts_alarms_and_rules_may_publish_and_only_over_tls() -> None:
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:zero-trust-ai-dev-key-rotation-errors"
    rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/zero-trust-ai-dev-break-glass-used"
    for severity in SEVERITIES:
        assert _publish("cloudwatch.amazonaws.com", alarm, severity=severity) == "allow"
        assert _publish("events.amazonaws.com", rule, severity=severity) == "allow"
    # Another account's alarm or rule (the confused deputy), another Region's, or a rule posing
    # as an alarm: not admitted.
    other = "444455556666"
    assert _publish("cloudwatch.amazonaws.com", alarm.replace(ACCOUNT, other), other) == "implicit-deny"
    assert _publish("cloudwatch.amazonaws.com", alarm, other) == "implicit-deny"
    assert _publish("events.amazonaws.com", rule.replace(ACCOUNT, other), other) == "implicit-deny"
    assert _publish("cloudwatch.amazonaws.com", alarm.replace(REGION, "us-east-1")) == "implicit-deny"
    assert _publish("events.amazonaws.com", alarm) == "implicit-deny"
    assert _publish("sns.amazonaws.com", alarm) == "implicit-deny"
    # Without TLS, nobody.
    assert _publish("cloudwatch.amazonaws.com", alarm, tls=False) == "explicit-deny"


def test_the_topic_policy_names_its_topic_only() -> None:
    document = json.loads(topic_policy("aws", REGION, ACCOUNT, TOPIC_ARNS["high"]))
    assert {s["Resource"] for s in document["Statement"]} == {TOPIC_ARNS["high"]}
    assert {s["Sid"] for s in document["Statement"]} == {
        "CloudWatchAlarmsOfThisAccount", "EventBridgeRulesOfThisAccount", "DenyWithoutTls"}


def test_each_subscription_is_made_on_its_severitys_topic_and_left_for_its_owner_to_confirm() -> None:
    subscriptions = of_type(topics_once(), "aws:sns/topicSubscription:TopicSubscription")
    made = {(s.inputs["topic"], s.inputs["protocol"], s.inputs["endpoint"]) for s in subscriptions}
    assert made == {(TOPIC_ARNS[s.severity], s.protocol, s.endpoint) for s in SUBSCRIPTIONS}
    assert not any(s.inputs.get("endpointAutoConfirms") for s in subscriptions)


def test_reordering_the_subscriptions_replaces_none() -> None:
    names = {r.name for r in of_type(topics_once(), "aws:sns/topicSubscription:TopicSubscription")}
    reordered = build_topics(tuple(reversed(SUBSCRIPTIONS)))
    assert {r.name for r in of_type(reordered, "aws:sns/topicSubscription:TopicSubscription")} == names


def test_no_subscription_no_subscription_resource() -> None:
    stack = build_topics(())
    assert not of_type(stack, "aws:sns/topicSubscription:TopicSubscription")
    assert len(of_type(stack, "aws:sns/topic:Topic")) == 3


def test_a_hand_built_bad_subscription_is_refused() -> None:
    with pytest.raises(Exception, match="protocol 'http' is not allowed"):
        build_topics((AlarmSubscription("critical", "http", "http://oncall.example.com"),))


# --- the logs key ---------------------------------------------------------------------------------

def _logs_creation_policy(alarm_topics: bool) -> dict[str, Any]:
    def program() -> None:
        KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="ml-platform", region=REGION,
                                              alarm_topics=alarm_topics))

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region=REGION)
    policy: dict[str, Any] = json.loads(named(stack, "keys-logs").inputs["policy"])
    return policy


def test_the_logs_key_admits_cloudwatch_and_eventbridge_for_the_alarm_topics_only() -> None:
    policy = json.dumps(_logs_creation_policy(True))
    logs_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/logs"
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:zero-trust-ai-dev-key-rotation-errors"

    def use(principal: str, action: str, topic: str, account: str = ACCOUNT,
            source: str = alarm) -> str:
        return evaluate(policy, Request(principal, action, logs_key, {
            "kms:EncryptionContext:aws:sns:topicArn": topic, "aws:SourceAccount": account,
            "aws:SourceArn": source})).effect

    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        for topic in TOPIC_ARNS.values():
            assert use("cloudwatch.amazonaws.com", action, topic) == "allow"
            assert use("events.amazonaws.com", action, topic) == "allow"
        # Another topic of the account, or the other environment's: the key is not opened to it.
        other_topic = alarm_topic_arn("aws", REGION, ACCOUNT, "prod", "critical")
        assert use("cloudwatch.amazonaws.com", action, other_topic) == "implicit-deny"
        assert use("events.amazonaws.com", action, f"arn:aws:sns:{REGION}:{ACCOUNT}:mine") == "implicit-deny"
        # Another account's alarm (the confused deputy).
        assert use("cloudwatch.amazonaws.com", action, TOPIC_ARNS["high"], "444455556666",
                   alarm.replace(ACCOUNT, "444455556666")) == "implicit-deny"
    # Nothing else: no encryption, no re-encryption, no grant.
    for action in ("kms:Encrypt", "kms:ReEncryptFrom", "kms:CreateGrant"):
        assert use("cloudwatch.amazonaws.com", action, TOPIC_ARNS["high"]) == "implicit-deny"


def test_without_the_topics_the_logs_key_names_neither_service() -> None:
    principals = {json.dumps(s["Principal"]) for s in _logs_creation_policy(False)["Statement"]}
    assert not any("cloudwatch.amazonaws.com" in p or "events.amazonaws.com" in p for p in principals)


# --- the alarm helpers ----------------------------------------------------------------------------

def _alarm_program(**overrides: Any) -> None:
    parent = pulumi.ComponentResource("test:x:X", "parent")
    occurrence_alarm("a", **{"alarm_name": "a", "description": "d", "namespace": "AWS/Lambda",
                             "metric_name": "Errors", "dimensions": None, "statistic": "Sum",
                             "period": 300, "actions": ALARMS, "severity": "high", "tags": {},
                             "parent": parent, **overrides})


@pytest.mark.parametrize("overrides, message", [
    ({"actions": None}, "a: no alarm actions; pass the stack's AlarmActions"),
    ({"severity": "low"}, "a: unknown alarm severity 'low'; severities are critical, high, medium"),
    ({"period": 45}, "a: period 45 s is not 10, 20, 30 or a multiple of 60"),
])
def test_an_alarm_without_an_action_or_with_a_bad_shape_is_refused(overrides: dict[str, Any],
                                                                     message: str) -> None:
    with pytest.raises(Exception, match=message):
        record(lambda: _alarm_program(**overrides), project="zero-trust-ai", stack="test", config={},
               region=REGION)


@pytest.mark.parametrize("topic_arns, message", [
    ({"critical": "a", "high": "b"}, "missing medium"),
    ({"critical": "a", "high": "b", "medium": ""}, "missing medium"),
    ({"critical": "a", "high": "b", "medium": "c", "low": "d"}, "unknown low"),
])
def test_alarm_actions_need_one_topic_per_severity(topic_arns: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlarmActions(topic_arns)


@pytest.mark.parametrize("period, periods, message", [
    (86_400, 8, "8 periods of 86400 s span 691200 s; CloudWatch allows at most 604800 s"),
    (300, 289, "289 periods of 300 s span 86700 s; CloudWatch allows at most 86400 s"),
    (3600, 0, "0 periods of 3600 s"),
])
def test_a_missed_run_window_outside_cloudwatchs_limits_is_refused(period: int, periods: int,
                                                                   message: str) -> None:
    def program() -> None:
        parent = pulumi.ComponentResource("test:x:X", "parent")
        missed_run_alarm("m", alarm_name="m", description="d", function_name="f", period=period,
                         evaluation_periods=periods, actions=ALARMS, severity="high", tags={},
                         parent=parent)

    with pytest.raises(Exception, match=message):
        record(program, project="zero-trust-ai", stack="test", config={}, region=REGION)


def test_a_watch_rule_delivers_to_its_severitys_topic() -> None:
    import pulumi_aws as aws

    def program() -> None:
        rule = aws.cloudwatch.EventRule("watch", name="zero-trust-ai-dev-test-used",
                                        event_pattern='{"source": ["aws.sts"]}')
        notify_on_rule("watch-notify", rule=rule, actions=ALARMS, severity="critical")

    target = named(record(program, project="zero-trust-ai", stack="test", config={}, region=REGION),
                   "watch-notify")
    assert target.inputs["arn"] == TOPIC_ARNS["critical"]


def test_a_workload_names_the_key_layers_topics_by_arn() -> None:
    actions = alarm_actions_by_name("us-gov-west-1", "prod", ACCOUNT)
    seen: dict[str, str] = {}

    def keep(severity: str) -> None:
        pulumi.Output.from_input(actions(severity)[0]).apply(lambda arn: seen.__setitem__(severity, arn))

    def program() -> None:
        for severity in SEVERITIES:
            keep(severity)

    record(program, project="zero-trust-ai", stack="test", config={}, region="us-gov-west-1")
    assert seen == {s: f"arn:aws-us-gov:sns:us-gov-west-1:{ACCOUNT}:zero-trust-ai-prod-alarms-{s}"
                    for s in SEVERITIES}


# --- the components -------------------------------------------------------------------------------

def test_the_key_rotation_alarms_when_it_did_not_run_for_two_days() -> None:
    def program() -> None:
        MonthlyKeyRotation("key-rotation", ROTATION_ARGS)

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region=REGION)
    alarm = named(stack, "key-rotation-missed-run-alarm").inputs
    assert (alarm["namespace"], alarm["metricName"]) == ("AWS/Lambda", "Invocations")
    assert alarm["statistic"] == "Sum"
    assert (alarm["period"], alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (86_400, 2, 2)
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("LessThanThreshold", 1)
    assert alarm["treatMissingData"] == "breaching"
    assert alarm["alarmActions"] == [TOPIC_ARNS["high"]]
    function = named(stack, "key-rotation-function")
    assert alarm["dimensions"] == {"FunctionName": function.outputs["name"]}
    severities = {r.name: r.inputs["tags"]["ztai:alarm-severity"] for r in of_type(stack, METRIC_ALARM)}
    assert severities == {"key-rotation-errors-alarm": "high", "key-rotation-failures-alarm": "high",
                          "key-rotation-dead-letters-alarm": "high", "key-rotation-missed-run-alarm": "high",
                          "key-rotation-successor-due-soon-alarm": "medium"}
    for resource in of_type(stack, METRIC_ALARM):
        assert resource.inputs["alarmActions"] == [TOPIC_ARNS[severities[resource.name]]]


@pytest.mark.parametrize("expression, daily", [
    ("cron(0 3 * * ? *)", True), ("cron(0 */6 * * ? *)", True), ("rate(1 day)", True),
    ("rate(12 hours)", True), ("rate(30 minutes)", True),
    ("cron(0 3 1 * ? *)", False), ("cron(0 3 ? * MON *)", False), ("cron(0 3 * 1 ? *)", False),
    ("rate(2 days)", False), ("rate(25 hours)", False), ("at(2026-07-01T03:00:00)", False),
])
def test_only_a_daily_schedule_can_be_watched_for_missed_runs(expression: str, daily: bool) -> None:
    assert runs_at_least_daily(expression) is daily


@pytest.mark.parametrize("component", ["rotation", "jit", "rollout"])
def test_a_component_without_alarm_actions_is_refused(component: str) -> None:
    from dataclasses import replace

    from components.enclave_fleet import ImageRollout
    from components.jit import JustInTimeAccess, JustInTimeAccessArgs
    from tests.components.test_enclave_fleet import ROLLOUT

    def program() -> None:
        if component == "rotation":
            MonthlyKeyRotation("key-rotation", replace(ROTATION_ARGS, alarm_actions=None))
        elif component == "jit":
            JustInTimeAccess("jit", JustInTimeAccessArgs(environment="dev", region=REGION, elevations=(),
                                                         table_key_arn=KEY, logs_key_arn=KEY))
        else:
            ImageRollout("rollout", replace(ROLLOUT, alarm_actions=None))

    with pytest.raises(Exception, match="alarm_actions: no alarm actions; pass the stack's AlarmActions"):
        record(program, project="zero-trust-ai", stack="test", config={}, region=REGION)


def test_a_rotation_schedule_that_is_not_daily_is_refused() -> None:
    from dataclasses import replace

    def program() -> None:
        MonthlyKeyRotation("key-rotation", replace(ROTATION_ARGS, schedule_expression="cron(0 3 1 * ? *)"))

    with pytest.raises(Exception, match=r"does not run every day: the missed-run alarm counts two days"):
        record(program, project="zero-trust-ai", stack="test", config={}, region=REGION)


# --- the stack key --------------------------------------------------------------------------------

KEY_LAYER = load_stack(ROOT, "prod-keys").config


def key_layer_problems(value: Any) -> list[str]:
    raw = {**KEY_LAYER, "zero-trust-ai:alarmSubscriptions": value}
    with pytest.raises(StackConfigError) as caught:
        parse_layer_config(raw)
    return caught.value.problems


def test_the_shipped_key_layer_subscribes_someone_to_critical() -> None:
    config = parse_layer_config(KEY_LAYER)
    assert any(s.severity == "critical" for s in config.alarm_subscriptions)  # type: ignore[union-attr]


def test_subscriptions_parse_from_what_pulumi_passes() -> None:
    value = json.dumps(["critical:email:oncall@example.com",
                        "high:https:https://oncall.example.com:8443/sns?team=security"])
    assert parse_alarm_subscriptions("alarmSubscriptions", value) == (
        AlarmSubscription("critical", "email", "oncall@example.com"),
        AlarmSubscription("high", "https", "https://oncall.example.com:8443/sns?team=security"))


ITEM = "zero-trust-ai:alarmSubscriptions item"


@pytest.mark.parametrize("item, message", [
    ("critical", f"{ITEM} 'critical': expected <severity>:<protocol>:<endpoint>, e.g. critical:email:"),
    ("critical:email", f"{ITEM} 'critical:email': expected <severity>:<protocol>:<endpoint>"),
    ("critical:email:", f"{ITEM} 'critical:email:': expected <severity>:<protocol>:<endpoint>"),
    ("low:email:a@example.com", f"{ITEM} 'low:email:a@example.com': unknown severity 'low'; severities "
                                "are critical, high, medium"),
    ("Critical:email:a@example.com", "unknown severity 'Critical'"),
    ("critical:http:http://oncall.example.com", "protocol 'http' is not allowed (plain HTTP would carry "
                                                "the alarm and the confirmation token in the clear); "
                                                "protocols are email, https"),
    ("critical:sms:+15555550100", "protocol 'sms' is not allowed; protocols are email, https"),
    ("critical:email:oncall", "'oncall' is not an email address (name@domain.example)"),
    ("critical:email:oncall@localhost", "'oncall@localhost' is not an email address"),
    ("critical:email:a b@example.com", "'a b@example.com' is not an email address"),
    ("critical:email:a@b@example.com", "'a@b@example.com' is not an email address"),
    ("critical:https:http://oncall.example.com/sns", "'http://oncall.example.com/sns' is not an "
                                                     "https:// URL with a host"),
    ("critical:https:https:///sns", "'https:///sns' is not an https:// URL with a host"),
    ("critical:https:oncall.example.com", "'oncall.example.com' is not an https:// URL with a host"),
    ("critical:https:https://oncall.example.com:port/sns", "is not an https:// URL with a host"),
    ("critical:https:https://on call.example.com/", "is not an https:// URL with a host"),
])
def test_each_bad_subscription_is_named_with_what_is_allowed(item: str, message: str) -> None:
    [problem] = key_layer_problems(json.dumps([item]))
    assert message in problem


@pytest.mark.parametrize("value, message", [
    ('{"critical": [{"protocol": "email"}]}', "expected a list of strings"),
    ("critical:email:a@example.com", "expected a list of strings"),
    (json.dumps(["critical:email:a@example.com", "critical:email:A@example.com"]),
     "'critical:email:A@example.com' is given twice"),
])
def test_a_value_that_is_no_list_or_repeats_an_endpoint_is_refused(value: str, message: str) -> None:
    [problem] = key_layer_problems(value)
    assert problem.startswith("zero-trust-ai:alarmSubscriptions") and message in problem


@pytest.mark.parametrize("value", [
    "[]", json.dumps(["high:email:a@example.com", "medium:email:b@example.com"])])
def test_prod_needs_someone_on_critical(value: str) -> None:
    assert key_layer_problems(value) == [
        "zero-trust-ai:alarmSubscriptions: a prod stack that holds the alarm topics needs at least one "
        "critical subscription (an on-call address or webhook), or a critical alarm reaches nobody; "
        "e.g. critical:email:security-oncall@example.com or critical:https:https://oncall.example.com/sns"]


def test_dev_may_have_no_subscription_yet() -> None:
    config = parse_layer_config(load_stack(ROOT, "dev").config)
    assert config.alarm_subscriptions == ()  # type: ignore[union-attr]


def test_a_workload_stack_refuses_the_key() -> None:
    raw = {**load_stack(ROOT, "prod").config,
           "zero-trust-ai:alarmSubscriptions": json.dumps(["critical:email:a@example.com"])}
    with pytest.raises(StackConfigError) as caught:
        parse_layer_config(raw)
    assert caught.value.problems == [
        "zero-trust-ai:alarmSubscriptions: not read by a workload stack (it belongs to combined and "
        "keys stacks); remove it"]


# --- the stack ------------------------------------------------------------------------------------

def test_every_alarm_of_the_dev_stack_notifies_the_topic_of_its_severity() -> None:
    stack = record_stack("dev")
    alarms = of_type(stack, METRIC_ALARM)
    assert len(alarms) >= 14
    for alarm in alarms:
        severity = alarm.inputs["tags"]["ztai:alarm-severity"]
        assert alarm.inputs["alarmActions"] == [TOPIC_ARNS[severity]], alarm.name
        assert alarm.inputs["alarmDescription"].startswith(f"[{severity}] ")
    watch = named(stack, "access-break-glass-used-notify")
    assert watch.inputs["arn"] == TOPIC_ARNS["critical"]
    assert watch.inputs["rule"] == named(stack, "access-break-glass-used").outputs["name"]
    assert stack.stack_outputs["alarmTopicArns"] == TOPIC_ARNS


def test_two_webhooks_whose_paths_differ_in_case_are_two_subscriptions() -> None:
    value = json.dumps(["high:https:https://hooks.acme.io/T1/Ab", "high:https:https://hooks.acme.io/T1/aB"])
    assert len(parse_alarm_subscriptions("alarmSubscriptions", value)) == 2
