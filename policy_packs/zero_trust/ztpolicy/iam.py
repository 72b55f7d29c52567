"""What the IAM rules share: how a role's access tag, trust policy and permission policies are read.

A role's documents arrive as JSON text in deployed state (`assumeRolePolicy`, each inline
`policy`) and as text or an object in a program's inputs; both are read the same way. A value not
known yet (a real preview) is UNKNOWN: the rules skip what they cannot read and check it at deploy.

Which roles are held to the human-access controls is decided by one tag, `ztai:access`, read from
`tags` and the provider's merged `tagsAll`: `human`, `break-glass` or `jit-elevation`. A tag is
easy to leave off, so the trust decides too: a role whose trust admits a SAML or OIDC provider, or
IAM Identity Center's roles (`aws-reserved/sso.amazonaws.com`), is assumed by people whatever its
tags (`people_trust`). One exception, `ztai:access=ci`: a CI system's role (components/ci_identity.py),
whose trust admits its OIDC provider only for one audience and exact token subjects of one
repository (`ci_trust_problems` finds none); such a trust admits workflows, not people, and
ci-oidc-trust-pinned holds it to that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, as_list, known, known_field, known_items, refers_to_by_value
from ztpolicy.rule import Resource

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
# Attachments of a managed policy to anything but a role.
OTHER_ATTACHMENTS = ("aws:iam/userPolicyAttachment:UserPolicyAttachment",
                     "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
                     "aws:iam/policyAttachment:PolicyAttachment")

ACCESS_TAG = "ztai:access"
# The identity part of a split deployment's key layer (components/identity.py ROLES and
# components/jit_catalogue.py names; a test keeps them equal): in a workload stack a role so named
# is the key layer's, read by name (`aws.iam.Role.get`); declaring one there is the finding of
# identity-part-in-key-layer, which cannot be excluded.
HUMAN_ROLES = ("data-curator", "model-engineer", "model-publisher", "security-responder", "auditor",
               "key-administrator", "break-glass")
IDENTITY_ROLE_PATTERNS = ("zero-trust-ai-*-jit-*", *(f"zero-trust-ai-*-{role}" for role in HUMAN_ROLES))
HUMAN, BREAK_GLASS, JIT_ELEVATION = "human", "break-glass", "jit-elevation"
ACCESS_KINDS = (HUMAN, BREAK_GLASS, JIT_ELEVATION)
CI = "ci"
# The CI systems whose OIDC issuers the pack knows, and the prefix their subjects start with,
# naming the repository: GitHub Actions (`repo:<owner>/<name>:...`) and GitLab.com
# (`project_path:<group>/<project>:...`). Other issuers: rule setting `ciIssuerHosts`.
CI_ISSUER_SUBJECTS = {"token.actions.githubusercontent.com": re.compile(r"^repo:([^:/*?]+/[^:/*?]+):(.+)$"),
                      "gitlab.com": re.compile(r"^project_path:([^:*?]+/[^:*?]+):(.+)$")}

# IAM Identity Center's roles: their path, and the prefix of their names.
IDENTITY_CENTER_MARKERS = ("aws-reserved/sso.amazonaws.com", "awsreservedsso_")

_ACCOUNT = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/")
_AWS_MANAGED_POLICY = re.compile(r"^arn:aws[\w-]*:iam::aws:policy/")


class DocumentError(ValueError):
    """A policy document that cannot be read as IAM reads it."""


def access_tag(role: Resource) -> str | None:
    """The role's `ztai:access` value (from `tags`, else the merged `tagsAll`), or None.

    The value is returned as written: callers that widen a control compare it loosely, callers
    that grant an exception compare it exactly, so a look-alike value never earns the exception.
    """
    for prop in ("tags", "tagsAll"):
        tags = known(role, prop)
        if isinstance(tags, Mapping):
            value = tags.get(ACCESS_TAG)
            if isinstance(value, str):
                return value
    return None


def loosely(value: str | None) -> str:
    return (value or "").strip().lower()


def is_break_glass(role: Resource) -> bool:
    """Exactly `break-glass`: the one value that earns the wildcard exception; or a just-in-time
    elevation whose grant is break-glass (`ztai:access=jit-elevation`, `ztai:grant=break-glass`),
    which admits nobody until two other people approve and ends by itself (jit-grant-expiry)."""
    if access_tag(role) == BREAK_GLASS:
        return True
    try:
        tags = role.tags()
    except UnknownValueError:
        return False
    return access_tag(role) == "jit-elevation" and tags.get("ztai:grant") == BREAK_GLASS


def parse(document: Any, label: str) -> Mapping[str, Any] | object:
    """A policy document as an object; UNKNOWN when not known yet; DocumentError if unreadable."""
    parsed: object = document
    if parsed is UNKNOWN:
        return parsed
    if isinstance(document, str):
        try:
            parsed = json.loads(document)
        except json.JSONDecodeError as error:
            raise DocumentError(f"{label} is not valid JSON ({error.msg})") from None
    if not isinstance(parsed, Mapping):
        raise DocumentError(f"{label} is not a JSON object")
    return parsed


def statements(document: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(Sid or position, statement) for every statement of a parsed document."""
    return [(str(statement.get("Sid") or f"#{index}"), statement)
            for index, statement in enumerate(as_list(document.get("Statement")))
            if isinstance(statement, Mapping)]


def conditions(statement: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(operator, key, values) of a statement's Condition; operator and key in lower case."""
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return []
    return [(str(operator).lower(), str(key).lower(), [str(v) for v in as_list(values)])
            for operator, block in condition.items() if isinstance(block, Mapping)
            for key, values in block.items()]


def federated_only(statement: Mapping[str, Any]) -> bool:
    """Is the statement's principal a SAML or OIDC provider, and nothing else? Only then are the
    request's tags the identity provider's assertion, not the caller's own words."""
    principal = statement.get("Principal")
    return isinstance(principal, Mapping) and set(principal) == {"Federated"}


def oidc_provider_host(arn: Any) -> str | None:
    """The issuer of an IAM OIDC provider ARN (`arn:...:oidc-provider/<host>[/path]`), as IAM
    prefixes its condition keys (`<host>:sub`); None for anything else."""
    if not isinstance(arn, str) or ":oidc-provider/" not in arn:
        return None
    return arn.split(":oidc-provider/", 1)[1] or None


def ci_trust_problems(statement: Mapping[str, Any], host: str) -> list[str]:
    """Why one Allow admitting the OIDC provider `host` does not pin its tokens to one audience
    and the exact subjects of one repository: StringEquals (not StringLike, not `...IfExists`,
    not `ForAnyValue:`) on `<host>:aud` and on `<host>:sub`, values without `*` or `?`; for a
    known CI issuer, every subject names the same repository and a branch, environment, tag or
    pull request after it. A pattern anywhere on the subject admits every repository, branch or
    fork it matches."""
    problems: list[str] = []
    exact: dict[str, list[str]] = {}
    for operator, key, values in conditions(statement):
        if not key.startswith(f"{host.lower()}:"):
            continue
        claim = key.rsplit(":", 1)[1]
        if claim not in ("sub", "aud"):
            continue
        if operator == "stringequals":
            exact.setdefault(claim, []).extend(values)
            continue
        if operator.startswith(("stringnot", "foranyvalue:stringnot", "forallvalues:stringnot")):
            continue  # a negated condition narrows further; it pins nothing by itself
        problems.append(f"{operator} on {host}:{claim} ({', '.join(values)}): only StringEquals "
                        "with exact values pins a token claim (a pattern or IfExists admits more)")
    for claim in ("aud", "sub"):
        values = exact.get(claim, [])
        if not values:
            problems.append(f"no StringEquals on {host}:{claim}: every token of the issuer's "
                            f"{'applications' if claim == 'aud' else 'workflows, of every repository,'} "
                            "could assume the role")
        elif any(not v or "*" in v or "?" in v for v in values):
            problems.append(f"{host}:{claim} = {', '.join(values)}: a wildcard in a StringEquals "
                            "value is matched literally by IAM, or meant as a pattern; name the "
                            "exact value")
    subject_format = CI_ISSUER_SUBJECTS.get(host.lower())
    subjects = [v for v in exact.get("sub", []) if v and "*" not in v and "?" not in v]
    if subject_format is not None and subjects:
        repositories = set()
        for subject in subjects:
            match = subject_format.match(subject)
            if match is None:
                problems.append(f"{host}:sub = {subject}: not a subject naming one repository and "
                                "its branch, environment or pull request")
            else:
                repositories.add(match[1].lower())
        if len(repositories) > 1:
            problems.append(f"{host}:sub names {len(repositories)} repositories "
                            f"({', '.join(sorted(repositories))}): one role, one repository")
    return problems


def ci_trust(role: Resource, statement: Mapping[str, Any]) -> bool:
    """Is this Allow a CI role's pinned trust (tag `ztai:access=ci`, exactly; only OIDC
    providers as principal; each one's tokens pinned)? Then it admits workflows, not people."""
    if access_tag(role) != CI or not federated_only(statement):
        return False
    principal = statement.get("Principal")
    providers = as_list(principal.get("Federated")) if isinstance(principal, Mapping) else []
    hosts = [oidc_provider_host(provider) for provider in providers]
    return bool(hosts) and all(host is not None and not ci_trust_problems(statement, host)
                               for host in hosts)


def _identity_center(value: Any) -> bool:
    return isinstance(value, str) and any(marker in value.lower() for marker in IDENTITY_CENTER_MARKERS)


def people_trust(role: Resource) -> str | None:
    """What in the role's trust admits people, or None: a SAML or OIDC provider (a `Federated`
    principal), or IAM Identity Center's roles (named as the principal, or in an
    `aws:PrincipalArn` condition). None too while the trust is not known or cannot be read."""
    try:
        document = parse(known(role, "assumeRolePolicy"), f"role {role.name} trust policy")
    except DocumentError:
        return None  # iam-role-trust-restricted names the problem
    if not isinstance(document, Mapping):
        return None
    for _, statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        if isinstance(principal, Mapping):
            if ci_trust(role, statement):
                continue
            if providers := as_list(principal.get("Federated")):
                return f"the identity provider {providers[0]}"
            if any(_identity_center(arn) for arn in as_list(principal.get("AWS"))):
                return "IAM Identity Center's roles"
        if any(key == "aws:principalarn" and any(_identity_center(v) for v in values)
               for _, key, values in conditions(statement)):
            return "IAM Identity Center's roles"
    return None


def is_human(role: Resource) -> bool:
    """Held to the human-role conditions: tagged `human` (loosely), or trusted by people."""
    return loosely(access_tag(role)) == HUMAN or people_trust(role) is not None


def role_account(role: Resource) -> str | None:
    """The account of the role, from its ARN once known."""
    arn = known(role, "arn")
    match = _ROLE_ARN.match(arn) if isinstance(arn, str) else None
    return match[1] if match else None


def is_aws_managed(arn: Any) -> bool:
    return isinstance(arn, str) and bool(_AWS_MANAGED_POLICY.match(arn))


def is_account(value: str) -> bool:
    return bool(_ACCOUNT.match(value))


class Permissions:
    """The permission policies of each role of a stack: inline, separate RolePolicy resources,
    attached managed policies (those the stack declares, by document; others by ARN only)."""

    def __init__(self, resources: Sequence[Resource]) -> None:
        self.roles = [r for r in resources if r.type == ROLE]
        self.role_policies = [r for r in resources if r.type == ROLE_POLICY]
        self.policies = [r for r in resources if r.type == POLICY]
        self.attachments = [r for r in resources if r.type == ROLE_POLICY_ATTACHMENT]

    def owner_of(self, inline: Resource) -> Resource | None:
        """The role a RolePolicy belongs to (by the role's name, or the program's dependency)."""
        return next((role for role in self.roles
                     if refers_to_by_value(inline, "role", role, "name")), None)

    def declared_policy(self, arn: Any, attachment: Resource | None = None) -> Resource | None:
        """The stack's managed policy an ARN (or an attachment's dependency) names."""
        for policy in self.policies:
            if isinstance(arn, str) and arn and arn in (known(policy, "arn"), known(policy, "id")):
                return policy
            if attachment is not None and arn is UNKNOWN and \
                    policy.urn in attachment.property_dependencies.get("policyArn", ()):
                return policy
        return None

    def attached(self, role: Resource) -> list[tuple[str, Any]]:
        """(label, document or ARN marker) of every managed policy attached to `role`: a declared
        policy's document, else ("<arn>", None) for a policy the stack does not declare."""
        found: list[tuple[str, Any]] = []
        for attachment in self.attachments:
            if not refers_to_by_value(attachment, "role", role, "name"):
                continue
            arn = known(attachment, "policyArn")
            policy = self.declared_policy(arn, attachment)
            if policy is not None:
                found.append((f"managed policy {policy.name}", known(policy, "policy")))
            else:
                found.append((f"managed policy {arn if isinstance(arn, str) else '(not known yet)'}",
                              None if arn is not UNKNOWN else UNKNOWN))
        for arn in known_items(known(role, "managedPolicyArns")):
            policy = self.declared_policy(arn)
            if policy is not None:
                found.append((f"managed policy {policy.name}", known(policy, "policy")))
            else:
                found.append((f"managed policy {arn if isinstance(arn, str) else '(not known yet)'}",
                              None if arn is not UNKNOWN else UNKNOWN))
        return found

    def documents(self, role: Resource) -> list[tuple[str, Any]]:
        """(label, document) of every permission policy of `role`; a document None stands for a
        managed policy the stack does not declare (its content cannot be read here)."""
        found: list[tuple[str, Any]] = []
        inline = known(role, "inlinePolicies")
        for item in known_items(inline):
            if isinstance(item, Mapping):
                policy = known_field(item, "policy")
                if policy in (None, ""):
                    continue  # an inline entry without a policy deletes nothing and grants nothing
                found.append((f"inline policy {known_field(item, 'name') or '(unnamed)'}", policy))
            elif item is UNKNOWN:
                found.append(("inline policy (not known yet)", UNKNOWN))
        for role_policy in self.role_policies:
            if self.owner_of(role_policy) is role:
                found.append((f"role policy {role_policy.name}", known(role_policy, "policy")))
        return found + self.attached(role)

    def boundary(self, role: Resource) -> tuple[str, Any] | None:
        """(label, document) of the role's permissions boundary when the stack declares it."""
        arn = known(role, "permissionsBoundary")
        for policy in self.policies:
            by_value = isinstance(arn, str) and arn and arn in (known(policy, "arn"), known(policy, "id"))
            by_dependency = arn is UNKNOWN and policy.urn in role.property_dependencies.get(
                "permissionsBoundary", ())
            if by_value or by_dependency:
                return f"permissions boundary {policy.name}", known(policy, "policy")
        return None



def read_from_key_layer(role: Resource, settings: Any) -> bool:
    """In a workload stack (`settings`, ztpolicy.stack.StackSettings), a role named as the key
    layer's identity part: the key layer's, which its own stack's check holds (its boundary and
    policies are there, not here)."""
    from ztpolicy.guardrails import name_matches

    name = known(role, "name")
    return bool(getattr(settings, "is_workload", False)) and isinstance(name, str) \
        and name_matches(name, IDENTITY_ROLE_PATTERNS)
