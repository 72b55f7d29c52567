"""detection-function-single-runner (control: detection stream): the detection function with
reserved concurrency 1 passes; unreserved or reserved more is caught; other functions are not its
business; directly and through the pack's analyzer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pulumi_policy.proxy import unknown_checking_proxy

from tests.conftest import PACK_DIR
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.lambda_.detection_function_single_runner import (
    DETECT_HANDLER,
    FUNCTION,
    detection_function_single_runner,
)

RULE = "detection-function-single-runner"
URN = f"urn:pulumi:dev::zero-trust-ai::{FUNCTION}::detect-function"


def props(handler: str = DETECT_HANDLER, reserved: Any = 1) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "zero-trust-ai-dev-combined-siem-detect", "handler": handler}
    if reserved is not None:
        out["reservedConcurrentExecutions"] = reserved
    return out


def check(values: dict[str, Any]) -> list[str]:
    return detection_function_single_runner(
        Resource(type=FUNCTION, name="detect-function", urn=URN, props=unknown_checking_proxy(values),
                 property_dependencies={}), {})


def test_the_detection_function_reserved_to_one_passes() -> None:
    assert check(props()) == []


@pytest.mark.parametrize(("reserved", "shown"), [(None, "none"), (-1, "none"), (5, "5"), (0, "0")])
def test_a_detection_function_not_reserved_to_one_is_caught(reserved: Any, shown: str) -> None:
    [message] = check(props(reserved=reserved))
    assert f"reserved concurrency {shown}" in message and "must be 1" in message


def test_another_function_is_not_this_rules_business() -> None:
    assert check(props(handler="ztai_runtime.siem.firehose.handler", reserved=None)) == []


def test_the_rule_knows_the_components_handler() -> None:
    from components.detection import DETECT_HANDLER as COMPONENT_HANDLER

    assert COMPONENT_HANDLER == DETECT_HANDLER


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "dev", {}, True)) as running:
        yield running


def violated(pack: PolicyPackProcess, values: dict[str, Any]) -> list[str]:
    result = analyze(pack, [AnalyzedResource(urn=URN, type=FUNCTION, name="detect-function",
                                             properties=values, property_dependencies={})],
                     user_config=None, project="zero-trust-ai", stack="dev")
    return [v.policy for v in result.violations if v.policy == RULE]


def test_the_analyzer_passes_one_and_reports_an_unreserved_function(pack: PolicyPackProcess) -> None:
    assert violated(pack, props()) == []
    assert violated(pack, props(reserved=None)) == [RULE]
