"""log-group-subscribed-to-siem (control: SIEM stream): every log group with a subscription filter
to a Firehose stream of the stack passes; a group without one, with one to something else, or
claiming the stream's exemption without being its own, is caught; links read from property
dependencies (a preview) and from values (an export), directly and through the pack's analyzer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pulumi_policy.proxy import unknown_checking_proxy

from tests.conftest import PACK_DIR
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.logs.log_group_subscribed_to_siem import (
    FIREHOSE_STREAM,
    LOG_GROUP,
    OWN_LOG_TAG,
    SUBSCRIPTION_FILTER,
    log_group_subscribed_to_siem,
)

PREFIX = "urn:pulumi:dev::zero-trust-ai::"
STREAM_NAME = "zero-trust-ai-dev-combined-siem"
STREAM_ARN = f"arn:aws:firehose:eu-west-1:111122223333:deliverystream/{STREAM_NAME}"
FLOW = "/zero-trust-ai/dev/vpc-flow-logs/data"
TRANSFORM = f"/aws/lambda/{STREAM_NAME}-transform"
ERRORS = f"/zero-trust-ai/dev/siem/{STREAM_NAME}"


def urn(token: str, name: str) -> str:
    return f"{PREFIX}{token}::{name}"


def res(token: str, name: str, props: dict[str, Any], deps: dict[str, list[str]] | None = None) -> Resource:
    """As a rule sees it (props behind the engine's proxy); `.raw` keeps the plain values."""
    resource = Resource(type=token, name=name, urn=urn(token, name), props=unknown_checking_proxy(props),
                        property_dependencies={k: tuple(v) for k, v in (deps or {}).items()})
    _RAW[resource.urn] = props
    return resource


_RAW: dict[str, dict[str, Any]] = {}


def stack(*, exported: bool, flow_filter: bool = True, destination: str = STREAM_ARN,
          own_tag: str = STREAM_NAME, transform_name: str = TRANSFORM, pattern: str | None = "",
          extra_group: str | None = None) -> list[Resource]:
    """The SIEM stream's resources as a preview (inputs, links as property dependencies) or an export
    (outputs: ids, names and ARNs, no dependencies) sees them."""
    def ids(name: str, **more: Any) -> dict[str, Any]:
        return {"id": name, "arn": f"arn:aws:logs:eu-west-1:111122223333:log-group:{name}", **more} \
            if exported else {}
    stream_props = {"name": STREAM_NAME, **({"arn": STREAM_ARN, "id": STREAM_ARN} if exported else {})}
    resources = [
        res(FIREHOSE_STREAM, "siem-stream", stream_props),
        res(LOG_GROUP, "flow-logs", {"name": FLOW, **ids(FLOW)}),
        res(LOG_GROUP, "siem-transform-logs", {"name": transform_name, "tags": {OWN_LOG_TAG: own_tag},
                                               **ids(transform_name)}),
        res(LOG_GROUP, "siem-errors", {"name": ERRORS, "tags": {OWN_LOG_TAG: STREAM_NAME}, **ids(ERRORS)}),
    ]
    if extra_group is not None:
        # A real source group carrying the stream's own-log tag, its name containing the stream's.
        resources.append(res(LOG_GROUP, "tagged-source", {"name": extra_group,
                                                          "tags": {OWN_LOG_TAG: STREAM_NAME},
                                                          **ids(extra_group)}))
    if flow_filter:
        foreign = destination != STREAM_ARN
        to_stream = [] if foreign else [urn(FIREHOSE_STREAM, "siem-stream")]
        deps = {} if exported else {"logGroup": [urn(LOG_GROUP, "flow-logs")], "destinationArn": to_stream}
        props: dict[str, Any] = {"logGroup": FLOW}
        if pattern is not None:
            props["filterPattern"] = pattern
        if exported or foreign:
            props["destinationArn"] = destination
        resources.append(res(SUBSCRIPTION_FILTER, "siem-subscription-flow-logs", props, deps))
    return resources


def caught(resources: list[Resource]) -> list[str]:
    return sorted(f.urn.rsplit("::", 1)[-1] for f in log_group_subscribed_to_siem(resources, {}))


@pytest.mark.parametrize("exported", [False, True])
def test_every_group_subscribed_or_the_streams_own_passes(exported: bool) -> None:
    assert caught(stack(exported=exported)) == []


@pytest.mark.parametrize("exported", [False, True])
def test_a_group_without_a_filter_is_caught(exported: bool) -> None:
    assert caught(stack(exported=exported, flow_filter=False)) == ["flow-logs"]


@pytest.mark.parametrize("exported", [False, True])
def test_a_filter_to_something_else_than_a_stream_of_the_stack_is_caught(exported: bool) -> None:
    other = "arn:aws:firehose:eu-west-1:444455556666:deliverystream/elsewhere"
    assert caught(stack(exported=exported, destination=other)) == ["flow-logs"]


@pytest.mark.parametrize("exported", [False, True])
def test_the_exemption_tag_exempts_only_the_streams_own_groups(exported: bool) -> None:
    # A tag naming no stream of the stack, or on a group whose name is not the stream's, exempts nothing.
    assert caught(stack(exported=exported, own_tag="some-other-stream")) == ["siem-transform-logs"]
    renamed = stack(exported=exported, transform_name="/aws/lambda/data-export")
    assert caught(renamed) == ["siem-transform-logs"]


@pytest.mark.parametrize("exported", [False, True])
def test_an_absent_pattern_forwards_everything_and_passes(exported: bool) -> None:
    assert caught(stack(exported=exported, pattern=None)) == []


@pytest.mark.parametrize("exported", [False, True])
@pytest.mark.parametrize("pattern", ["no-such-text-ever-xyzzy", "ERROR", " ", '{ $.eventName = "x" }'])
def test_a_filter_with_a_pattern_forwards_too_little_and_is_caught(exported: bool, pattern: str) -> None:
    assert caught(stack(exported=exported, pattern=pattern)) == ["flow-logs"]
    [finding] = log_group_subscribed_to_siem(stack(exported=exported, pattern=pattern), {})
    assert f"filter pattern ({pattern!r})" in finding.message and "must be empty" in finding.message


@pytest.mark.parametrize("exported", [False, True])
@pytest.mark.parametrize("name", [
    f"/zero-trust-ai/dev/siem/{STREAM_NAME}/ssm-sessions",  # the review's probe: contains the name
    f"/aws/lambda/{STREAM_NAME}-transform-x",
    f"/aws/lambda/{STREAM_NAME}",
    f"/zero-trust-ai/prod/siem/{STREAM_NAME}",  # another environment's error-log path
    f"{ERRORS}-copy",
])
def test_the_exemption_matches_the_two_own_names_exactly(exported: bool, name: str) -> None:
    assert caught(stack(exported=exported, extra_group=name)) == ["tagged-source"]


def test_the_exempt_names_are_the_ones_siem_stream_makes() -> None:
    from components import siem_stream
    from ztpolicy.rules.logs.log_group_subscribed_to_siem import own_group_names

    for environment, layer in (("dev", "combined"), ("prod", "keys"), ("prod", "workload")):
        name = siem_stream.stream_name(environment, layer)
        assert own_group_names(name) == {
            f"/aws/lambda/{siem_stream.transform_function_name(environment, layer)}",
            siem_stream.error_log_group_name(environment, layer)}
    # A stream not named as SiemStream names it keeps only its transform's group exempt.
    assert own_group_names("elsewhere") == {"/aws/lambda/elsewhere-transform"}


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
    return {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations
            if v.policy == "log-group-subscribed-to-siem"}


@pytest.mark.parametrize("exported", [False, True])
def test_the_analyzer_passes_a_subscribed_stack_and_reports_a_group_left_out(
        pack: PolicyPackProcess, exported: bool) -> None:
    assert violated(pack, stack(exported=exported)) == set()
    assert violated(pack, stack(exported=exported, flow_filter=False)) == {
        ("log-group-subscribed-to-siem", "flow-logs")}


@pytest.mark.parametrize("exported", [False, True])
def test_the_analyzer_reports_a_pattern_and_a_group_claiming_the_exemption_by_substring(
        pack: PolicyPackProcess, exported: bool) -> None:
    assert violated(pack, stack(exported=exported, pattern="no-such-text-ever-xyzzy")) == {
        ("log-group-subscribed-to-siem", "flow-logs")}
    probe = f"/zero-trust-ai/dev/siem/{STREAM_NAME}/ssm-sessions"
    assert violated(pack, stack(exported=exported, extra_group=probe)) == {
        ("log-group-subscribed-to-siem", "tagged-source")}
