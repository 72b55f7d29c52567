"""siem-stream-leaves-the-account (control: SIEM stream), advisory: a production stream fed by the
stack's log groups that delivers only to its own bucket is reported; one that delivers to a SIEM,
one of a non-production stack, or a stream no log group feeds is not; links read from property
dependencies (a preview) and values (an export), directly and through the pack's analyzer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PACK_DIR
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.firehose.siem_stream_leaves_the_account import (
    FIREHOSE_STREAM,
    SUBSCRIPTION_FILTER,
    siem_stream_leaves_the_account,
)

STREAM_ARN = "arn:aws:firehose:eu-west-1:111122223333:deliverystream/zero-trust-ai-prod-workload-siem"


Made = list[tuple[str, str, dict[str, Any], dict[str, list[str]]]]


def resources(stack: str, *, destination: str = "extended_s3", exported: bool = False, fed: bool = True,
              environment: str | None = None) -> Made:
    prefix = f"urn:pulumi:{stack}::zero-trust-ai::"
    stream_props: dict[str, Any] = {"name": "zero-trust-ai-prod-workload-siem", "destination": destination}
    if environment:
        stream_props["tags"] = {"environment": environment}
    if exported:
        stream_props["arn"] = STREAM_ARN
    made: Made = [(f"{prefix}{FIREHOSE_STREAM}::siem-stream", FIREHOSE_STREAM, stream_props, {})]
    if fed:
        made.append((f"{prefix}{SUBSCRIPTION_FILTER}::siem-subscription-flow-logs", SUBSCRIPTION_FILTER,
                     {"logGroup": "/zero-trust-ai/prod/vpc-flow-logs/data",
                      **({"destinationArn": STREAM_ARN} if exported else {})},
                     {} if exported else {"destinationArn": [f"{prefix}{FIREHOSE_STREAM}::siem-stream"]}))
    return made


def as_rules_see(made: list[tuple[str, str, dict[str, Any], dict[str, list[str]]]]) -> list[Resource]:
    return [Resource(type=token, name=urn.rsplit("::", 1)[-1], urn=urn, props=props,
                     property_dependencies={k: tuple(v) for k, v in deps.items()})
            for urn, token, props, deps in made]


@pytest.mark.parametrize("exported", [False, True])
def test_a_production_stream_to_its_own_bucket_only_is_reported(exported: bool) -> None:
    for stack in ("prod", "prod-keys"):
        [finding] = siem_stream_leaves_the_account(as_rules_see(resources(stack, exported=exported)), {})
        assert "delivers only to its own bucket" in finding.message and f"stack {stack}" in finding.message
    # Production by its environment tag too, whatever the stack is called.
    tagged = resources("sandbox", exported=exported, environment="prod")
    assert siem_stream_leaves_the_account(as_rules_see(tagged), {})


@pytest.mark.parametrize("exported", [False, True])
def test_a_stream_to_a_siem_or_outside_production_or_fed_by_nothing_is_not(exported: bool) -> None:
    for made in (resources("prod", destination="http_endpoint", exported=exported),
                 resources("prod", destination="splunk", exported=exported),
                 resources("dev", exported=exported),
                 resources("prod", exported=exported, fed=False)):
        assert siem_stream_leaves_the_account(as_rules_see(made), {}) == []
    assert siem_stream_leaves_the_account(as_rules_see(resources("prod", exported=exported)),
                                          {"protectedStacks": ["production"]}) == []


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "prod", {}, True)) as running:
        yield running


def test_the_analyzer_reports_it_as_advisory(pack: PolicyPackProcess) -> None:
    def run(made: list[tuple[str, str, dict[str, Any], dict[str, list[str]]]]) -> list[Any]:
        analyzed = [AnalyzedResource(urn=urn, type=token, name=urn.rsplit("::", 1)[-1], properties=props,
                                     property_dependencies=deps) for urn, token, props, deps in made]
        result = analyze(pack, analyzed, user_config=None, project="zero-trust-ai", stack="prod")
        return [v for v in result.violations if v.policy == "siem-stream-leaves-the-account"]

    [violation] = run(resources("prod"))
    assert violation.level == "advisory"
    assert run(resources("prod", destination="http_endpoint")) == []
