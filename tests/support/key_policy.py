"""Evaluate a KMS key policy for one request, as IAM does, for the KMS stand-in.

Covered: Effect Allow/Deny; Principal "*", {"AWS": ARN, account id, account root ARN or "*"}
(strings or lists; service and federated principals never match an IAM role), and {"Service":
name} for a caller that is an AWS service principal (`logs.<region>.amazonaws.com`); Action and Resource
with `*`/`?` wildcards; the condition operators StringEquals, StringNotEquals, StringEqualsIgnoreCase,
StringNotEqualsIgnoreCase, StringLike, StringNotLike, ArnEquals, ArnNotEquals, ArnLike, ArnNotLike,
Bool, Null and the date operators DateEquals, DateNotEquals, DateLessThan, DateLessThanEquals,
DateGreaterThan and DateGreaterThanEquals (ISO 8601 times in UTC such as `aws:CurrentTime` and
`aws:TokenIssueTime`), each with the `IfExists` suffix; single-valued condition keys. Identity
policies (a role's own, `evaluate(..., identity=True)`) have no Principal: they apply to
the role they are attached to. Semantics: every
operator and every key in a Condition must hold (AND), any listed value may match (OR), and for a
negated operator none may (NOR); a key absent from the request makes a positive operator false and
a negated operator true (IAM's rule; `...IfExists`: true); an explicit Deny wins over any Allow; no
Allow is an implicit deny.

The account principal (`arn:aws:iam::<account>:root` or the bare id) delegates to IAM. The stand-in
has no IAM policies, so it assumes the caller's IAM policy allows everything the key policy
delegates: the most permissive assumption, which makes a refusal in a test meaningful.

IAM roles' policies too (`evaluate_session`): identity-based policies (statements without a
Principal), a permissions boundary and a resource policy, combined as IAM's policy evaluation logic
does within one account (IAM User Guide, "Policy evaluation logic"): an explicit Deny in any of them
wins; otherwise the request needs an Allow from the identity-based policies or the resource policy,
and, when the role has a boundary, an Allow from the boundary as well. A trust policy is a resource
policy whose caller may be a federated identity provider (`{"Federated": <provider ARN>}`, matched
when the request's principal_arn is that provider's ARN). IpAddress and NotIpAddress compare
aws:SourceIp with CIDRs (IPv4 and IPv6).

NotResource and NotAction: the statement applies to every resource (action) it does not list.

Policy variables (`${aws:username}`, `${aws:PrincipalTag/ztai-user}`, `${sts:RoleSessionName}`)
in condition values are replaced by the request's value of that key (IAM User Guide, "IAM policy
elements: Variables and tags"). A variable whose key is absent from the request, or multivalued,
cannot be resolved: the condition then does not match, whatever its operator ("Policy variables
with no value" on that page), so a statement that needs it neither allows nor denies. Keys such as
sts:RoleSessionName and sts:SourceIdentity are plain single-valued keys of the request.

Anything else (NotPrincipal, ForAllValues, ForAnyValue beyond
StringEquals/StringLike, numeric operators, variables outside condition values or with a default
value, unknown operators) raises UnsupportedPolicyError: the stand-in then refuses the request
instead of guessing.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Effect = Literal["allow", "explicit-deny", "implicit-deny"]


class UnsupportedPolicyError(ValueError):
    """The policy uses something this evaluator does not implement: refuse, never guess."""


@dataclass(frozen=True)
class Request:
    # the caller's role ARN (arn:aws:iam::<account>:role/<name>), or a service principal's name
    principal_arn: str
    action: str  # e.g. "kms:Decrypt"
    resource: str  # the key ARN
    # condition keys present in the request; a multivalued key (aws:TagKeys) as a tuple
    context: Mapping[str, str | tuple[str, ...]]


@dataclass(frozen=True)
class Decision:
    effect: Effect
    statements: tuple[str, ...]  # the Sids (or positions) that decided it


_STRING_OPERATORS: dict[str, tuple[bool, Callable[[str, str], bool]]] = {
    "StringEquals": (False, lambda policy, actual: policy == actual),
    "StringNotEquals": (True, lambda policy, actual: policy == actual),
    "StringEqualsIgnoreCase": (False, lambda policy, actual: policy.casefold() == actual.casefold()),
    "StringNotEqualsIgnoreCase": (True, lambda policy, actual: policy.casefold() == actual.casefold()),
    "StringLike": (False, lambda policy, actual: _wildcard(policy, actual)),
    "StringNotLike": (True, lambda policy, actual: _wildcard(policy, actual)),
    "ArnEquals": (False, lambda policy, actual: policy == actual),
    "ArnNotEquals": (True, lambda policy, actual: policy == actual),
    "ArnLike": (False, lambda policy, actual: _wildcard(policy, actual)),
    "ArnNotLike": (True, lambda policy, actual: _wildcard(policy, actual)),
    "Bool": (False, lambda policy, actual: policy.lower() == actual.lower()),
}


def _in_network(cidr: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)
    except ValueError:
        raise UnsupportedPolicyError(f"IpAddress: {cidr!r} / {address!r} is not a CIDR / address") from None


_STRING_OPERATORS["IpAddress"] = (False, _in_network)
_STRING_OPERATORS["NotIpAddress"] = (True, _in_network)


def _wildcard(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL
    return re.fullmatch(expression, value, flags) is not None


def _strings(value: Any, what: str, *, variables: bool = False) -> list[str]:
    values = value if isinstance(value, list) else [value]
    result = []
    for item in values:
        if isinstance(item, bool):
            result.append("true" if item else "false")
        elif isinstance(item, str | int):
            text = str(item)
            if "${" in text and not variables:
                raise UnsupportedPolicyError(f"{what}: policy variables ({text!r}) are supported in "
                                             "condition values only")
            result.append(text)
        else:
            raise UnsupportedPolicyError(f"{what}: value {item!r} is not a string")
    return result


_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class _UnresolvedVariableError(Exception):
    """A policy variable names a key the request does not carry (or a multivalued one)."""


def _substitute(text: str, lowered: Mapping[str, str | tuple[str, ...]], where: str) -> str:
    """`text` with each `${key}` replaced by the request's value of key (names are not
    case-sensitive, as for condition keys); _UnresolvedVariableError when a key is absent or multivalued."""
    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name or name in ("*", "?", "$") or "," in name or "'" in name:
            raise UnsupportedPolicyError(f"{where}: policy variable {match.group(0)!r} (special "
                                         "characters and default values) is not supported")
        actual = lowered.get(name.lower())
        if actual is None or isinstance(actual, tuple):
            raise _UnresolvedVariableError(name)
        return actual

    return _VARIABLE.sub(value_of, text)


def _account(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) >= 6 and parts[0] == "arn" else None


def _principal_matches(statement: Mapping[str, Any], principal_arn: str, where: str, *,
                        identity: bool = False) -> bool:
    if identity:
        # An identity-based policy (or boundary) applies to whoever holds it.
        if "Principal" in statement or "NotPrincipal" in statement:
            raise UnsupportedPolicyError(f"{where}: an identity-based policy has no Principal")
        return True
    if "NotPrincipal" in statement:
        raise UnsupportedPolicyError(f"{where}: NotPrincipal is not supported")
    if "Principal" not in statement:
        raise UnsupportedPolicyError(f"{where}: a key policy statement needs a Principal")
    principal = statement["Principal"]
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        raise UnsupportedPolicyError(f"{where}: Principal {principal!r}")
    account = _account(principal_arn)
    for kind, value in principal.items():
        if kind == "Service" and account is None:
            if principal_arn in _strings(value, f"{where} Principal"):
                return True
            continue
        if kind == "Federated":
            # A federated caller is named by its identity provider's ARN, never a role's.
            if principal_arn in _strings(value, f"{where} Principal"):
                return True
            continue
        if kind != "AWS":
            continue  # Service, CanonicalUser: never an IAM role caller
        for candidate in _strings(value, f"{where} Principal"):
            if candidate in ("*", principal_arn):
                return True
            if account is not None and (candidate == account or re.fullmatch(
                    rf"arn:aws[a-z-]*:iam::{account}:root", candidate)):
                return True
    return False


def _listed(statement: Mapping[str, Any], element: str, value: str, where: str, *,
            ignore_case: bool) -> bool:
    if element == "Resource" and "NotResource" in statement:
        # IAM User Guide, "IAM JSON policy elements: NotResource": the statement applies to every
        # resource except those listed (with both Resource and NotResource the policy is invalid).
        if "Resource" in statement:
            raise UnsupportedPolicyError(f"{where}: both Resource and NotResource")
        return not any(_wildcard(pattern, value, ignore_case=ignore_case)
                       for pattern in _strings(statement["NotResource"], f"{where} NotResource"))
    if element == "Action" and "NotAction" in statement:
        # IAM User Guide, "IAM JSON policy elements: NotAction": the statement applies to every
        # action except those listed (the guardrails' Region allow-list is written so).
        if "Action" in statement:
            raise UnsupportedPolicyError(f"{where}: both Action and NotAction")
        return not any(_wildcard(pattern, value, ignore_case=ignore_case)
                       for pattern in _strings(statement["NotAction"], f"{where} NotAction"))
    if f"Not{element}" in statement:
        raise UnsupportedPolicyError(f"{where}: Not{element} is not supported")
    if element not in statement:
        raise UnsupportedPolicyError(f"{where}: a key policy statement needs {element}")
    return any(_wildcard(pattern, value, ignore_case=ignore_case)
               for pattern in _strings(statement[element], f"{where} {element}"))


def _condition_holds(condition: Any, context: Mapping[str, str | tuple[str, ...]], where: str) -> bool:
    if not isinstance(condition, Mapping):
        raise UnsupportedPolicyError(f"{where}: Condition is not an object")
    lowered = {key.lower(): value for key, value in context.items()}
    for operator, block in condition.items():
        if operator.startswith("ForAnyValue:"):
            # Multivalued keys (IAM User Guide, "Set operators for multivalued context keys"):
            # true when any value of the request matches; a key absent from the request: false.
            if not _for_any_value(operator.removeprefix("ForAnyValue:"), block, lowered, where):
                return False
            continue
        if ":" in operator:
            raise UnsupportedPolicyError(f"{where}: set operator {operator!r} is not supported")
        base = operator.removesuffix("IfExists")
        if_exists = base != operator
        if not isinstance(block, Mapping):
            raise UnsupportedPolicyError(f"{where}: {operator} block is not an object")
        for key, policy_value in block.items():
            raw = _strings(policy_value, f"{where} {operator} {key}", variables=True)
            try:
                values = [_substitute(value, lowered, where) for value in raw]
            except _UnresolvedVariableError:
                return False  # a variable without a value: the condition does not match
            actual = lowered.get(key.lower())
            if isinstance(actual, tuple):
                raise UnsupportedPolicyError(f"{where}: {key} is multivalued; use ForAnyValue")
            if base == "Null":
                if if_exists:
                    raise UnsupportedPolicyError(f"{where}: NullIfExists is not an operator")
                wanted = {value.lower() for value in values}
                if not wanted <= {"true", "false"}:
                    raise UnsupportedPolicyError(f"{where}: Null {key} takes true or false, got {values}")
                if ("true" if actual is None else "false") not in wanted:
                    return False
                continue
            if base in _DATE_OPERATORS:
                compare = _DATE_OPERATORS[base]
                if actual is None:
                    holds = if_exists or base == "DateNotEquals"
                else:
                    moment = _date(actual, f"{where} request {key}")
                    holds = (all(not compare(moment, _date(v, f"{where} {key}")) for v in values)
                             if base == "DateNotEquals" else
                             any(compare(moment, _date(v, f"{where} {key}")) for v in values))
                if not holds:
                    return False
                continue
            if base not in _STRING_OPERATORS:
                raise UnsupportedPolicyError(f"{where}: condition operator {operator!r} is not supported")
            negated, match = _STRING_OPERATORS[base]
            if actual is None:
                holds = if_exists or negated
            else:
                matched = any(match(value, actual) for value in values)
                holds = not matched if negated else matched
            if not holds:
                return False
    return True


def _for_any_value(operator: str, block: Any, lowered: Mapping[str, Any], where: str) -> bool:
    if operator not in ("StringEquals", "StringLike") or not isinstance(block, Mapping):
        raise UnsupportedPolicyError(f"{where}: ForAnyValue:{operator} is not supported")
    _, match = _STRING_OPERATORS[operator]
    for key, policy_value in block.items():
        values = _strings(policy_value, f"{where} ForAnyValue:{operator} {key}")
        actual = lowered.get(key.lower())
        given = actual if isinstance(actual, tuple) else (() if actual is None else (actual,))
        if not any(match(value, one) for value in values for one in given):
            return False
    return True


_DATE_OPERATORS: dict[str, Callable[[datetime, datetime], bool]] = {
    # (the request's time, the policy's time); DateNotEquals is handled as "no value equals".
    "DateEquals": lambda actual, policy: actual == policy,
    "DateNotEquals": lambda actual, policy: actual == policy,
    "DateLessThan": lambda actual, policy: actual < policy,
    "DateLessThanEquals": lambda actual, policy: actual <= policy,
    "DateGreaterThan": lambda actual, policy: actual > policy,
    "DateGreaterThanEquals": lambda actual, policy: actual >= policy,
}


def _date(text: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UnsupportedPolicyError(f"{what}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise UnsupportedPolicyError(f"{what}: {text!r} has no time zone")
    return moment


def _statements(policy_json: str) -> Sequence[Mapping[str, Any]]:
    try:
        policy = json.loads(policy_json)
    except (TypeError, ValueError) as error:
        raise UnsupportedPolicyError(f"the key policy is not JSON ({error})") from None
    statements = policy.get("Statement") if isinstance(policy, Mapping) else None
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, Mapping) for s in statements):
        raise UnsupportedPolicyError("the key policy has no Statement list")
    return statements


def evaluate(policy_json: str, request: Request, *, identity: bool = False,
             trust: bool = False) -> Decision:
    """Allow, explicit deny or implicit deny for `request`; UnsupportedPolicyError when unsure.
    identity=True: an identity-based policy or boundary (no Principal; it applies to its holder).
    trust=True: a role's trust policy (no Resource; it is about the role that holds it)."""
    allows: list[str] = []
    denies: list[str] = []
    for position, statement in enumerate(_statements(policy_json)):
        where = f"statement {statement.get('Sid', position)!r}"
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise UnsupportedPolicyError(f"{where}: Effect {effect!r}")
        # Applicability first: a statement for another principal/action says nothing here.
        if not _principal_matches(statement, request.principal_arn, where, identity=identity):
            continue
        if not _listed(statement, "Action", request.action, where, ignore_case=True):
            continue
        if trust and "Resource" in statement:
            raise UnsupportedPolicyError(f"{where}: a trust policy statement has no Resource")
        if not trust and not _listed(statement, "Resource", request.resource, where, ignore_case=False):
            continue
        if "Condition" in statement and not _condition_holds(statement["Condition"], request.context, where):
            continue
        (allows if effect == "Allow" else denies).append(str(statement.get("Sid", position)))
    if denies:
        return Decision("explicit-deny", tuple(denies))
    if allows:
        return Decision("allow", tuple(allows))
    return Decision("implicit-deny", ())


def cloudwatch_logs_may_encrypt(policy_json: str, log_group_arn: str) -> bool:
    """Would KMS let CloudWatch Logs encrypt `log_group_arn`'s data under a key with this policy
    (what it checks when the group is created with, or associated to, the key)?"""
    region = log_group_arn.split(":")[3]
    return all(evaluate(policy_json, Request(
        principal_arn=f"logs.{region}.amazonaws.com", action=action, resource="*",
        context={"kms:EncryptionContext:aws:logs:arn": log_group_arn})).effect == "allow"
        for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"))


def evaluate_session(request: Request, *, identity_policies: Sequence[str] = (),
                     boundary: str | None = None, resource_policy: str | None = None) -> Decision:
    """What IAM decides for a role session in one account: explicit Deny anywhere wins; else an
    Allow from the identity-based policies or the resource policy is needed, and from the boundary
    too when there is one (a boundary only ever limits; it grants nothing)."""
    identity_decisions = [evaluate(policy, request, identity=True) for policy in identity_policies]
    boundary_decision = evaluate(boundary, request, identity=True) if boundary is not None else None
    resource_decision = evaluate(resource_policy, request) if resource_policy is not None else None
    decisions = [d for d in (*identity_decisions, boundary_decision, resource_decision) if d is not None]
    denies = tuple(sid for d in decisions if d.effect == "explicit-deny" for sid in d.statements)
    if denies:
        return Decision("explicit-deny", denies)
    granted = [d for d in (*identity_decisions, resource_decision)
               if d is not None and d.effect == "allow"]
    if not granted or (boundary_decision is not None and boundary_decision.effect != "allow"):
        return Decision("implicit-deny", ())
    return Decision("allow", tuple(sid for d in granted for sid in d.statements))
