"""inference-path-tls-bound: what SecureApiGateway and EnclaveInferenceFleet declare passes, as
inputs (a preview, links in the property dependencies) and as outputs (an export of deployed
resources, links as ARNs); a plain-text listener, target group or integration, or an integration
without the enclave's header mappings, is caught, and the fleet's listeners and target groups are
found by their links, not their tags: an untagged copy of the listener is caught."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from tests.policy_packs.test_rules import NO_CONFIG, res
from ztpolicy.rule import Resource
from ztpolicy.rules.apigateway.inference_path_tls_bound import (
    AUTOSCALING_ATTACHMENT,
    AUTOSCALING_GROUP,
    INTEGRATION,
    LAUNCH_TEMPLATE,
    LISTENER,
    LOAD_BALANCER,
    RULE,
    TARGET_GROUP,
    inference_path_tls_bound,
)

MAPPINGS = {
    "overwrite:path": "/predict",
    "overwrite:header.x-ztai-route": "$context.routeKey",
    "overwrite:header.x-ztai-client-cert-issuer": "$context.identity.clientCert.issuerDN",
    "overwrite:header.x-ztai-client-cert-subject": "$context.identity.clientCert.subjectDN",
    "overwrite:header.x-ztai-client-cert-serial": "$context.identity.clientCert.serialNumber",
}
FLEET_TAGS = {"ztai:workload": "enclave-inference", "ztai:segment": "inference"}
# As a preview sends inputs: only what the program set.
INTEGRATION_INPUTS = {"connectionType": "VPC_LINK", "integrationType": "HTTP_PROXY",
                      "requestParameters": MAPPINGS,
                      "tlsConfig": {"serverNameToVerify": "inference.api.example.com"}}
# As an export shows outputs: every property, unset ones empty or null.
INTEGRATION_OUTPUTS = {**INTEGRATION_INPUTS, "id": "abc123", "apiId": "a1", "description": "",
                       "responseParameters": [], "timeoutMilliseconds": 30000,
                       "integrationSubtype": "", "credentialsArn": ""}
LISTENER_INPUTS = {"protocol": "TLS", "port": 443, "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
                   "certificateArn": "arn:aws:acm:eu-west-1:111122223333:certificate/x", "tags": FLEET_TAGS}
LISTENER_OUTPUTS = {**LISTENER_INPUTS, "arn": "arn:aws:elasticloadbalancing:...", "tags": None,
                    "tagsAll": FLEET_TAGS, "alpnPolicy": ""}
TARGET_GROUP_INPUTS = {"protocol": "TLS", "port": 8080, "targetType": "instance", "tags": FLEET_TAGS}
TARGET_GROUP_OUTPUTS = {**TARGET_GROUP_INPUTS, "tags": {}, "tagsAll": FLEET_TAGS,
                        "healthCheck": {"protocol": "HTTPS", "path": "/health"}}


ELB = "arn:aws:elasticloadbalancing:eu-west-1:111122223333"
ARNS = {"nlb": f"{ELB}:loadbalancer/net/fleet-nlb/1", "listener": f"{ELB}:listener/net/fleet-nlb/1/2",
        "agents": f"{ELB}:targetgroup/fleet-agents/3", "template": "lt-0fleet", "asg": "fleet-asg"}


def urn(token: str, name: str) -> str:
    return res(token, name).urn


def link(form: str, props: dict[str, Any], deps: dict[str, list[str]], prop: str, token: str, name: str,
         value: Any) -> None:
    """Link `prop` to resource `name`: by dependency (inputs) or by its ARN in the value (outputs)."""
    if form == "inputs":
        deps.setdefault(prop, []).append(urn(token, name))
        props.setdefault(prop, value if not isinstance(value, str) else "")
    else:
        props[prop] = value


def resource(form: str, token: str, name: str, props: Mapping[str, Any],
             links: Sequence[tuple[str, str, str, Any]] = ()) -> Resource:
    """`props` plus `links` (prop, target token, target name, value holding the target's ARN); in
    outputs the resource also has its own ARN and id."""
    props, deps = dict(props), dict[str, list[str]]()
    for prop, target_token, target_name, value in links:
        link(form, props, deps, prop, target_token, target_name, value)
    if form == "outputs" and name in ARNS:
        props.update(arn=ARNS[name], id=ARNS[name])
    return res(token, name, deps, **props)


def bare(token: str, name: str, props: Mapping[str, Any]) -> Resource:
    """A resource with literal properties only (no dependencies)."""
    return res(token, name, None, **props)


def forward(arn: str) -> list[dict[str, Any]]:
    return [{"type": "forward", "targetGroupArn": arn}]


def fleet(form: str, tags: dict[str, str] | None = None) -> list[Resource]:
    """What the stack declares from the VPC link to the agents (`tags`: the fleet's, by default)."""
    tags = FLEET_TAGS if tags is None else tags
    base = INTEGRATION_INPUTS if form == "inputs" else INTEGRATION_OUTPUTS
    listener = {**(LISTENER_INPUTS if form == "inputs" else LISTENER_OUTPUTS), "tags": tags}
    listener.pop("arn", None)
    if form == "outputs":
        listener["tagsAll"] = tags
    target_group = {**(TARGET_GROUP_INPUTS if form == "inputs" else TARGET_GROUP_OUTPUTS), "tags": tags}
    if form == "outputs":
        target_group["tagsAll"] = tags
    return [
        resource(form, INTEGRATION, "integration", base,
                 [("integrationUri", LISTENER, "listener", ARNS["listener"])]),
        resource(form, LOAD_BALANCER, "nlb", {"internal": True, "loadBalancerType": "network", "tags": tags}),
        resource(form, LISTENER, "listener", listener,
                 [("loadBalancerArn", LOAD_BALANCER, "nlb", ARNS["nlb"]),
                  ("defaultActions", TARGET_GROUP, "agents", forward(ARNS["agents"]))]),
        resource(form, TARGET_GROUP, "agents", target_group),
        resource(form, LAUNCH_TEMPLATE, "template", {"enclaveOptions": {"enabled": True}}),
        resource(form, AUTOSCALING_GROUP, "asg",
                 {"tags": [{"key": k, "value": v, "propagateAtLaunch": False} for k, v in tags.items()]},
                 [("launchTemplate", LAUNCH_TEMPLATE, "template", {"id": ARNS["template"], "version": "1"}),
                  ("targetGroupArns", TARGET_GROUP, "agents", [ARNS["agents"]])]),
    ]


def check(resources: list[Resource]) -> list[str]:
    return [finding.message for finding in inference_path_tls_bound(resources, NO_CONFIG)]


def check_one(token: str, props: dict[str, Any]) -> list[str]:
    """One integration, or one fleet-tagged listener or target group, alone."""
    return check([res(token, "r", **props)])


FORMS = pytest.mark.parametrize("form", ["inputs", "outputs"])


@FORMS
def test_the_secure_path_passes(form: str) -> None:
    assert check(fleet(form)) == []
    assert check(fleet(form, tags={})) == []


@pytest.mark.parametrize(("token", "props"), [
    (INTEGRATION, INTEGRATION_INPUTS), (INTEGRATION, INTEGRATION_OUTPUTS),
    (LISTENER, LISTENER_INPUTS), (LISTENER, LISTENER_OUTPUTS),
    (TARGET_GROUP, TARGET_GROUP_INPUTS), (TARGET_GROUP, TARGET_GROUP_OUTPUTS),
], ids=["integration-inputs", "integration-outputs", "listener-inputs", "listener-outputs",
        "target-group-inputs", "target-group-outputs"])
def test_each_secure_part_passes_alone(token: str, props: dict[str, Any]) -> None:
    assert check_one(token, props) == []


@pytest.mark.parametrize("base", [INTEGRATION_INPUTS, INTEGRATION_OUTPUTS], ids=["inputs", "outputs"])
@pytest.mark.parametrize(("change", "fragment"), [
    ({"tlsConfig": None}, "without TLS"),
    ({"tlsConfig": {"serverNameToVerify": ""}}, "without TLS"),
    ({"requestParameters": {"overwrite:path": "/predict"}},
     "does not map overwrite:header.x-ztai-client-cert-issuer"),
    ({"requestParameters": None}, "does not map overwrite:header.x-ztai-route"),
    ({"requestParameters": {**{k: v for k, v in MAPPINGS.items() if "issuer" not in k},
                            "append:header.x-ztai-client-cert-issuer": MAPPINGS[
                                "overwrite:header.x-ztai-client-cert-issuer"]}},
     "does not map overwrite:header.x-ztai-client-cert-issuer"),
    ({"requestParameters": {**MAPPINGS, "overwrite:header.x-ztai-route": "POST /v1/infer"}},
     "has 'POST /v1/infer'"),
], ids=["no-tls-config", "empty-server-name", "no-issuer-mapping", "no-mappings", "append-not-overwrite",
        "static-route"])
def test_an_integration_in_clear_or_without_the_enclave_headers_is_caught(
        base: dict[str, Any], change: dict[str, Any], fragment: str) -> None:
    messages = check_one(INTEGRATION, {**base, **change})
    assert messages and any(fragment in message for message in messages)


@pytest.mark.parametrize(("token", "base"), [
    (LISTENER, LISTENER_INPUTS), (LISTENER, LISTENER_OUTPUTS),
    (TARGET_GROUP, TARGET_GROUP_INPUTS), (TARGET_GROUP, TARGET_GROUP_OUTPUTS),
], ids=["listener-inputs", "listener-outputs", "target-group-inputs", "target-group-outputs"])
@pytest.mark.parametrize("protocol", ["TCP", "HTTP", None])
def test_a_plaintext_fleet_listener_or_target_group_is_caught(token: str, base: dict[str, Any],
                                                              protocol: str | None) -> None:
    [message] = check_one(token, {**base, "protocol": protocol})
    assert f"uses protocol {protocol or 'unset'}" in message and "use TLS" in message


PLAIN_LISTENER = {"protocol": "TCP", "port": 80}  # no certificate, no policy, no tags


@FORMS
def test_an_untagged_plaintext_copy_of_the_listener_is_caught(form: str) -> None:
    # The review's case: a second listener on the fleet's load balancer, TCP on port 80, tags and
    # certificate removed, forwarding to a new untagged TCP target group that the fleet's Auto
    # Scaling group registers; everything else as the stack declares it.
    resources = fleet(form)
    resources.append(resource(form, LISTENER, "copy", PLAIN_LISTENER, [
        ("loadBalancerArn", LOAD_BALANCER, "nlb", ARNS["nlb"]),
        ("defaultActions", TARGET_GROUP, "plain-agents", forward(f"{ELB}:targetgroup/plain/4"))]))
    own_arn = {"arn": f"{ELB}:targetgroup/plain/4"} if form == "outputs" else {}
    resources.append(bare(TARGET_GROUP, "plain-agents", {"protocol": "TCP", "port": 8080, **own_arn}))
    messages = check(resources)
    assert sorted(messages) == sorted([
        "enclave fleet listener copy uses protocol TCP: the request, bearer token and prompt "
        "included, crosses the VPC in clear; use TLS",
        "enclave fleet target group plain-agents uses protocol TCP: the request, bearer token and "
        "prompt included, crosses the VPC in clear; use TLS"])


@FORMS
def test_an_untagged_plaintext_fleet_is_found_from_the_vpc_link(form: str) -> None:
    # No tag anywhere: the integration's listener, its load balancer's other listeners, their
    # target groups and the Auto Scaling group's are still the path.
    resources = [r if r.type not in (LISTENER, TARGET_GROUP)
                 else res(r.type, r.name, {k: list(v) for k, v in r.property_dependencies.items()},
                          **{**r.props, "protocol": "TCP"})
                 for r in fleet(form, tags={})]
    assert {m.split(" uses ")[0] for m in check(resources)} == {
        "enclave fleet listener listener", "enclave fleet target group agents"}


@FORMS
def test_a_target_group_the_fleet_registers_is_on_the_path(form: str) -> None:
    # Registered by the Auto Scaling group (targetGroupArns), or by an Attachment resource; the
    # group is the fleet's by its enclave launch template even without tags.
    plain_arn = f"{ELB}:targetgroup/side/5"
    plain = bare(TARGET_GROUP, "side", {"protocol": "TCP", "port": 8080,
                                        **({"arn": plain_arn, "id": plain_arn} if form == "outputs" else {})})
    resources = [r for r in fleet(form, tags={}) if r.type != AUTOSCALING_GROUP]
    resources.append(resource(form, AUTOSCALING_GROUP, "asg", {}, [
        ("launchTemplate", LAUNCH_TEMPLATE, "template", {"id": ARNS["template"], "version": "1"}),
        ("targetGroupArns", TARGET_GROUP, "agents", [ARNS["agents"]]),
        ("targetGroupArns", TARGET_GROUP, "side", [ARNS["agents"], plain_arn])]))
    assert [m.split(":")[0] for m in check([*resources, plain])] == [
        "enclave fleet target group side uses protocol TCP"]
    attached = [*fleet(form, tags={}), plain, resource(form, AUTOSCALING_ATTACHMENT, "attach", {}, [
        ("autoscalingGroupName", AUTOSCALING_GROUP, "asg", ARNS["asg"]),
        ("lbTargetGroupArn", TARGET_GROUP, "side", plain_arn)])]
    if form == "outputs":  # an Auto Scaling group's id is its name
        attached = [res(r.type, r.name, **{**r.props, "id": ARNS["asg"]}) if r.name == "asg" else r
                    for r in attached]
    assert [m.split(":")[0] for m in check(attached)] == ["enclave fleet target group side uses protocol TCP"]


@FORMS
def test_an_auto_scaling_group_launching_enclaves_is_the_fleets(form: str) -> None:
    # No tag and no listener in the stack leads to it: the enclave launch template decides.
    plain_arn = f"{ELB}:targetgroup/side/5"
    plain = bare(TARGET_GROUP, "side", {"protocol": "TCP",
                                        **({"arn": plain_arn, "id": plain_arn} if form == "outputs" else {})})
    template = resource(form, LAUNCH_TEMPLATE, "template", {"enclaveOptions": {"enabled": True}})
    group = resource(form, AUTOSCALING_GROUP, "asg", {}, [
        ("launchTemplate", LAUNCH_TEMPLATE, "template", {"id": ARNS["template"], "version": "1"}),
        ("targetGroupArns", TARGET_GROUP, "side", [plain_arn])])
    assert [m.split(":")[0] for m in check([template, group, plain])] == [
        "enclave fleet target group side uses protocol TCP"]
    no_enclave = resource(form, LAUNCH_TEMPLATE, "template", {"enclaveOptions": {"enabled": False}})
    assert check([no_enclave, group, plain]) == []


@FORMS
def test_a_listener_on_another_load_balancer_reached_by_the_vpc_link_is_on_the_path(form: str) -> None:
    other = resource(form, LISTENER, "elsewhere", PLAIN_LISTENER)
    other_arn = f"{ELB}:listener/net/other/9/9"
    if form == "outputs":
        other = bare(LISTENER, "elsewhere", {**PLAIN_LISTENER, "arn": other_arn, "id": other_arn})
    second = resource(form, INTEGRATION, "second",
                      INTEGRATION_INPUTS if form == "inputs" else INTEGRATION_OUTPUTS,
                      [("integrationUri", LISTENER, "elsewhere", other_arn)])
    [message] = check([*fleet(form), other, second])
    assert message.startswith("enclave fleet listener elsewhere uses protocol TCP")


def test_what_is_not_on_the_inference_path_is_not_checked() -> None:
    # A public integration (Lambda, HTTP to the internet), another workload's listener on its own
    # load balancer and an unattached target group.
    assert check_one(INTEGRATION, {"connectionType": "INTERNET", "integrationType": "AWS_PROXY"}) == []
    bastion = [res(LOAD_BALANCER, "bastion-nlb", arn="arn:bastion", id="arn:bastion"),
               res(LISTENER, "bastion", protocol="TCP", loadBalancerArn="arn:bastion",
                   tags={"ztai:workload": "bastion"}),
               res(TARGET_GROUP, "loose", protocol="TCP")]
    for form in ("inputs", "outputs"):
        assert check([*fleet(form), *bastion]) == []


def test_the_rule_cannot_be_excluded() -> None:
    assert RULE.suppressible is False and RULE.stack_check is not None
    assert RULE.control == "secure API gateway"
