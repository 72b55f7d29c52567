"""events-target-has-dlq (control: alarms that notify): an EventBridge target on an SNS topic with
an SQS dead-letter queue passes, as inputs (a preview), as outputs (an export), and in a first
preview where the topic or the queue is not created yet; one without a dead-letter queue, or with
one that is no SQS queue, is caught, directly, through the pack's gRPC analyzer, and in a doctored
export of the dev stack (whose own watches pass). Targets on anything but a topic are not its
business."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import PACK_DIR
from tests.policy_packs.test_logging_rules import analyzed, ztai
from tests.policy_packs.test_rules import NO_CONFIG, STACK
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.cloudwatch.events_target_has_dlq import TARGET, TOPIC, events_target_has_dlq

TOPIC_ARN = "arn:aws:sns:eu-west-1:111122223333:zero-trust-ai-dev-alarms-critical"
QUEUE_ARN = "arn:aws:sqs:eu-west-1:111122223333:zero-trust-ai-dev-break-glass-used-dlq"
# What notify_on_rule registers, as inputs (a preview) and as outputs (an export).
INPUTS: dict[str, Any] = {"rule": "zero-trust-ai-dev-break-glass-used", "arn": TOPIC_ARN,
                          "retryPolicy": {"maximumRetryAttempts": 185, "maximumEventAgeInSeconds": 86400},
                          "deadLetterConfig": {"arn": QUEUE_ARN}}
OUTPUTS: dict[str, Any] = {**INPUTS, "id": "zero-trust-ai-dev-break-glass-used-terraform-1",
                           "targetId": "terraform-1", "eventBusName": "default"}


def target(name: str = "watch-notify", props: dict[str, Any] | None = None, preview: bool = False,
           dependencies: Mapping[str, tuple[str, ...]] | None = None, **changes: Any) -> Resource:
    values = {k: v for k, v in {**(props or INPUTS), **changes}.items() if v is not None}
    return Resource(type=TARGET, name=name, urn=f"{STACK}{TARGET}::{name}",
                    props=unknown_checking_proxy(values) if preview else values,
                    property_dependencies=dict(dependencies or {}))


def topic() -> Resource:
    return Resource(type=TOPIC, name="alarms-critical", urn=f"{STACK}{TOPIC}::alarms-critical",
                    props={"name": "zero-trust-ai-dev-alarms-critical"})


def problems(*resources: Resource) -> list[str]:
    return [f.message for f in events_target_has_dlq([topic(), *resources], NO_CONFIG)]


@pytest.mark.parametrize("props", [INPUTS, OUTPUTS])
def test_a_target_with_a_dead_letter_queue_passes(props: dict[str, Any]) -> None:
    assert problems(target(props=props)) == []
    gov_topic = TOPIC_ARN.replace("aws:sns:eu-west-1", "aws-us-gov:sns:us-gov-west-1")
    gov_queue = "arn:aws-us-gov:sqs:us-gov-west-1:111122223333:q"
    assert problems(target(props=props, arn=gov_topic, deadLetterConfig={"arn": gov_queue})) == []


def test_a_first_preview_is_checked_once_the_queue_is_known() -> None:
    assert problems(target(deadLetterConfig={"arn": UNKNOWN_STRING_VALUE}, preview=True)) == []
    assert problems(target(deadLetterConfig=UNKNOWN_STRING_VALUE, preview=True)) == []
    # The topic's ARN not known yet: the dependency on the stack's topic makes it a topic target.
    linked = {"arn": (topic().urn,)}
    assert problems(target(arn=UNKNOWN_STRING_VALUE, preview=True, dependencies=linked)) == []
    [message] = problems(target(arn=UNKNOWN_STRING_VALUE, deadLetterConfig=None, preview=True,
                                dependencies=linked))
    assert "without a dead-letter queue" in message


@pytest.mark.parametrize("props", [INPUTS, OUTPUTS])
@pytest.mark.parametrize("dead_letter", [None, {}, {"arn": ""}])
def test_a_target_on_a_topic_without_a_dead_letter_queue_is_caught(props: dict[str, Any],
                                                                   dead_letter: Any) -> None:
    [message] = problems(target(props=props, deadLetterConfig=dead_letter))
    assert message == ("EventBridge target watch-notify notifies an SNS topic without a dead-letter "
                       "queue: an event it cannot deliver (a broken topic policy or key statement) is "
                       "dropped after its retries, and the watch fails unseen")


def test_a_target_linked_to_a_topic_of_the_stack_is_judged_whatever_its_arn_output_says() -> None:
    # An export's outputs may carry another ARN (the offline preview's mocks give each resource one).
    linked = {"arn": (topic().urn,)}
    other = "arn:aws:cloudwatch:eu-west-1:111122223333:eventtarget/watch-notify-1"
    assert problems(target(props=OUTPUTS, arn=other, dependencies=linked)) == []
    assert problems(target(props=OUTPUTS, arn=other, deadLetterConfig=None, dependencies=linked))


@pytest.mark.parametrize("queue", [TOPIC_ARN, "zero-trust-ai-dev-break-glass-used-dlq",
                                   "arn:aws:sqs:eu-west-1:111122223333:*"])
def test_a_dead_letter_arn_that_is_no_queue_is_caught(queue: str) -> None:
    [message] = problems(target(deadLetterConfig={"arn": queue}))
    assert f"dead-letter queue {queue!r} is not an SQS queue ARN" in message


def test_targets_on_anything_but_a_topic_are_not_judged() -> None:
    function = "arn:aws:lambda:eu-west-1:111122223333:function:zero-trust-ai-dev-image-rollout"
    assert problems(target(arn=function, deadLetterConfig=None)) == []
    # Unknown and not linked to a topic of the stack (a function created in this update).
    assert problems(target(arn=UNKNOWN_STRING_VALUE, deadLetterConfig=None, preview=True,
                           dependencies={"arn": (f"{STACK}aws:lambda/function:Function::f",)})) == []


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as running:
        yield running


def test_the_pack_catches_a_watch_without_a_dead_letter_queue(pack: PolicyPackProcess) -> None:
    resources = [topic(), target(), target("bare-notify", deadLetterConfig=None),
                 target("topic-as-dlq-notify", deadLetterConfig={"arn": TOPIC_ARN})]
    result = analyze(pack, [analyzed(r) for r in resources], user_config=None,
                     project="zero-trust-ai", stack="test")
    found = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations
             if v.policy == "events-target-has-dlq"}
    assert found == {("events-target-has-dlq", "bare-notify"),
                     ("events-target-has-dlq", "topic-as-dlq-notify")}


@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_an_export_with_a_watchs_dead_letter_queue_removed_fails(dev_export: Path, tmp_path: Path,
                                                                  where: str) -> None:
    document = json.loads(dev_export.read_text())
    resources = {r["urn"].rsplit("::", 1)[-1]: r for r in document["deployment"]["resources"]}
    assert ztai("policy", "analyze", "--file", str(dev_export)).returncode == 0
    watch = resources["access-break-glass-used-notify"]
    if where == "inputs":
        watch.pop("outputs", None)  # no outputs recorded: the rules read the inputs
    assert watch[where]["deadLetterConfig"]["arn"].startswith("arn:aws:sqs:")
    del watch[where]["deadLetterConfig"]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    run = ztai("policy", "analyze", "--file", str(tampered), "--json")
    assert run.returncode == 1
    assert {(v["policy"], v["urn"]) for v in json.loads(run.stdout)["violations"]} == {
        ("events-target-has-dlq", watch["urn"])}
