"""Every IAM action and condition key in the shipped stacks exists (tests/support/iam_catalog.py).

An independent IAM linter found none invalid; these tests keep it so. They run the program as the
offline preview does, for the prod and dev stacks (dev also with the enclave artifacts pinned,
which adds the image build's grants), and check every policy document the resources carry, plus
the policies the stack does not build by default (the rotation function's successor creation).
"""

from __future__ import annotations

import json

import pytest

from components.key_rotation import rotation_policy
from tests.support.iam_catalog import (
    Statement,
    action_problem,
    condition_key_problem,
    data_version,
    problems_of,
    statements_of,
)
from tests.support.stacks import record_split, record_stack
from ztai.preview.recorder import RecordedStack

ARTIFACTS = {
    "zero-trust-ai:enclaveEifObjectKey": "artifacts/digits-0123456789abcdef.eif",
    "zero-trust-ai:enclaveEifSha256": "01" * 32,
    "zero-trust-ai:parentAgentObjectKey": "artifacts/parent-agent-fedcba9876543210.tar.gz",
    "zero-trust-ai:parentAgentSha256": "fe" * 32,
}
STACKS = {"prod": ("prod", {}), "dev": ("dev", {}), "dev-artifacts": ("dev", ARTIFACTS)}


def run_stack(stack: str, extra: dict[str, str]) -> RecordedStack:
    if stack == "prod":  # split: both layers, the key layer sealed with the workload's grants
        return record_split(stack, extra).combined()
    return record_stack(stack, extra)


@pytest.fixture(scope="module", params=sorted(STACKS))
def statements(request: pytest.FixtureRequest) -> list[Statement]:
    stack, extra = STACKS[request.param]
    return statements_of(run_stack(stack, extra).resources)


def test_every_action_and_condition_key_in_the_stack_exists(statements: list[Statement]) -> None:
    # The stacks hold dozens of documents (roles, keys, buckets, queues, endpoints): a collector
    # that found none would pass vacuously.
    assert len(statements) > 50
    actions = {action for s in statements for action in
               ([s.body["Action"]] if isinstance(s.body.get("Action"), str) else s.body.get("Action", []))}
    assert {"kms:ReEncryptFrom", "sts:AssumeRole", "s3:GetObject", "lambda:InvokeFunction"} <= actions
    problems = problems_of(statements)
    assert not problems, f"IAM database {data_version()}:\n" + "\n".join(map(str, problems))


def test_the_successor_policy_not_deployed_by_default_is_valid_too() -> None:
    policy = json.loads(rotation_policy(
        partition="aws", region="eu-west-1", account_id="111122223333",
        alias_names=["alias/zero-trust-ai/dev/logs"],
        log_group_arn="arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/rotation",
        create_successors=True, key_arns=["arn:aws:kms:eu-west-1:111122223333:key/1234"],
        subnet_ids=["subnet-1"], security_group_id="sg-1"))
    statements = [Statement("rotation", "policy", body) for body in policy["Statement"]]
    assert not problems_of(statements)


@pytest.mark.parametrize("action", [
    "kms:ReEncryptFrom", "kms:reencryptto", "s3:GetObject", "ssmmessages:OpenDataChannel",
    "ec2messages:GetMessages", "kms:GenerateDataKey*", "ssm:Describe*", "sqs:*", "*"])
def test_real_actions_and_matching_wildcards_pass(action: str) -> None:
    assert action_problem(action) is None


@pytest.mark.parametrize(("action", "fragment"), [
    ("kms:ReEncrpytFrom", "kms has no action 'ReEncrpytFrom'"),
    ("s3:GetObjects", "s3 has no action"),
    ("kms:Decrypt*Now", "matches no kms action"),
    ("kmss:Decrypt", "no IAM service has the prefix 'kmss'"),
    ("Decrypt", "is not <service>:<action>"),
    ("kms:", "is not <service>:<action>"),
])
def test_misspelt_actions_are_caught(action: str, fragment: str) -> None:
    problem = action_problem(action)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize("key", [
    "aws:SourceAccount", "aws:sourcearn", "aws:RequestTag/zero-trust-ai:predecessor-key-id",
    "kms:ViaService", "kms:EncryptionContext:aws:logs:arn", "kms:RecipientAttestation:PCR8",
    "s3:x-amz-server-side-encryption-aws-kms-key-id", "iam:PassedToService"])
def test_real_condition_keys_pass(key: str) -> None:
    assert condition_key_problem(key) is None


@pytest.mark.parametrize("key", [
    "aws:SourceAcount", "kms:ViaServices", "kms:RecipientAttestation:PCR99x", "kms:EncryptionContext:",
    "s3:x-amz-server-side-encryption-kms-key-id", "SourceAccount"])
def test_misspelt_condition_keys_are_caught(key: str) -> None:
    assert condition_key_problem(key) is not None


def test_a_misspelt_action_in_a_stack_document_is_reported_with_its_place() -> None:
    statement = Statement("keys-logs-policy", "policy", {
        "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKeys"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com",
                                       "aws:SourceAcount": "111122223333"}}})
    problems = [str(problem) for problem in problems_of([statement])]
    assert problems == [
        "keys-logs-policy policy: action 'kms:GenerateDataKeys': kms has no action 'GenerateDataKeys'",
        "keys-logs-policy policy: condition key 'aws:SourceAcount' is not a global condition key",
    ]
