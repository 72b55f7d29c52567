"""lambda-failure-destination and load-balancer-access-logs: what the components register passes
(directly, from an export's outputs, and in a first preview with unknowns); the insecure forms are
caught, also through the pack's gRPC analyzer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import PACK_DIR, ROOT
from tests.policy_packs.test_rules import NO_CONFIG, STACK, res, urns
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.elb.load_balancer_access_logs import load_balancer_access_logs
from ztpolicy.rules.lambda_.lambda_failure_destination import (
    FUNCTION,
    INVOKE_CONFIG,
    lambda_failure_destination,
)

LB = "aws:lb/loadBalancer:LoadBalancer"
QUEUE_ARN = "arn:aws:sqs:eu-west-1:111122223333:rotation-failures"
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:111122223333:function:rotation"


def function(name: str = "rotation", **props: Any) -> Resource:
    # `name` is also res()'s logical name: the function's properties go in as a mapping.
    values = {"id": name, "name": name, "arn": FUNCTION_ARN.replace("rotation", name), **props}
    return Resource(type=FUNCTION, name=name, urn=f"{STACK}{FUNCTION}::{name}", props=values)


def invoke_config(target: Resource | None, destination: Any = QUEUE_ARN, function_name: Any = None,
                  name: str = "async") -> Resource:
    props: dict[str, Any] = {"functionName": function_name or (target.get("name") if target else "x"),
                             "maximumRetryAttempts": 2}
    if destination is not None:
        props["destinationConfig"] = {"onFailure": {"destination": destination}}
    deps = {"functionName": [target.urn]} if target is not None and function_name is None else None
    return res(INVOKE_CONFIG, name, deps, **props)


def failing(*resources: Resource) -> set[str]:
    return urns(lambda_failure_destination(list(resources), NO_CONFIG))


# -- lambda-failure-destination -----------------------------------------------------------------------
def test_a_function_with_an_on_failure_destination_passes() -> None:
    fn = function()
    assert failing(fn, invoke_config(fn)) == set()


def test_a_dead_letter_queue_is_enough() -> None:
    assert failing(function(deadLetterConfig={"targetArn": QUEUE_ARN})) == set()


def test_in_an_export_the_function_is_found_by_name_or_arn() -> None:
    fn = function()
    assert failing(fn, invoke_config(None, function_name="rotation")) == set()
    assert failing(fn, invoke_config(None, function_name=FUNCTION_ARN)) == set()
    # A configuration of another function does not count.
    assert failing(fn, invoke_config(None, function_name="other")) == {"rotation"}


def test_a_first_preview_with_the_queue_not_created_yet_passes() -> None:
    fn = function()
    config = invoke_config(fn, destination=UNKNOWN_STRING_VALUE)
    previewed = Resource(type=config.type, name=config.name, urn=config.urn,
                         props=unknown_checking_proxy(dict(config.props)),
                         property_dependencies=config.property_dependencies)
    assert failing(fn, previewed) == set()


@pytest.mark.parametrize("destination", [None, ""])
def test_retries_without_a_destination_are_caught(destination: Any) -> None:
    fn = function()
    findings = lambda_failure_destination([fn, invoke_config(fn, destination=destination)], NO_CONFIG)
    assert [f.message for f in findings] == [
        "function rotation drops asynchronous events that fail every retry: its event invoke "
        "configuration has no on-failure destination and no dead-letter queue"]


def test_a_function_without_any_invoke_configuration_is_caught() -> None:
    second = function("playbook")
    fn = function()
    assert failing(fn, invoke_config(fn), second) == {"playbook"}


# -- load-balancer-access-logs --------------------------------------------------------------------
def test_a_load_balancer_with_access_logs_passes() -> None:
    nlb = res(LB, "nlb", loadBalancerType="network",
              accessLogs={"bucket": "zero-trust-ai-access-logs", "prefix": "elb", "enabled": True})
    assert load_balancer_access_logs(nlb, NO_CONFIG) == []
    previewed = Resource(type=LB, name="nlb", urn=f"{STACK}{LB}::nlb", props=unknown_checking_proxy(
        {"loadBalancerType": "network",
         "accessLogs": {"bucket": UNKNOWN_STRING_VALUE, "enabled": True}}))
    assert load_balancer_access_logs(previewed, NO_CONFIG) == []


@pytest.mark.parametrize("logs", [None, {}, {"bucket": "b", "enabled": False},
                                  {"bucket": "", "enabled": True}, {"bucket": "b"}])
def test_a_load_balancer_without_access_logs_is_caught(logs: Any) -> None:
    props = {"loadBalancerType": "network", **({"accessLogs": logs} if logs is not None else {})}
    [message] = load_balancer_access_logs(res(LB, "nlb", **props), NO_CONFIG)
    assert "writes no access logs" in message


def test_gateway_load_balancers_have_no_access_logs_to_ask_for() -> None:
    assert load_balancer_access_logs(res(LB, "gwlb", loadBalancerType="gateway"), NO_CONFIG) == []


# -- through the pack's gRPC analyzer, inputs and outputs ----------------------------------------
@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as running:
        yield running


def analyzed(resource: Resource) -> AnalyzedResource:
    return AnalyzedResource(urn=resource.urn, type=resource.type, name=resource.name,
                            properties=dict(resource.props), property_dependencies={
                                key: list(urns) for key, urns in resource.property_dependencies.items()})


def test_the_pack_catches_dropped_events_and_missing_access_logs(pack: PolicyPackProcess) -> None:
    kept, dropped = function(), function("playbook")
    logged = {"bucket": "b", "enabled": True}
    resources = [kept, invoke_config(kept), dropped,
                 invoke_config(dropped, destination=None, name="pb-async"),
                 res(LB, "logged-nlb", loadBalancerType="network", accessLogs=logged),
                 res(LB, "silent-nlb", loadBalancerType="network")]
    result = analyze(pack, [analyzed(r) for r in resources], user_config=None,
                     project="zero-trust-ai", stack="test")
    found = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations}
    assert found == {("lambda-failure-destination", "playbook"), ("load-balancer-access-logs", "silent-nlb")}


# -- a stack export: the rules read each resource's outputs (else its inputs) -----------------------
def ztai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ztai", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_an_export_without_access_logs_or_failure_destinations_fails(
        dev_export: Path, tmp_path: Path, where: str) -> None:
    document = json.loads(dev_export.read_text())
    resources = {r["urn"].rsplit("::", 1)[-1]: r for r in document["deployment"]["resources"]}
    assert ztai("policy", "analyze", "--file", str(dev_export)).returncode == 0
    nlb, rotation = resources["inference-fleet-nlb"], resources["key-rotation-async"]
    for resource, prop in ((nlb, "accessLogs"), (rotation, "destinationConfig")):
        if where == "inputs":
            resource.pop("outputs", None)  # no outputs recorded: the rules read the inputs
        assert prop in resource[where]
        del resource[where][prop]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    run = ztai("policy", "analyze", "--file", str(tampered), "--json")
    report = json.loads(run.stdout)
    assert run.returncode == 1
    assert {(v["policy"], v["urn"]) for v in report["violations"]} == {
        ("load-balancer-access-logs", nlb["urn"]),
        ("lambda-failure-destination", resources["key-rotation-function"]["urn"])}
