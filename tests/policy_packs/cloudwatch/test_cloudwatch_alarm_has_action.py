"""cloudwatch-alarm-has-action (control: alarms that notify): an alarm naming an SNS topic passes,
as inputs (a preview) and as outputs (an export), and in a first preview where the topic is not
created yet; an alarm with no action, or with actions that reach no person, is caught, directly,
through the pack's gRPC analyzer, and in a doctored export of the dev stack."""

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
from ztpolicy.rules.cloudwatch.cloudwatch_alarm_has_action import METRIC_ALARM, cloudwatch_alarm_has_action

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


def alarm(name: str = "errors-alarm", props: dict[str, Any] | None = None, preview: bool = False,
          **changes: Any) -> Resource:
    values = {k: v for k, v in {**(props or INPUTS), **changes}.items() if v is not None}
    # A real preview hands the rules a proxy that raises on unknown values.
    return Resource(type=METRIC_ALARM, name=name, urn=f"{STACK}{METRIC_ALARM}::{name}",
                    props=unknown_checking_proxy(values) if preview else values)


@pytest.mark.parametrize("props", [INPUTS, OUTPUTS])
def test_an_alarm_that_notifies_a_topic_passes(props: dict[str, Any]) -> None:
    assert cloudwatch_alarm_has_action(alarm(props=props), NO_CONFIG) == []
    # A topic among other actions (a scaling policy, say) still notifies someone.
    scaling = ("arn:aws:autoscaling:eu-west-1:111122223333:scalingPolicy:1a2b:"
               "autoScalingGroupName/g:policyName/up")
    assert cloudwatch_alarm_has_action(alarm(props=props, alarmActions=[scaling, TOPIC]), NO_CONFIG) == []
    for partition_arn in ("arn:aws-us-gov:sns:us-gov-west-1:111122223333:alarms",
                          "arn:aws:sns:eu-west-1:111122223333:alarms.fifo"):
        assert cloudwatch_alarm_has_action(alarm(props=props, alarmActions=[partition_arn]), NO_CONFIG) == []


def test_a_first_preview_with_the_topic_not_created_yet_is_checked_later() -> None:
    for actions in ([UNKNOWN_STRING_VALUE], UNKNOWN_STRING_VALUE, ["arn:aws:automate:eu-west-1:ec2:stop",
                                                                   UNKNOWN_STRING_VALUE]):
        assert cloudwatch_alarm_has_action(alarm(alarmActions=actions, preview=True), NO_CONFIG) == []
    # Known and empty in a preview: caught there already.
    assert cloudwatch_alarm_has_action(alarm(alarmActions=[], preview=True), NO_CONFIG)


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
    [message] = cloudwatch_alarm_has_action(alarm(props=props, alarmActions=actions), NO_CONFIG)
    assert message == (f"alarm errors-alarm notifies no one: its alarmActions ({shown}) name no SNS "
                       "topic, so it only changes state where nobody looks")


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as running:
        yield running


def test_the_pack_catches_an_alarm_without_an_action(pack: PolicyPackProcess) -> None:
    resources = [alarm(), alarm("silent-alarm", alarmActions=[]),
                 alarm("ec2-only-alarm", alarmActions=["arn:aws:automate:eu-west-1:ec2:stop"])]
    result = analyze(pack, [analyzed(r) for r in resources], user_config=None,
                     project="zero-trust-ai", stack="test")
    found = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations}
    assert found == {("cloudwatch-alarm-has-action", "silent-alarm"),
                     ("cloudwatch-alarm-has-action", "ec2-only-alarm")}


@pytest.fixture(scope="module")
def dev_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "dev.json"
    run = ztai("preview", "--stack", "dev", "--export", str(path))
    assert run.returncode == 0, run.stderr
    return path


@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_an_export_with_an_alarm_action_removed_fails(dev_export: Path, tmp_path: Path, where: str) -> None:
    document = json.loads(dev_export.read_text())
    assert ztai("policy", "analyze", "--file", str(dev_export)).returncode == 0
    alarms = [r for r in document["deployment"]["resources"] if r["type"] == METRIC_ALARM]
    assert len(alarms) >= 10  # every component's alarms, the missed-run alarm included
    silenced = alarms[0]
    if where == "inputs":
        silenced.pop("outputs", None)  # no outputs recorded: the rule reads the inputs
    assert silenced[where]["alarmActions"]
    silenced[where]["alarmActions"] = []
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    run = ztai("policy", "analyze", "--file", str(tampered), "--json")
    assert run.returncode == 1
    assert {(v["policy"], v["urn"]) for v in json.loads(run.stdout)["violations"]} == {
        ("cloudwatch-alarm-has-action", silenced["urn"])}
