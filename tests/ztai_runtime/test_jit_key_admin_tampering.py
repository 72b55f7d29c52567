"""The two-person key's document against tampering: the requests table changed between
approvals, a deny racing the last approval, documents that read two ways or cannot be read.

Found by a hostile review; each test failed before its fix.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.ztai_runtime.test_jit_key_admin import (  # noqa: F401  (env is a fixture)
    ALICE,
    BOB,
    CAROL,
    Env,
    env,
    live_policy,
    new_policy,
)
from ztai_runtime.jit import handler
from ztai_runtime.jit.grants import JitError, checked_policy


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _tamper(store_env: Env, rid: str, **fields: str) -> None:
    """What anyone who may write the requests table (the deployer, an operator with
    dynamodb:UpdateItem, root on a host holding such credentials) can do between two approvals."""
    names = {f"#f{i}": name for i, name in enumerate(fields)}
    values = {f":v{i}": {"S": value} for i, value in enumerate(fields.values())}
    store_env.store.dynamodb.update_item(
        TableName=store_env.store.table, Key={"pk": {"S": f"request#{rid}"}},
        UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
        ExpressionAttributeNames=names, ExpressionAttributeValues=values)


def test_the_document_written_is_rehashed_not_trusted_from_the_item(env: Env) -> None:  # noqa: F811
    # Attack: swap the stored document after the first approval, leave the stored SHA-256 alone.
    # The second approver names the SHA-256 they were shown, which still matches, and _activate
    # writes item["policy_document"] without hashing it: the key gets bytes nobody approved.
    reviewed = new_policy(env)
    evil = new_policy(env, sid="Unreviewed")
    rid = env.store.request(ALICE, "key-admin", 30, "pin EIF", policy=reviewed).request["request_id"]
    env.store.approve(BOB, rid, policy_sha256=_sha256(reviewed))
    _tamper(env, rid, policy_document=evil)
    env.store.approve(CAROL, rid, policy_sha256=_sha256(reviewed))
    assert live_policy(env) != evil, "a document whose SHA-256 nobody approved was written to the key"


def test_an_approval_counts_only_for_the_document_it_approved(env: Env) -> None:  # noqa: F811
    # Attack: swap document and SHA-256 after the first approval. The approval event records no
    # SHA-256, so Bob's approval of the reviewed document counts towards the other one.
    reviewed = new_policy(env)
    evil = new_policy(env, sid="Unreviewed")
    rid = env.store.request(ALICE, "key-admin", 30, "pin EIF", policy=reviewed).request["request_id"]
    env.store.approve(BOB, rid, policy_sha256=_sha256(reviewed))
    _tamper(env, rid, policy_document=evil, policy_sha256=_sha256(evil))
    env.store.approve(CAROL, rid, policy_sha256=_sha256(evil))
    assert live_policy(env) != evil, "one person's approval (Carol's) wrote a document to the key"


class _DenyRaces:
    """The table client, with an approver's deny landing between the final approval's update and
    the activation that follows it (two Lambda invocations, microseconds apart)."""

    def __init__(self, real: Any, rid: str) -> None:
        self._real, self._rid = real, rid

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def update_item(self, **kwargs: Any) -> Any:
        answer = self._real.update_item(**kwargs)
        if str(kwargs.get("UpdateExpression", "")).startswith("SET approvers"):
            self._real.update_item(
                TableName=kwargs["TableName"], Key={"pk": {"S": f"request#{self._rid}"}},
                UpdateExpression="SET #s = :denied", ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":denied": {"S": "denied"}})
        return answer


def test_a_request_denied_before_activation_writes_nothing(env: Env) -> None:  # noqa: F811
    # _activate calls kms:PutKeyPolicy before its conditional pending->active update; a deny (or a
    # requester's revoke of the pending request) stored in between is recorded, the update then
    # fails, and the key keeps the document anyway, with no `policy_written` event anywhere.
    reviewed = new_policy(env)
    rid = env.store.request(ALICE, "key-admin", 30, "pin EIF", policy=reviewed).request["request_id"]
    env.store.approve(BOB, rid, policy_sha256=_sha256(reviewed))
    real = env.store.dynamodb
    env.store.dynamodb = _DenyRaces(real, rid)
    try:
        result = env.store.approve(CAROL, rid, policy_sha256=_sha256(reviewed))
    finally:
        env.store.dynamodb = real
    assert result.request["state"] == "denied"
    assert live_policy(env) == env.key_policy, "a denied request's document is on the key"


def test_a_document_that_reads_two_ways_is_refused() -> None:
    # Duplicate keys: an approver reading the text sees the first Statement; Python (and so this
    # check) keeps the last; what KMS keeps is not documented. The SHA-256 binds bytes, not meaning.
    deny = {"Sid": "TwoPersonChangesOnly", "Effect": "Deny", "Principal": {"AWS": "*"},
            "Action": "kms:PutKeyPolicy", "Resource": "*"}
    allow = {"Sid": "Anyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*",
             "Resource": "*"}
    text = ('{"Version": "2012-10-17", "Statement": ' + json.dumps([deny]) + ",\n"
            + " " * 400 + '"Statement": ' + json.dumps([allow]) + "}")
    with pytest.raises(JitError, match=r"(?i)duplicate|twice"):
        checked_policy(text)


KEY = "arn:aws:kms:eu-west-1:111122223333:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
CALLER = "arn:aws:sts::111122223333:assumed-role/zero-trust-ai-dev-key-administrator/alice"


@pytest.mark.parametrize("document", [
    '{"Statement": [{"Sid": "\\ud800"}]}',  # a lone surrogate, as JSON escapes allow
    '{"Statement": [' + "[" * 15_000 + "]" * 15_000 + "]}",  # nesting deeper than the parser's stack
], ids=["lone-surrogate", "deep-nesting"])
def test_an_unparsable_document_is_a_400(document: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1", "JIT_TABLE": "zero-trust-ai-dev-jit",
                        "JIT_EXPIRY_ARN": "arn:aws:lambda:eu-west-1:111122223333:function:x",
                        "JIT_SCHEDULER_ROLE_ARN": "arn:aws:iam::111122223333:role/x",
                        "JIT_CATALOGUE": json.dumps({"key-admin": {
                            "roleArn": "arn:aws:iam::111122223333:role/zero-trust-ai-dev-jit-key-admin",
                            "maxMinutes": 30, "approvers": ["zero-trust-ai-dev-security-responder"],
                            "approvalsNeeded": 2, "sessionMinutes": 15, "keyArn": KEY}})}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    body = '{"action": "request", "elevation": "key-admin", "minutes": 15, "reason": "r", "policy": ' \
        + json.dumps(document)[:-1].replace("\\\\ud800", "\\ud800") + '"}'
    event = {"requestContext": {"authorizer": {"iam": {"userArn": CALLER}}}, "body": body}
    response = handler.api(event, None)
    assert response["statusCode"] == 400, response
