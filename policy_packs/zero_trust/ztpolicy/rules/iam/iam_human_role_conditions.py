"""Human roles need MFA and a network location (control: human roles).

A role tagged `ztai:access=human` (case and spaces ignored: a look-alike value does not escape),
and any role whose trust admits a SAML or OIDC provider or IAM Identity Center's roles whatever
its tags (people assume it), must require both, each in one of three ways. Such a role without
a `ztai:access` tag is a finding of its own: the boundary and the other rules read the tag.

- in its trust policy: every Allow carries the positive condition;
- in its permissions: a Deny of every action (`Action: "*"`, or `NotAction` for what an MFA-less
  session must still do) on every resource whose condition holds when the context is missing or
  wrong, in an inline policy, a `RolePolicy`, an attached managed policy the stack declares or the
  role's permissions boundary (the network Deny may leave out the JIT API function, named exactly
  in `NotResource`: a function URL is reached over the public internet only). Its
  only other conditions may be `Bool[IfExists] aws:ViaAWSService
  false` (a service calling on the user's behalf comes from AWS's network, not the user's) and
  `StringNotEquals aws:PrincipalTag/ztai:access` naming values other than the role's own (the
  break-glass exception of a shared boundary);
- in its permissions: every Allow of every permission policy carries the positive condition (a
  managed policy the stack does not declare cannot be read, so it defeats this form).

The conditions:

- MFA: `Bool` (or `StringEquals`) `"true"` on `aws:MultiFactorAuthPresent`, or on
  `aws:PrincipalTag/<tag>` for a tag of `mfaSessionTags`: session tags the identity provider sets
  after MFA (default `mfa-authenticated`, the stack's default `mfaSessionTag`; a fork that renames
  it lists its name here). `aws:RequestTag/<tag>` counts only in a trust statement whose only
  principal is a SAML or OIDC provider, where the request's tags are the provider's assertion; on
  a plain `sts:AssumeRole` (or in a permission policy) the caller writes them itself. Several
  proofs in one Deny (`BoolIfExists aws:MultiFactorAuthPresent false` and `StringNotEquals
  aws:PrincipalTag/<tag> true`) deny when none of them holds: that counts.
  The deny form: `BoolIfExists ... "false"`, `Null ... "true"`, or `StringNotEquals[IfExists]
  ... "true"`; plain `Bool ... "false"` does not count, it holds only when the key is present.
  `...IfExists` forms never count as positive conditions: they hold when the key is absent.
- Network: `StringEquals`/`StringLike` on `aws:SourceVpce` or `aws:SourceVpc` (no wildcard-only
  value), or `IpAddress` on `aws:SourceIp` with ranges no wider than a /8 (/16 in IPv6). The deny
  form: the negated operators (`StringNotEquals[IfExists]`, `StringNotLike[IfExists]`,
  `NotIpAddress[IfExists]`), which hold when the request carries no such key.

Policies not known yet (a real preview) are checked when they are. Suppressible: a fork whose
identity provider enforces both, and says so in a session tag, lists its key instead.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, is_open_cidr, known
from ztpolicy.iam import (
    ACCESS_TAG,
    HUMAN,
    DocumentError,
    Permissions,
    access_tag,
    conditions,
    federated_only,
    is_human,
    loosely,
    parse,
    people_trust,
    read_from_key_layer,
    statements,
)
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.stack import stack_settings

MFA_KEY = "aws:MultiFactorAuthPresent"
# The stack's default `mfaSessionTag`.
DEFAULT_MFA_TAG = "mfa-authenticated"
_VIA_SERVICE = "aws:viaawsservice"
_VPCE_KEYS = {"aws:sourcevpce", "aws:sourcevpc"}
_IP_KEY = "aws:sourceip"
_FUNCTION_ARN = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,56}-jit-api")


class _Checks:
    """How one requirement (MFA or network) reads in an Allow and in a Deny."""

    def __init__(self, name: str, mfa_keys: set[str] | None, asserted_keys: set[str] | None = None) -> None:
        # asserted_keys: MFA proofs only an identity provider's assertion can carry (request tags).
        self.name, self.mfa_keys, self.asserted_keys = name, mfa_keys, asserted_keys or set()

    def positive(self, operator: str, key: str, values: list[str], *, federated: bool = False) -> bool:
        if not values:
            return False
        if self.mfa_keys is not None:
            proof = key in self.mfa_keys or (federated and key in self.asserted_keys)
            return (proof and operator in ("bool", "stringequals", "stringequalsignorecase")
                    and all(v.lower() == "true" for v in values))
        if key in _VPCE_KEYS:
            return operator in ("stringequals", "stringlike") and all(_named(v) for v in values)
        return key == _IP_KEY and operator == "ipaddress" and all(_narrow_range(v) for v in values)

    def negative(self, operator: str, key: str, values: list[str]) -> bool:
        if not values:
            return False
        base = operator.removesuffix("ifexists")
        if self.mfa_keys is not None:
            if key not in self.mfa_keys:
                return False
            lowered = [v.lower() for v in values]
            return ((operator == "boolifexists" and lowered == ["false"])
                    or (operator == "null" and key == MFA_KEY.lower() and lowered == ["true"])
                    or (base in ("stringnotequals", "stringnotequalsignorecase") and lowered == ["true"]))
        if key in _VPCE_KEYS:
            return base in ("stringnotequals", "stringnotlike") and all(_named(v) for v in values)
        return key == _IP_KEY and base == "notipaddress" and all(_narrow_range(v) for v in values)


def _named(value: str) -> bool:
    return bool(value) and value.strip("*?") != ""


def _narrow_range(value: str) -> bool:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return not is_open_cidr(value)


def _allows_all_carry(document: Mapping[str, Any], checks: _Checks, *,
                      trust: bool = False) -> tuple[int, bool]:
    """(number of Allows, whether each carries the positive condition). In a trust, a statement
    whose only principal is an identity provider may prove MFA with the tags it asserts."""
    allows = [s for _, s in statements(document) if s.get("Effect") == "Allow"]
    return len(allows), all(any(checks.positive(*c, federated=trust and federated_only(s))
                                for c in conditions(s)) for s in allows)


def _harmless_extra(condition: tuple[str, str, list[str]], access: str) -> bool:
    """A further condition of a Deny that does not narrow it for this role's sessions."""
    operator, key, values = condition
    lowered = [value.lower() for value in values]
    if key == _VIA_SERVICE:
        return operator in ("bool", "boolifexists") and lowered == ["false"]
    return (key == f"aws:principaltag/{ACCESS_TAG}"
            and operator in ("stringnotequals", "stringnotequalsignorecase")
            and access not in [value.strip() for value in lowered])


def _function_urls_only(value: Any) -> bool:
    """NotResource naming only the JIT API function exactly (`...:function:<prefix>-jit-api`, no
    wildcard): what a network Deny may leave out, because a function URL is reached over the
    public internet only (Lambda Developer Guide, "Lambda function URLs"). Any other function
    left out would be reachable, every Lambda action on it, from anywhere."""
    names = [str(v) for v in as_list(value)]
    return bool(names) and all(_FUNCTION_ARN.fullmatch(name) for name in names)


def _denies_without(document: Mapping[str, Any], checks: _Checks, access: str) -> bool:
    """A Deny of every action on every resource unless the requirement holds (the network Deny may
    leave out named Lambda functions, see `_function_urls_only`)."""
    for _, statement in statements(document):
        if statement.get("Effect") != "Deny":
            continue
        if "NotAction" not in statement and "*" not in [str(a) for a in as_list(statement.get("Action"))]:
            continue
        if "NotResource" in statement:
            if checks.name != "network" or "Resource" in statement \
                    or not _function_urls_only(statement["NotResource"]):
                continue
        elif "*" not in [str(r) for r in as_list(statement.get("Resource"))]:
            continue
        found = conditions(statement)
        required = [c for c in found if checks.negative(*c)]
        rest = [c for c in found if c not in required]
        if all(_harmless_extra(condition, access) for condition in rest):
            # With no condition of its own, the Deny takes everything from this role: more than
            # any requirement (a key layer's human roles before their network is known).
            return True
    return False


def _requirement_met(trust: Any, permissions: list[tuple[str, Any]], boundary: tuple[str, Any] | None,
                     checks: _Checks, access: str) -> bool | None:
    """True when met, False when not, None when it depends on a document not known yet."""
    pending = False
    if trust is UNKNOWN:
        pending = True
    elif isinstance(trust, Mapping):
        count, carried = _allows_all_carry(trust, checks, trust=True)
        if count and carried:
            return True
    documents = [doc for _, doc in permissions] + ([boundary[1]] if boundary else [])
    for document in documents:
        if document is UNKNOWN:
            pending = True
        elif isinstance(document, Mapping) and _denies_without(document, checks, access):
            return True
    readable = [doc for _, doc in permissions]
    if readable and all(isinstance(doc, Mapping) for doc in readable):
        counts = [_allows_all_carry(doc, checks) for doc in readable]
        if sum(count for count, _ in counts) and all(carried for _, carried in counts):
            return True
    return None if pending else False


def _parsed(document: Any, label: str) -> Any:
    if document is None:
        return None
    return parse(document, label)


def iam_human_role_conditions(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    permissions = Permissions(resources)
    tags = [str(tag).lower() for tag in as_list(config.get("mfaSessionTags"))]
    mfa_keys = {MFA_KEY.lower(), *(f"aws:principaltag/{tag}" for tag in tags)}
    asserted = {f"aws:requesttag/{tag}" for tag in tags}
    requirements = [
        ("MFA (aws:MultiFactorAuthPresent, or a session tag of mfaSessionTags, = true; a request "
         "tag only from a SAML or OIDC provider)",
         _Checks("mfa", mfa_keys, asserted)),
        ("a network location (aws:SourceVpce / aws:SourceVpc, or aws:SourceIp within named ranges)",
         _Checks("network", None)),
    ]
    findings: list[Finding] = []
    settings = stack_settings(config)
    for role in permissions.roles:
        if not is_human(role) or read_from_key_layer(role, settings):
            continue
        access = access_tag(role)
        if access is None:
            findings.append(Finding(role.urn, (
                f"role {role.name} is assumed by people (its trust admits {people_trust(role)}) but "
                f"carries no {ACCESS_TAG} tag: tag it {HUMAN} so that the boundary and the pack "
                "treat it as a person's role")))
        try:
            trust = _parsed(known(role, "assumeRolePolicy"), f"role {role.name} trust policy")
            documents = [(label, _parsed(doc, f"role {role.name} {label}"))
                         for label, doc in permissions.documents(role)]
            boundary = permissions.boundary(role)
            if boundary is not None:
                boundary = (boundary[0], _parsed(boundary[1], f"role {role.name} {boundary[0]}"))
        except DocumentError as error:
            findings.append(Finding(role.urn, str(error)))
            continue
        for description, checks in requirements:
            if _requirement_met(trust, documents, boundary, checks, loosely(access)) is False:
                findings.append(Finding(role.urn, (
                    f"human role {role.name} does not require {description}: no condition on "
                    "every Allow of its trust policy or of its permissions, and no Deny of every "
                    "action when it is missing")))
    return findings


RULE = Rule(
    name="iam-human-role-conditions",
    description="Roles tagged ztai:access=human, and roles trusted by a SAML/OIDC provider or "
                "IAM Identity Center (which must carry the tag), must require MFA and a network "
                "location (VPC endpoint or named IP ranges) in their trust or permissions.",
    control="human roles",
    severity=Severity.HIGH,
    remediation="Build human roles with AccessRoles, which writes the MFA and network conditions "
                "from the stack's identity settings; by hand, add Bool aws:MultiFactorAuthPresent "
                "true and StringEquals aws:SourceVpce to every trust Allow, or the matching "
                "Deny-unless statements to the role's permissions boundary.",
    stack_check=iam_human_role_conditions,
    config={
        "mfaSessionTags": {
            "type": "array", "items": {"type": "string", "minLength": 1}, "default": [DEFAULT_MFA_TAG],
            "description": "Session tags the identity provider sets to \"true\" after MFA "
                           "(aws:PrincipalTag/<tag>, or aws:RequestTag/<tag> in a SAML or OIDC "
                           "trust, prove MFA besides aws:MultiFactorAuthPresent); keep equal to "
                           "the stack's mfaSessionTag."},
    },
)
