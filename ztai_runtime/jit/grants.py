"""Request, approve, deny, revoke, list and expire elevations over one DynamoDB table.

Every function takes its AWS clients as arguments and is idempotent: a transition already made is
reported (`JitResult.changed` False), never made twice. Bad input raises `JitError` before any
write. The design is described in the package's docstring.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ztai_runtime.jsonlog import get_logger, log_decision

LOGGER = get_logger("ztai.jit")
WINDOW_POLICY = "ztai-jit-window"
# AWS refuses AssumeRole sessions shorter than 15 minutes; the window policy ends them earlier.
MIN_SESSION_SECONDS = 900
# Privileged elevations' sessions end within this many minutes of being issued, and live at
# least PRIVILEGED_SESSION_MINUTES - SESSION_SLOT (see `session_slots`).
PRIVILEGED_SESSION_MINUTES = 15
SESSION_SLOT = 3
# IAM quotas: the inline policies of one role total at most 10,240 characters (whitespace not
# counted). The window policy of the longest two-person grant must leave room for the role's own.
MAX_ROLE_POLICY_CHARACTERS = 10_240
# AWS KMS API Reference, PutKeyPolicy: the Policy parameter is at most 32768 bytes.
MAX_POLICY_BYTES = 32_768
# Where a trust policy admitting nobody points: its condition can never hold.
CLOSED_BEFORE = "2000-01-01T00:00:00Z"
# `writing`: the approvals are all in and the JIT API is writing the approved key policy; it
# becomes active (or denied, if KMS refuses the document) in the same call.
STATES = ("pending", "writing", "active", "denied", "revoked", "expired")
Clock = Callable[[], datetime]


class JitError(ValueError):
    """A request that cannot be made as asked (unknown elevation, too long, no reason...): nothing
    changed."""


class JitRefusedError(JitError):
    """A request refused on security grounds (self-approval, not an approver): nothing changed."""


@dataclass(frozen=True)
class Elevation:
    """One catalogue entry, as the runtime needs it."""

    name: str
    role_arn: str
    max_minutes: int
    approver_roles: tuple[str, ...]  # role names whose sessions may approve
    approvals_needed: int
    # Privileged (two-person) elevations: each session ends this many minutes after it was
    # issued, whatever DurationSeconds it asked for (see `window_policy`). None: at the expiry.
    session_minutes: int | None = None
    # key-admin elevations: the key whose policy the API writes, once the document it names by
    # SHA-256 is approved (`JitStore.request(policy=...)`). None: no key policy is written.
    key_arn: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who acts: the role (or user) ARN and the person's session name.

    The session name is the person: the human roles' trust binds it to what the identity
    provider asserts (Identity Center's user-name tag, the SAML assertion, the OIDC token's
    subject, an IAM user's name for break-glass) and requires the same value as the session's
    source identity (components/identity.py, docs/identity.md). Approvals are counted, the
    requester recognised and self-approval refused by it."""

    principal_arn: str
    session: str

    @property
    def who(self) -> str:
        return f"{self.principal_arn}/{self.session}"

    @property
    def role_name(self) -> str:
        return self.principal_arn.rsplit("/", 1)[-1]

    @property
    def is_role_session(self) -> bool:
        """An assumed role's session (`caller_from_arn` turns it into the role's ARN), not an IAM
        user."""
        parts = self.principal_arn.split(":", 5)
        return len(parts) == 6 and parts[2] == "iam" and parts[5].startswith("role/")

    @property
    def account(self) -> str:
        parts = self.principal_arn.split(":")
        return parts[4] if len(parts) > 4 else ""


@dataclass(frozen=True)
class JitResult:
    changed: bool
    message: str
    request: dict[str, Any]


def caller_from_arn(arn: str) -> Caller:
    """The caller of an STS GetCallerIdentity ARN: an assumed role's session, or an IAM user."""
    assumed = re.fullmatch(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([\w+=,.@-]+)/([\w+=,.@-]+)", arn)
    if assumed:
        partition, account, role, session = assumed.groups()
        return Caller(f"arn:{partition}:iam::{account}:role/{role}", session)
    user = re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:user/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)", arn)
    if user:
        return Caller(arn, user.group(1))
    raise JitError(f"caller {arn!r} is neither an assumed-role session nor an IAM user; "
                   "sign in through the identity provider")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _policy(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def closed_trust_policy(account_id: str, partition: str = "aws") -> str:
    """Trust that admits nobody: the condition is never true (the stack creates roles with it)."""
    return _policy([{"Sid": "NobodyUntilApproved", "Effect": "Allow",
                     "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                     "Action": "sts:AssumeRole",
                     "Condition": {"DateLessThan": {"aws:CurrentTime": CLOSED_BEFORE}}}])


def open_trust_policy(caller: Caller, expires_at: str) -> str:
    """Trust admitting the requester's own session until the expiry: their role, their session
    (`aws:userid` ends in its name), and their source identity. The source identity is the
    person the IdP asserted when they signed in to their role; it persists through role chaining
    and cannot be changed ("Monitor and control actions taken with assumed roles", IAM user
    guide), so someone else in the same role who names a session after the requester is still
    refused. sts:SetSourceIdentity is allowed because chaining a session that has one sets it
    again; the elevated session is named after the person too, for the audit trail.
    sts:TagSession is allowed because role chaining passes the person's transitive session tags
    (their MFA and device proofs); a tag of the project's own (`ztai:*`: `ztai:access=break-glass`
    or `ztai:role=key-administrator` would exempt the session from the boundary's checks) never."""
    return _policy([{"Sid": "ApprovedElevation", "Effect": "Allow",
                     "Principal": {"AWS": caller.principal_arn},
                     "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                     "Condition": {"DateLessThan": {"aws:CurrentTime": expires_at},
                                   "StringLike": {"aws:userid": f"*:{caller.session}"},
                                   "StringEquals": {"sts:SourceIdentity": caller.session,
                                                    "sts:RoleSessionName": caller.session}}},
                    {"Sid": "NoProjectTagsFromTheSession", "Effect": "Deny",
                     "Principal": {"AWS": caller.principal_arn}, "Action": "sts:TagSession",
                     "Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": ["ztai:*"]}}}])


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicated = sorted({key for key in keys if keys.count(key) > 1})
    if duplicated:
        raise ValueError(f"the key {duplicated[0]!r} is given twice in one object")
    return dict(pairs)


def checked_policy(policy: str) -> str:
    """The SHA-256 (hex) of a key policy document, once it is one KMS could take: a JSON object
    with a Statement list, at most 32 KB (AWS KMS API Reference, PutKeyPolicy: Policy, up to
    32768 bytes). JitError otherwise, naming what is wrong."""
    try:
        data = policy.encode("utf-8")
    except UnicodeEncodeError:
        raise JitError("the key policy is not valid text (a lone surrogate): KMS takes UTF-8") from None
    if not 1 <= len(data) <= MAX_POLICY_BYTES:
        raise JitError(f"the key policy is {len(data)} bytes: KMS takes 1 to {MAX_POLICY_BYTES}")
    try:
        # A key given twice in one object reads one way to the approver and maybe another to KMS.
        document = json.loads(policy, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise JitError("the key policy nests too deeply to be read") from None
    except ValueError as error:
        raise JitError(f"the key policy is not JSON: {error}") from None
    statements = document.get("Statement") if isinstance(document, dict) else None
    if not isinstance(statements, list) or not statements:
        raise JitError("the key policy is not a policy document: a JSON object with a Statement list")
    return hashlib.sha256(data).hexdigest()


def window_policy(expires_at: str, revoked_floor: str, session_minutes: int | None = None) -> str:
    """The role's own expiry and the revocation floor for sessions already issued; with
    `session_minutes`, also a short life for every session (`session_slots`)."""
    return _policy([
        {"Sid": "EndsAtExpiry", "Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"DateGreaterThanEquals": {"aws:CurrentTime": expires_at}}},
        {"Sid": "RevokeOlderSessions", "Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"DateLessThan": {"aws:TokenIssueTime": revoked_floor}}},
        *(session_slots(_parse(revoked_floor), _parse(expires_at), session_minutes)
          if session_minutes else []),
    ])


def session_slots(start: datetime, expires: datetime, minutes: int) -> list[dict[str, Any]]:
    """Denies that end every session at most `minutes` after it was issued.

    No IAM condition sets a session's length (DurationSeconds is the caller's, and AWS's shortest is
    15 minutes; IAM has no key for it), and IAM does no date arithmetic, so the grant's window is
    cut into SESSION_SLOT-minute slots: slot k denies every session issued before its end T_k once
    the time reaches T_k + minutes - SESSION_SLOT. A session issued at t, in the slot ending at
    T_k, is refused from T_k + minutes - SESSION_SLOT <= t + minutes, and lives at least
    minutes - SESSION_SLOT. One statement per slot: a 60-minute grant takes 20 (about 4 KB of the
    10,240 characters IAM allows a role's inline policies).
    """
    statements: list[dict[str, Any]] = []
    slot_end = start + timedelta(minutes=SESSION_SLOT)
    while slot_end - timedelta(minutes=SESSION_SLOT) < expires:
        statements.append({
            "Sid": f"SessionsEnd{minutes}MinutesAfterIssue{len(statements)}", "Effect": "Deny",
            "Action": "*", "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": _iso(slot_end)},
                          "DateGreaterThanEquals": {"aws:CurrentTime": _iso(
                              slot_end + timedelta(minutes=minutes - SESSION_SLOT))}}})
        slot_end += timedelta(minutes=SESSION_SLOT)
    return statements


class JitStore:
    """The elevation requests of one table, and the catalogue they are checked against."""

    def __init__(self, *, table: str, catalogue: Mapping[str, Elevation], dynamodb: Any, iam: Any,
                 scheduler: Any = None, expiry_target: Mapping[str, str] | None = None,
                 clock: Clock = _now, kms: Any = None) -> None:
        """dynamodb, iam, scheduler, kms: boto3 clients (kms writes approved key policies).
        expiry_target: {"Arn": the expiry function, "RoleArn": the role Scheduler invokes it with};
        none: no schedule (the grant still ends by its own conditions)."""
        self.table, self.catalogue, self.dynamodb, self.iam = table, catalogue, dynamodb, iam
        self.scheduler, self.expiry_target, self.clock, self.kms = scheduler, expiry_target, clock, kms

    # -- reading -------------------------------------------------------------------------------

    def _get(self, request_id: str) -> dict[str, Any]:
        if not re.fullmatch(r"[0-9a-f]{32}", request_id):
            raise JitError(f"request id {request_id!r} is not one: ids are 32 hexadecimal digits "
                           "(see `ztai access list`)")
        item = self.dynamodb.get_item(TableName=self.table, Key={"pk": {"S": f"request#{request_id}"}},
                                      ConsistentRead=True).get("Item")
        if item is None:
            raise JitError(f"no request {request_id}")
        return _plain(item)

    def list(self, *, state: str | None = None, viewer: Caller | None = None) -> list[dict[str, Any]]:
        """The requests, oldest first. viewer: only what that person may see (the API always
        passes the caller): their own requests, and those of the elevations they may approve.
        None: every request (for the operators' own tools and tests)."""
        if state is not None and state not in STATES:
            raise JitError(f"state {state!r} is not one of {', '.join(STATES)}")
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self.dynamodb.scan(**kwargs)
            items += [_plain(item) for item in page.get("Items", [])
                      if item["pk"]["S"].startswith("request#")]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        # A grant whose expiry passed is expired, whether or not its schedule ran yet.
        now = _iso(self.clock())
        for item in items:
            if item["state"] == "active" and item["expires_at"] <= now:
                item["state"] = "expired"
        return sorted((item for item in items if (state is None or item["state"] == state)
                       and (viewer is None or self._may_see(viewer, item))),
                      key=lambda item: item["requested_at"])

    def _may_see(self, viewer: Caller, item: Mapping[str, Any]) -> bool:
        if viewer.session == item["requester_session"]:
            return True
        elevation = self.catalogue.get(item["elevation"])
        return elevation is not None and _is_approver(viewer, elevation)

    # -- transitions ---------------------------------------------------------------------------

    def request(self, caller: Caller, elevation_name: str, minutes: int, reason: str,
                policy: str | None = None) -> JitResult:
        """policy: for a key-admin elevation, the key policy document to write (the exact text).
        The approvers approve its SHA-256, and the API writes it when the last approval arrives:
        two people approve what is written, not a person who may then write anything."""
        elevation = self.catalogue.get(elevation_name)
        if elevation is None:
            raise JitError(f"unknown elevation {elevation_name!r}; the catalogue has: "
                           f"{', '.join(sorted(self.catalogue)) or 'nothing'}")
        if not 1 <= minutes <= elevation.max_minutes:
            raise JitError(f"duration {minutes} minutes: {elevation_name} allows 1 to "
                           f"{elevation.max_minutes} minutes")
        if not reason.strip():
            raise JitError("a reason is required: say what the elevation is for (the approvers read it)")
        digest = ""
        if policy is not None:
            if elevation.key_arn is None:
                raise JitError(f"{elevation_name} writes no key policy: a policy document goes only with "
                               "a key-admin elevation")
            digest = checked_policy(policy)
        now = _iso(self.clock())
        request_id = uuid.uuid4().hex
        self._take_lock(elevation_name, request_id)
        item = {
            "request_id": request_id, "elevation": elevation_name, "role_arn": elevation.role_arn,
            "requester": caller.who, "requester_principal": caller.principal_arn,
            "requester_session": caller.session, "reason": reason.strip(), "minutes": minutes,
            "approvals_needed": elevation.approvals_needed, "approvers": [], "approver_people": [],
            "state": "pending",
            "requested_at": now, "expires_at": "", "events": [],
            "key_arn": elevation.key_arn or "", "policy_document": policy or "", "policy_sha256": digest,
        }
        requested = self._event("requested", caller, reason.strip())
        item["events"] = [requested]
        self.dynamodb.put_item(TableName=self.table,
                               Item=_typed({"pk": f"request#{request_id}", **item})["M"],
                               ConditionExpression="attribute_not_exists(pk)")
        self._log(requested, item)
        return JitResult(True, f"requested {elevation_name} for {minutes} minutes: {request_id}", item)

    def approve(self, caller: Caller, request_id: str, policy_sha256: str | None = None) -> JitResult:
        """policy_sha256: required when the request carries a key policy: the SHA-256 of the
        document the approver read (`ztai access list --json` shows it)."""
        item = self._get(request_id)
        elevation = self.catalogue.get(item["elevation"])
        if elevation is None:
            raise JitError(f"elevation {item['elevation']!r} is no longer in the catalogue; deny the request")
        # Approvals are counted per person (session name), whatever role they approve through.
        if caller.session in item["approver_people"]:
            return JitResult(False, f"{request_id}: already approved by {caller.session}", item)
        if item["state"] != "pending":
            return JitResult(False, f"{request_id} is {item['state']}, not pending: nothing to approve", item)
        self._check_approver(caller, item, elevation)
        self._check_document(item, policy_sha256)
        try:
            updated = self.dynamodb.update_item(
                TableName=self.table, Key={"pk": {"S": f"request#{request_id}"}},
                UpdateExpression="SET approvers = list_append(approvers, :me), "
                                 "approver_people = list_append(approver_people, :person), "
                                 "approved_sha256 = "
                                 "list_append(if_not_exists(approved_sha256, :none), :sha), "
                                 "events = list_append(events, :ev)",
                ConditionExpression="#s = :pending AND NOT contains(approver_people, :who)",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":me": {"L": [{"S": caller.who}]}, ":person": {"L": [{"S": caller.session}]},
                    ":who": {"S": caller.session}, ":pending": {"S": "pending"},
                    ":sha": {"L": [{"S": (policy_sha256 or "").lower()}]}, ":none": {"L": []},
                    ":ev": {"L": [_typed(event := self._event("approved", caller, ""))]}},
                ReturnValues="ALL_NEW")["Attributes"]
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            item = self._get(request_id)
            return JitResult(False, f"{request_id}: already approved by {caller.session}, or no longer "
                                    f"pending ({item['state']})", item)
        item = _plain(updated)
        self._log(event, item)
        # The catalogue, not the stored item, says how many approvals an elevation needs.
        needed = max(int(item["approvals_needed"]), elevation.approvals_needed)
        if len(item["approver_people"]) < needed:
            return JitResult(True, f"{request_id}: approval {len(item['approvers'])} of {needed} recorded",
                             item)
        return self._activate(caller, item)

    def deny(self, caller: Caller, request_id: str, reason: str) -> JitResult:
        if not reason.strip():
            raise JitError("a reason is required to deny: the requester reads it")
        item = self._get(request_id)
        elevation = self.catalogue.get(item["elevation"])
        if item["state"] != "pending":
            return JitResult(False, f"{request_id} is {item['state']}, not pending: nothing to deny", item)
        if elevation is not None:
            self._check_approver(caller, item, elevation)
        return self._finish(caller, item, "denied", reason.strip(), from_state="pending")

    def revoke(self, caller: Caller, request_id: str, reason: str) -> JitResult:
        """On demand: by the requester, or by one of the elevation's approvers."""
        if not reason.strip():
            raise JitError("a reason is required to revoke")
        item = self._get(request_id)
        elevation = self.catalogue.get(item["elevation"])
        # The requester is the person (the bound session name), whichever role they call from.
        is_requester = caller.session == item["requester_session"]
        if not is_requester and (elevation is None or not _is_approver(caller, elevation)):
            raise JitRefusedError(f"{caller.who} may not revoke {request_id}: only its requester or an "
                                  f"approver of {item['elevation']} may")
        return self._end(caller, item, "revoked", reason.strip())

    def expire(self, request_id: str) -> JitResult:
        """The schedule's call at expiry (or anyone's later): ends an active grant whose time is up."""
        item = self._get(request_id)
        if item["state"] != "active":
            result = JitResult(False, f"{request_id} is {item['state']}: nothing to expire", item)
            log_decision(LOGGER, "jit.expire.skipped", request_id=request_id, state=item["state"])
            return result
        if _iso(self.clock()) < item["expires_at"]:
            log_decision(LOGGER, "jit.expire.early", request_id=request_id, expires_at=item["expires_at"])
            return JitResult(False, f"{request_id} expires at {item['expires_at']}: not yet", item)
        system = Caller("scheduler", "expiry")
        return self._end(system, item, "expired", "the approved duration ended")

    # -- internals -----------------------------------------------------------------------------

    def _check_approver(self, caller: Caller, item: Mapping[str, Any], elevation: Elevation) -> None:
        if caller.session == item["requester_session"]:
            raise JitRefusedError(f"{caller.who} requested {item['request_id']} and may not approve or "
                                  "deny it (self-approval is refused)")
        if not _is_approver(caller, elevation):
            raise JitRefusedError(f"{caller.who} is not an approver of {elevation.name}; its approvers "
                                  f"are the roles {', '.join(elevation.approver_roles)} (their sessions in "
                                  f"account {_account_of(elevation.role_arn)}, never an IAM user)")

    @staticmethod
    def _check_document(item: Mapping[str, Any], policy_sha256: str | None) -> None:
        expected = item.get("policy_sha256") or ""
        if not expected:
            if policy_sha256 is not None:
                raise JitError(f"{item['request_id']} writes no key policy: approve it without a SHA-256")
            return
        if policy_sha256 is None:
            raise JitError(f"{item['request_id']} writes the policy of {item['key_arn']}: read the document "
                           "(`ztai access list --json`) and approve it with --policy-sha256 <its SHA-256>")
        if policy_sha256.lower() != expected:
            raise JitRefusedError(f"the document you approve, SHA-256 {policy_sha256}, is not the one "
                                  f"{item['request_id']} would write ({expected}): nothing approved")

    def _check_approved_document(self, item: Mapping[str, Any]) -> None:
        """Every approval counted named the SHA-256 being written, and the key is the catalogue's."""
        elevation = self.catalogue.get(item["elevation"])
        if elevation is None or elevation.key_arn is None or elevation.key_arn != item["key_arn"]:
            raise JitRefusedError(f"the request names the key {item['key_arn']}, not the one the catalogue "
                                  f"gives {item['elevation']}: not written")
        hashes = item.get("approved_sha256") or []
        needed = max(int(item["approvals_needed"]), elevation.approvals_needed)
        if len(hashes) < needed or any(h != item["policy_sha256"] for h in hashes):
            raise JitRefusedError("not every approval named the document being written: not written")

    def _write_policy(self, item: Mapping[str, Any]) -> None:
        """Write the approved document, exactly, to the key (kms:PutKeyPolicy, with KMS's own
        lockout safety check: a document that would keep this function from writing the next one
        is refused)."""
        if self.kms is None:
            raise JitError("this function has no KMS client: the approved policy cannot be written")
        # The stored document is checked against the approved SHA-256 again here: an item changed
        # in the table after the approvals (by whoever can write the table) is not written.
        if hashlib.sha256(item["policy_document"].encode("utf-8")).hexdigest() != item["policy_sha256"]:
            raise JitRefusedError("the stored document is not the one approved (its SHA-256 differs): "
                                  "not written")
        try:
            self.kms.put_key_policy(KeyId=item["key_arn"], PolicyName="default",
                                    Policy=item["policy_document"])
        except self.kms.exceptions.ClientError as error:
            details = error.response.get("Error", {})
            raise JitError(f"KMS refused the approved policy: {details.get('Code')}: "
                           f"{details.get('Message')}") from None

    def _take_lock(self, elevation_name: str, request_id: str) -> None:
        """One grant per elevation: a conditional write, so two requests racing get one winner. A
        lock still held by a grant whose time is up (its schedule has not run yet) is ended first."""
        for _attempt in range(2):
            try:
                self.dynamodb.put_item(
                    TableName=self.table,
                    Item={"pk": {"S": f"lock#{elevation_name}"}, "request_id": {"S": request_id}},
                    ConditionExpression="attribute_not_exists(pk)")
                return
            except self.dynamodb.exceptions.ConditionalCheckFailedException:
                lock = self.dynamodb.get_item(
                    TableName=self.table, Key={"pk": {"S": f"lock#{elevation_name}"}},
                    ConsistentRead=True).get("Item")
                holder = lock["request_id"]["S"] if lock else ""
                if not holder:
                    continue  # released meanwhile
                held = self._get(holder)
                if held["state"] == "active" and held["expires_at"] <= _iso(self.clock()):
                    self.expire(holder)
                    continue
                if held["state"] not in ("pending", "writing", "active"):
                    # Left by an ending interrupted between its two writes: release it.
                    with contextlib.suppress(self.dynamodb.exceptions.ConditionalCheckFailedException):
                        self.dynamodb.delete_item(
                            TableName=self.table, Key={"pk": {"S": f"lock#{elevation_name}"}},
                            ConditionExpression="request_id = :id",
                            ExpressionAttributeValues={":id": {"S": holder}})
                    continue
                raise JitError(f"{elevation_name} is already requested or granted (request {holder}); one "
                               "grant per elevation at a time: wait for it to end, or revoke it") from None
        raise JitError(f"{elevation_name} is being requested by someone else right now; try again")

    def _lock_holder(self, elevation_name: str) -> str | None:
        lock = self.dynamodb.get_item(TableName=self.table, Key={"pk": {"S": f"lock#{elevation_name}"}},
                                      ConsistentRead=True).get("Item")
        return lock["request_id"]["S"] if lock else None

    def _event(self, action: str, caller: Caller, why: str, **extra: str) -> dict[str, Any]:
        return {"action": action, "by": caller.who, "why": why, "at": _iso(self.clock()), **extra}

    @staticmethod
    def _log(event: Mapping[str, Any], item: Mapping[str, Any]) -> None:
        """One line per change, written once the change is stored (a lost race logs nothing)."""
        log_decision(LOGGER, f"jit.{event['action']}", request_id=item["request_id"],
                     elevation=item["elevation"], requester=item["requester"], reason=item["reason"],
                     **event)

    def _activate(self, caller: Caller, item: dict[str, Any]) -> JitResult:
        now = self.clock()
        expires_at = _iso(now + timedelta(minutes=int(item["minutes"])))
        request_id = item["request_id"]
        from_state = "pending"
        if item.get("policy_document"):
            # Claim the request first (pending -> writing, conditional): a deny or a second final
            # approval racing this one finds it no longer pending, so the document is written
            # once, and never for a request denied meanwhile. Then the approved document, before
            # anything opens: if it is refused, the request ends denied and no session was ever
            # admitted.
            try:
                self.dynamodb.update_item(
                    TableName=self.table, Key={"pk": {"S": f"request#{request_id}"}},
                    UpdateExpression="SET #s = :writing", ConditionExpression="#s = :pending",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues={":writing": {"S": "writing"}, ":pending": {"S": "pending"}})
            except self.dynamodb.exceptions.ConditionalCheckFailedException:
                item = self._get(request_id)
                return JitResult(False, f"{request_id} is already {item['state']}", item)
            from_state = "writing"
            try:
                self._check_approved_document(item)
                self._write_policy(item)
            except JitError as error:
                result = self._finish(caller, item, "denied", str(error), from_state="writing")
                return JitResult(result.changed, f"{request_id}: {error}; the request is closed, ask again",
                                 result.request)
        written = {"policy_written": item["policy_sha256"]} if item.get("policy_document") else {}
        try:
            updated = self.dynamodb.update_item(
                TableName=self.table, Key={"pk": {"S": f"request#{request_id}"}},
                UpdateExpression="SET #s = :active, granted_at = :now, expires_at = :exp, "
                                 "events = list_append(events, :ev)",
                ConditionExpression="#s = :from",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":active": {"S": "active"}, ":from": {"S": from_state}, ":now": {"S": _iso(now)},
                    ":exp": {"S": expires_at},
                    ":ev": {"L": [_typed(event := self._event("granted", caller, "", expires_at=expires_at,
                                                              **written))]}},
                ReturnValues="ALL_NEW")["Attributes"]
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            item = self._get(request_id)
            if written:  # ended while the document was written (a revoke of a `writing` request)
                log_decision(LOGGER, "jit.policy-written-after-end", request_id=request_id,
                             state=item["state"], **written)
            return JitResult(False, f"{request_id} is already {item['state']}", item)
        item = _plain(updated)
        self._log(event, item)
        elevation = self.catalogue.get(item["elevation"])
        # The role comes from the catalogue, not the stored item.
        role_arn = elevation.role_arn if elevation is not None else item["role_arn"]
        role = role_arn.rsplit("/", 1)[-1]
        requester = Caller(item["requester_principal"], item["requester_session"])
        # Window first: by the time the trust admits the requester, the expiry already binds. The
        # floor is the grant's own time: no session issued before it (one a previous grant's
        # revocation raced, say) comes back to life under this grant.
        session_minutes = elevation.session_minutes if elevation is not None else None
        self.iam.put_role_policy(RoleName=role, PolicyName=WINDOW_POLICY,
                                 PolicyDocument=window_policy(expires_at, _iso(now), session_minutes))
        self.iam.update_assume_role_policy(RoleName=role,
                                           PolicyDocument=open_trust_policy(requester, expires_at))
        self._schedule(request_id, expires_at)
        return JitResult(True, f"{request_id}: granted until {expires_at}", item)

    def _schedule(self, request_id: str, expires_at: str) -> None:
        if self.scheduler is None or self.expiry_target is None:
            return
        # A retry finds the schedule already there (ConflictException): nothing to do.
        with contextlib.suppress(self.scheduler.exceptions.ConflictException):
            self.scheduler.create_schedule(
                Name=f"ztai-jit-{request_id}", ScheduleExpression=f"at({expires_at[:-1]})",
                ScheduleExpressionTimezone="UTC", FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={**self.expiry_target, "Input": json.dumps({"request_id": request_id})})

    def _end(self, caller: Caller, item: dict[str, Any], outcome: str, why: str) -> JitResult:
        request_id = item["request_id"]
        if item["state"] in ("pending", "writing"):
            # Nothing is open yet (a `writing` request left by a call that stopped half-way, or
            # one being written right now, whose writer then finds it ended and opens nothing).
            return self._finish(caller, item, outcome, why, from_state=item["state"])
        if item["state"] != "active":
            return JitResult(False, f"{request_id} is already {item['state']}: nothing to end", item)
        if outcome == "revoked" and item["expires_at"] <= _iso(self.clock()):
            outcome, why = "expired", f"the approved duration ended ({why})"
        # IAM first, then the state: if a write fails, the request is still active, so a retry
        # (the caller's, or Lambda's for the schedule) finds it and does the writes again. Both
        # writes are idempotent. Done the other way, a failed write would leave the trust open
        # behind a request recorded as ended, and retries would see nothing to end. The lock is
        # released only once the state is stored, so no newer grant exists meanwhile; an ending
        # that read the item before another one finished finds the lock held by a newer request
        # and leaves the role alone.
        if self._lock_holder(item["elevation"]) not in (None, request_id):
            return self._finish(caller, item, outcome, why, from_state="active")
        role = item["role_arn"].rsplit("/", 1)[-1]
        partition, account = item["role_arn"].split(":")[1], _account_of(item["role_arn"])
        now = _iso(self.clock())
        # Floor first: sessions issued before now are refused even while the trust change spreads.
        self.iam.put_role_policy(RoleName=role, PolicyName=WINDOW_POLICY,
                                 PolicyDocument=window_policy(now, now))
        self.iam.update_assume_role_policy(RoleName=role,
                                           PolicyDocument=closed_trust_policy(account, partition))
        if self.scheduler is not None:
            # Fired already (and deleted itself), or never created: nothing to do.
            with contextlib.suppress(self.scheduler.exceptions.ResourceNotFoundException):
                self.scheduler.delete_schedule(Name=f"ztai-jit-{request_id}")
        return self._finish(caller, item, outcome, why, from_state="active")

    def _finish(self, caller: Caller, item: dict[str, Any], outcome: str, why: str, *,
                from_state: str) -> JitResult:
        request_id = item["request_id"]
        try:
            updated = self.dynamodb.update_item(
                TableName=self.table, Key={"pk": {"S": f"request#{request_id}"}},
                UpdateExpression="SET #s = :to, ended_at = :now, events = list_append(events, :ev)",
                ConditionExpression="#s = :from",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":to": {"S": outcome}, ":from": {"S": from_state}, ":now": {"S": _iso(self.clock())},
                    ":ev": {"L": [_typed(event := self._event(outcome, caller, why))]}},
                ReturnValues="ALL_NEW")["Attributes"]
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            item = self._get(request_id)
            return JitResult(False, f"{request_id} is already {item['state']}", item)
        self._log(event, _plain(updated))
        # Only this request's lock is released: a later request may hold the elevation by now.
        with contextlib.suppress(self.dynamodb.exceptions.ConditionalCheckFailedException):
            self.dynamodb.delete_item(TableName=self.table, Key={"pk": {"S": f"lock#{item['elevation']}"}},
                                      ConditionExpression="request_id = :id",
                                      ExpressionAttributeValues={":id": {"S": request_id}})
        return JitResult(True, f"{request_id}: {outcome}", _plain(updated))


def _account_of(arn: str) -> str:
    return arn.split(":")[4]


def _is_approver(caller: Caller, elevation: Elevation) -> bool:
    """A session of one of the elevation's approver roles, in the stack's own account (the
    elevation role's): a role of the same name in another account, or an IAM user named like
    one, never counts."""
    return (caller.is_role_session and caller.account == _account_of(elevation.role_arn)
            and caller.role_name in elevation.approver_roles)


def _typed(value: Any) -> dict[str, Any]:
    """A plain value as a DynamoDB attribute value (strings, integers, lists, maps)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Sequence):
        return {"L": [_typed(entry) for entry in value]}
    if isinstance(value, Mapping):
        return {"M": {key: _typed(entry) for key, entry in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__}")


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _value(attribute) for key, attribute in item.items()}


def _value(attribute: Mapping[str, Any]) -> Any:
    (kind, value), = attribute.items()
    if kind == "N":
        return int(value)
    if kind == "L":
        return [_value(entry) for entry in value]
    if kind == "M":
        return _plain(value)
    return value
