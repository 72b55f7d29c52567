"""session-manager-logging-encrypted: what SessionManagerPreferences registers passes; a shell
document without encrypted, streamed CloudWatch logging or a session key, and any port-forwarding
document, are caught: as plain checks, through the pack's analyzer, and from a stack export
(outputs, else inputs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import PACK_DIR
from tests.policy_packs.test_rules import NO_CONFIG, res
from ztai.export import analyzed_resources
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.ssm.session_manager_logging_encrypted import session_manager_logging_encrypted

DOCUMENT = "aws:ssm/document:Document"
RULE = "session-manager-logging-encrypted"
SECURE_INPUTS: dict[str, Any] = {
    "s3BucketName": "", "s3KeyPrefix": "", "s3EncryptionEnabled": True,
    "cloudWatchLogGroupName": "/zero-trust-ai/dev/ssm-sessions",
    "cloudWatchEncryptionEnabled": True, "cloudWatchStreamingEnabled": True,
    "kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/5e55104e-12ab-34cd-56ef-1234567890ab",
    "runAsEnabled": False, "runAsDefaultUser": "", "idleSessionTimeout": "15",
    "maxSessionDuration": "60", "shellProfile": {"windows": "", "linux": "umask 077"},
}


def content(session_type: str = "Standard_Stream", **changes: Any) -> str:
    inputs = {k: v for k, v in {**SECURE_INPUTS, **changes}.items() if v is not None}
    return json.dumps({"schemaVersion": "1.0", "sessionType": session_type, "inputs": inputs})


def props(text: str, **extra: Any) -> dict[str, Any]:
    return {"name": "SSM-SessionManagerRunShell", "documentType": "Session",
            "documentFormat": "JSON", "content": text, **extra}


def document(text: str, label: str = "preferences", **extra: Any) -> Resource:
    return Resource(type=DOCUMENT, name=label, urn=f"urn:pulumi:test::zero-trust-ai::{DOCUMENT}::{label}",
                    props=props(text, **extra))


def check(resource: Resource) -> list[str]:
    return session_manager_logging_encrypted(resource, NO_CONFIG)


def test_the_components_preferences_pass() -> None:
    assert check(document(content())) == []
    # Booleans written as strings, as the console saves them, count the same.
    assert check(document(content(cloudWatchEncryptionEnabled="true",
                                  cloudWatchStreamingEnabled="true"))) == []


@pytest.mark.parametrize("changes, fragment", [
    ({"cloudWatchLogGroupName": ""}, "no CloudWatch log group"),
    ({"cloudWatchLogGroupName": None}, "no CloudWatch log group"),
    ({"cloudWatchEncryptionEnabled": False}, "cloudWatchEncryptionEnabled=true"),
    ({"cloudWatchEncryptionEnabled": None}, "cloudWatchEncryptionEnabled=true"),
    ({"cloudWatchStreamingEnabled": "false"}, "only when a session ends"),
    ({"kmsKeyId": ""}, "does not encrypt session data"),
    ({"s3BucketName": "session-logs", "s3EncryptionEnabled": False}, "s3EncryptionEnabled=true"),
])
def test_a_shell_without_encrypted_logging_or_a_session_key_is_caught(
        changes: dict[str, Any], fragment: str) -> None:
    [message] = check(document(content(**changes)))
    assert fragment in message and "preferences" in message


def test_a_port_forwarding_document_is_caught_and_other_documents_are_not_checked() -> None:
    [message] = check(document(json.dumps({"schemaVersion": "1.0", "sessionType": "Port",
                                           "properties": {"portNumber": "22"}})))
    assert "port-forwarding" in message
    assert check(res(DOCUMENT, "runbook", documentType="Command", content="{}")) == []
    assert check(document(json.dumps({"schemaVersion": "1.0",
                                      "sessionType": "InteractiveCommands"}))) == []


def test_unreadable_content_is_reported() -> None:
    [message] = check(document("schemaVersion: '1.0'", documentFormat="YAML"))
    assert "YAML" in message
    [message] = check(document("not json"))
    assert "not a JSON object" in message


def test_unknown_content_counts_as_set_by_this_update() -> None:
    unknown = res(DOCUMENT, "preferences", documentType="Session", documentFormat="JSON",
                  content=UNKNOWN_STRING_VALUE)
    proxied = Resource(type=unknown.type, name=unknown.name, urn=unknown.urn,
                       props=unknown_checking_proxy(dict(unknown.props)))
    assert check(proxied) == []


# -- through the pack's gRPC analyzer, as the engine runs it ---------------------------------------
@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as running:
        yield running


def analyzed(name: str, properties: dict[str, Any]) -> AnalyzedResource:
    return AnalyzedResource(urn=f"urn:pulumi:test::zero-trust-ai::{DOCUMENT}::{name}", type=DOCUMENT,
                            name=name, properties=properties, property_dependencies={})


def violations(pack: PolicyPackProcess, resources: list[AnalyzedResource]) -> dict[str, list[str]]:
    result = analyze(pack, resources, user_config=None, project="zero-trust-ai", stack="test")
    found: dict[str, list[str]] = {}
    for violation in result.violations:
        if violation.policy == RULE:
            found.setdefault(violation.urn.rsplit("::", 1)[-1], []).append(violation.message)
    assert all(v.level == "mandatory" for v in result.violations if v.policy == RULE)
    assert {p.name: p for p in result.policies}[RULE].control == "Session Manager"
    return found


def test_the_pack_rejects_unlogged_sessions_and_port_forwarding(pack: PolicyPackProcess) -> None:
    found = violations(pack, [
        analyzed("secure", props(content())),
        analyzed("unencrypted", props(content(cloudWatchEncryptionEnabled=False, kmsKeyId=""))),
        analyzed("tunnel", props(json.dumps({"schemaVersion": "1.0", "sessionType": "Port"}))),
    ])
    assert set(found) == {"unencrypted", "tunnel"}
    assert len(found["unencrypted"]) == 2


def export(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": 3, "deployment": {"resources": [
        {"urn": f"urn:pulumi:prod::zero-trust-ai::{DOCUMENT}::{entry.pop('name')}", "type": DOCUMENT,
         "custom": True, **entry} for entry in resources]}}


def test_an_export_is_judged_on_outputs_else_inputs(pack: PolicyPackProcess) -> None:
    # Deployed (outputs) wins over declared (inputs): a document edited outside Pulumi is caught,
    # and a resource with no outputs yet is judged on its inputs.
    _, _, resources = analyzed_resources(export([
        {"name": "drifted", "inputs": props(content()),
         "outputs": props(content(cloudWatchEncryptionEnabled=False))},
        {"name": "declared-only", "inputs": props(content(kmsKeyId=""))},
        {"name": "deployed-secure", "inputs": props(content(kmsKeyId="")),
         "outputs": props(content())},
    ]))
    found = violations(pack, resources)
    assert set(found) == {"drifted", "declared-only"}
    assert "cloudWatchEncryptionEnabled" in found["drifted"][0]
    assert "session data" in found["declared-only"][0]
