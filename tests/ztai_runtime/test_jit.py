"""Just-in-time elevation against moto (DynamoDB, IAM, Scheduler, STS).

moto stores the policies but evaluates none of their conditions: whether a session may act is
decided here by the IAM-style evaluator (tests/support/key_policy.py) on the documents the runtime
wrote, at the times the test names (`aws:CurrentTime`, `aws:TokenIssueTime`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support.key_policy import Request, evaluate
from ztai_runtime.jit import handler
from ztai_runtime.jit.grants import (
    LOGGER,
    Caller,
    Elevation,
    JitError,
    JitRefusedError,
    JitStore,
    caller_from_arn,
    closed_trust_policy,
)

ACCOUNT = "123456789012"
TABLE = "ztai-dev-jit"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/{{}}"
BUCKET_PREFIX = "arn:aws:s3:::training-data/curated/*"
SCIENTIST = Caller(f"arn:aws:iam::{ACCOUNT}:role/model-engineer", "alice@example.com")
LEAD = Caller(f"arn:aws:iam::{ACCOUNT}:role/data-lead", "bob@example.com")
SECOND_LEAD = Caller(f"arn:aws:iam::{ACCOUNT}:role/data-lead", "carol@example.com")
OUTSIDER = Caller(f"arn:aws:iam::{ACCOUNT}:role/model-engineer", "dave@example.com")
PERMISSIONS = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "WriteThePrefix", "Effect": "Allow", "Action": "s3:PutObject", "Resource": BUCKET_PREFIX}]})


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
    scheduler: Any
    dynamodb: Any


def _catalogue() -> dict[str, Elevation]:
    return {
        "training-data-write": Elevation("training-data-write", ROLE.format("jit-training-data-write"),
                                         120, ("data-lead",), 1),
        "key-admin": Elevation("key-admin", ROLE.format("jit-key-admin"), 30,
                               ("data-lead", "security-lead"), 2),
    }


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        dynamodb, iam, scheduler = (boto3.client(name) for name in ("dynamodb", "iam", "scheduler"))
        dynamodb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
        for elevation in _catalogue().values():
            name = elevation.role_arn.rsplit("/", 1)[-1]
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=closed_trust_policy(ACCOUNT))
            iam.put_role_policy(RoleName=name, PolicyName="permissions", PolicyDocument=PERMISSIONS)
        clock = Clock(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
        target = {"Arn": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:ztai-dev-jit-expiry",
                  "RoleArn": ROLE.format("ztai-dev-jit-scheduler")}
        store = JitStore(table=TABLE, catalogue=_catalogue(), dynamodb=dynamodb, iam=iam,
                         scheduler=scheduler, expiry_target=target, clock=clock)
        yield Env(store, clock, iam, scheduler, dynamodb)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _trust(env: Env, role: str) -> str:
    document = env.iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    return document if isinstance(document, str) else json.dumps(document)


def _role_policies(env: Env, role: str) -> list[str]:
    documents = []
    for name in env.iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = env.iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        documents.append(document if isinstance(document, str) else json.dumps(document))
    return documents


def may_assume(env: Env, caller: Caller, at: datetime, role: str = "jit-training-data-write", *,
               source_identity: str | None = "", session_name: str = "",
               action: str = "sts:AssumeRole") -> bool:
    """Would IAM let `caller`'s session assume the elevation role at `at` (its trust policy)?
    The session carries the source identity its sign-in set (default: the person, as the human
    roles' trust requires; None: none), and asks for the elevated session name `session_name`
    (default: the person's)."""
    context = {"aws:CurrentTime": _iso(at), "aws:userid": f"AROAEXAMPLE:{caller.session}",
               "sts:RoleSessionName": session_name or caller.session}
    if source_identity is not None:
        context["sts:SourceIdentity"] = source_identity or caller.session
    return evaluate(_trust(env, role), Request(
        principal_arn=caller.principal_arn, action=action, resource=ROLE.format(role),
        context=context), trust=True).effect == "allow"


def may_write(env: Env, at: datetime, issued: datetime, role: str = "jit-training-data-write") -> bool:
    """Would a session of the elevation role issued at `issued` be allowed s3:PutObject at `at`?
    Every inline policy of the role counts: one Deny anywhere wins (IAM's evaluation logic)."""
    request = Request(principal_arn=f"arn:aws:iam::{ACCOUNT}:role/{role}", action="s3:PutObject",
                      resource="arn:aws:s3:::training-data/curated/shard-0001",
                      context={"aws:CurrentTime": _iso(at), "aws:TokenIssueTime": _iso(issued)})
    decisions = [evaluate(policy, request, identity=True).effect
                 for policy in _role_policies(env, role)]
    return "explicit-deny" not in decisions and "allow" in decisions


def test_end_to_end_request_approve_write_expire_and_revoke(env: Env) -> None:
    start = env.clock.now
    assert not may_assume(env, SCIENTIST, start)  # nobody before an approval
    request = env.store.request(SCIENTIST, "training-data-write", 60, "tokenizer job run 42")
    assert request.request["state"] == "pending"
    assert not may_assume(env, SCIENTIST, start)
    granted = env.store.approve(LEAD, request.request["request_id"])
    assert granted.changed and granted.request["state"] == "active"
    assert granted.request["expires_at"] == _iso(start + timedelta(minutes=60))

    session_issued = start + timedelta(minutes=1)
    assert may_assume(env, SCIENTIST, session_issued)
    assert not may_assume(env, OUTSIDER, session_issued)  # same role, another person
    assert may_write(env, start + timedelta(minutes=30), session_issued)
    # Expiry: even with no revocation at all, the trust and the window both end the grant.
    expiry = start + timedelta(minutes=60)
    assert not may_assume(env, SCIENTIST, expiry)
    assert not may_write(env, expiry, session_issued)

    # A new grant, then an on-demand revoke: the session issued before it is refused at once.
    env.clock.now = start + timedelta(hours=2)
    rid = env.store.request(SCIENTIST, "training-data-write", 60, "second run").request["request_id"]
    env.store.approve(LEAD, rid)
    old_session = env.clock.now + timedelta(minutes=1)
    assert may_write(env, env.clock.now + timedelta(minutes=5), old_session)
    env.clock.now += timedelta(minutes=10)
    revoked = env.store.revoke(LEAD, rid, "job finished early")
    assert revoked.changed and revoked.request["state"] == "revoked"
    assert not may_write(env, env.clock.now + timedelta(seconds=1), old_session)
    assert not may_assume(env, SCIENTIST, env.clock.now + timedelta(seconds=1))

    # The next grant's sessions, issued after the revocation, are not caught by its floor.
    env.clock.now += timedelta(minutes=5)
    third = env.store.request(SCIENTIST, "training-data-write", 30, "third run").request["request_id"]
    env.store.approve(LEAD, third)
    fresh = env.clock.now + timedelta(seconds=30)
    assert may_write(env, fresh + timedelta(minutes=1), fresh)
    assert not may_write(env, fresh + timedelta(minutes=1), old_session)


def test_the_elevated_session_cannot_tag_itself_past_the_boundary(env: Env) -> None:
    # The boundary spares sessions tagged ztai:access=break-glass (device, network) or
    # ztai:role=key-administrator (key policies): the elevated session may carry the person's
    # transitive tags, never one of those.
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    at = _iso(env.clock.now + timedelta(minutes=1))

    def tag(keys: tuple[str, ...]) -> str:
        return evaluate(_trust(env, "jit-training-data-write"), Request(
            principal_arn=SCIENTIST.principal_arn, action="sts:TagSession",
            resource=ROLE.format("jit-training-data-write"),
            context={"aws:CurrentTime": at, "aws:userid": f"AROAEXAMPLE:{SCIENTIST.session}",
                     "sts:SourceIdentity": SCIENTIST.session, "sts:RoleSessionName": SCIENTIST.session,
                     "aws:TagKeys": keys}), trust=True).effect

    assert tag(("mfa-authenticated", "device-compliant")) == "allow"
    assert tag(("mfa-authenticated", "ztai:access")) == "explicit-deny"
    assert tag(("ztai:role",)) == "explicit-deny"


def test_a_session_that_raced_a_revocation_stays_dead_under_the_next_grant(env: Env) -> None:
    # A session issued a few seconds after a revoke (while IAM spread the closed trust) is newer
    # than that revoke's floor; the next grant must not let it act again.
    start = env.clock.now
    rid = env.store.request(SCIENTIST, "training-data-write", 60, "first run").request["request_id"]
    env.store.approve(LEAD, rid)
    env.clock.now = start + timedelta(minutes=10)
    env.store.revoke(LEAD, rid, "stop the job")
    raced = env.clock.now + timedelta(seconds=3)
    env.clock.now = start + timedelta(minutes=30)
    nxt = env.store.request(SCIENTIST, "training-data-write", 30, "next run").request["request_id"]
    env.store.approve(LEAD, nxt)
    assert not may_write(env, env.clock.now + timedelta(minutes=1), raced)
    assert may_write(env, env.clock.now + timedelta(minutes=1), env.clock.now + timedelta(seconds=10))


def test_the_schedule_is_created_at_expiry_and_removed_by_a_revoke(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 45, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    schedule = env.scheduler.get_schedule(Name=f"ztai-jit-{rid}")
    assert schedule["ScheduleExpression"] == "at(2026-12-07T09:45:00)"
    assert json.loads(schedule["Target"]["Input"]) == {"request_id": rid}
    env.store.revoke(SCIENTIST, rid, "done")
    with pytest.raises(env.scheduler.exceptions.ResourceNotFoundException):
        env.scheduler.get_schedule(Name=f"ztai-jit-{rid}")


def test_self_approval_is_refused(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    # The same person under an approver role is still the requester.
    same_person = Caller(LEAD.principal_arn, SCIENTIST.session)
    with pytest.raises(JitError, match="self-approval is refused"):
        env.store.approve(same_person, rid)
    assert env.store.list(state="pending")[0]["approvers"] == []


def test_an_approver_outside_the_elevations_groups_is_refused(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    with pytest.raises(JitError, match="not an approver of training-data-write; its approvers are the "
                                       "roles data-lead"):
        env.store.approve(OUTSIDER, rid)


def test_key_admin_needs_two_different_approvers(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "key-admin", 15, "rotate the weights key policy").request["request_id"]
    first = env.store.approve(LEAD, rid)
    assert first.changed and first.request["state"] == "pending"
    assert not may_assume(env, SCIENTIST, env.clock.now, role="jit-key-admin")
    again = env.store.approve(LEAD, rid)  # the same approver twice counts once
    assert not again.changed and again.request["state"] == "pending"
    second = env.store.approve(SECOND_LEAD, rid)
    assert second.changed and second.request["state"] == "active"
    assert may_assume(env, SCIENTIST, env.clock.now, role="jit-key-admin")


def test_one_person_through_two_approver_roles_counts_once(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "key-admin", 15, "rotate").request["request_id"]
    env.store.approve(LEAD, rid)
    same_person = Caller(ROLE.format("security-lead"), LEAD.session)
    again = env.store.approve(same_person, rid)
    assert not again.changed and again.request["state"] == "pending"
    assert not may_assume(env, SCIENTIST, env.clock.now, role="jit-key-admin")


def test_approving_twice_changes_nothing(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    events = len(env.store.list()[0]["events"])
    again = env.store.approve(LEAD, rid)
    late = env.store.approve(SECOND_LEAD, rid)
    assert not again.changed and not late.changed
    assert len(env.store.list()[0]["events"]) == events


def test_two_requests_for_the_same_elevation(env: Env) -> None:
    first = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    with pytest.raises(JitError, match=f"already requested or granted \\(request {first}\\)"):
        env.store.request(OUTSIDER, "training-data-write", 30, "another job")
    env.store.deny(LEAD, first, "use the shared pipeline")
    assert env.store.request(OUTSIDER, "training-data-write", 30, "another job").changed


def test_revoking_an_expired_grant_changes_nothing(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    env.clock.now += timedelta(minutes=31)
    ended = env.store.revoke(SCIENTIST, rid, "forgot")
    assert ended.request["state"] == "expired"  # recorded as what happened: it had expired
    again = env.store.revoke(SCIENTIST, rid, "forgot")
    assert not again.changed and "already expired" in again.message


def test_the_schedule_firing_after_a_manual_revoke_changes_nothing(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    env.store.revoke(LEAD, rid, "incident")
    floor = [p for p in _role_policies(env, "jit-training-data-write") if "RevokeOlderSessions" in p]
    env.clock.now += timedelta(minutes=30)
    fired = env.store.expire(rid)
    assert not fired.changed and fired.request["state"] == "revoked"
    # The revocation floor is not moved by the late schedule.
    assert [p for p in _role_policies(env, "jit-training-data-write") if "RevokeOlderSessions" in p] == floor


def test_expire_at_expiry_ends_the_grant_and_early_calls_do_not(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    assert not env.store.expire(rid).changed  # too early
    env.clock.now += timedelta(minutes=30)
    ended = env.store.expire(rid)
    assert ended.changed and ended.request["state"] == "expired"
    assert [event["action"] for event in ended.request["events"]] == [
        "requested", "approved", "granted", "expired"]
    assert not may_assume(env, SCIENTIST, env.clock.now - timedelta(minutes=10))  # trust closed


def test_every_event_records_who_what_why_and_when(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    LOGGER.addHandler(caplog.handler)
    try:
        rid = env.store.request(SCIENTIST, "training-data-write", 30, "tokenizer job").request["request_id"]
        env.store.approve(LEAD, rid)
    finally:
        LOGGER.removeHandler(caplog.handler)
    lines = [json.loads(record.getMessage()) for record in caplog.records]
    granted = next(line for line in lines if line["event"] == "jit.granted")
    assert granted["request_id"] == rid and granted["elevation"] == "training-data-write"
    assert granted["requester"] == SCIENTIST.who and granted["by"] == LEAD.who
    assert granted["reason"] == "tokenizer job" and granted["expires_at"] == "2026-12-07T09:30:00Z"
    events = env.store.list()[0]["events"]
    assert events[1] == {"action": "approved", "by": LEAD.who, "why": "", "at": "2026-12-07T09:00:00Z"}


@pytest.mark.parametrize(("elevation", "minutes", "reason", "message"), [
    ("training-data-admin", 30, "job",
     "unknown elevation 'training-data-admin'; the catalogue has: key-admin, training-data-write"),
    ("training-data-write", 121, "job", "duration 121 minutes: training-data-write allows 1 to 120 minutes"),
    ("training-data-write", 0, "job", "duration 0 minutes"),
    ("training-data-write", 30, "  ", "a reason is required"),
])
def test_bad_requests_change_nothing(env: Env, elevation: str, minutes: int, reason: str,
                                     message: str) -> None:
    with pytest.raises(JitError, match=message.replace("(", r"\(")):
        env.store.request(SCIENTIST, elevation, minutes, reason)
    assert env.dynamodb.scan(TableName=TABLE)["Items"] == []


def test_unknown_and_malformed_request_ids(env: Env) -> None:
    with pytest.raises(JitError, match="ids are 32 hexadecimal digits"):
        env.store.approve(LEAD, "not-an-id")
    with pytest.raises(JitError, match=r"no request 0{32}"):
        env.store.approve(LEAD, "0" * 32)


def test_only_the_requester_or_an_approver_may_revoke(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    with pytest.raises(JitError, match="only its requester or an approver"):
        env.store.revoke(OUTSIDER, rid, "mischief")


def test_deny_needs_a_reason_and_an_approver(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    with pytest.raises(JitError, match="a reason is required to deny"):
        env.store.deny(LEAD, rid, "")
    with pytest.raises(JitError, match="self-approval is refused"):
        env.store.deny(SCIENTIST, rid, "never mind")
    denied = env.store.deny(LEAD, rid, "no")
    assert denied.request["state"] == "denied"
    assert not env.store.approve(LEAD, rid).changed


def test_list_filters_by_state_and_shows_passed_expiries(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    assert [item["request_id"] for item in env.store.list(state="active")] == [rid]
    env.clock.now += timedelta(hours=1)
    assert [item["request_id"] for item in env.store.list(state="expired")] == [rid]
    with pytest.raises(JitError, match="state 'gone' is not one of pending, writing, active, denied"):
        env.store.list(state="gone")


def test_caller_from_sts_arns() -> None:
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/model-engineer/alice@example.com"
    assert caller_from_arn(session) == SCIENTIST
    user = caller_from_arn(f"arn:aws:iam::{ACCOUNT}:user/ops/erin")
    assert user.session == "erin"
    with pytest.raises(JitError, match="neither an assumed-role session nor an IAM user"):
        caller_from_arn(f"arn:aws:iam::{ACCOUNT}:root")


def test_the_expiry_function_handles_its_event(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIT_TABLE", TABLE)
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    monkeypatch.setattr(handler, "_clock", lambda: env.clock.now)
    assert handler.expire({}, None) == {"changed": False, "message": "the event names no request_id"}
    assert handler.expire({"request_id": "nope"}, None)["changed"] is False
    assert handler.expire({"request_id": rid}, None)["changed"] is False  # not yet
    env.clock.now += timedelta(minutes=30)
    assert handler.expire({"request_id": rid}, None) == {"changed": True, "message": f"{rid}: expired"}
    assert handler.expire({"request_id": rid}, None)["changed"] is False  # a retried event


def _url_event(caller_arn: str | None, body: Any, *, base64_body: bool = False) -> dict[str, Any]:
    text = json.dumps(body) if not isinstance(body, str) else body
    context: dict[str, Any] = {"http": {"method": "POST"}}
    if caller_arn is not None:
        context["authorizer"] = {"iam": {"userArn": caller_arn}}
    if base64_body:
        import base64
        text = base64.b64encode(text.encode()).decode()
    return {"requestContext": context, "body": text, "isBase64Encoded": base64_body}


@pytest.fixture
def api_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.setenv("JIT_TABLE", TABLE)
    monkeypatch.setenv("JIT_CATALOGUE", json.dumps({
        name: {"roleArn": e.role_arn, "maxMinutes": e.max_minutes, "approvers": list(e.approver_roles),
               "approvalsNeeded": e.approvals_needed} for name, e in _catalogue().items()}))
    monkeypatch.setenv("JIT_EXPIRY_ARN", f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:jit-expiry")
    monkeypatch.setenv("JIT_SCHEDULER_ROLE_ARN", ROLE.format("jit-scheduler"))
    monkeypatch.setattr(handler, "_clock", lambda: env.clock.now)
    return env


STS = f"arn:aws:sts::{ACCOUNT}:assumed-role/{{}}/{{}}"


def _call(caller: str | None, body: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = handler.api(_url_event(caller, body, **kwargs), None)
    return response["statusCode"], json.loads(response["body"])


def test_the_api_takes_the_caller_from_the_signed_request_not_the_body(api_env: Env) -> None:
    alice, bob = STS.format("model-engineer", "alice@example.com"), STS.format("data-lead", "bob@example.com")
    status, body = _call(alice, {"action": "request", "elevation": "training-data-write", "minutes": 30,
                                 "reason": "job", "requester": "someone-else"}, base64_body=True)
    assert status == 200 and body["request"]["requester"] == SCIENTIST.who
    rid = body["request"]["request_id"]
    # Alice cannot approve her own request by claiming to be Bob in the body.
    status, body = _call(alice, {"action": "approve", "request_id": rid, "approver": bob})
    assert status == 403 and "self-approval is refused" in body["error"]
    status, body = _call(bob, {"action": "approve", "request_id": rid})
    assert status == 200 and body["request"]["state"] == "active"
    status, body = _call(bob, {"action": "list", "state": "active"})
    assert [item["request_id"] for item in body["requests"]] == [rid]


@pytest.mark.parametrize(("body", "message"), [
    ("not json", "the request body is not JSON"),
    ({"action": "grant"}, "action: one of request, approve, deny, revoke, list"),
    ({"action": "request", "elevation": "training-data-write", "minutes": "30", "reason": "x"},
     "field 'minutes': expected a int"),
    ({"action": "approve"}, "field 'request_id': expected a str"),
    ({"action": "list", "state": "gone"}, "state 'gone' is not one of"),
])
def test_the_api_answers_bad_input_with_400(api_env: Env, body: Any, message: str) -> None:
    status, answer = _call(STS.format("data-lead", "bob@example.com"), body)
    assert status == 400 and message in answer["error"]


def test_the_api_refuses_an_unsigned_call(api_env: Env) -> None:
    status, answer = _call(None, {"action": "list"})
    assert status == 403 and "AWS_IAM" in answer["error"]


def _one(condition: dict[str, Any], *, effect: str = "Allow") -> str:
    return json.dumps({"Statement": [{"Effect": effect, "Action": "s3:PutObject", "Resource": "*",
                                      "Condition": condition}]})


@pytest.mark.parametrize(("operator", "policy_time", "request_time", "holds"), [
    # IAM's date operators compare instants (IAM user guide, "IAM JSON policy elements: Condition
    # operators", date condition operators); the equal case decides strict against inclusive.
    ("DateLessThan", "2026-12-07T10:00:00Z", "2026-12-07T09:59:59Z", True),
    ("DateLessThan", "2026-12-07T10:00:00Z", "2026-12-07T10:00:00Z", False),
    ("DateLessThanEquals", "2026-12-07T10:00:00Z", "2026-12-07T10:00:00Z", True),
    ("DateGreaterThan", "2026-12-07T10:00:00Z", "2026-12-07T10:00:00Z", False),
    ("DateGreaterThanEquals", "2026-12-07T10:00:00Z", "2026-12-07T10:00:00Z", True),
    ("DateEquals", "2026-12-07T10:00:00Z", "2026-12-07T11:00:00+01:00", True),  # the same instant
    ("DateNotEquals", "2026-12-07T10:00:00Z", "2026-12-07T10:00:01Z", True),
])
def test_the_evaluators_date_operators(operator: str, policy_time: str, request_time: str,
                                       holds: bool) -> None:
    request = Request("arn:aws:iam::123456789012:role/r", "s3:PutObject", "arn:aws:s3:::b/k",
                      {"aws:CurrentTime": request_time})
    decision = evaluate(_one({operator: {"aws:CurrentTime": policy_time}}), request, identity=True)
    assert decision.effect == ("allow" if holds else "implicit-deny")


def test_the_evaluator_on_absent_keys_and_deny_precedence() -> None:
    # A key absent from the request: a positive operator is false, ...IfExists true (IAM's rule).
    bare = Request("arn:aws:iam::123456789012:role/r", "s3:PutObject", "arn:aws:s3:::b/k", {})
    deny_old = _one({"DateLessThan": {"aws:TokenIssueTime": "2026-12-07T10:00:00Z"}}, effect="Deny")
    assert evaluate(deny_old, bare, identity=True).effect == "implicit-deny"
    if_exists = _one({"DateLessThanIfExists": {"aws:TokenIssueTime": "2026-12-07T10:00:00Z"}})
    assert evaluate(if_exists, bare, identity=True).effect == "allow"
    # An explicit Deny wins over an Allow in the same policy.
    both = json.dumps({"Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-12-07T10:00:00Z"}}}]})
    old = Request(bare.principal_arn, bare.action, bare.resource,
                  {"aws:TokenIssueTime": "2026-12-07T09:00:00Z"})
    assert evaluate(both, old, identity=True).effect == "explicit-deny"


def test_the_evaluator_refuses_what_it_cannot_judge() -> None:
    from tests.support.key_policy import UnsupportedPolicyError

    request = Request("arn:aws:iam::123456789012:role/r", "s3:PutObject", "arn:aws:s3:::b/k",
                      {"aws:CurrentTime": "yesterday"})
    with pytest.raises(UnsupportedPolicyError, match="not an ISO 8601 time"):
        evaluate(_one({"DateLessThan": {"aws:CurrentTime": "2026-12-07T10:00:00Z"}}), request,
                 identity=True)
    with_principal = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*",
                                                "Resource": "*"}]})
    with pytest.raises(UnsupportedPolicyError, match="an identity-based policy has no Principal"):
        evaluate(with_principal, request, identity=True)
    with pytest.raises(UnsupportedPolicyError, match="a trust policy statement has no Resource"):
        evaluate(with_principal, request, trust=True)


# -- the person is the IdP-asserted identity, not a session name anyone may choose ---------------
def test_only_the_requesters_source_identity_may_use_the_grant(env: Env) -> None:
    # Dave, in the same role as Alice, names his session after her: his session's source identity
    # (set at sign-in from what the IdP asserts, unchangeable afterwards) is still his.
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    at = env.clock.now + timedelta(minutes=1)
    assert may_assume(env, SCIENTIST, at)
    assert may_assume(env, SCIENTIST, at, action="sts:SetSourceIdentity")
    posing = Caller(SCIENTIST.principal_arn, SCIENTIST.session)  # Dave's session named "alice..."
    assert not may_assume(env, posing, at, source_identity=OUTSIDER.session)
    assert not may_assume(env, SCIENTIST, at, source_identity=None)  # no source identity at all
    assert not may_assume(env, SCIENTIST, at, session_name="someone-else")  # a chosen session name
    # The same person through another role is not the requester's role.
    assert not may_assume(env, Caller(LEAD.principal_arn, SCIENTIST.session), at)


def test_approvers_are_sessions_of_the_approver_roles_in_the_stacks_account(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    elsewhere = Caller("arn:aws:iam::999988887777:role/data-lead", "bob@example.com")
    user = Caller(f"arn:aws:iam::{ACCOUNT}:user/data-lead", "data-lead")
    for caller in (elsewhere, user):
        with pytest.raises(JitRefusedError, match="never an IAM user"):
            env.store.approve(caller, rid)
        with pytest.raises(JitRefusedError, match=r"self-approval|never an IAM user"):
            env.store.deny(caller, rid, "no")
    assert env.store.list(state="pending")[0]["approvers"] == []
    env.store.approve(LEAD, rid)
    for caller in (elsewhere, user):
        with pytest.raises(JitRefusedError, match="only its requester or an approver"):
            env.store.revoke(caller, rid, "mischief")
    assert env.store.list(state="active")


def test_the_api_refuses_an_iam_user_named_like_an_approver_role(api_env: Env) -> None:
    alice = STS.format("model-engineer", "alice@example.com")
    rid = _call(alice, {"action": "request", "elevation": "training-data-write", "minutes": 30,
                        "reason": "job"})[1]["request"]["request_id"]
    status, body = _call(f"arn:aws:iam::{ACCOUNT}:user/data-lead", {"action": "approve", "request_id": rid})
    assert status == 403 and "never an IAM user" in body["error"]


# -- revocation survives a failed IAM write ----------------------------------------------------------
class FailsOnce:
    """An IAM client whose first call of `method` fails, as IAM throttling or an outage would."""

    def __init__(self, iam: Any, method: str) -> None:
        self._iam, self._method, self.failed = iam, method, False

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._iam, name)
        if name != self._method or self.failed:
            return call

        def fail(**_kwargs: Any) -> None:
            self.failed = True
            raise RuntimeError(f"{name}: throttled")

        return fail


@pytest.mark.parametrize("method", ["put_role_policy", "update_assume_role_policy"])
def test_a_revoke_whose_iam_write_failed_is_finished_by_the_retry(env: Env, method: str) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 60, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    env.clock.now += timedelta(minutes=10)
    flaky = FailsOnce(env.iam, method)
    env.store.iam = flaky
    with pytest.raises(RuntimeError, match="throttled"):
        env.store.revoke(LEAD, rid, "incident")
    assert flaky.failed
    # Nothing recorded as ended while the role may still be open: the retry finds it active.
    assert [item["state"] for item in env.store.list()] == ["active"]
    retried = env.store.revoke(LEAD, rid, "incident")
    assert retried.changed and retried.request["state"] == "revoked"
    assert not may_assume(env, SCIENTIST, env.clock.now + timedelta(seconds=1))
    assert not may_write(env, env.clock.now + timedelta(seconds=1), env.clock.now - timedelta(minutes=5))


def test_an_expiry_whose_iam_write_failed_is_finished_by_the_retry(env: Env) -> None:
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    env.clock.now += timedelta(minutes=30)
    env.store.iam = FailsOnce(env.iam, "update_assume_role_policy")
    with pytest.raises(RuntimeError, match="throttled"):
        env.store.expire(rid)
    assert env.store.expire(rid).changed  # Lambda's retry of the schedule's event
    trust = json.loads(_trust(env, "jit-training-data-write"))
    assert trust == json.loads(closed_trust_policy(ACCOUNT))


def test_a_stale_ending_leaves_a_newer_grant_alone(env: Env) -> None:
    # An ending that read the request before another one ended it must not close the role's next
    # grant: the lock, held by the newer request, tells it so.
    rid = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    env.store.approve(LEAD, rid)
    stale = env.store._get(rid)
    env.store.revoke(LEAD, rid, "done")
    nxt = env.store.request(SCIENTIST, "training-data-write", 30, "next").request["request_id"]
    env.store.approve(LEAD, nxt)
    late = env.store._end(LEAD, stale, "revoked", "late retry")
    assert not late.changed
    assert may_assume(env, SCIENTIST, env.clock.now + timedelta(minutes=1))


# -- list shows a caller their own requests and those they may approve -------------------------------
def test_list_shows_own_requests_and_those_one_may_approve(env: Env) -> None:
    mine = env.store.request(SCIENTIST, "training-data-write", 30, "job").request["request_id"]
    keys = env.store.request(OUTSIDER, "key-admin", 15, "rotate").request["request_id"]
    security = Caller(ROLE.format("security-lead"), "erin@example.com")

    def seen(viewer: Caller) -> set[str]:
        return {item["request_id"] for item in env.store.list(viewer=viewer)}

    assert seen(SCIENTIST) == {mine}                  # own request only
    assert seen(OUTSIDER) == {keys}
    assert seen(LEAD) == {mine, keys}                 # approves both elevations
    assert seen(security) == {keys}                   # approves key-admin only
    assert seen(Caller(f"arn:aws:iam::{ACCOUNT}:user/data-lead", "data-lead")) == set()
    # The same person through another role still sees their own request.
    assert seen(Caller(ROLE.format("auditor"), SCIENTIST.session)) == {mine}
    assert {item["request_id"] for item in env.store.list()} == {mine, keys}


def test_the_api_lists_only_what_the_caller_may_see(api_env: Env) -> None:
    alice = STS.format("model-engineer", "alice@example.com")
    dave = STS.format("model-engineer", "dave@example.com")
    rid = _call(alice, {"action": "request", "elevation": "training-data-write", "minutes": 30,
                        "reason": "job"})[1]["request"]["request_id"]
    assert [item["request_id"] for item in _call(alice, {"action": "list"})[1]["requests"]] == [rid]
    assert _call(dave, {"action": "list"})[1]["requests"] == []
    lead = STS.format("data-lead", "bob@example.com")
    assert [item["request_id"] for item in _call(lead, {"action": "list"})[1]["requests"]] == [rid]
