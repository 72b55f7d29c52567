"""Key administration as a two-person elevation, end to end.

The model-weights key's policy is the one `KeyHierarchy` renders for the stack (an explicit deny of
its policy, alias, disabling and deletion to everyone but the key-admin elevation role); the
elevation role's trust and window policy are the ones the JIT runtime writes (against moto); the
human boundary is `boundary_policy`'s. moto evaluates no condition, so every decision is the IAM
evaluator's (tests/support/key_policy.py), as IAM combines them: an explicit Deny in any policy
wins, and a boundary only limits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pulumi_aws as aws
import pytest
from moto import mock_aws

from components.identity import GRANT_TAG, boundary_policy
from components.keys import TWO_PERSON_ACTIONS, EnclaveMeasurements, KeyHierarchy, KeyHierarchyArgs
from tests.support.key_policy import Request, evaluate, evaluate_session
from ztai.preview.recorder import record
from ztai_runtime.jit.grants import (
    MAX_ROLE_POLICY_CHARACTERS,
    PRIVILEGED_SESSION_MINUTES,
    SESSION_SLOT,
    Caller,
    Elevation,
    JitRefusedError,
    JitStore,
    closed_trust_policy,
    window_policy,
)

ACCOUNT = "111122223333"  # the mock monitor's account, so the rendered policy and moto agree
REGION = "eu-west-1"
TABLE = "zero-trust-ai-dev-jit"
ELEVATION = "zero-trust-ai-dev-jit-key-admin"
ELEVATION_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ELEVATION}"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/deployer"
GLASS = f"arn:aws:iam::{ACCOUNT}:role/break-glass"
HUMAN = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-key-administrator"
LEADS = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-security-lead"
ALICE, BOB, CAROL = Caller(HUMAN, "alice"), Caller(LEADS, "bob"), Caller(LEADS, "carol")
VPCE = "vpce-0123456789abcdef0"
BOUNDARY = boundary_policy(regions=[REGION], mfa_tag="mfa", device_tag="device", source_vpce_ids=[VPCE],
                           elevation_roles=f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-jit-*",
                           jit_functions=f"arn:aws:lambda:*:{ACCOUNT}:function:{TABLE}-*")
PCR = "ab" * 48


def _weights_policy() -> str:
    """The sealed model-weights key policy, as the stack composes it."""
    rendered: list[str] = []

    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region=REGION,
                                                     administrator_role_arns=(DEPLOYER,),
                                                     break_glass_role_arn=GLASS))
        empty = json.dumps({"Version": "2012-10-17", "Statement": []})
        keys.grant_decrypt_with_attestation("model-weights", aws.iam.Role("fleet", assume_role_policy=empty),
                                            EnclaveMeasurements(pcr0=PCR, pcr1=PCR, pcr2=PCR))
        keys.grant_key_administration("model-weights", aws.iam.Role(
            "key-admin", name=ELEVATION, assume_role_policy=empty))
        for policy in keys.seal():
            policy.policy.apply(rendered.append)

    stack = record(program, project="zero-trust-ai", stack="dev", config={}, region=REGION)
    [weights] = [r for r in stack.resources if r.name == "keys-model-weights-policy"]
    assert weights.inputs["policy"] in rendered
    return str(weights.inputs["policy"])


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Env:
    store: JitStore
    clock: Clock
    iam: Any
    key_policy: str


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "MOTO_ACCOUNT_ID": ACCOUNT}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    key_policy = _weights_policy()
    with mock_aws():
        dynamodb, iam = boto3.client("dynamodb"), boto3.client("iam")
        dynamodb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
        iam.create_role(RoleName=ELEVATION, AssumeRolePolicyDocument=closed_trust_policy(ACCOUNT),
                        Tags=[{"Key": GRANT_TAG, "Value": "key-admin"}])
        catalogue = {"key-admin": Elevation("key-admin", ELEVATION_ARN, 30,
                                            ("zero-trust-ai-dev-security-lead",), 2,
                                            session_minutes=PRIVILEGED_SESSION_MINUTES)}
        clock = Clock(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
        store = JitStore(table=TABLE, catalogue=catalogue, dynamodb=dynamodb, iam=iam, clock=clock)
        yield Env(store, clock, iam, key_policy)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def may_assume(env: Env, caller: Caller, at: datetime) -> bool:
    trust = _document(env.iam.get_role(RoleName=ELEVATION)["Role"]["AssumeRolePolicyDocument"])
    return evaluate(trust, Request(caller.principal_arn, "sts:AssumeRole", ELEVATION_ARN, {
        "aws:CurrentTime": _iso(at), "aws:userid": f"AROAEXAMPLE:{caller.session}",
        "sts:SourceIdentity": caller.session, "sts:RoleSessionName": caller.session,
        "aws:PrincipalArn": caller.principal_arn}),
        trust=True).effect == "allow"


def _session_context(principal: str, at: datetime, issued: datetime, **tags: str) -> dict[str, str]:
    return {"aws:CurrentTime": _iso(at), "aws:TokenIssueTime": _iso(issued), "aws:PrincipalArn": principal,
            "aws:PrincipalTag/mfa": "true", "aws:PrincipalTag/device": "true", "aws:SourceVpce": VPCE,
            "aws:RequestedRegion": REGION, **{f"aws:PrincipalTag/{k}": v for k, v in tags.items()}}


def elevated(env: Env, action: str, at: datetime, issued: datetime) -> str:
    """What KMS and IAM decide for a session of the elevation role issued at `issued`."""
    policies = [_document(env.iam.get_role_policy(RoleName=ELEVATION, PolicyName=name)["PolicyDocument"])
                for name in env.iam.list_role_policies(RoleName=ELEVATION)["PolicyNames"]]
    request = Request(ELEVATION_ARN, action, "*",
                      _session_context(ELEVATION_ARN, at, issued, **{GRANT_TAG: "key-admin"}))
    return evaluate_session(request, identity_policies=policies, boundary=BOUNDARY,
                            resource_policy=env.key_policy).effect


def test_the_model_key_policy_changes_only_after_two_other_people_approve(env: Env) -> None:
    start = env.clock.now
    rid = env.store.request(ALICE, "key-admin", 30, "drop the retired enclave's PCRs").request["request_id"]
    with pytest.raises(JitRefusedError, match="self-approval"):
        env.store.approve(ALICE, rid)
    first = env.store.approve(BOB, rid)
    assert first.request["state"] == "pending"
    assert not env.store.approve(BOB, rid).changed  # one person counts once
    assert not may_assume(env, ALICE, start + timedelta(minutes=1))
    assert env.store.approve(CAROL, rid).request["state"] == "active"

    issued = start + timedelta(minutes=1)
    assert may_assume(env, ALICE, issued)
    assert not may_assume(env, BOB, issued)  # an approver does not get the elevation
    for action in TWO_PERSON_ACTIONS:
        assert elevated(env, action, issued + timedelta(minutes=5), issued) == "allow", action
    # Administration without use: the elevation gets no plaintext of the weights.
    assert elevated(env, "kms:Decrypt", issued + timedelta(minutes=5), issued) != "allow"

    # Nobody else, at any time: the deployer, break-glass with MFA, the account root, and the
    # person's own standing key-administrator role (the boundary and the key policy both refuse).
    for principal in (DEPLOYER, GLASS, f"arn:aws:iam::{ACCOUNT}:root"):
        request = Request(principal, "kms:PutKeyPolicy", "*", {"aws:PrincipalArn": principal,
                                                               "aws:MultiFactorAuthPresent": "true"})
        assert evaluate(env.key_policy, request).effect == "explicit-deny", principal
    context = _session_context(HUMAN, issued, issued, **{"ztai:role": "key-administrator"})
    standing = Request(HUMAN, "kms:PutKeyPolicy", "*", context)
    anything = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                                    "Resource": "*"}]})
    assert evaluate_session(standing, identity_policies=[anything], boundary=BOUNDARY,
                            resource_policy=env.key_policy).effect == "explicit-deny"

    # The grant ends by itself at expiry, whether or not anything revokes it.
    expiry = start + timedelta(minutes=30)
    assert elevated(env, "kms:PutKeyPolicy", expiry, issued) == "explicit-deny"
    assert not may_assume(env, ALICE, expiry)


def test_a_revoked_key_admin_session_is_refused_at_once(env: Env) -> None:
    rid = env.store.request(ALICE, "key-admin", 30, "rotate the alias").request["request_id"]
    env.store.approve(BOB, rid)
    env.store.approve(CAROL, rid)
    issued = env.clock.now + timedelta(minutes=1)
    assert elevated(env, "kms:PutKeyPolicy", issued + timedelta(minutes=1), issued) == "allow"
    env.clock.now += timedelta(minutes=5)
    assert env.store.revoke(BOB, rid, "changed the wrong key").request["state"] == "revoked"
    # The session already issued, still inside the approved half hour, is refused.
    assert elevated(env, "kms:PutKeyPolicy", env.clock.now + timedelta(seconds=1), issued) == "explicit-deny"
    assert not may_assume(env, ALICE, env.clock.now + timedelta(seconds=1))


def test_a_key_admin_session_ends_15_minutes_after_it_was_issued_whatever_it_asked_for(env: Env) -> None:
    start = env.clock.now
    rid = env.store.request(ALICE, "key-admin", 30, "one change").request["request_id"]
    env.store.approve(BOB, rid)
    env.store.approve(CAROL, rid)
    # Sessions issued all through the half hour (AWS's shortest DurationSeconds is 15 minutes, and
    # nothing stops a caller asking for an hour): each works for at least 15 - SESSION_SLOT
    # minutes, and none a second past 15 minutes after it was issued (or past the expiry).
    for second in range(0, 30 * 60, 30):
        issued = start + timedelta(seconds=second)
        lasts = timedelta(minutes=PRIVILEGED_SESSION_MINUTES - SESSION_SLOT) - timedelta(seconds=1)
        if issued + lasts < start + timedelta(minutes=30):
            assert elevated(env, "kms:PutKeyPolicy", issued + lasts, issued) == "allow", issued
        assert elevated(env, "kms:PutKeyPolicy", issued + timedelta(minutes=15), issued) == "explicit-deny"


def test_the_longest_privileged_window_fits_in_a_roles_inline_policies() -> None:
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    policy = window_policy(_iso(start + timedelta(minutes=60)), _iso(start), PRIVILEGED_SESSION_MINUTES)
    compact = json.dumps(json.loads(policy), separators=(",", ":"))
    assert len(compact) < MAX_ROLE_POLICY_CHARACTERS // 2, len(compact)
