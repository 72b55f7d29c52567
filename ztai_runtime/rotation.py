"""Monthly rotation of the key hierarchy's symmetric keys (key rotation).

KMS automatic rotation cannot run more often than every 90 days, so an EventBridge Scheduler
schedule invokes `handler` every day with

    {"aliases": ["alias/zero-trust-ai/<env>/<purpose>", ...],
     "expectedKeyArns": {"<alias>": "<ARN of the key the stack declares for it>", ...},
     "createSuccessors": false}

The first run of a UTC month rotates; the others find that rotation and do nothing, so a failed
run is simply retried the next day. For each alias, `rotate_keys` decides one of:

- `rotated`: `RotateKeyOnDemand` was started on the key the alias names;
- `successor-due-soon`: rotated, and the key will reach `SUCCESSOR_THRESHOLD` within
  `SUCCESSOR_NOTICE` more rotations while this function will not create its successor (the
  default, or a multi-Region key): create it through the pipeline now. Not a failure;
- `already-rotated-this-month`: nothing to do, because in the current UTC month the key got new
  material already (a completed on-demand or automatic rotation, an on-demand rotation still in
  progress, or the key itself was created this month);
- `successor-created` (only with `"createSuccessors": true`): the key has used
  `SUCCESSOR_THRESHOLD` of its on-demand rotations (or KMS refused one with
  LimitExceededException), so a successor key was created with the same policy, description,
  spec, usage, tags and automatic rotation period, plus the tag `PREDECESSOR_TAG`, and the alias
  was moved to it. The old key stays enabled: it still decrypts everything it encrypted. Nothing
  here disables or deletes a key;
- `successor-required`: the key needs a successor that this function does not create: by default
  (creating one needs kms:PutKeyPolicy on every key, see docs/keys-and-rotation.md), or because the key is
  multi-Region (a new primary and replicas with their own policies are the pipeline's job);
- `skipped`: the key cannot be rotated on demand (HMAC, asymmetric, imported material, custom key
  store, replica, AWS managed, not enabled). The schedule names only symmetric keys of the
  hierarchy, so this means somebody moved the alias or disabled the key;
- `failed`: an AWS error that survived the client's retries, or a state that needs a human, such
  as an alias that names neither the expected key nor a valid successor of it.

`successor-required`, `skipped` and `failed` fail the run: the other aliases are still processed,
then the handler raises, so the failure is visible (Lambda retries the asynchronous invocation and
counts an error, which raises the function's alarm).

A successor is adopted only if it is what this function would have created: a customer managed,
enabled, single-Region SYMMETRIC_DEFAULT encryption key with KMS-generated material and a key
policy equal to its predecessor's. Anyone who can tag a key could otherwise plant one.

Every decision is one JSON line (`ztai_runtime.jsonlog`). Reruns are safe: a crash between
`CreateKey` and `UpdateAlias` is resumed from the successor found through its `PREDECESSOR_TAG`.
`CreateKey` is not idempotent, so it goes through a client that never retries, and after any
error the successor search runs again before the error is reported (a lost response must not make
a second key). Two runs must never overlap, which the function's reserved concurrency of 1
guarantees.

This module imports only the standard library, boto3/botocore, `ztai_runtime.jsonlog` and
`ztai_runtime.retries`: it ships with them as a Lambda asset.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ztai_runtime.jsonlog import get_logger, log_decision
from ztai_runtime.retries import retry_config

# boto3 clients are generated at runtime and carry no static types; this names the boundary.
KmsClient = Any

# AWS allows at most 25 on-demand rotations per key over its lifetime, a quota that cannot be
# raised (KMS developer guide, "Resource quotas"). Some API reference text for RotateKeyOnDemand
# says 10: KMS's LimitExceededException is therefore handled as "quota spent" whatever the count.
ON_DEMAND_ROTATION_LIMIT = 25
# One on-demand rotation is kept back for incident response: if a key is suspected exposed in the
# month it would reach the limit, responders can still rotate it at once while the pipeline builds
# a successor. Monthly rotation therefore uses 24 and then moves to a successor.
INCIDENT_RESERVE = 1
SUCCESSOR_THRESHOLD = ON_DEMAND_ROTATION_LIMIT - INCIDENT_RESERVE
# Rotations (months) of notice before the threshold when a human must create the successor.
SUCCESSOR_NOTICE = 3
# Names the key a successor replaces; also how a rerun finds a successor created before a crash.
PREDECESSOR_TAG = "zero-trust-ai:predecessor-key-id"
# How many successors an alias may be ahead of the key the stack declares (adoption pending).
MAX_SUCCESSOR_CHAIN = 3
# Used for a successor only when the predecessor reports no period (rotation disabled there):
# the key hierarchy's period, the shortest KMS allows.
DEFAULT_ROTATION_PERIOD_DAYS = 90

# Standard retries with backoff on throttling (ztai_runtime.retries), 8 attempts per call in total.
# LimitExceededException is taken out of the retries (see build_kms_client).
RETRY_CONFIG = retry_config(8)
# For CreateKey only: it is not idempotent, so a retry after a lost response makes a second key.
SINGLE_ATTEMPT_CONFIG = retry_config(1)

ROTATED = "rotated"
SUCCESSOR_DUE_SOON = "successor-due-soon"
ALREADY_ROTATED = "already-rotated-this-month"
SUCCESSOR_CREATED = "successor-created"
SUCCESSOR_REQUIRED = "successor-required"
SKIPPED = "skipped"
FAILED = "failed"
# Decisions that fail the run: the key did not get new material this month, or the alias no
# longer names what the schedule was built for; a human must act.
FAILING_ACTIONS = frozenset({FAILED, SUCCESSOR_REQUIRED, SKIPPED})

# Errors on other accounts' or services' keys met while looking for a successor: not ours to read.
_UNREADABLE_KEY_ERRORS = frozenset({"AccessDeniedException", "NotFoundException",
                                    "KMSInvalidStateException"})

logger = get_logger("ztai_runtime.rotation")


class RotationRunError(RuntimeError):
    """At least one alias ended in a failing decision; raised after all aliases were processed."""


@dataclass(frozen=True)
class Decision:
    """What happened to one alias, logged as one JSON line."""

    alias: str
    action: str
    reason: str
    key_id: str | None = None
    rotations_used: int | None = None
    successor_key_id: str | None = None
    error_code: str | None = None

    @property
    def failed(self) -> bool:
        return self.action in FAILING_ACTIONS


@dataclass(frozen=True)
class RotationRequest:
    """The schedule's input, validated by `parse_event`."""

    aliases: tuple[str, ...]
    expected_key_arns: Mapping[str, str]
    create_successors: bool = False


def _quota_is_not_throttling(response: Any = None, **_: Any) -> bool | None:
    """needs-retry hook: KMS reports request-rate throttling as ThrottlingException and a spent
    quota (on-demand rotations, keys...) as LimitExceededException, which botocore's standard mode
    retries as throttling. Retrying a spent quota only delays the answer. False stops retrying;
    None leaves the decision to the standard handler."""
    if response is not None and response[1].get("Error", {}).get("Code") == "LimitExceededException":
        return False
    return None


def build_kms_client(config: Config = RETRY_CONFIG) -> KmsClient:
    """A KMS client as the Lambda uses it: region from the Lambda environment, retries configured
    (pass SINGLE_ATTEMPT_CONFIG for the CreateKey client)."""
    kms = boto3.client("kms", config=config)
    # Lambda's bundled boto3 may lag behind; fail at once with a clear message, not per key.
    if "RotateKeyOnDemand" not in kms.meta.service_model.operation_names:
        raise RuntimeError("this boto3 does not know kms:RotateKeyOnDemand (added mid-2024); "
                           "use a newer Lambda runtime or bundle boto3")
    kms.meta.events.register_first("needs-retry.kms", _quota_is_not_throttling)
    return kms


def parse_event(event: Any) -> RotationRequest:
    """The schedule's input; anything else is a configuration error."""
    shape = ('{"aliases": ["alias/...", ...], "expectedKeyArns": {"alias/...": "arn:...:key/...", '
             '...}, "createSuccessors": false}')
    if not isinstance(event, Mapping):
        raise ValueError(f"expected an event {shape}, got {event!r}")
    aliases = event.get("aliases")
    if (not isinstance(aliases, list) or not aliases
            or not all(isinstance(a, str) and a.startswith("alias/") for a in aliases)):
        raise ValueError(f"expected an event {shape}, got {event!r}")
    if len(set(aliases)) != len(aliases):
        raise ValueError(f"aliases must be distinct, got {aliases}")
    expected = event.get("expectedKeyArns")
    if (not isinstance(expected, Mapping) or set(expected) != set(aliases)
            or not all(isinstance(arn, str) and arn.startswith("arn:") and ":key/" in arn
                       for arn in expected.values())):
        raise ValueError(f"expectedKeyArns must give the key ARN of every alias, and only those; "
                         f"got {expected!r} for {aliases}")
    create_successors = event.get("createSuccessors", False)
    if not isinstance(create_successors, bool):
        raise ValueError(f"createSuccessors must be true or false, got {create_successors!r}")
    return RotationRequest(tuple(aliases), dict(expected), create_successors)


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: rotate every alias of the event, then fail if any decision failed."""
    request = parse_event(event)
    create_key_kms = build_kms_client(SINGLE_ATTEMPT_CONFIG) if request.create_successors else None
    decisions = rotate_keys(build_kms_client(), request.aliases, datetime.now(UTC),
                            expected_key_arns=request.expected_key_arns,
                            create_successors=request.create_successors,
                            create_key_kms=create_key_kms)
    summary = summarize(decisions)
    log_decision(logger, "key-rotation-run", create_successors=request.create_successors,
                 **{k: v for k, v in summary.items() if k != "decisions"})
    if summary["failed"]:
        raise RotationRunError(f"rotation failed for {', '.join(summary['failed'])}; "
                                "see the key-rotation log lines")
    return summary


def summarize(decisions: Sequence[Decision]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for decision in decisions:
        counts[decision.action] = counts.get(decision.action, 0) + 1
    return {"decisions": [asdict(d) for d in decisions], "counts": counts,
            "failed": [d.alias for d in decisions if d.failed]}


@dataclass(frozen=True)
class _Run:
    """What every alias of one run shares."""

    kms: KmsClient
    now: datetime
    create_successors: bool
    create_key_kms: KmsClient | None


def rotate_keys(kms: KmsClient, aliases: Sequence[str], now: datetime, *,
                expected_key_arns: Mapping[str, str] | None = None,
                create_successors: bool = False,
                create_key_kms: KmsClient | None = None) -> list[Decision]:
    """Decide and act for each alias in turn; an AWS error on one never stops the others.

    expected_key_arns: the key each alias should name; an alias naming anything else than that
        key or a valid successor of it fails. None: not checked (the handler always passes it).
    create_successors: create successors at the threshold (needs kms:PutKeyPolicy on the keys);
        default False: answer `successor-required` instead.
    create_key_kms: the client CreateKey goes through, built with SINGLE_ATTEMPT_CONFIG;
        required with create_successors.
    """
    if create_successors and create_key_kms is None:
        raise ValueError("create_successors needs create_key_kms, a client that never retries "
                         "(CreateKey is not idempotent)")
    run = _Run(kms, now, create_successors, create_key_kms)
    decisions = []
    for alias in aliases:
        # What was learnt before an error, so that the failed decision still names the key.
        progress: dict[str, Any] = {}
        expected = (expected_key_arns or {}).get(alias)
        try:
            decision = _rotate_alias(run, alias, expected, progress)
        except ClientError as error:
            # Throttling lands here only once the client's retries are spent; other codes
            # (AccessDenied, NotFound, LimitExceeded...) are not retried.
            code = error.response.get("Error", {}).get("Code", "ClientError")
            decision = Decision(alias, FAILED, str(error), error_code=code, **progress)
        except BotoCoreError as error:  # connection or read timeout, after retries
            decision = Decision(alias, FAILED, f"{type(error).__name__}: {error}",
                                error_code=type(error).__name__, **progress)
        log_decision(logger, "key-rotation", month=f"{now:%Y-%m}",
                     **{k: v for k, v in asdict(decision).items() if v is not None})
        decisions.append(decision)
    return decisions


def _month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def ineligibility(meta: Mapping[str, Any]) -> str | None:
    """Why KMS would refuse (or this function must not attempt) on-demand rotation, or None."""
    spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec")
    if meta.get("KeyManager") != "CUSTOMER":
        return "AWS managed key: KMS rotates it yearly and refuses on-demand rotation"
    if spec != "SYMMETRIC_DEFAULT" or meta.get("KeyUsage") != "ENCRYPT_DECRYPT":
        return (f"{spec} {meta.get('KeyUsage')} key: KMS rotates on demand only symmetric "
                "encryption keys (not HMAC or asymmetric keys)")
    if meta.get("CustomKeyStoreId") or meta.get("Origin") in ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"):
        return "key in a custom key store: KMS cannot rotate it on demand"
    if meta.get("Origin") != "AWS_KMS":
        return (f"origin {meta.get('Origin')}: rotating imported key material needs new material "
                "imported first (PENDING_ROTATION), which this function does not hold")
    if (meta.get("MultiRegionConfiguration") or {}).get("MultiRegionKeyType") == "REPLICA":
        return "multi-Region replica: rotate its primary key, replicas follow"
    if meta.get("KeyState") != "Enabled":
        return f"key is {meta.get('KeyState')}: KMS rotates only enabled keys"
    return None


def successor_problem(kms: KmsClient, successor: Mapping[str, Any],
                      predecessor: Mapping[str, Any]) -> str | None:
    """Why `successor` (KeyMetadata) is not a key this function would have made to replace
    `predecessor`, or None. Whoever can tag a key can name it a successor: only the properties
    and the policy tell a real one from a planted one."""
    expected = {"KeyManager": "CUSTOMER", "Origin": "AWS_KMS", "KeySpec": "SYMMETRIC_DEFAULT",
                "KeyUsage": "ENCRYPT_DECRYPT", "KeyState": "Enabled"}
    wrong = [f"{name} {successor.get(name)}" for name, value in expected.items()
             if successor.get(name) != value]
    if successor.get("MultiRegion"):
        wrong.append("multi-Region")
    if successor.get("CustomKeyStoreId"):
        wrong.append(f"custom key store {successor['CustomKeyStoreId']}")
    if not wrong:
        policies = [json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
                    for meta in (successor, predecessor)]
        if policies[0] != policies[1]:
            wrong.append("a key policy that differs from its predecessor's")
    if not wrong:
        return None
    return (f"key {successor['KeyId']} is tagged as successor of {predecessor['KeyId']} but has "
            f"{', '.join(wrong)} (expected an enabled, customer managed, single-Region "
            "SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key with AWS_KMS material and the same policy): "
            "possible tampering, or the predecessor's policy changed since (adopt the successor, "
            "docs/runbooks/key-rotation.md); not used")


def _target_problem(kms: KmsClient, meta: Mapping[str, Any], expected_arn: str) -> str | None:
    """Why the key an alias names is neither `expected_arn` nor a valid successor chain of it."""
    key = meta
    for _ in range(MAX_SUCCESSOR_CHAIN + 1):
        if key["Arn"] == expected_arn:
            return None
        tags = _pages(kms, "list_resource_tags", "Tags", KeyId=key["KeyId"])
        predecessor_id = next((t["TagValue"] for t in tags if t["TagKey"] == PREDECESSOR_TAG), None)
        if predecessor_id is None:
            return (f"the alias names {meta['Arn']}, which is neither the expected key "
                    f"{expected_arn} nor a successor of it: the alias was moved outside the "
                    "rotation (possible tampering)")
        predecessor = kms.describe_key(KeyId=predecessor_id)["KeyMetadata"]
        if (problem := successor_problem(kms, key, predecessor)) is not None:
            return f"the alias names {meta['Arn']}: {problem}"
        key = predecessor
    return (f"the alias names {meta['Arn']}, more than {MAX_SUCCESSOR_CHAIN} successors away from "
            f"the expected key {expected_arn}: adopt the successors (docs/runbooks/key-rotation.md)")


def _rotate_alias(run: _Run, alias: str, expected_arn: str | None,
                  progress: dict[str, Any]) -> Decision:
    kms = run.kms
    meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
    key_id = progress["key_id"] = meta["KeyId"]
    if expected_arn is not None and (problem := _target_problem(kms, meta, expected_arn)):
        return Decision(alias, FAILED, problem, key_id)
    if (reason := ineligibility(meta)) is not None:
        return Decision(alias, SKIPPED, f"{reason}; the schedule names only symmetric keys of the "
                        "hierarchy, so the alias was moved or the key changed", key_id)

    rotations = list(_pages(kms, "list_key_rotations", "Rotations", KeyId=key_id))
    used = progress["rotations_used"] = sum(1 for r in rotations if r.get("RotationType") == "ON_DEMAND")
    status = kms.get_key_rotation_status(KeyId=key_id)
    month_start = _month_start(run.now)
    if (started := status.get("OnDemandRotationStartDate")) is not None:
        return Decision(alias, ALREADY_ROTATED, f"on-demand rotation in progress since "
                        f"{started.isoformat()}", key_id, used)
    this_month = [r for r in rotations if r.get("RotationDate") and r["RotationDate"] >= month_start]
    if this_month:
        latest = max(this_month, key=lambda r: r["RotationDate"])
        return Decision(alias, ALREADY_ROTATED, f"{str(latest.get('RotationType')).lower()} rotation on "
                        f"{latest['RotationDate'].isoformat()}", key_id, used)
    if meta["CreationDate"] >= month_start:
        return Decision(alias, ALREADY_ROTATED, f"key created on {meta['CreationDate'].isoformat()} "
                        "with new material", key_id, used)

    if used >= SUCCESSOR_THRESHOLD:
        return _needs_successor(run, alias, meta, status, used, progress,
                                f"{used} of {ON_DEMAND_ROTATION_LIMIT} on-demand rotations used "
                                f"({INCIDENT_RESERVE} kept for incident response)")
    try:
        kms.rotate_key_on_demand(KeyId=key_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        # Another caller started a rotation since GetKeyRotationStatus: the key is rotating.
        if code == "ConflictException":
            return Decision(alias, ALREADY_ROTATED, "on-demand rotation started concurrently",
                            key_id, used)
        # The on-demand quota is spent earlier than counted (the documented limit is 25 or 10
        # depending on the page): the key needs a successor now, reserve or not.
        if code == "LimitExceededException":
            return _needs_successor(run, alias, meta, status, used, progress,
                                    f"KMS refused RotateKeyOnDemand with LimitExceededException "
                                    f"after {used} on-demand rotations: the key's on-demand quota "
                                    "is spent")
        raise
    used += 1
    reason = (f"on-demand rotation {used} of {ON_DEMAND_ROTATION_LIMIT} started "
              f"({INCIDENT_RESERVE} kept for incident response)")
    manual = not run.create_successors or bool(meta.get("MultiRegion"))
    if manual and used >= SUCCESSOR_THRESHOLD - SUCCESSOR_NOTICE:
        months = max(SUCCESSOR_THRESHOLD - used, 0)
        return Decision(alias, SUCCESSOR_DUE_SOON, f"{reason}; a successor is required in {months} "
                        "month(s) and this function will not create it: create it through the "
                        "pipeline now (docs/runbooks/key-rotation.md)", key_id, used)
    return Decision(alias, ROTATED, reason, key_id, used)


def _needs_successor(run: _Run, alias: str, meta: Mapping[str, Any], status: Mapping[str, Any],
                     used: int, progress: dict[str, Any], why: str) -> Decision:
    key_id = meta["KeyId"]
    if meta.get("MultiRegion"):
        return Decision(alias, SUCCESSOR_REQUIRED, f"{why} on a multi-Region key: the pipeline must "
                        "create a new primary with replicas and move the aliases in every region",
                        key_id, used)
    if not run.create_successors:
        return Decision(alias, SUCCESSOR_REQUIRED, f"{why}: this function does not create successors "
                        "(createSuccessors is false, the default): create the successor through the "
                        "pipeline (docs/runbooks/key-rotation.md)", key_id, used)
    return _move_to_successor(run, alias, meta, status, used, progress, why)


def _move_to_successor(run: _Run, alias: str, meta: Mapping[str, Any], status: Mapping[str, Any],
                       used: int, progress: dict[str, Any], why: str) -> Decision:
    kms, old_id = run.kms, meta["KeyId"]
    found = find_successors(kms, old_id)
    if found:
        how = "resumed with the successor created by an earlier run"
    else:
        try:
            found = [_create_successor(run, meta)]
            how = "created"
        except (ClientError, BotoCoreError) as error:
            # The key may exist although the answer was lost (timeout, 5xx): look before reporting,
            # so that the next run does not create a second one.
            found = find_successors(kms, old_id)
            if not found:
                raise
            how = f"created (CreateKey answered {_error_code(error)}; the key was found by its tag)"
    if len(found) > 1:
        return Decision(alias, FAILED, f"several keys name {old_id} as predecessor "
                        f"({', '.join(found)}): possible tampering, a human must choose one",
                        old_id, used)
    successor_id = found[0]
    # If a later step fails, the log names the successor the next run will resume with.
    progress["successor_key_id"] = successor_id
    successor = kms.describe_key(KeyId=successor_id)["KeyMetadata"]
    if (problem := successor_problem(kms, successor, meta)) is not None:
        return Decision(alias, FAILED, problem, old_id, used, successor_id)
    period = int(status.get("RotationPeriodInDays") or DEFAULT_ROTATION_PERIOD_DAYS)
    # Idempotent: enabling rotation on a key that rotates already only (re)sets the period.
    kms.enable_key_rotation(KeyId=successor_id, RotationPeriodInDays=period)
    kms.update_alias(AliasName=alias, TargetKeyId=successor_id)
    return Decision(alias, SUCCESSOR_CREATED,
                    f"{why}: successor {how}, automatic rotation every {period} days, alias moved; "
                    f"{old_id} stays enabled for decryption", old_id, used, successor_id)


def _error_code(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__


def _create_successor(run: _Run, meta: Mapping[str, Any]) -> str:
    old_id = meta["KeyId"]
    # The copied policy must let this caller PutKeyPolicy on the new key (KMS's lockout check):
    # the key hierarchy's rotation grant with create_successors does. The check is never bypassed.
    policy = run.kms.get_key_policy(KeyId=old_id, PolicyName="default")["Policy"]
    tags = [tag for tag in _pages(run.kms, "list_resource_tags", "Tags", KeyId=old_id)
            if tag["TagKey"] != PREDECESSOR_TAG]
    if run.create_key_kms is None:  # rotate_keys refuses create_successors without it
        raise RuntimeError("no single-attempt client for CreateKey")
    created = run.create_key_kms.create_key(
        Policy=policy,
        Description=meta.get("Description", ""),
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
        Origin="AWS_KMS",
        MultiRegion=False,
        Tags=[*tags, {"TagKey": PREDECESSOR_TAG, "TagValue": old_id}],
    )
    successor_id: str = created["KeyMetadata"]["KeyId"]
    return successor_id


def find_successors(kms: KmsClient, predecessor_id: str) -> list[str]:
    """Keys of this account and region tagged as successors of `predecessor_id`.

    KMS cannot search by tag, so every key is listed and its tags read. Keys whose policy does not
    let this caller read them (other teams', AWS managed) cannot be ours and are passed over. A
    tag proves nothing: callers check what they find with `successor_problem`.
    """
    successors = []
    for entry in _pages(kms, "list_keys", "Keys"):
        if entry["KeyId"] == predecessor_id:
            continue
        try:
            tags = list(_pages(kms, "list_resource_tags", "Tags", KeyId=entry["KeyId"]))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _UNREADABLE_KEY_ERRORS:
                continue
            raise
        if {"TagKey": PREDECESSOR_TAG, "TagValue": predecessor_id} in tags:
            successors.append(entry["KeyId"])
    return successors


def _pages(kms: KmsClient, operation: str, items: str, **params: Any) -> Iterator[dict[str, Any]]:
    for page in kms.get_paginator(operation).paginate(**params):
        yield from page.get(items, [])
