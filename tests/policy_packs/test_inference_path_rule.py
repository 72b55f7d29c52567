"""inference-path-tls-bound: what SecureApiGateway and EnclaveInferenceFleet declare passes, as
inputs (a preview) and as outputs (an export of deployed resources); a plain-text listener, target
group or integration, or an integration without the enclave's header mappings, is caught."""

from __future__ import annotations

from typing import Any

import pytest

from tests.policy_packs.test_rules import NO_CONFIG, res
from ztpolicy.rules.inference_path_tls_bound import (
    INTEGRATION,
    LISTENER,
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


def check(token: str, props: dict[str, Any]) -> list[str]:
    return inference_path_tls_bound(res(token, "r", **props), NO_CONFIG)


@pytest.mark.parametrize(("token", "props"), [
    (INTEGRATION, INTEGRATION_INPUTS), (INTEGRATION, INTEGRATION_OUTPUTS),
    (LISTENER, LISTENER_INPUTS), (LISTENER, LISTENER_OUTPUTS),
    (TARGET_GROUP, TARGET_GROUP_INPUTS), (TARGET_GROUP, TARGET_GROUP_OUTPUTS),
], ids=["integration-inputs", "integration-outputs", "listener-inputs", "listener-outputs",
        "target-group-inputs", "target-group-outputs"])
def test_the_secure_path_passes(token: str, props: dict[str, Any]) -> None:
    assert check(token, props) == []


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
    messages = check(INTEGRATION, {**base, **change})
    assert messages and any(fragment in message for message in messages)


@pytest.mark.parametrize(("token", "base"), [
    (LISTENER, LISTENER_INPUTS), (LISTENER, LISTENER_OUTPUTS),
    (TARGET_GROUP, TARGET_GROUP_INPUTS), (TARGET_GROUP, TARGET_GROUP_OUTPUTS),
], ids=["listener-inputs", "listener-outputs", "target-group-inputs", "target-group-outputs"])
@pytest.mark.parametrize("protocol", ["TCP", "HTTP", None])
def test_a_plaintext_fleet_listener_or_target_group_is_caught(token: str, base: dict[str, Any],
                                                              protocol: str | None) -> None:
    [message] = check(token, {**base, "protocol": protocol})
    assert f"uses protocol {protocol or 'unset'}" in message and "use TLS" in message


def test_what_is_not_on_the_inference_path_is_not_checked() -> None:
    # A public integration (Lambda, HTTP to the internet) and another workload's listener.
    assert check(INTEGRATION, {"connectionType": "INTERNET", "integrationType": "AWS_PROXY"}) == []
    assert check(LISTENER, {"protocol": "TCP", "tags": {"ztai:workload": "bastion"}}) == []
    assert check(TARGET_GROUP, {"protocol": "TCP"}) == []


def test_the_rule_cannot_be_excluded() -> None:
    assert RULE.suppressible is False and RULE.section == "2.3"
