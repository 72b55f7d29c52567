"""Monthly key rotation against moto, with botocore's Stubber where moto 5.2.5 falls short.

Both modes are covered: the default, where the function never creates a successor (and its
role holds no kms:PutKeyPolicy), and `create_successors=True`.

moto runs RotateKeyOnDemand, ListKeyRotations, UpdateAlias, ListResourceTags, GetKeyPolicy and
CreateKey, but its GetKeyRotationStatus has neither `OnDemandRotationStartDate` nor
`RotationPeriodInDays`, it forgets the period EnableKeyRotation sets, and it cannot produce an
automatic rotation or a ConflictException. Those cases are stubbed; the period is kept by a small
shim on the moto client, as KMS keeps it. moto's clock is the test's clock, so "this month" and
"next month" are exact.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.endpoint
import moto.kms.models as moto_kms
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from moto.core.models import botocore_stubber

from ztai_runtime import rotation
from ztai_runtime.rotation import (
    ALREADY_ROTATED,
    FAILED,
    PREDECESSOR_TAG,
    ROTATED,
    SINGLE_ATTEMPT_CONFIG,
    SKIPPED,
    SUCCESSOR_CREATED,
    SUCCESSOR_DUE_SOON,
    SUCCESSOR_NOTICE,
    SUCCESSOR_REQUIRED,
    SUCCESSOR_THRESHOLD,
    Decision,
    RotationRequest,
    RotationRunError,
    find_successors,
    handler,
    parse_event,
    rotate_keys,
)

REGION = "eu-west-1"
ALIAS = "alias/zero-trust-ai/dev/{}".format
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "KeyRotation0", "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:role/key-rotation"},
    "Action": ["kms:RotateKeyOnDemand", "kms:PutKeyPolicy"], "Resource": "*"}]})
TAGS = [{"TagKey": "environment", "TagValue": "dev"},
        {"TagKey": "ztai:key-purpose", "TagValue": "model-weights"}]


@dataclass
class Clock:
    now: datetime


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The time moto stamps on key creation and rotations; tests move it between months."""
    clock = Clock(datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    original = moto_kms.unix_time  # type: ignore[attr-defined]
    monkeypatch.setattr(moto_kms, "unix_time",
                        lambda dt=None: clock.now.timestamp() if dt is None else original(dt))
    return clock


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's retry back-off delays, recorded instead of slept."""
    delays: list[float] = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", delays.append)
    return delays


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch, clock: Clock, sleeps: list[float]) -> Iterator[Any]:
    """A moto KMS client built exactly as the Lambda builds it (retry configuration included)."""
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = rotation.build_kms_client()
        assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 8}
        yield client


@pytest.fixture
def create_kms(kms: Any) -> Any:
    """The client CreateKey goes through, built as the Lambda builds it: one attempt, no retry."""
    client = rotation.build_kms_client(SINGLE_ATTEMPT_CONFIG)
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    return client


class LogLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def records(self, event: str = "key-rotation") -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.lines]  # every line must be one JSON object
        return [record for record in parsed if record["event"] == event]


@pytest.fixture
def logs() -> Iterator[LogLines]:
    capture = LogLines()
    logger = logging.getLogger("ztai_runtime.rotation")
    logger.addHandler(capture)
    yield capture
    logger.removeHandler(capture)


@dataclass
class _Fault:
    operation: str
    key_id: str | None
    code: str
    times: int | None
    status: int
    executed: bool


class Faults:
    """Errors injected where moto answers: below botocore's retry loop, so a throttle is a real
    HTTP error the client retries, and moto never executes the failed attempt (unless `executed`:
    then moto acts and only the answer is lost)."""

    def __init__(self, *clients: Any) -> None:
        self.rules: list[_Fault] = []
        self.attempts: Counter[tuple[str, str | None]] = Counter()
        for client in clients:
            client.meta.events.unregister("before-send", botocore_stubber)
            client.meta.events.register("before-send", self)

    def fail(self, operation: str, code: str, *, key_id: str | None = None,
             times: int | None = None, status: int = 400, executed: bool = False) -> None:
        """Answer `operation` (for `key_id`, or any key) with `code`, `times` times or forever."""
        self.rules.append(_Fault(operation, key_id, code, times, status, executed))

    def __call__(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
        operation = str(request.headers["X-Amz-Target"], "utf-8").rsplit(".", 1)[-1]
        key_id = json.loads(request.body or b"{}").get("KeyId")
        self.attempts[(operation, key_id)] += 1
        for rule in self.rules:
            if rule.operation == operation and rule.key_id in (None, key_id) and rule.times != 0:
                rule.times = None if rule.times is None else rule.times - 1
                if rule.executed:
                    botocore_stubber(request=request, **kwargs)
                body = json.dumps({"__type": rule.code, "message": "injected"}).encode()
                return AWSResponse(request.url, rule.status,
                                   {"Content-Type": "application/x-amz-json-1.1"}, _Body(body))
        response: AWSResponse | None = botocore_stubber(request=request, **kwargs)
        return response


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


@pytest.fixture
def faults(kms: Any, create_kms: Any) -> Faults:
    return Faults(kms, create_kms)


@pytest.fixture
def periods(kms: Any) -> dict[str, int]:
    """KMS keeps the period EnableKeyRotation sets and reports it in GetKeyRotationStatus; moto
    5.2.5 drops it. This shim keeps it per key, as KMS does."""
    kept: dict[str, int] = {}

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["key_id"] = params["KeyId"]
        if "RotationPeriodInDays" in params:
            kept[params["KeyId"]] = params["RotationPeriodInDays"]

    def report(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if parsed.get("KeyRotationEnabled") and context["key_id"] in kept:
            parsed["RotationPeriodInDays"] = kept[context["key_id"]]

    for operation in ("EnableKeyRotation", "GetKeyRotationStatus"):
        kms.meta.events.register(f"before-parameter-build.kms.{operation}", remember)
    kms.meta.events.register("after-call.kms.GetKeyRotationStatus", report)
    return kept


def make_key(kms: Any, purpose: str, **args: Any) -> str:
    args = {"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", **args}
    key_id: str = kms.create_key(**args)["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=ALIAS(purpose), TargetKeyId=key_id)
    return key_id


def on_demand_rotations(kms: Any, key_id: str) -> int:
    return sum(1 for r in kms.list_key_rotations(KeyId=key_id)["Rotations"]
               if r["RotationType"] == "ON_DEMAND")


def rotate_in_past_months(kms: Any, clock: Clock, key_id: str, count: int) -> None:
    """`count` on-demand rotations, one a month, ending the month before the clock's."""
    now = clock.now
    for months_back in range(count, 0, -1):
        clock.now = now - timedelta(days=31 * months_back)
        kms.rotate_key_on_demand(KeyId=key_id)
    clock.now = now


def alias_target(kms: Any, purpose: str) -> str:
    target: str = kms.describe_key(KeyId=ALIAS(purpose))["KeyMetadata"]["KeyId"]
    return target


def arn(kms: Any, key_id: str) -> str:
    key_arn: str = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    return key_arn


def keys_tagged_successor_of(kms: Any, key_id: str) -> list[str]:
    return [k["KeyId"] for k in kms.list_keys()["Keys"]
            if {"TagKey": PREDECESSOR_TAG, "TagValue": key_id}
            in kms.list_resource_tags(KeyId=k["KeyId"])["Tags"]]


def creating(create_kms: Any, kms: Any, purpose: str, key_id: str) -> dict[str, Any]:
    """rotate_keys arguments of a run that may create successors, expecting `key_id`."""
    return {"create_successors": True, "create_key_kms": create_kms,
            "expected_key_arns": {ALIAS(purpose): arn(kms, key_id)}}


# -- monthly rotation -------------------------------------------------------------------------
def test_rotates_once_a_month(kms: Any, clock: Clock, logs: LogLines) -> None:
    key_id = make_key(kms, "secrets")
    expected = {ALIAS("secrets"): arn(kms, key_id)}
    clock.now = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)

    [first] = rotate_keys(kms, [ALIAS("secrets")], clock.now, expected_key_arns=expected)
    assert (first.action, first.key_id, first.rotations_used) == (ROTATED, key_id, 1)
    assert on_demand_rotations(kms, key_id) == 1

    # The schedule runs daily: every other run of April finds April's rotation.
    for day in (2, 20, 30):
        clock.now = datetime(2026, 4, day, 3, 0, tzinfo=UTC)
        [again] = rotate_keys(kms, [ALIAS("secrets")], clock.now, expected_key_arns=expected)
        assert again.action == ALREADY_ROTATED and "on_demand rotation on 2026-04-01" in again.reason
    assert on_demand_rotations(kms, key_id) == 1

    clock.now = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
    [next_month] = rotate_keys(kms, [ALIAS("secrets")], clock.now, expected_key_arns=expected)
    assert (next_month.action, next_month.rotations_used) == (ROTATED, 2)
    assert on_demand_rotations(kms, key_id) == 2

    assert [(r["action"], r["month"], r["key_id"]) for r in logs.records()] == [
        (ROTATED, "2026-04", key_id), *[(ALREADY_ROTATED, "2026-04", key_id)] * 3,
        (ROTATED, "2026-05", key_id)]


def test_a_failed_first_of_the_month_is_made_up_the_next_day(kms: Any, clock: Clock,
                                                             faults: Faults) -> None:
    key_id = make_key(kms, "secrets")
    faults.fail("RotateKeyOnDemand", "KMSInternalException", status=500, times=8)
    clock.now = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
    [first] = rotate_keys(kms, [ALIAS("secrets")], clock.now)
    assert first.failed and first.error_code == "KMSInternalException"
    clock.now = datetime(2026, 4, 2, 3, 0, tzinfo=UTC)
    [second] = rotate_keys(kms, [ALIAS("secrets")], clock.now)
    assert (second.action, second.rotations_used) == (ROTATED, 1)
    assert on_demand_rotations(kms, key_id) == 1


def test_a_key_created_this_month_already_has_new_material(kms: Any, clock: Clock) -> None:
    key_id = make_key(kms, "logs")
    clock.now += timedelta(days=5)
    [decision] = rotate_keys(kms, [ALIAS("logs")], clock.now)
    assert decision.action == ALREADY_ROTATED and "key created on 2026-03-10" in decision.reason
    assert on_demand_rotations(kms, key_id) == 0


def worn(kms: Any, clock: Clock, purpose: str, used: int, **args: Any) -> str:
    """A key created in 2024 that has used `used` on-demand rotations, one a month."""
    clock.now = datetime(2024, 1, 5, tzinfo=UTC)
    key_id = make_key(kms, purpose, **args)
    clock.now = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    rotate_in_past_months(kms, clock, key_id, used)
    return key_id


# AWS allows 25 on-demand rotations per key; the schedule spends 24 and keeps one for incidents.
@pytest.mark.parametrize("used, action", [(23, ROTATED), (24, SUCCESSOR_CREATED)])
def test_the_reserve_threshold_when_creating_successors(
        kms: Any, create_kms: Any, clock: Clock, used: int, action: str) -> None:
    key_id = worn(kms, clock, "training-data", used)
    [decision] = rotate_keys(kms, [ALIAS("training-data")], clock.now,
                             **creating(create_kms, kms, "training-data", key_id))
    assert (decision.action, decision.rotations_used) == (action, used + (action == ROTATED))
    # The 25th on-demand rotation is never spent by the schedule: it is the incident reserve.
    assert on_demand_rotations(kms, key_id) == min(used + 1, SUCCESSOR_THRESHOLD)


# -- the default: no successor is created, operators get notice ---------------------------------
@pytest.mark.parametrize("used, action", [
    (SUCCESSOR_THRESHOLD - SUCCESSOR_NOTICE - 2, ROTATED),
    (SUCCESSOR_THRESHOLD - SUCCESSOR_NOTICE - 1, SUCCESSOR_DUE_SOON),  # rotation 21: 3 months' notice
    (SUCCESSOR_THRESHOLD - 1, SUCCESSOR_DUE_SOON),
    (SUCCESSOR_THRESHOLD, SUCCESSOR_REQUIRED),
])
def test_by_default_operators_get_notice_then_a_failing_successor_required(
        kms: Any, clock: Clock, faults: Faults, logs: LogLines, monkeypatch: pytest.MonkeyPatch,
        used: int, action: str) -> None:
    clock.now = datetime.now(UTC) - timedelta(days=31 * 30)
    key_id = make_key(kms, "model-weights")
    clock.now = datetime.now(UTC)
    rotate_in_past_months(kms, clock, key_id, used)
    monkeypatch.setattr(rotation, "build_kms_client", lambda config=None: kms)
    event = {"aliases": [ALIAS("model-weights")],
             "expectedKeyArns": {ALIAS("model-weights"): arn(kms, key_id)}}
    faults.attempts.clear()  # count the function's calls only

    if action == SUCCESSOR_REQUIRED:
        with pytest.raises(RotationRunError, match=ALIAS("model-weights")):
            handler(event, None)
    else:
        assert handler(event, None)["counts"] == {action: 1}  # notice does not fail the run

    [line] = logs.records()
    assert line["action"] == action
    assert faults.attempts[("CreateKey", None)] == 0 and faults.attempts[("ListKeys", None)] == 0
    assert len(kms.list_keys()["Keys"]) == 1 and alias_target(kms, "model-weights") == key_id
    if action == SUCCESSOR_DUE_SOON:
        assert "create it through the pipeline now" in line["reason"]
    if action == SUCCESSOR_REQUIRED:
        assert "does not create successors" in line["reason"] and "pipeline" in line["reason"]
        assert on_demand_rotations(kms, key_id) == SUCCESSOR_THRESHOLD  # reserve untouched
    [run] = logs.records("key-rotation-run")
    assert run["create_successors"] is False


def test_a_spent_quota_is_not_retried_as_throttling_and_needs_a_successor(
        kms: Any, create_kms: Any, clock: Clock, faults: Faults, periods: dict[str, int],
        sleeps: list[float]) -> None:
    # KMS says LimitExceededException when the on-demand quota is spent; botocore's standard
    # mode would retry it as throttling. Some AWS pages say the limit is 10, not 25.
    key_id = worn(kms, clock, "secrets", 10)
    faults.fail("RotateKeyOnDemand", "LimitExceededException", key_id=key_id)
    faults.attempts.clear()  # count the function's calls only

    [default] = rotate_keys(kms, [ALIAS("secrets")], clock.now)
    assert (default.action, default.failed) == (SUCCESSOR_REQUIRED, True)
    assert "LimitExceededException after 10 on-demand rotations" in default.reason
    assert faults.attempts[("RotateKeyOnDemand", key_id)] == 1 and sleeps == []

    [creating_run] = rotate_keys(kms, [ALIAS("secrets")], clock.now,
                                 **creating(create_kms, kms, "secrets", key_id))
    assert creating_run.action == SUCCESSOR_CREATED and "quota is spent" in creating_run.reason
    assert alias_target(kms, "secrets") == creating_run.successor_key_id
    assert faults.attempts[("RotateKeyOnDemand", key_id)] == 2


# -- successors (create_successors=True) ------------------------------------------------------
@pytest.fixture
def worn_key(kms: Any, clock: Clock, periods: dict[str, int]) -> str:
    """A weights key with policy, tags and a 120-day automatic rotation that has used its 24."""
    key_id = worn(kms, clock, "model-weights", SUCCESSOR_THRESHOLD, Policy=POLICY,
                  Description="zero-trust-ai dev: model-weights", Tags=TAGS)
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=120)
    return key_id


def assert_is_successor(kms: Any, successor_id: str, old_id: str, periods: dict[str, int]) -> None:
    meta = kms.describe_key(KeyId=successor_id)["KeyMetadata"]
    assert (meta["KeySpec"], meta["KeyUsage"], meta["Origin"]) == (
        "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "AWS_KMS")
    assert meta["Description"] == "zero-trust-ai dev: model-weights" and not meta.get("MultiRegion")
    assert kms.get_key_policy(KeyId=successor_id, PolicyName="default")["Policy"] == POLICY
    tags = kms.list_resource_tags(KeyId=successor_id)["Tags"]
    assert sorted(tags, key=lambda t: t["TagKey"]) == sorted(
        [*TAGS, {"TagKey": PREDECESSOR_TAG, "TagValue": old_id}], key=lambda t: t["TagKey"])
    assert kms.get_key_rotation_status(KeyId=successor_id)["KeyRotationEnabled"] is True
    assert periods[successor_id] == 120
    # The old key still decrypts what it encrypted: enabled, nothing scheduled.
    old = kms.describe_key(KeyId=old_id)["KeyMetadata"]
    assert (old["Enabled"], old["KeyState"]) == (True, "Enabled") and "DeletionDate" not in old


def test_successor_at_the_threshold(kms: Any, create_kms: Any, clock: Clock, worn_key: str,
                                    periods: dict[str, int], faults: Faults, logs: LogLines) -> None:
    run = creating(create_kms, kms, "model-weights", worn_key)
    [decision] = rotate_keys(kms, [ALIAS("model-weights")], clock.now, **run)

    assert (decision.action, decision.key_id, decision.rotations_used) == (
        SUCCESSOR_CREATED, worn_key, SUCCESSOR_THRESHOLD)
    successor = decision.successor_key_id
    assert successor is not None and alias_target(kms, "model-weights") == successor
    assert_is_successor(kms, successor, worn_key, periods)
    assert on_demand_rotations(kms, worn_key) == SUCCESSOR_THRESHOLD  # reserve untouched
    assert faults.attempts[("CreateKey", None)] == 1
    [line] = logs.records()
    assert (line["action"], line["successor_key_id"], line["rotations_used"]) == (
        SUCCESSOR_CREATED, successor, SUCCESSOR_THRESHOLD)

    # The schedule still names the old key until the stack adopts the successor: the alias
    # names a valid successor of it, which is accepted. It is new material this month; next
    # month it is rotated like any key.
    [rerun] = rotate_keys(kms, [ALIAS("model-weights")], clock.now + timedelta(days=3), **run)
    assert rerun.action == ALREADY_ROTATED and rerun.key_id == successor
    clock.now = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)
    [july] = rotate_keys(kms, [ALIAS("model-weights")], clock.now, **run)
    assert (july.action, july.key_id, july.rotations_used) == (ROTATED, successor, 1)
    assert faults.attempts[("CreateKey", None)] == 1


class SimulatedCrash(Exception):  # noqa: N818 - it is the Lambda dying, not an error we handle
    """The function dies (timeout, OOM) right after KMS created the successor."""


def test_a_crash_after_create_key_resumes_with_the_same_successor(
        kms: Any, create_kms: Any, clock: Clock, worn_key: str, periods: dict[str, int],
        faults: Faults) -> None:
    def crash(**_: Any) -> None:
        raise SimulatedCrash

    run = creating(create_kms, kms, "model-weights", worn_key)
    create_kms.meta.events.register("after-call.kms.CreateKey", crash)
    with pytest.raises(SimulatedCrash):
        rotate_keys(kms, [ALIAS("model-weights")], clock.now, **run)
    create_kms.meta.events.unregister("after-call.kms.CreateKey", crash)
    [orphan] = keys_tagged_successor_of(kms, worn_key)
    assert alias_target(kms, "model-weights") == worn_key  # the crash came before UpdateAlias

    [decision] = rotate_keys(kms, [ALIAS("model-weights")], clock.now + timedelta(hours=1), **run)

    assert decision.action == SUCCESSOR_CREATED and "resumed" in decision.reason
    assert decision.successor_key_id == orphan
    assert keys_tagged_successor_of(kms, worn_key) == [orphan]
    assert len(kms.list_keys()["Keys"]) == 2
    assert faults.attempts[("CreateKey", None)] == 1
    assert alias_target(kms, "model-weights") == orphan
    assert_is_successor(kms, orphan, worn_key, periods)


def test_create_key_is_never_retried_and_a_lost_answer_makes_no_second_key(
        kms: Any, create_kms: Any, clock: Clock, worn_key: str, periods: dict[str, int],
        faults: Faults, sleeps: list[float]) -> None:
    run = creating(create_kms, kms, "model-weights", worn_key)
    # KMS fails before creating anything: one attempt, nothing found, the error is reported.
    faults.fail("CreateKey", "KMSInternalException", status=500, times=1)
    [failed] = rotate_keys(kms, [ALIAS("model-weights")], clock.now, **run)
    assert (failed.action, failed.error_code) == (FAILED, "KMSInternalException")
    assert faults.attempts[("CreateKey", None)] == 1 and sleeps == []
    assert faults.attempts[("ListKeys", None)] == 2  # searched before and after CreateKey
    assert keys_tagged_successor_of(kms, worn_key) == []

    # KMS creates the key but the answer is lost (a 5xx or a timeout): still one attempt, and the
    # search after the error finds the key, which is checked and adopted.
    faults.fail("CreateKey", "KMSInternalException", status=500, times=1, executed=True)
    [decision] = rotate_keys(kms, [ALIAS("model-weights")], clock.now + timedelta(hours=1), **run)
    assert decision.action == SUCCESSOR_CREATED
    assert "CreateKey answered KMSInternalException; the key was found by its tag" in decision.reason
    assert faults.attempts[("CreateKey", None)] == 2 and sleeps == []
    [successor] = keys_tagged_successor_of(kms, worn_key)
    assert decision.successor_key_id == successor == alias_target(kms, "model-weights")
    assert_is_successor(kms, successor, worn_key, periods)


@pytest.mark.parametrize("planted_args, fragment", [
    ({"Policy": POLICY.replace("key-rotation", "insider")},
     "a key policy that differs from its predecessor's"),
    ({"Policy": POLICY, "Origin": "EXTERNAL"}, "Origin EXTERNAL"),
    ({"Policy": POLICY, "MultiRegion": True}, "multi-Region"),
])
def test_a_planted_successor_is_refused(kms: Any, create_kms: Any, clock: Clock, worn_key: str,
                                        faults: Faults, planted_args: dict[str, Any],
                                        fragment: str) -> None:
    # Somebody who can tag keys names their own key the successor of the weights key.
    planted = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT", **planted_args,
                             Tags=[{"TagKey": PREDECESSOR_TAG, "TagValue": worn_key}])
    planted_id = planted["KeyMetadata"]["KeyId"]
    faults.attempts.clear()  # count the function's calls only

    [decision] = rotate_keys(kms, [ALIAS("model-weights")], clock.now,
                             **creating(create_kms, kms, "model-weights", worn_key))

    assert decision.action == FAILED and decision.successor_key_id == planted_id
    assert fragment in decision.reason and "possible tampering" in decision.reason
    assert alias_target(kms, "model-weights") == worn_key  # not moved
    assert faults.attempts[("CreateKey", None)] == 0 and faults.attempts[
        ("EnableKeyRotation", planted_id)] == 0


def test_a_multi_region_key_at_the_threshold_is_left_to_the_pipeline(
        kms: Any, create_kms: Any, clock: Clock) -> None:
    key_id = worn(kms, clock, "secrets", SUCCESSOR_THRESHOLD, MultiRegion=True)

    [decision] = rotate_keys(kms, [ALIAS("secrets")], clock.now,
                             **creating(create_kms, kms, "secrets", key_id))

    assert decision.action == SUCCESSOR_REQUIRED and decision.failed
    assert "replicas" in decision.reason and decision.successor_key_id is None
    assert len(kms.list_keys()["Keys"]) == 1 and alias_target(kms, "secrets") == key_id
    assert on_demand_rotations(kms, key_id) == SUCCESSOR_THRESHOLD


def test_creating_successors_needs_a_single_attempt_client(kms: Any) -> None:
    with pytest.raises(ValueError, match="never retries"):
        rotate_keys(kms, [ALIAS("secrets")], datetime.now(UTC), create_successors=True)


# -- the alias must name the expected key, or a valid successor of it ---------------------------
def test_an_alias_moved_to_another_key_fails(kms: Any, clock: Clock) -> None:
    key_id = make_key(kms, "model-weights")
    expected = {ALIAS("model-weights"): arn(kms, key_id)}
    other = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    kms.update_alias(AliasName=ALIAS("model-weights"), TargetKeyId=other["KeyId"])

    [decision] = rotate_keys(kms, [ALIAS("model-weights")], clock.now + timedelta(days=40),
                             expected_key_arns=expected)

    assert decision.action == FAILED and decision.key_id == other["KeyId"]
    assert "neither the expected key" in decision.reason and "moved" in decision.reason
    assert on_demand_rotations(kms, other["KeyId"]) == 0


def test_a_successor_made_by_the_pipeline_is_accepted(kms: Any, clock: Clock) -> None:
    # The default runbook: the pipeline creates the successor with the same policy and the
    # predecessor tag, and moves the alias; the schedule still names the old key until adoption.
    key_id = make_key(kms, "secrets", Policy=POLICY)
    expected = {ALIAS("secrets"): arn(kms, key_id)}
    successor = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT", Policy=POLICY,
                               Tags=[{"TagKey": PREDECESSOR_TAG, "TagValue": key_id}])
    successor_id = successor["KeyMetadata"]["KeyId"]
    kms.update_alias(AliasName=ALIAS("secrets"), TargetKeyId=successor_id)

    clock.now = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
    [decision] = rotate_keys(kms, [ALIAS("secrets")], clock.now, expected_key_arns=expected)

    assert (decision.action, decision.key_id) == (ROTATED, successor_id)


# -- keys that cannot be rotated on demand ------------------------------------------------------
@pytest.mark.parametrize("purpose, args, fragment", [
    ("tokens", {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}, "HMAC_256 GENERATE_VERIFY_MAC"),
    ("signing", {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}, "RSA_2048 SIGN_VERIFY"),
    ("imported", {"Origin": "EXTERNAL"}, "origin EXTERNAL: rotating imported key material"),
])
def test_a_scheduled_key_that_cannot_be_rotated_fails_the_run(
        kms: Any, clock: Clock, logs: LogLines, monkeypatch: pytest.MonkeyPatch,
        purpose: str, args: dict[str, Any], fragment: str) -> None:
    # The schedule names only symmetric hierarchy keys: such a key behind an alias means the
    # alias was moved, which must not pass quietly.
    key_id = make_key(kms, purpose, **args)
    clock.now += timedelta(days=40)
    [decision] = rotate_keys(kms, [ALIAS(purpose)], clock.now)
    assert decision.action == SKIPPED and fragment in decision.reason and decision.failed
    assert "the alias was moved" in decision.reason
    assert on_demand_rotations(kms, key_id) == 0
    [line] = logs.records()
    assert (line["alias"], line["key_id"], line["action"]) == (ALIAS(purpose), key_id, SKIPPED)
    assert fragment in line["reason"]

    monkeypatch.setattr(rotation, "build_kms_client", lambda config=None: kms)
    with pytest.raises(RotationRunError, match=ALIAS(purpose)):
        handler({"aliases": [ALIAS(purpose)],
                 "expectedKeyArns": {ALIAS(purpose): arn(kms, key_id)}}, None)


def test_a_disabled_key_is_skipped_and_fails(kms: Any, clock: Clock) -> None:
    key_id = make_key(kms, "secrets")
    kms.disable_key(KeyId=key_id)
    [decision] = rotate_keys(kms, [ALIAS("secrets")], clock.now + timedelta(days=40))
    assert decision.action == SKIPPED and "key is Disabled" in decision.reason and decision.failed


# -- throttling and errors -----------------------------------------------------------------------
def test_throttling_is_retried_by_the_client(kms: Any, clock: Clock, faults: Faults,
                                             sleeps: list[float]) -> None:
    key_id = make_key(kms, "logs")
    faults.fail("RotateKeyOnDemand", "ThrottlingException", times=3)
    [decision] = rotate_keys(kms, [ALIAS("logs")], clock.now + timedelta(days=40))
    assert decision.action == ROTATED
    assert faults.attempts[("RotateKeyOnDemand", key_id)] == 4
    assert on_demand_rotations(kms, key_id) == 1  # throttled attempts did nothing
    assert len(sleeps) == 3  # backed off before each retry


def test_a_persistent_error_on_one_key_fails_the_run_but_not_the_others(
        kms: Any, clock: Clock, faults: Faults, logs: LogLines,
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock.now = datetime.now(UTC) - timedelta(days=62)  # keys from two months ago; handler uses now
    ids = {purpose: make_key(kms, purpose) for purpose in ("training-data", "model-weights", "secrets")}
    clock.now = datetime.now(UTC)
    faults.fail("RotateKeyOnDemand", "ThrottlingException", key_id=ids["model-weights"])
    monkeypatch.setattr(rotation, "build_kms_client", lambda config=None: kms)

    with pytest.raises(RotationRunError, match=ALIAS("model-weights")):
        handler({"aliases": [ALIAS(p) for p in ids],
                 "expectedKeyArns": {ALIAS(p): arn(kms, key_id) for p, key_id in ids.items()}}, None)

    assert faults.attempts[("RotateKeyOnDemand", ids["model-weights"])] == 8  # every attempt spent
    assert {p: on_demand_rotations(kms, key_id) for p, key_id in ids.items()} == {
        "training-data": 1, "model-weights": 0, "secrets": 1}
    by_alias = {r["alias"]: r for r in logs.records()}
    assert by_alias[ALIAS("model-weights")]["action"] == FAILED
    assert by_alias[ALIAS("model-weights")]["error_code"] == "ThrottlingException"
    assert by_alias[ALIAS("model-weights")]["key_id"] == ids["model-weights"]
    assert by_alias[ALIAS("secrets")]["action"] == ROTATED  # processed after the failure
    [run] = logs.records("key-rotation-run")
    assert run["failed"] == [ALIAS("model-weights")] and run["counts"] == {ROTATED: 2, FAILED: 1}


def test_the_handler_returns_a_summary_and_a_second_run_does_nothing(
        kms: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    clock.now = datetime.now(UTC) - timedelta(days=62)
    key_id = make_key(kms, "logs")
    clock.now = datetime.now(UTC)
    monkeypatch.setattr(rotation, "build_kms_client", lambda config=None: kms)
    event = {"aliases": [ALIAS("logs")], "expectedKeyArns": {ALIAS("logs"): arn(kms, key_id)},
             "createSuccessors": False}

    first = handler(event, None)
    assert first["counts"] == {ROTATED: 1} and first["failed"] == []
    assert first["decisions"][0]["key_id"] == key_id
    assert handler(event, None)["counts"] == {ALREADY_ROTATED: 1}
    assert on_demand_rotations(kms, key_id) == 1


def test_the_handler_builds_a_single_attempt_client_only_to_create_successors(
        kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []

    def build(config: Any = rotation.RETRY_CONFIG) -> Any:
        built.append(config)
        return kms

    monkeypatch.setattr(rotation, "build_kms_client", build)
    key_id = make_key(kms, "logs")
    event = {"aliases": [ALIAS("logs")], "expectedKeyArns": {ALIAS("logs"): arn(kms, key_id)}}
    handler(event, None)
    assert built == [rotation.RETRY_CONFIG]
    built.clear()
    handler({**event, "createSuccessors": True}, None)
    assert built == [SINGLE_ATTEMPT_CONFIG, rotation.RETRY_CONFIG]


def test_an_unknown_alias_fails_the_run(kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rotation, "build_kms_client", lambda config=None: kms)
    with pytest.raises(RotationRunError):
        handler({"aliases": [ALIAS("missing")],
                 "expectedKeyArns": {ALIAS("missing"): f"arn:aws:kms:{REGION}:1:key/x"}}, None)


KEY_ARN = f"arn:aws:kms:{REGION}:111122223333:key/1234"


@pytest.mark.parametrize("event", [
    None, {}, {"aliases": []}, {"aliases": "alias/x"}, {"aliases": ["key/1234"]},
    {"aliases": ["alias/a", "alias/a"], "expectedKeyArns": {"alias/a": KEY_ARN}},
    {"aliases": ["alias/a"]},  # no expected key
    {"aliases": ["alias/a"], "expectedKeyArns": {"alias/b": KEY_ARN}},
    {"aliases": ["alias/a"], "expectedKeyArns": {"alias/a": "alias/a"}},
    {"aliases": ["alias/a"], "expectedKeyArns": {"alias/a": KEY_ARN}, "createSuccessors": "true"},
])
def test_bad_events_are_refused(event: Any) -> None:
    with pytest.raises(ValueError):
        parse_event(event)


def test_successors_are_off_unless_the_event_says_true() -> None:
    base = {"aliases": ["alias/a"], "expectedKeyArns": {"alias/a": KEY_ARN}}
    assert parse_event(base) == RotationRequest(("alias/a",), {"alias/a": KEY_ARN}, False)
    assert parse_event({**base, "createSuccessors": True}).create_successors is True


# -- what moto cannot show: stubbed KMS --------------------------------------------------------
OLD, NEW = "1234abcd-12ab-34cd-56ef-1234567890ab", "0987dcba-09fe-87dc-65ba-ab0987654321"
NOW = datetime(2026, 6, 2, 3, 0, tzinfo=UTC)


def key_metadata(key_id: str = OLD, **fields: Any) -> dict[str, Any]:
    return {"KeyMetadata": {
        "KeyId": key_id, "Arn": f"arn:aws:kms:{REGION}:111122223333:key/{key_id}",
        "CreationDate": datetime(2024, 1, 5, tzinfo=UTC), "Enabled": True, "KeyState": "Enabled",
        "KeyManager": "CUSTOMER", "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT",
        "Origin": "AWS_KMS", "MultiRegion": False, "Description": "zero-trust-ai prod: model-weights",
        **fields}}


def rotations(count: int, kind: str = "ON_DEMAND", last: datetime = datetime(2026, 5, 1, tzinfo=UTC),
              ) -> list[dict[str, Any]]:
    return [{"KeyId": OLD, "RotationType": kind, "RotationDate": last - timedelta(days=31 * i)}
            for i in range(count)]


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("kms", region_name=REGION, aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_status(stubber: Stubber, rotation_list: list[dict[str, Any]], **status: Any) -> None:
    stubber.add_response("describe_key", key_metadata(), {"KeyId": ALIAS("model-weights")})
    stubber.add_response("list_key_rotations", {"Rotations": rotation_list, "Truncated": False},
                         {"KeyId": OLD})
    stubber.add_response("get_key_rotation_status", {"KeyRotationEnabled": True, "KeyId": OLD,
                                                     "RotationPeriodInDays": 90, **status},
                         {"KeyId": OLD})


def test_a_rotation_in_progress_is_left_alone(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_status(stubber, rotations(3), OnDemandRotationStartDate=datetime(2026, 6, 2, 2, tzinfo=UTC))
    # No RotateKeyOnDemand is queued: the Stubber would fail on an unexpected call.
    [decision] = rotate_keys(client, [ALIAS("model-weights")], NOW)
    assert decision.action == ALREADY_ROTATED and "in progress since 2026-06-02T02:00" in decision.reason


def test_an_automatic_rotation_this_month_counts(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_status(stubber, [*rotations(1, "AUTOMATIC", datetime(2026, 6, 1, 7, tzinfo=UTC)),
                            *rotations(5)])
    [decision] = rotate_keys(client, [ALIAS("model-weights")], NOW)
    assert (decision.action, decision.rotations_used) == (ALREADY_ROTATED, 5)
    assert "automatic rotation on 2026-06-01" in decision.reason


def test_a_concurrent_rotation_is_not_an_error(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_status(stubber, rotations(2))
    stubber.add_client_error("rotate_key_on_demand", "ConflictException", expected_params={"KeyId": OLD})
    [decision] = rotate_keys(client, [ALIAS("model-weights")], NOW)
    assert decision.action == ALREADY_ROTATED and not decision.failed


def test_successor_copies_everything_and_never_bypasses_the_lockout_check(
        stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("describe_key", key_metadata(), {"KeyId": ALIAS("model-weights")})
    # 24 on-demand rotations over two pages, plus automatic ones that do not count.
    history = [*rotations(SUCCESSOR_THRESHOLD), *rotations(2, "AUTOMATIC")]
    stubber.add_response("list_key_rotations", {"Rotations": history[:20], "Truncated": True,
                                                "NextMarker": "r2"}, {"KeyId": OLD})
    stubber.add_response("list_key_rotations", {"Rotations": history[20:], "Truncated": False},
                         {"KeyId": OLD, "Marker": "r2"})
    stubber.add_response("get_key_rotation_status", {"KeyRotationEnabled": True, "KeyId": OLD,
                                                     "RotationPeriodInDays": 180}, {"KeyId": OLD})
    expect_no_successor_yet(stubber)
    stubber.add_response("get_key_policy", {"Policy": POLICY}, {"KeyId": OLD, "PolicyName": "default"})
    stubber.add_response("list_resource_tags", {
        "Tags": [TAGS[0], {"TagKey": PREDECESSOR_TAG, "TagValue": "older-key"}], "Truncated": True,
        "NextMarker": "t2"}, {"KeyId": OLD})
    stubber.add_response("list_resource_tags", {"Tags": [TAGS[1]], "Truncated": False},
                         {"KeyId": OLD, "Marker": "t2"})
    # Exact parameters: no BypassPolicyLockoutSafetyCheck, and the old key's own predecessor
    # tag is replaced, not copied.
    stubber.add_response("create_key", key_metadata(NEW, CreationDate=NOW), {
        "Policy": POLICY, "Description": "zero-trust-ai prod: model-weights",
        "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "Origin": "AWS_KMS",
        "MultiRegion": False, "Tags": [*TAGS, {"TagKey": PREDECESSOR_TAG, "TagValue": OLD}]})
    # What was created is checked like any successor before the alias moves to it.
    stubber.add_response("describe_key", key_metadata(NEW, CreationDate=NOW), {"KeyId": NEW})
    stubber.add_response("get_key_policy", {"Policy": POLICY}, {"KeyId": NEW, "PolicyName": "default"})
    stubber.add_response("get_key_policy", {"Policy": POLICY}, {"KeyId": OLD, "PolicyName": "default"})
    stubber.add_response("enable_key_rotation", {}, {"KeyId": NEW, "RotationPeriodInDays": 180})
    stubber.add_response("update_alias", {}, {"AliasName": ALIAS("model-weights"), "TargetKeyId": NEW})

    # One stubbed client stands for both: the queue of answers fixes the order of the calls.
    [decision] = rotate_keys(client, [ALIAS("model-weights")], NOW, create_successors=True,
                             create_key_kms=client)

    assert decision == Decision(ALIAS("model-weights"), SUCCESSOR_CREATED, decision.reason, OLD,
                                SUCCESSOR_THRESHOLD, NEW)
    assert "every 180 days" in decision.reason and f"{OLD} stays enabled" in decision.reason


def expect_no_successor_yet(stubber: Stubber) -> None:
    """ListKeys over two pages; one key unreadable to us, one without the predecessor tag."""
    other, foreign = "5555aaaa-55aa-55aa-55aa-5555aaaa5555", "6666bbbb-66bb-66bb-66bb-6666bbbb6666"
    stubber.add_response("list_keys", {"Keys": [{"KeyId": OLD}, {"KeyId": other}], "Truncated": True,
                                       "NextMarker": "k2"}, {})
    stubber.add_response("list_resource_tags", {"Tags": TAGS, "Truncated": False}, {"KeyId": other})
    stubber.add_response("list_keys", {"Keys": [{"KeyId": foreign}], "Truncated": False},
                         {"Marker": "k2"})
    stubber.add_client_error("list_resource_tags", "AccessDeniedException",
                             expected_params={"KeyId": foreign})


def test_successors_are_found_across_pages(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("list_keys", {"Keys": [{"KeyId": OLD}], "Truncated": True,
                                       "NextMarker": "k2"}, {})
    stubber.add_response("list_keys", {"Keys": [{"KeyId": NEW}], "Truncated": False}, {"Marker": "k2"})
    stubber.add_response("list_resource_tags", {"Tags": TAGS, "Truncated": True, "NextMarker": "t2"},
                         {"KeyId": NEW})
    stubber.add_response("list_resource_tags", {
        "Tags": [{"TagKey": PREDECESSOR_TAG, "TagValue": OLD}], "Truncated": False},
        {"KeyId": NEW, "Marker": "t2"})
    assert find_successors(client, OLD) == [NEW]


def test_other_errors_while_looking_for_a_successor_are_not_swallowed(
        stubbed: tuple[Any, Stubber]) -> None:
    # Only "not ours to read" is passed over (see expect_no_successor_yet); anything else must
    # stop the successor step, or a second successor could be created beside an unseen first.
    client, stubber = stubbed
    stubber.add_response("list_keys", {"Keys": [{"KeyId": NEW}], "Truncated": False}, {})
    stubber.add_client_error("list_resource_tags", "KMSInternalException",
                             expected_params={"KeyId": NEW})
    with pytest.raises(ClientError, match="KMSInternalException"):
        find_successors(client, OLD)
