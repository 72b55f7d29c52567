"""SessionManagerPreferences: the regional preferences document it writes (encrypted sessions,
streamed to an encrypted log group, time limits) and its grants: who may start sessions, and what
the instances need to record them. The pack's session-manager-logging-encrypted rule is held to
what the component registers."""

from __future__ import annotations

import json
import re
import runpy
from dataclasses import replace
from fnmatch import fnmatch
from typing import Any

import pulumi_aws as aws
import pytest

from components.enclave_fleet import IMAGE_PARAMETER
from components.session_manager import (
    PORT_FORWARDING_DOCUMENTS,
    PREFERENCES_DOCUMENT,
    SessionManagerPreferences,
    SessionManagerPreferencesArgs,
)
from tests.conftest import ROOT
from tests.support.key_policy import Request, cloudwatch_logs_may_encrypt, evaluate
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztai.stackfile import load_stack
from ztpolicy.rule import Resource
from ztpolicy.rules.logs.log_group_encrypted import log_group_encrypted
from ztpolicy.rules.ssm.session_manager_logging_encrypted import session_manager_logging_encrypted

SESSION_KEY = "arn:aws:kms:eu-west-1:111122223333:key/5e55104e-12ab-34cd-56ef-1234567890ab"
LOGS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/5678abcd-12ab-34cd-56ef-1234567890ab"
TARGETS = {"ztai:workload": ("enclave-inference",), "ztai:image": ("enclave-parent",)}
ARGS = SessionManagerPreferencesArgs(environment="dev", owner="security", region="eu-west-1",
                                     session_key_arn=SESSION_KEY, logs_key_arn=LOGS_KEY,
                                     session_targets=TARGETS)


def build(args: SessionManagerPreferencesArgs = ARGS, *, grant: bool = True) -> RecordedStack:
    def program() -> None:
        sessions = SessionManagerPreferences("sessions", args)
        if grant:
            operator = aws.iam.Role("operator", assume_role_policy="{}")
            parent = aws.iam.Role("parent", assume_role_policy="{}")
            sessions.grant_start_session(operator)
            sessions.grant_session_logging(parent)

    return record(program, project="zero-trust-ai", stack="test", config={}, region=args.region)


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def as_rule_input(resource: RecordedResource, props: dict[str, Any] | None = None) -> Resource:
    return Resource(type=resource.type, name=resource.name, urn=resource.urn,
                    props=resource.inputs if props is None else props)


@pytest.fixture(scope="module")
def dev() -> RecordedStack:
    return build()


def test_the_preferences_encrypt_stream_and_limit_every_session(dev: RecordedStack) -> None:
    document = named(dev, "sessions-preferences")
    assert document.parent == named(dev, "sessions").urn and not dev.errors
    assert (document.inputs["name"], document.inputs["documentType"],
            document.inputs["documentFormat"]) == (PREFERENCES_DOCUMENT, "Session", "JSON")
    content = json.loads(document.inputs["content"])
    assert (content["schemaVersion"], content["sessionType"]) == ("1.0", "Standard_Stream")
    inputs = content["inputs"]
    log_group = named(dev, "sessions-logs")
    assert inputs["cloudWatchLogGroupName"] == log_group.outputs["name"]
    assert inputs["cloudWatchEncryptionEnabled"] is True and inputs["cloudWatchStreamingEnabled"] is True
    assert inputs["kmsKeyId"] == SESSION_KEY
    assert (inputs["idleSessionTimeout"], inputs["maxSessionDuration"]) == ("15", "60")
    assert inputs["runAsEnabled"] is False and inputs["s3BucketName"] == ""
    assert inputs["shellProfile"]["linux"].startswith("umask 077")
    # The log group exists before the document names it, encrypted with the logs key.
    assert log_group.inputs["kmsKeyId"] == LOGS_KEY and log_group.inputs["retentionInDays"] == 365
    assert log_group.inputs["name"] == "/zero-trust-ai/dev/ssm-sessions"
    assert log_group_encrypted(as_rule_input(log_group), {}) == []
    assert session_manager_logging_encrypted(as_rule_input(document), {}) == []
    assert session_manager_logging_encrypted(as_rule_input(document, document.outputs), {}) == []


def test_only_named_roles_start_shells_and_only_on_the_targets(dev: RecordedStack) -> None:
    statements = {s["Sid"]: s for s in json.loads(
        named(dev, "sessions-start-session-1").inputs["policy"])["Statement"]}
    assert named(dev, "sessions-start-session-1").inputs["role"] == named(dev, "operator").outputs["id"]
    targets = [s for sid, s in statements.items() if sid.startswith("StartShellOnTarget")]
    assert {json.dumps(s["Condition"]["StringEquals"], sort_keys=True) for s in targets} == {
        json.dumps({"ssm:resourceTag/ztai:image": ["enclave-parent"]}),
        json.dumps({"ssm:resourceTag/ztai:workload": ["enclave-inference"]})}
    for statement in targets:
        assert statement["Resource"] == "arn:aws:ec2:eu-west-1:111122223333:instance/*"
        assert statement["Condition"]["BoolIfExists"] == {"ssm:SessionDocumentAccessCheck": "true"}
    # The only document a session may use is the preferences shell ...
    assert statements["OnlyThePreferencesShell"]["Resource"] == (
        f"arn:aws:ssm:eu-west-1:111122223333:document/{PREFERENCES_DOCUMENT}")
    allowed = [s for s in statements.values() if s["Effect"] == "Allow"]
    assert all("PortForwarding" not in json.dumps(s["Resource"]) for s in allowed)
    assert {s["Action"] if isinstance(s["Action"], str) else tuple(s["Action"]) for s in allowed} == {
        "ssm:StartSession", ("ssm:TerminateSession", "ssm:ResumeSession")}
    # ... port forwarding is denied outright, and only one's own sessions can be ended or resumed.
    assert statements["DenyOtherSessionDocuments"]["Effect"] == "Deny"
    assert statements["DenyOtherSessionDocuments"]["Resource"] == [
        f"arn:aws:ssm:eu-west-1::document/{name}" for name in PORT_FORWARDING_DOCUMENTS]
    assert statements["OwnSessionsOnly"]["Condition"] == {
        "StringLike": {"ssm:resourceTag/aws:ssmmessages:session-id": ["${aws:userid}"]}}


def test_instances_may_stream_sessions_into_the_group_only(dev: RecordedStack) -> None:
    grant = named(dev, "sessions-session-logging-2")
    assert grant.inputs["role"] == named(dev, "parent").outputs["id"]
    statements = {s["Sid"]: s for s in json.loads(grant.inputs["policy"])["Statement"]}
    group = named(dev, "sessions-logs").outputs["arn"]
    assert statements["StreamSessionLogs"]["Resource"] == [group, f"{group}:log-stream:*"]
    assert "logs:CreateLogGroup" not in statements["StreamSessionLogs"]["Action"]
    assert statements["CheckSessionLogEncryption"]["Action"] == "logs:DescribeLogGroups"


def test_no_targets_no_sessions() -> None:
    errors: list[str] = []

    def program() -> None:
        sessions = SessionManagerPreferences("sessions", replace(ARGS, session_targets={}))
        try:
            sessions.grant_start_session(aws.iam.Role("operator", assume_role_policy="{}"))
        except ValueError as error:
            errors.append(str(error))

    record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    assert errors and "no session_targets" in errors[0]


@pytest.mark.parametrize("changes, message", [
    ({"idle_session_timeout_minutes": 0}, "idle_session_timeout_minutes 0: 1-60"),
    ({"idle_session_timeout_minutes": 61}, "idle_session_timeout_minutes 61: 1-60"),
    ({"max_session_duration_minutes": 1441}, "max_session_duration_minutes 1441: 1-1440"),
    ({"log_retention_days": 42}, "log_retention_days 42"),
    ({"session_targets": {"aws:cloudformation:stack-name": ("x",)}}, "session_targets"),
    ({"session_targets": {"ztai:workload": ()}}, "session_targets"),
])
def test_bad_arguments_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="SessionManagerPreferences: .*" + message):
        build(replace(ARGS, **changes), grant=False)


# -- the stack: the parents and the build instances record their sessions --------------------------
def test_the_stack_lets_both_kinds_of_instances_record_encrypted_sessions() -> None:
    stack_file = load_stack(ROOT, "dev")

    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    stack = record(program, project=stack_file.project, stack="dev", config=stack_file.config,
                   region=stack_file.region or "eu-west-1")
    assert not stack.errors
    document = named(stack, "session-manager-preferences")
    inputs = json.loads(document.inputs["content"])["inputs"]
    logs_key = named(stack, "keys-logs").outputs["arn"]
    assert inputs["kmsKeyId"] == logs_key
    assert named(stack, "session-manager-logs").inputs["kmsKeyId"] == logs_key
    roles = {named(stack, name).outputs["arn"]: named(stack, name).outputs["id"]
             for name in ("inference-fleet-instance-role", "ami-pipeline-instance-role")}
    logging_grants = [r for r in stack.resources if r.name.startswith("session-manager-session-logging")]
    assert sorted(r.inputs["role"] for r in logging_grants) == sorted(roles.values())
    # The key policy lets both instance roles decrypt session data, and CloudWatch Logs encrypt
    # the session log group.
    policy = named(stack, "keys-logs-policy").inputs["policy"]
    session = {"kms:EncryptionContext:aws:ssm:SessionId": "operator-0123456789abcdef0",
               "kms:EncryptionContext:aws:ssm:TargetId": "i-0123456789abcdef0"}
    for role_arn in roles:
        assert evaluate(policy, Request(role_arn, "kms:Decrypt", "*", session)).effect == "allow"
        # Session data keys only: not the key's other ciphertexts, and no new data keys.
        assert evaluate(policy, Request(role_arn, "kms:Decrypt", "*", {})).effect == "implicit-deny"
        assert evaluate(policy, Request(role_arn, "kms:GenerateDataKey", "*", session)).effect == (
            "implicit-deny")
    log_group_arn = named(stack, "session-manager-logs").outputs["arn"]
    assert log_group_arn.endswith(":log-group:/zero-trust-ai/dev/ssm-sessions")
    assert cloudwatch_logs_may_encrypt(named(stack, "keys-logs").inputs["policy"], log_group_arn)
    # Only the security responder (a human role) may start sessions.
    starters = [r for r in stack.resources if r.name.startswith("session-manager-start-session")]
    assert [r.inputs["role"] for r in starters] == [named(stack, "access-security-responder").outputs["id"]]


def test_the_documented_scp_parses_fits_and_covers_what_the_stack_relies_on() -> None:
    text = (ROOT / "docs" / "scp-images-and-sessions.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```json\n(.*?)\n```", text, re.S)
    policy = json.loads(block)
    assert len(json.dumps(policy, separators=(",", ":"))) <= 5120  # the SCP size limit
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert all(s["Effect"] == "Deny" for s in statements.values())
    # Sessions with any document but the shell preferences are denied: the AWS port-forwarding
    # and SSH documents, and a Port-type document of one's own (ssm:CreateDocument) alike.
    tunnels = statements["NoTunnelsIntoInstances"]
    assert "Resource" not in tunnels
    exempt = tunnels["NotResource"]
    for name in PORT_FORWARDING_DOCUMENTS:
        assert not any(fnmatch(f"arn:aws:ssm:eu-west-1::document/{name}", pattern) for pattern in exempt)
    assert not any(fnmatch("arn:aws:ssm:eu-west-1:111122223333:document/my-tunnel", pattern)
                   for pattern in exempt)
    assert any(fnmatch("arn:aws:ssm:eu-west-1:111122223333:document/SSM-SessionManagerRunShell", pattern)
               for pattern in exempt)
    assert any(fnmatch("arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0", pattern)
               for pattern in exempt)
    overwrite = statements["OnlyThePipelineOverwritesZtaiParameters"]
    assert fnmatch("arn:aws:ssm:eu-west-1:111122223333:parameter"
                   + IMAGE_PARAMETER.format(environment="prod"), overwrite["Resource"])
    allowed = overwrite["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert any(fnmatch("arn:aws:iam::111122223333:role/zero-trust-ai-prod-enclave-parent-"
                       "imagebuilder-execution", pattern) for pattern in allowed)
    assert any(fnmatch("arn:aws:iam::111122223333:role/inference-image-rollout-role-1a2b3c4", pattern)
               for pattern in allowed)
