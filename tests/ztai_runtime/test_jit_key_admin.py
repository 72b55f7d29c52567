"""Key administration as a two-person elevation, end to end.

The model-weights key's policy is the one `KeyHierarchy` renders for the stack (an explicit deny of
its policy, alias, state, deletion and replicas to everyone but the key-admin elevation role and
the JIT API's role, which alone writes policies); the elevation role's trust and window policy, and
the approved document written to the key, are the JIT runtime's (against moto); the human boundary
is `boundary_policy`'s. moto evaluates no condition, so every decision is the IAM evaluator's
(tests/support/key_policy.py), as IAM combines them: an explicit Deny in any policy wins, and a
boundary only limits.
"""

from __future__ import annotations

import hashlib
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
from components.keys import (
    DOCUMENT_ACTIONS,
    TWO_PERSON_ACTIONS,
    EnclaveMeasurements,
    KeyHierarchy,
    KeyHierarchyArgs,
)
from tests.support.key_policy import Request, evaluate, evaluate_session
from ztai.preview.recorder import record
from ztai_runtime.jit.grants import (
    MAX_ROLE_POLICY_CHARACTERS,
    PRIVILEGED_SESSION_MINUTES,
    SESSION_SLOT,
    Caller,
    Elevation,
    JitError,
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
# The JIT API function's role: the one principal that writes the model key's policy.
WRITER = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-jit-api-role"
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
            "key-admin", name=ELEVATION, assume_role_policy=empty), policy_writer=WRITER)
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
    kms: Any
    key_arn: str


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
        kms = boto3.client("kms")
        key_arn = kms.create_key(Description="model-weights")["KeyMetadata"]["Arn"]
        kms.put_key_policy(KeyId=key_arn, PolicyName="default", Policy=key_policy)
        catalogue = {"key-admin": Elevation("key-admin", ELEVATION_ARN, 30,
                                            ("zero-trust-ai-dev-security-lead",), 2,
                                            session_minutes=PRIVILEGED_SESSION_MINUTES, key_arn=key_arn)}
        clock = Clock(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
        store = JitStore(table=TABLE, catalogue=catalogue, dynamodb=dynamodb, iam=iam, clock=clock, kms=kms)
        yield Env(store, clock, iam, key_policy, kms, key_arn)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_policy(env: Env, sid: str = "PinTheNewEif") -> str:
    """What a reviewed change writes: the sealed policy with one more statement (for the test)."""
    document = json.loads(env.key_policy)
    document["Statement"].append({"Sid": sid, "Effect": "Deny", "Principal": {"AWS": "*"},
                                  "Action": "kms:Decrypt", "Resource": "*",
                                  "Condition": {"Bool": {"aws:ViaAWSService": "true"}}})
    return json.dumps(document, indent=1)


def live_policy(env: Env) -> str:
    return str(env.kms.get_key_policy(KeyId=env.key_arn, PolicyName="default")["Policy"])


def approved(env: Env, reason: str = "one change", policy: str | None = None) -> str:
    """A key-admin request, approved by two other people (naming the document if there is one)."""
    rid = str(env.store.request(ALICE, "key-admin", 30, reason, policy=policy).request["request_id"])
    digest = _sha256(policy) if policy is not None else None
    env.store.approve(BOB, rid, policy_sha256=digest)
    assert env.store.approve(CAROL, rid, policy_sha256=digest).request["state"] == "active"
    return rid


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


def test_the_model_key_policy_changes_only_to_the_document_two_other_people_approved(env: Env) -> None:
    start = env.clock.now
    document = new_policy(env)
    rid = env.store.request(ALICE, "key-admin", 30, "pin the PCRs of EIF 2026.12.1",
                            policy=document).request["request_id"]
    with pytest.raises(JitRefusedError, match="self-approval"):
        env.store.approve(ALICE, rid, policy_sha256=_sha256(document))
    # An approver names the document they read; without it, or with another one, nothing counts.
    with pytest.raises(JitError, match="approve it with --policy-sha256"):
        env.store.approve(BOB, rid)
    with pytest.raises(JitRefusedError, match=r"is not the one .* would write"):
        env.store.approve(BOB, rid, policy_sha256=_sha256(new_policy(env, "Another")))
    first = env.store.approve(BOB, rid, policy_sha256=_sha256(document).upper())
    assert first.request["state"] == "pending"
    assert not env.store.approve(BOB, rid, policy_sha256=_sha256(document)).changed  # once per person
    assert live_policy(env) == env.key_policy  # nothing written yet
    granted = env.store.approve(CAROL, rid, policy_sha256=_sha256(document))
    assert granted.request["state"] == "active"
    # Written by the function, exactly the approved bytes, and recorded with the grant.
    assert live_policy(env) == document
    assert granted.request["events"][-1]["policy_written"] == _sha256(document)

    issued = start + timedelta(minutes=1)
    assert may_assume(env, ALICE, issued)
    assert not may_assume(env, BOB, issued)  # an approver does not get the elevation
    # The elevation's session does what carries no document (alias, state, deletion) and never
    # writes a policy or a replica's: whatever it would write, nobody approved.
    for action in TWO_PERSON_ACTIONS:
        expected = "implicit-deny" if action in DOCUMENT_ACTIONS else "allow"
        assert elevated(env, action, issued + timedelta(minutes=5), issued) == expected, action
    assert elevated(env, "kms:Decrypt", issued + timedelta(minutes=5), issued) != "allow"

    # The JIT API's role alone writes policies; nobody else, at any time: the deployer,
    # break-glass with MFA, the account root, and the person's own standing role.
    def kms_says(principal: str, action: str) -> str:
        request = Request(principal, action, "*", {"aws:PrincipalArn": principal,
                                                   "aws:MultiFactorAuthPresent": "true"})
        return evaluate(env.key_policy, request).effect

    assert kms_says(WRITER, "kms:PutKeyPolicy") == "allow"
    assert kms_says(WRITER, "kms:ReplicateKey") != "allow"
    assert kms_says(WRITER, "kms:Decrypt") != "allow"
    for principal in (DEPLOYER, GLASS, f"arn:aws:iam::{ACCOUNT}:root"):
        assert kms_says(principal, "kms:PutKeyPolicy") == "explicit-deny", principal
    context = _session_context(HUMAN, issued, issued, **{"ztai:role": "key-administrator"})
    standing = Request(HUMAN, "kms:PutKeyPolicy", "*", context)
    anything = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                                    "Resource": "*"}]})
    assert evaluate_session(standing, identity_policies=[anything], boundary=BOUNDARY,
                            resource_policy=env.key_policy).effect == "explicit-deny"

    # The grant ends by itself at expiry, whether or not anything revokes it.
    expiry = start + timedelta(minutes=30)
    assert elevated(env, "kms:DisableKey", expiry, issued) == "explicit-deny"
    assert not may_assume(env, ALICE, expiry)


def test_a_document_kms_refuses_closes_the_request_and_opens_nothing(env: Env) -> None:
    document = new_policy(env)

    def refuse(**_: Any) -> None:
        raise env.kms.exceptions.MalformedPolicyDocumentException(
            {"Error": {"Code": "MalformedPolicyDocumentException",
                       "Message": "The new key policy will not allow you to update the key policy"}},
            "PutKeyPolicy")

    rid = env.store.request(ALICE, "key-admin", 30, "lock the writer out",
                            policy=document).request["request_id"]
    env.store.approve(BOB, rid, policy_sha256=_sha256(document))
    original = env.kms.put_key_policy
    env.kms.put_key_policy = refuse
    try:
        result = env.store.approve(CAROL, rid, policy_sha256=_sha256(document))
    finally:
        env.kms.put_key_policy = original
    assert result.request["state"] == "denied"
    assert "KMS refused the approved policy: MalformedPolicyDocumentException" in result.message
    assert live_policy(env) == env.key_policy
    assert not may_assume(env, ALICE, env.clock.now + timedelta(minutes=1))
    # The elevation is free again for a corrected request.
    assert env.store.request(ALICE, "key-admin", 30, "again", policy=document).request["state"] == "pending"


@pytest.mark.parametrize(("policy", "message"), [
    ("not json", "the key policy is not JSON"),
    ("[]", "not a policy document: a JSON object with a Statement list"),
    ('{"Statement": []}', "not a policy document"),
    ("{}", "not a policy document"),
    ("", "the key policy is 0 bytes: KMS takes 1 to 32768"),
    ('{"Statement": [{"Sid": "' + "x" * 32_800 + '"}]}', "KMS takes 1 to 32768"),
])
def test_a_document_that_is_not_a_key_policy_is_refused_before_anything(env: Env, policy: str,
                                                                        message: str) -> None:
    with pytest.raises(JitError, match=message):
        env.store.request(ALICE, "key-admin", 30, "bad", policy=policy)
    assert env.store.list() == []


def test_a_request_without_a_document_cannot_be_approved_with_one(env: Env) -> None:
    rid = env.store.request(ALICE, "key-admin", 30, "disable the key for the incident").request["request_id"]
    with pytest.raises(JitError, match="writes no key policy: approve it without a SHA-256"):
        env.store.approve(BOB, rid, policy_sha256="0" * 64)


def test_a_revoked_key_admin_session_is_refused_at_once(env: Env) -> None:
    approved(env, "move the alias")
    issued = env.clock.now + timedelta(minutes=1)
    assert elevated(env, "kms:UpdateAlias", issued + timedelta(minutes=1), issued) == "allow"
    env.clock.now += timedelta(minutes=5)
    [active] = env.store.list(state="active")
    assert env.store.revoke(BOB, active["request_id"], "changed the wrong key").request["state"] == "revoked"
    # The session already issued, still inside the approved half hour, is refused.
    assert elevated(env, "kms:UpdateAlias", env.clock.now + timedelta(seconds=1), issued) == "explicit-deny"
    assert not may_assume(env, ALICE, env.clock.now + timedelta(seconds=1))


def test_a_key_admin_session_ends_15_minutes_after_it_was_issued_whatever_it_asked_for(env: Env) -> None:
    start = env.clock.now
    approved(env)
    # Sessions issued all through the half hour (AWS's shortest DurationSeconds is 15 minutes, and
    # nothing stops a caller asking for an hour): each works for at least 15 - SESSION_SLOT
    # minutes, and none a second past 15 minutes after it was issued (or past the expiry).
    for second in range(0, 30 * 60, 30):
        issued = start + timedelta(seconds=second)
        lasts = timedelta(minutes=PRIVILEGED_SESSION_MINUTES - SESSION_SLOT) - timedelta(seconds=1)
        if issued + lasts < start + timedelta(minutes=30):
            assert elevated(env, "kms:DisableKey", issued + lasts, issued) == "allow", issued
        assert elevated(env, "kms:DisableKey", issued + timedelta(minutes=15), issued) == "explicit-deny"


def test_the_longest_privileged_window_fits_in_a_roles_inline_policies() -> None:
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    policy = window_policy(_iso(start + timedelta(minutes=60)), _iso(start), PRIVILEGED_SESSION_MINUTES)
    compact = json.dumps(json.loads(policy), separators=(",", ":"))
    assert len(compact) < MAX_ROLE_POLICY_CHARACTERS // 2, len(compact)


# -- through the function URL's handler ---------------------------------------------------------------
def test_the_api_carries_the_document_and_the_approvers_sha256(env: Env,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from ztai_runtime.jit import handler

    monkeypatch.setenv("JIT_TABLE", TABLE)
    monkeypatch.setenv("JIT_CATALOGUE", json.dumps({"key-admin": {
        "roleArn": ELEVATION_ARN, "maxMinutes": 30, "approvers": ["zero-trust-ai-dev-security-lead"],
        "approvalsNeeded": 2, "sessionMinutes": 15, "keyArn": env.key_arn}}))
    monkeypatch.setenv("JIT_EXPIRY_ARN", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:jit-expiry")
    monkeypatch.setenv("JIT_SCHEDULER_ROLE_ARN", f"arn:aws:iam::{ACCOUNT}:role/jit-scheduler")
    monkeypatch.setattr(handler, "_clock", lambda: env.clock.now)

    def call(caller: Caller, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        role = caller.principal_arn.rsplit("/", 1)[-1]
        event = {"requestContext": {"authorizer": {"iam": {
            "userArn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{caller.session}"}}},
            "body": json.dumps(body)}
        response = handler.api(event, None)
        return response["statusCode"], json.loads(response["body"])

    document = new_policy(env)
    status, answer = call(ALICE, {"action": "request", "elevation": "key-admin", "minutes": 30,
                                  "reason": "pin PCRs", "policy": document})
    assert status == 200 and answer["request"]["policy_sha256"] == _sha256(document)
    rid = answer["request"]["request_id"]
    assert call(BOB, {"action": "approve", "request_id": rid})[0] == 400
    assert call(BOB, {"action": "approve", "request_id": rid, "policy_sha256": 7})[0] == 400
    assert call(BOB, {"action": "approve", "request_id": rid, "policy_sha256": "ab" * 32})[0] == 403
    assert call(BOB, {"action": "approve", "request_id": rid, "policy_sha256": _sha256(document)})[0] == 200
    status, answer = call(CAROL, {"action": "approve", "request_id": rid, "policy_sha256": _sha256(document)})
    assert status == 200 and answer["request"]["state"] == "active"
    assert live_policy(env) == document
    # A policy for an elevation that writes none is refused; so is a policy that is not text.
    assert call(ALICE, {"action": "request", "elevation": "key-admin", "minutes": 30, "reason": "x",
                        "policy": {"Statement": []}})[0] == 400


def test_a_document_swapped_in_the_table_after_the_approvals_is_not_written(env: Env) -> None:
    document = new_policy(env)
    rid = env.store.request(ALICE, "key-admin", 30, "pin PCRs", policy=document).request["request_id"]
    env.store.approve(BOB, rid, policy_sha256=_sha256(document))
    # Whoever may write the requests table swaps the document, keeping the approved SHA-256.
    env.store.dynamodb.update_item(
        TableName=TABLE, Key={"pk": {"S": f"request#{rid}"}}, UpdateExpression="SET policy_document = :d",
        ExpressionAttributeValues={":d": {"S": new_policy(env, "Swapped")}})
    result = env.store.approve(CAROL, rid, policy_sha256=_sha256(document))
    assert result.request["state"] == "denied"
    assert "not the one approved" in result.message
    assert live_policy(env) == env.key_policy
