"""Role trust policies name who may assume the role (control: human roles).

Every Allow of a role's trust policy (`assumeRolePolicy`) must bound who it admits:

- `NotPrincipal` is refused: it admits everyone it does not list;
- `"Principal": "*"` (or an AWS principal with a wildcard in its account, `arn:aws:iam::*:root`)
  needs a positive condition (StringEquals, StringLike, ArnEquals, ArnLike, with or without
  `ForAnyValue:`, never `...IfExists`, which holds when the key is absent) on `aws:PrincipalArn`,
  `aws:PrincipalAccount`, `aws:PrincipalOrgID` or `aws:PrincipalOrgPaths`, with values that are
  not wildcards (for an ARN, a concrete account);
- the root of another account (`arn:aws:iam::<account>:root` or the bare account id) delegates to
  every principal that account's administrators allow, so it needs the same kind of condition, or
  `sts:ExternalId`. "Another" means an account that is neither the stack's (the accounts of the
  known ARNs of the stack's resources, the role's own among them) nor one of `trustedAccountIds`.
  While no ARN is known (a first preview of a real stack) and the setting is empty, an account
  root cannot be told apart and needs the condition too: set `trustedAccountIds`;
- a `Federated` principal (a SAML or OIDC provider) needs a positive condition on the provider's
  audience (`SAML:aud`, `<provider>:aud`): without it any application registered with that
  provider can obtain the role.

Service principals are left to the service's own checks. A stack rule, so that the stack's
account is known while a new role's ARN is not. Not suppressible: a role anyone can assume
defeats every grant written for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, as_list, known
from ztpolicy.iam import ROLE, DocumentError, conditions, is_account, parse, role_account, statements
from ztpolicy.rule import Finding, Resource, Rule

_POSITIVE = {"stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike"}
_PRINCIPAL_KEYS = {"aws:principalarn", "aws:principalaccount", "aws:principalorgid",
                   "aws:principalorgpaths"}
_EXTERNAL_ID = "sts:externalid"


def _positive(operator: str) -> bool:
    return operator.removeprefix("foranyvalue:") in _POSITIVE


def _concrete(key: str, value: str) -> bool:
    """A condition value that names something, not a pattern for anything."""
    if not value or value.strip("*?") == "":
        return False
    if key == "aws:principalaccount":
        return is_account(value)
    if key == "aws:principalarn":
        parts = value.split(":")
        return len(parts) > 4 and is_account(parts[4])
    if key == "aws:principalorgpaths":
        return not any(w in value.split("/", 1)[0] for w in "*?")
    return not any(w in value for w in "*?")


def _narrowed(statement: Mapping[str, Any], keys: set[str], suffix: str | None = None) -> bool:
    """Does a positive condition on one of `keys` (or a key ending in `suffix`) hold only
    concrete values?"""
    for operator, key, values in conditions(statement):
        named = key in keys or (suffix is not None and key.endswith(suffix))
        if named and _positive(operator) and values and all(_concrete(key, v) for v in values):
            return True
    return False


def _account_of_root(value: str) -> str | None:
    """The account of an account-root principal (`arn:...:iam::<account>:root` or the bare id)."""
    if is_account(value):
        return value
    parts = value.split(":")
    if value.startswith("arn:") and len(parts) == 6 and parts[2] == "iam" and parts[5] == "root":
        return parts[4]
    return None


def _anyone(value: str) -> bool:
    if value == "*":
        return True
    parts = value.split(":")
    return value.startswith("arn:") and len(parts) > 4 and any(w in parts[4] for w in "*?")


def statement_problems(sid: str, statement: Mapping[str, Any], own: set[str], label: str) -> list[str]:
    where = f"{label} statement {sid}"
    if "NotPrincipal" in statement:
        return [f"{where} allows with NotPrincipal, which admits every principal it does not list"]
    principal = statement.get("Principal")
    entries: dict[str, list[str]] = {}
    if principal == "*":
        entries["AWS"] = ["*"]
    elif isinstance(principal, Mapping):
        entries = {str(kind): [str(v) for v in as_list(values)] for kind, values in principal.items()}
    else:
        return [f"{where} has no readable Principal"]
    problems: list[str] = []
    for value in entries.get("AWS", []):
        if _anyone(value):
            if not _narrowed(statement, _PRINCIPAL_KEYS):
                problems.append(f"{where} admits any principal ({value}) without a positive "
                                "aws:PrincipalArn / aws:PrincipalAccount / aws:PrincipalOrgID "
                                "condition naming who")
            continue
        account = _account_of_root(value)
        if account is None or account in own:
            continue
        if not _narrowed(statement, _PRINCIPAL_KEYS | {_EXTERNAL_ID}):
            if not own:
                # No ARN of the stack is known yet (a first real preview): whether this root is
                # the stack's own account is decided at deploy, as an unknown value would be.
                problems.append(f"{_DEFERRED}{where} trusts the root {value}, and the stack's "
                                "account is not known until deploy (or set trustedAccountIds)")
                continue
            problems.append(f"{where} trusts another account's root {value} without a condition "
                            "(aws:PrincipalArn, aws:PrincipalOrgID or sts:ExternalId): every "
                            "principal that account allows could assume the role")
    for value in entries.get("Federated", []):
        if not _narrowed(statement, set(), suffix=":aud"):
            problems.append(f"{where} trusts the identity provider {value} without a positive "
                            "audience condition (SAML:aud, or <provider>:aud naming your client): "
                            "any application of that provider could obtain the role")
    return problems


# Marks a finding that waits for the stack's account (kept apart from the real ones above).
_DEFERRED = "deferred: "


class _NotKnownUntilDeployError(UnknownValueError):
    """The framework's "can't run during preview" signal, with our own reason (its constructor
    builds a message about one property path)."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.message = message


def stack_accounts(resources: Sequence[Resource]) -> set[str]:
    """The accounts of the known ARNs of the stack's resources."""
    accounts = set()
    for resource in resources:
        arn = known(resource, "arn")
        parts = arn.split(":") if isinstance(arn, str) and arn.startswith("arn:") else []
        if len(parts) > 4 and is_account(parts[4]):
            accounts.add(parts[4])
    return accounts


def trust_problems(resource: Resource, own: set[str]) -> list[str]:
    """Why one role's trust policy admits too much, given the accounts that are ours."""
    label = f"role {resource.name} trust policy"
    try:
        document = parse(known(resource, "assumeRolePolicy"), label)
    except DocumentError as error:
        return [str(error)]
    if document is UNKNOWN or not isinstance(document, Mapping):
        return []  # checked once the policy is known
    if (account := role_account(resource)) is not None:
        own = own | {account}
    problems: list[str] = []
    for sid, statement in statements(document):
        if statement.get("Effect") == "Allow":
            problems += statement_problems(sid, statement, own, label)
    return problems


def iam_role_trust_restricted(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    own = {str(a) for a in as_list(config.get("trustedAccountIds"))} | stack_accounts(resources)
    found = [Finding(role.urn, problem) for role in resources if role.type == ROLE
             for problem in trust_problems(role, own)]
    findings = [finding for finding in found if not finding.message.startswith(_DEFERRED)]
    if not findings and len(found) > len(findings):
        # Only undecidable trusts are left: the framework reports the rule as not run during this
        # preview ("can't run ... during preview"), and it runs again once the ARNs are known.
        raise _NotKnownUntilDeployError(found[0].message.removeprefix(_DEFERRED))
    return findings


RULE = Rule(
    name="iam-role-trust-restricted",
    description="Role trust policies must not admit anyone, another account's root or a "
                "federated provider's every application without a narrowing condition.",
    control="human roles",
    severity=Severity.CRITICAL,
    remediation="Trust named principals, or pin \"Principal\": \"*\" with StringEquals "
                "aws:PrincipalOrgID / aws:PrincipalArn; another account's root needs "
                "sts:ExternalId or aws:PrincipalArn; a SAML or OIDC provider needs its audience "
                "(SAML:aud, <provider>:aud). AccessRoles writes human roles' trust from the "
                "configured identity provider.",
    stack_check=iam_role_trust_restricted,
    suppressible=False,
    config={
        "trustedAccountIds": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]{12}$"},
                              "default": [],
                              "description": "Accounts whose root a trust policy may name without a "
                                             "condition, besides the stack's own."},
    },
)
