"""Monthly rotation of the key hierarchy's symmetric keys (control map §4.2).

KMS automatic rotation cannot run more often than every 90 days, so an EventBridge Scheduler
schedule invokes `handler` once a month with `{"aliases": ["alias/zero-trust-ai/<env>/<purpose>",
...]}`. For each alias, `rotate_keys` decides one of:

- `rotated`: `RotateKeyOnDemand` was started on the key the alias names;
- `already-rotated-this-month`: nothing to do, because in the current UTC month the key got new
  material already (a completed on-demand or automatic rotation, an on-demand rotation still in
  progress, or the key itself was created this month);
- `successor-created`: the key has used `SUCCESSOR_THRESHOLD` of its on-demand rotations, so a
  successor key was created with the same policy, description, spec, usage, tags and automatic
  rotation period, plus the tag `PREDECESSOR_TAG`, and the alias was moved to it. The old key stays
  enabled: it still decrypts everything it encrypted. Nothing here disables or deletes a key;
- `successor-required`: a multi-Region key reached the threshold. A successor needs a new primary
  and a replica (with its own policy) in every replica region, which is the pipeline's job. The
  run fails so that somebody does it;
- `skipped`: the key cannot be rotated on demand (HMAC, asymmetric, imported material, custom key
  store, replica, AWS managed, not enabled), with the reason;
- `failed`: an AWS error that survived the client's retries (throttling, quotas, access) or a state
  that needs a human. The other aliases are still processed; the run then raises, so the failure is
  visible (Lambda retries the asynchronous invocation and counts an error).

Every decision is one JSON line (`ztai_runtime.jsonlog`). Reruns are safe: a second run in the same
month does nothing, and a crash between `CreateKey` and `UpdateAlias` is resumed from the successor
found through its `PREDECESSOR_TAG` (CreateKey is not idempotent, so it is never called twice for
one predecessor). Two runs must never overlap, which the function's reserved concurrency of 1
guarantees.

This module imports only the standard library and boto3/botocore: it ships as a Lambda asset.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ztai_runtime.jsonlog import get_logger, log_decision

# boto3 clients are generated at runtime and carry no static types; this names the boundary.
KmsClient = Any

# AWS allows at most 25 on-demand rotations per key over its lifetime (RotateKeyOnDemand API
# reference; LimitExceededException after that).
ON_DEMAND_ROTATION_LIMIT = 25
# One on-demand rotation is kept back for incident response: if a key is suspected exposed in the
# month it would reach the limit, responders can still rotate it at once while the pipeline builds
# a successor. Monthly rotation therefore uses 24 and then moves to a successor.
INCIDENT_RESERVE = 1
SUCCESSOR_THRESHOLD = ON_DEMAND_ROTATION_LIMIT - INCIDENT_RESERVE
# Names the key a successor replaces; also how a rerun finds a successor created before a crash.
PREDECESSOR_TAG = "zero-trust-ai:predecessor-key-id"
# Used for a successor only when the predecessor reports no period (rotation disabled there):
# the key hierarchy's period, the shortest KMS allows.
DEFAULT_ROTATION_PERIOD_DAYS = 90

# Standard retry mode: exponential backoff with jitter on throttling and transient errors
# (ThrottlingException, LimitExceededException, 5xx), 8 attempts per call in total (botocore's
# `max_attempts` would count retries only). Adaptive mode would add client-side rate limiting,
# which one sequential caller does not need.
RETRY_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 8},
                      connect_timeout=5, read_timeout=20)

ROTATED = "rotated"
ALREADY_ROTATED = "already-rotated-this-month"
SUCCESSOR_CREATED = "successor-created"
SUCCESSOR_REQUIRED = "successor-required"
SKIPPED = "skipped"
FAILED = "failed"
# Decisions that fail the run: the key did not get new material this month and a human must act.
FAILING_ACTIONS = frozenset({FAILED, SUCCESSOR_REQUIRED})

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


def build_kms_client() -> KmsClient:
    """The KMS client the Lambda uses: region from the Lambda environment, retries configured."""
    kms = boto3.client("kms", config=RETRY_CONFIG)
    # Lambda's bundled boto3 may lag behind; fail at once with a clear message, not per key.
    if "RotateKeyOnDemand" not in kms.meta.service_model.operation_names:
        raise RuntimeError("this boto3 does not know kms:RotateKeyOnDemand (added mid-2024); "
                           "use a newer Lambda runtime or bundle boto3")
    return kms


def parse_event(event: Any) -> list[str]:
    """The aliases of the schedule's input; anything else is a configuration error."""
    aliases = event.get("aliases") if isinstance(event, Mapping) else None
    if (not isinstance(aliases, list) or not aliases
            or not all(isinstance(a, str) and a.startswith("alias/") for a in aliases)):
        raise ValueError(f'expected an event {{"aliases": ["alias/...", ...]}}, got {event!r}')
    if len(set(aliases)) != len(aliases):
        raise ValueError(f"aliases must be distinct, got {aliases}")
    return list(aliases)


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: rotate every alias of the event, then fail if any decision failed."""
    aliases = parse_event(event)
    summary = summarize(rotate_keys(build_kms_client(), aliases, datetime.now(UTC)))
    log_decision(logger, "key-rotation-run", **{k: v for k, v in summary.items() if k != "decisions"})
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


def rotate_keys(kms: KmsClient, aliases: Sequence[str], now: datetime) -> list[Decision]:
    """Decide and act for each alias in turn; an AWS error on one never stops the others."""
    decisions = []
    for alias in aliases:
        # What was learnt before an error, so that the failed decision still names the key.
        progress: dict[str, Any] = {}
        try:
            decision = _rotate_alias(kms, alias, now, progress)
        except ClientError as error:
            # Throttling (ThrottlingException, LimitExceededException) lands here only once the
            # client's retries are spent; other codes (AccessDenied, NotFound...) are not retried.
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


def _rotate_alias(kms: KmsClient, alias: str, now: datetime, progress: dict[str, Any]) -> Decision:
    meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
    key_id = progress["key_id"] = meta["KeyId"]
    if (reason := ineligibility(meta)) is not None:
        return Decision(alias, SKIPPED, reason, key_id)

    rotations = list(_pages(kms, "list_key_rotations", "Rotations", KeyId=key_id))
    used = progress["rotations_used"] = sum(1 for r in rotations if r.get("RotationType") == "ON_DEMAND")
    status = kms.get_key_rotation_status(KeyId=key_id)
    month_start = _month_start(now)
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
        if meta.get("MultiRegion"):
            return Decision(alias, SUCCESSOR_REQUIRED, f"{used} of {ON_DEMAND_ROTATION_LIMIT} on-demand "
                            "rotations used on a multi-Region key: the pipeline must create a new "
                            "primary with replicas and move the aliases in every region", key_id, used)
        return _move_to_successor(kms, alias, meta, status, used, progress)

    try:
        kms.rotate_key_on_demand(KeyId=key_id)
    except ClientError as error:
        # Another caller started a rotation since GetKeyRotationStatus: the key is rotating.
        if error.response.get("Error", {}).get("Code") == "ConflictException":
            return Decision(alias, ALREADY_ROTATED, "on-demand rotation started concurrently",
                            key_id, used)
        raise
    return Decision(alias, ROTATED, f"on-demand rotation {used + 1} of {ON_DEMAND_ROTATION_LIMIT} "
                    f"started ({INCIDENT_RESERVE} kept for incident response)", key_id, used + 1)


def _move_to_successor(kms: KmsClient, alias: str, meta: Mapping[str, Any],
                       status: Mapping[str, Any], used: int, progress: dict[str, Any]) -> Decision:
    old_id = meta["KeyId"]
    found = find_successors(kms, old_id)
    if len(found) > 1:
        return Decision(alias, FAILED, f"several keys name {old_id} as predecessor "
                        f"({', '.join(found)}): a human must choose one", old_id, used)
    if found:
        successor_id = found[0]
        state = kms.describe_key(KeyId=successor_id)["KeyMetadata"]["KeyState"]
        if state != "Enabled":
            return Decision(alias, FAILED, f"successor {successor_id} of {old_id} is {state}: "
                            "a human must decide", old_id, used, successor_id)
        how = "resumed with the successor created by an earlier run"
    else:
        successor_id = _create_successor(kms, meta)
        how = "created"
    # If a later step fails, the log names the successor the next run will resume with.
    progress["successor_key_id"] = successor_id
    period = int(status.get("RotationPeriodInDays") or DEFAULT_ROTATION_PERIOD_DAYS)
    # Idempotent: enabling rotation on a key that rotates already only (re)sets the period.
    kms.enable_key_rotation(KeyId=successor_id, RotationPeriodInDays=period)
    kms.update_alias(AliasName=alias, TargetKeyId=successor_id)
    return Decision(alias, SUCCESSOR_CREATED,
                    f"{used} of {ON_DEMAND_ROTATION_LIMIT} on-demand rotations used: successor {how}, "
                    f"automatic rotation every {period} days, alias moved; {old_id} stays enabled "
                    "for decryption", old_id, used, successor_id)


def _create_successor(kms: KmsClient, meta: Mapping[str, Any]) -> str:
    old_id = meta["KeyId"]
    # The copied policy must let this caller PutKeyPolicy on the new key (KMS's lockout check):
    # the key hierarchy's rotation grant does. The check is never bypassed.
    policy = kms.get_key_policy(KeyId=old_id, PolicyName="default")["Policy"]
    tags = [tag for tag in _pages(kms, "list_resource_tags", "Tags", KeyId=old_id)
            if tag["TagKey"] != PREDECESSOR_TAG]
    created = kms.create_key(
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
    let this caller read them (other teams', AWS managed) cannot be ours and are passed over.
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
