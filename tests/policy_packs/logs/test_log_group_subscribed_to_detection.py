"""log-group-subscribed-to-detection (control: detection stream): every log group the SIEM stream
carries with a second, every-event subscription to the stack's detection function passes; a group
without one, with one to another function, or one with a pattern, is caught; only the detection
function's own group is exempt, by its exact name; links read from property dependencies (a
preview) and from values (an export), directly and through the pack's analyzer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pulumi_policy.proxy import unknown_checking_proxy

from tests.conftest import PACK_DIR
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.logs.log_group_subscribed_to_detection import (
    DETECT_HANDLER,
    FUNCTION,
    OWN_LOG_TAG,
    log_group_subscribed_to_detection,
)
from ztpolicy.rules.logs.log_group_subscribed_to_siem import FIREHOSE_STREAM, LOG_GROUP, SUBSCRIPTION_FILTER

PREFIX = "urn:pulumi:dev::zero-trust-ai::"
STREAM = "zero-trust-ai-dev-combined-siem"
STREAM_ARN = f"arn:aws:firehose:eu-west-1:111122223333:deliverystream/{STREAM}"
DETECT = f"{STREAM}-detect"
DETECT_ARN = f"arn:aws:lambda:eu-west-1:111122223333:function:{DETECT}"
FLOW = "/zero-trust-ai/dev/vpc-flow-logs/data"
OWN = f"/aws/lambda/{DETECT}"
RULE = "log-group-subscribed-to-detection"
_RAW: dict[str, dict[str, Any]] = {}


def urn(token: str, name: str) -> str:
    return f"{PREFIX}{token}::{name}"


def res(token: str, name: str, props: dict[str, Any], deps: dict[str, list[str]] | None = None) -> Resource:
    resource = Resource(type=token, name=name, urn=urn(token, name), props=unknown_checking_proxy(props),
                        property_dependencies={k: tuple(v) for k, v in (deps or {}).items()})
    _RAW[resource.urn] = props
    return resource


def subscription(name: str, group: str, group_resource: str, target_token: str, target: str,
                 target_arn: str, *, exported: bool, pattern: str | None = "") -> Resource:
    props: dict[str, Any] = {"logGroup": group}
    if pattern is not None:
        props["filterPattern"] = pattern
    if exported:
        props["destinationArn"] = target_arn
    deps = {} if exported else {"logGroup": [urn(LOG_GROUP, group_resource)],
                                "destinationArn": [urn(target_token, target)]}
    return res(SUBSCRIPTION_FILTER, name, props, deps)


def stack(*, exported: bool, detect_filter: bool = True, handler: str = DETECT_HANDLER,
          pattern: str | None = "", own_name: str = OWN, own_tag: str = DETECT,
          siem_filter: bool = True) -> list[Resource]:
    def ids(name: str) -> dict[str, Any]:
        arn = f"arn:aws:logs:eu-west-1:111122223333:log-group:{name}"
        return {"id": name, "arn": arn} if exported else {}
    resources = [
        res(FIREHOSE_STREAM, "siem-stream", {"name": STREAM, **({"arn": STREAM_ARN} if exported else {})}),
        res(FUNCTION, "detect-function", {"name": DETECT, "handler": handler,
                                          **({"arn": DETECT_ARN} if exported else {})}),
        res(LOG_GROUP, "flow-logs", {"name": FLOW, **ids(FLOW)}),
        res(LOG_GROUP, "detect-logs", {"name": own_name, "tags": {OWN_LOG_TAG: own_tag}, **ids(own_name)}),
        # The detection function's own group goes to the SIEM (and never to itself).
        subscription("siem-subscription-detect-logs", own_name, "detect-logs", FIREHOSE_STREAM,
                     "siem-stream", STREAM_ARN, exported=exported),
    ]
    if siem_filter:
        resources.append(subscription("siem-subscription-flow-logs", FLOW, "flow-logs", FIREHOSE_STREAM,
                                      "siem-stream", STREAM_ARN, exported=exported))
    if detect_filter:
        resources.append(subscription("detect-subscription-flow-logs", FLOW, "flow-logs", FUNCTION,
                                      "detect-function", DETECT_ARN, exported=exported, pattern=pattern))
    return resources


def caught(resources: list[Resource]) -> list[str]:
    return sorted(f.urn.rsplit("::", 1)[-1] for f in log_group_subscribed_to_detection(resources, {}))


@pytest.mark.parametrize("exported", [False, True])
def test_a_group_watched_by_the_detection_function_passes(exported: bool) -> None:
    assert caught(stack(exported=exported)) == []
    assert caught(stack(exported=exported, pattern=None)) == []  # absent: every event


@pytest.mark.parametrize("exported", [False, True])
def test_a_siem_group_without_the_detection_subscription_is_caught(exported: bool) -> None:
    assert caught(stack(exported=exported, detect_filter=False)) == ["flow-logs"]
    [finding] = log_group_subscribed_to_detection(stack(exported=exported, detect_filter=False), {})
    assert "no detection function of the stack" in finding.message


@pytest.mark.parametrize("exported", [False, True])
def test_a_subscription_to_another_function_is_caught(exported: bool) -> None:
    # The same filter, but the function it reaches does not run the detection engine: no detection
    # function in the stack, so its "own" group is no exemption either.
    assert caught(stack(exported=exported, handler="app.handler")) == ["detect-logs", "flow-logs"]


@pytest.mark.parametrize("exported", [False, True])
@pytest.mark.parametrize("pattern", ["ERROR", '{ $.eventName = "GetObject" }'])
def test_a_narrowed_subscription_is_caught(exported: bool, pattern: str) -> None:
    [finding] = log_group_subscribed_to_detection(stack(exported=exported, pattern=pattern), {})
    assert finding.urn.endswith("::flow-logs") and "must be empty" in finding.message


@pytest.mark.parametrize("exported", [False, True])
def test_a_group_not_carried_to_the_siem_is_left_to_the_siem_rule(exported: bool) -> None:
    assert caught(stack(exported=exported, siem_filter=False, detect_filter=False)) == []


@pytest.mark.parametrize("exported", [False, True])
@pytest.mark.parametrize(("own_name", "own_tag"), [
    (f"/aws/lambda/{DETECT}-x", DETECT),  # tagged, but not the function's own name
    (OWN, "some-other-function"),  # the name, but the tag names no detection function
])
def test_the_exemption_is_the_functions_own_group_only(exported: bool, own_name: str, own_tag: str) -> None:
    assert caught(stack(exported=exported, own_name=own_name, own_tag=own_tag)) == ["detect-logs"]


def test_the_rule_knows_the_components_handler_and_tag() -> None:
    from components import detection

    assert detection.DETECT_HANDLER == DETECT_HANDLER
    assert detection.DETECTION_OWN_LOG_TAG == OWN_LOG_TAG


# -- through the analyzer ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "dev", {}, True)) as running:
        yield running


def violated(pack: PolicyPackProcess, resources: list[Resource]) -> set[tuple[str, str]]:
    analyzed = [AnalyzedResource(
        urn=r.urn, type=r.type, name=r.name, properties=_RAW[r.urn],
        property_dependencies={k: list(v) for k, v in r.property_dependencies.items()}) for r in resources]
    result = analyze(pack, analyzed, user_config=None, project="zero-trust-ai", stack="dev")
    return {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations if v.policy == RULE}


@pytest.mark.parametrize("exported", [False, True])
def test_the_analyzer_passes_a_watched_group_and_reports_one_left_out(
        pack: PolicyPackProcess, exported: bool) -> None:
    assert violated(pack, stack(exported=exported)) == set()
    assert violated(pack, stack(exported=exported, detect_filter=False)) == {(RULE, "flow-logs")}
    assert violated(pack, stack(exported=exported, pattern="ERROR")) == {(RULE, "flow-logs")}
