"""cloudwatch-alarm-has-action (control: alarms that notify): an alarm naming an SNS topic of the
stack passes, as inputs (a preview) and as outputs (an export), and in a first preview where the
topic is not created yet; in a workload, the key layer's topic by its fixed name in the stack's
account and region passes too. An alarm with no action, with actions that reach no person, with
its actions turned off, or naming a topic the stack does not declare (another account's
included) is caught, directly, through the pack's gRPC analyzer, and in a doctored export of the
dev stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import PACK_DIR
from tests.policy_packs.test_logging_rules import analyzed, ztai
from tests.policy_packs.test_rules import NO_CONFIG, STACK
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.cloudwatch.cloudwatch_alarm_has_action import (
    METRIC_ALARM,
    SEVERITIES,
    cloudwatch_alarm_has_action,
    key_layer_topic_names,
)
from ztpolicy.rules.cloudwatch.cloudwatch_alarm_has_action import (
    TOPIC as TOPIC_TYPE,
)
from ztpolicy.stack import STACK_SETTINGS, StackSettings

TOPIC = "arn:aws:sns:eu-west-1:111122223333:zero-trust-ai-dev-alarms-high"
# What occurrence_alarm registers, as inputs (a preview) and as outputs (an export).
INPUTS: dict[str, Any] = {"name": "zero-trust-ai-dev-key-rotation-errors", "namespace": "AWS/Lambda",
                          "metricName": "Errors", "statistic": "Sum", "period": 3600,
                          "evaluationPeriods": 1, "threshold": 1,
                          "comparisonOperator": "GreaterThanOrEqualToThreshold",
                          "treatMissingData": "notBreaching", "alarmActions": [TOPIC]}
OUTPUTS: dict[str, Any] = {**INPUTS, "id": INPUTS["name"], "actionsEnabled": True, "okActions": [],
                           "arn": "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:"
                                  "zero-trust-ai-dev-key-rotation-errors"}


FOREIGN = "arn:aws:sns:eu-west-1:999999999999:attacker"
WORKLOAD = {STACK_SETTINGS: StackSettings(layer="workload", environment="prod")}
KEY_LAYER_TOPIC = "arn:aws:sns:eu-west-1:111122223333:zero-trust-ai-prod-alarms-high"


def alarm(name: str = "errors-alarm", props: dict[str, Any] | None = None, preview: bool = False,
          dependencies: tuple[str, ...] = (), **changes: Any) -> Resource:
    values = {k: v for k, v in {**(props or INPUTS), **changes}.items() if v is not None}
    # A real preview hands the rules a proxy that raises on unknown values.
    return Resource(type=METRIC_ALARM, name=name, urn=f"{STACK}{METRIC_ALARM}::{name}",
                    props=unknown_checking_proxy(values) if preview else values,
                    property_dependencies={"alarmActions": dependencies} if dependencies else {})


def topic(arn: str | None = TOPIC, name: str = "alarms-high") -> Resource:
    """An aws.sns.Topic of the stack: with its ARN (an export), or without (a preview)."""
    props: dict[str, Any] = {"name": "zero-trust-ai-dev-alarms-high", **({"arn": arn} if arn else {})}
    return Resource(type=TOPIC_TYPE, name=name, urn=f"{STACK}{TOPIC_TYPE}::{name}", props=props)


def place() -> Resource:
    """A resource that is no topic, whose known ARN tells the stack's account and region."""
    group = "aws:cloudwatch/logGroup:LogGroup"
    return Resource(type=group, name="some-group", urn=f"{STACK}{group}::some-group",
                    props={"arn": "arn:aws:logs:eu-west-1:111122223333:log-group:/zero-trust-ai/prod/x"})


def problems(resource: Resource, *others: Resource, config: dict[str, Any] | None = None) -> list[str]:
    """The rule's messages on the alarm, in a stack holding `others` (by default the topic TOPIC)."""
    stack = [*(others or (topic(),)), resource]
    return [f.message for f in cloudwatch_alarm_has_action(stack, NO_CONFIG if config is None else config)]


@pytest.mark.parametrize("props", [INPUTS, OUTPUTS])
def test_an_alarm_that_notifies_a_topic_passes(props: dict[str, Any]) -> None:
    assert problems(alarm(props=props)) == []
    # A topic among other actions (a scaling policy, say) still notifies someone.
    scaling = ("arn:aws:autoscaling:eu-west-1:111122223333:scalingPolicy:1a2b:"
               "autoScalingGroupName/g:policyName/up")
    assert problems(alarm(props=props, alarmActions=[scaling, TOPIC])) == []
    for partition_arn in ("arn:aws-us-gov:sns:us-gov-west-1:111122223333:alarms",
                          "arn:aws:sns:eu-west-1:111122223333:alarms.fifo"):
        assert problems(alarm(props=props, alarmActions=[partition_arn]), topic(partition_arn)) == []
    # Actions explicitly on.
    assert problems(alarm(props=props, actionsEnabled=True)) == []


def test_a_first_preview_with_the_topic_not_created_yet_is_checked_later() -> None:
    for actions in ([UNKNOWN_STRING_VALUE], UNKNOWN_STRING_VALUE, ["arn:aws:automate:eu-west-1:ec2:stop",
                                                                   UNKNOWN_STRING_VALUE]):
        assert problems(alarm(alarmActions=actions, preview=True)) == []
    # Known and empty in a preview: caught there already.
    assert problems(alarm(alarmActions=[], preview=True))


def test_a_preview_links_the_topic_by_its_dependency() -> None:
    # The topic's ARN not known yet (a preview of a new topic): the alarm's dependency on it counts.
    linked = alarm(dependencies=(topic().urn,))
    assert problems(linked, topic(None)) == []
    # A literal ARN of no topic of the stack, with no dependency, is not the stack's topic.
    assert problems(alarm(alarmActions=[FOREIGN]), topic(None))


@pytest.mark.parametrize("props", [INPUTS, OUTPUTS])
def test_an_alarm_with_its_actions_off_is_caught(props: dict[str, Any]) -> None:
    [message] = problems(alarm(props=props, actionsEnabled=False))
    assert message == ("alarm errors-alarm notifies no one: its actions are turned off (actionsEnabled "
                       "false), so it only changes state where nobody looks")


@pytest.mark.parametrize("props", [INPUTS, OUTPUTS])
@pytest.mark.parametrize("config", [NO_CONFIG, WORKLOAD])
@pytest.mark.parametrize("actions", [
    [FOREIGN],  # another account's topic: the alarm's state leaves the account
    ["arn:aws:sns:eu-west-1:999999999999:zero-trust-ai-prod-alarms-high"],  # the right name, elsewhere
    ["arn:aws:sns:eu-west-1:111122223333:undeclared-topic"],  # a topic the stack does not declare
])
def test_an_alarm_notifying_a_topic_not_of_the_stack_is_caught(props: dict[str, Any], config: dict[str, Any],
                                                               actions: list[str]) -> None:
    [message] = problems(alarm(props=props, alarmActions=actions), topic(), config=config)
    assert "notifies no SNS topic of this stack" in message and actions[0] in message


def test_a_workload_notifies_its_key_layers_topic_by_name_in_its_account_and_region() -> None:
    # The workload declares no topic: its alarms name the key layer's (alarm_actions_by_name).
    here = place()
    assert problems(alarm(alarmActions=[KEY_LAYER_TOPIC]), here, config=WORKLOAD) == []
    assert problems(alarm(alarmActions=[KEY_LAYER_TOPIC], preview=True), here, config=WORKLOAD) == []
    for wrong in ("arn:aws:sns:us-east-1:111122223333:zero-trust-ai-prod-alarms-high",  # another region
                  "arn:aws:sns:eu-west-1:999999999999:zero-trust-ai-prod-alarms-high",  # another account
                  "arn:aws:sns:eu-west-1:111122223333:zero-trust-ai-dev-alarms-high",  # another environment
                  "arn:aws:sns:eu-west-1:111122223333:zero-trust-ai-prod-alarms-low"):  # no such severity
        [message] = problems(alarm(alarmActions=[wrong]), here, config=WORKLOAD)
        assert "nor the key layer's zero-trust-ai-<env>-alarms-<severity>" in message
    # The name alone is not the stack's in a combined stack, which declares its topics.
    assert problems(alarm(alarmActions=[KEY_LAYER_TOPIC]), here)


def test_the_key_layer_topic_names_are_the_components() -> None:
    from components import alarm_topics

    assert SEVERITIES == alarm_topics.SEVERITIES
    assert key_layer_topic_names("prod") == {alarm_topics.alarm_topic_name("prod", severity)
                                             for severity in alarm_topics.SEVERITIES}


@pytest.mark.parametrize("props", [INPUTS, OUTPUTS])
@pytest.mark.parametrize("actions, shown", [
    (None, "none"),
    ([], "none"),
    (["arn:aws:automate:eu-west-1:ec2:reboot"], "arn:aws:automate:eu-west-1:ec2:reboot"),  # EC2 only
    (["arn:aws:lambda:eu-west-1:111122223333:function:f"],
     "arn:aws:lambda:eu-west-1:111122223333:function:f"),
    # Not a topic ARN: an SQS queue, a topic name without its ARN, a wildcard.
    (["arn:aws:sqs:eu-west-1:111122223333:q"], "arn:aws:sqs:eu-west-1:111122223333:q"),
    (["zero-trust-ai-dev-alarms-high"], "zero-trust-ai-dev-alarms-high"),
    (["arn:aws:sns:eu-west-1:111122223333:*"], "arn:aws:sns:eu-west-1:111122223333:*"),
])
def test_an_alarm_that_notifies_nobody_is_caught(props: dict[str, Any], actions: Any, shown: str) -> None:
    [message] = problems(alarm(props=props, alarmActions=actions))
    assert message == (f"alarm errors-alarm notifies no one: its alarmActions ({shown}) name no SNS "
                       "topic, so it only changes state where nobody looks")


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as running:
        yield running


def test_the_pack_catches_an_alarm_without_an_action(pack: PolicyPackProcess) -> None:
    resources = [topic(), alarm(), alarm("silent-alarm", alarmActions=[]),
                 alarm("ec2-only-alarm", alarmActions=["arn:aws:automate:eu-west-1:ec2:stop"]),
                 alarm("disabled-alarm", actionsEnabled=False),
                 alarm("foreign-alarm", alarmActions=[FOREIGN])]
    result = analyze(pack, [analyzed(r) for r in resources], user_config=None,
                     project="zero-trust-ai", stack="test")
    found = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations}
    assert found == {("cloudwatch-alarm-has-action", name)
                     for name in ("silent-alarm", "ec2-only-alarm", "disabled-alarm", "foreign-alarm")}


@pytest.fixture(scope="module")
def workload_pack() -> Iterator[PolicyPackProcess]:
    config = {"zero-trust-ai:layer": "workload", "zero-trust-ai:environment": "prod"}
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "prod", config, True)) as running:
        yield running


def test_the_pack_reads_the_workloads_layer_for_the_key_layers_topics(
        workload_pack: PolicyPackProcess) -> None:
    config = {"zero-trust-ai:layer": "workload", "zero-trust-ai:environment": "prod"}
    resources = [place(), alarm("key-layer-alarm", alarmActions=[KEY_LAYER_TOPIC]),
                 alarm("foreign-alarm", alarmActions=[FOREIGN])]
    result = analyze(workload_pack, [analyzed(r) for r in resources], user_config=None,
                     project="zero-trust-ai", stack="prod", stack_config=config)
    found = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations
             if v.policy == "cloudwatch-alarm-has-action"}
    assert found == {("cloudwatch-alarm-has-action", "foreign-alarm")}


@pytest.mark.parametrize("actions", [[], [FOREIGN]])
@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_an_export_with_an_alarm_action_removed_fails(dev_export: Path, tmp_path: Path, where: str,
                                                      actions: list[str]) -> None:
    document = json.loads(dev_export.read_text())
    assert ztai("policy", "analyze", "--file", str(dev_export)).returncode == 0
    alarms = [r for r in document["deployment"]["resources"] if r["type"] == METRIC_ALARM]
    assert len(alarms) >= 10  # every component's alarms, the missed-run alarm included
    silenced = alarms[0]
    if where == "inputs":
        silenced.pop("outputs", None)  # no outputs recorded: the rule reads the inputs
    assert silenced[where]["alarmActions"]
    silenced[where]["alarmActions"] = actions
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    run = ztai("policy", "analyze", "--file", str(tampered), "--json")
    assert run.returncode == 1
    assert {(v["policy"], v["urn"]) for v in json.loads(run.stdout)["violations"]} == {
        ("cloudwatch-alarm-has-action", silenced["urn"])}
