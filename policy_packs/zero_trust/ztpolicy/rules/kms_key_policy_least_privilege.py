"""Key policies are least privilege (§4.2).

- a key without a policy gets AWS's default, `kms:*` for the whole account through IAM;
- no Allow to any principal (`*`) without a condition;
- no `kms:*` (or `*`) except for the configured break-glass principals;
- no principal that both administers a key (PutKeyPolicy) and uses it, in one statement or
  across several (a use grant to an administrator, e.g. the key rotation role, is caught);
- no kms:CreateGrant (a grant hands out use of the key) except for AWS services acting for a
  resource (`kms:GrantIsForAWSResource`) or break-glass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, PolicyDocumentError, allow_statements, as_list, known
from ztpolicy.rule import Resource, Rule

KEY = "aws:kms/key:Key"
# Replicas of multi-Region keys have policies and deletion windows of their own.
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"
_ADMIN = ("kms:putkeypolicy",)
_DELEGATE = ("kms:creategrant",)
_USE_PREFIXES = ("kms:decrypt", "kms:encrypt", "kms:generatedatakey", "kms:reencrypt",
                 "kms:generatemac", "kms:verifymac", "kms:sign", "kms:derivesharedsecret")


def _principals(principal: Any) -> list[str]:
    if isinstance(principal, str):
        return [principal]
    if isinstance(principal, Mapping):
        return [str(v) for values in principal.values() for v in as_list(values)]
    return []


def _covers(action: str, names: tuple[str, ...]) -> bool:
    """Does `action` (possibly ending in *) include any action starting with one of `names`?"""
    action = action.lower()
    if action.endswith("*"):
        return any(name.startswith(action[:-1]) for name in names)
    return any(action.startswith(name) for name in names)


def document_problems(document: Any, label: str, break_glass: set[str]) -> list[str]:
    try:
        statements = allow_statements(document, f"{label} policy")
    except PolicyDocumentError as error:
        return [str(error)]
    problems = []
    # principal -> Sids of the statements that let it administer / use the key
    administers: dict[str, list[str]] = {}
    uses: dict[str, list[str]] = {}
    for index, statement in statements:
        sid = statement.get("Sid") or f"#{index}"
        principals = _principals(statement.get("Principal"))
        actions = [str(a) for a in as_list(statement.get("Action"))]
        if not set(principals) <= break_glass:
            for principal in principals:
                if any(_covers(a, _ADMIN) for a in actions):
                    administers.setdefault(principal, []).append(sid)
                if any(_covers(a, _USE_PREFIXES) for a in actions):
                    uses.setdefault(principal, []).append(sid)
        if "*" in principals and not statement.get("Condition"):
            problems.append(f"{label} statement {sid} allows any principal without a condition")
        if principals and set(principals) <= break_glass:
            continue  # break-glass may hold everything
        if any(a in ("*", "kms:*") for a in actions):
            problems.append(f"{label} statement {sid} grants kms:* to {', '.join(principals)}; "
                            "only break-glass principals may hold it")
        elif any(_covers(a, _ADMIN) for a in actions) and any(_covers(a, _USE_PREFIXES)
                                                              for a in actions):
            problems.append(f"{label} statement {sid} lets the same principals administer and "
                            "use the key")
        elif any(_covers(a, _DELEGATE) for a in actions) and "kms:grantisforawsresource" not in {
                key.lower() for block in (statement.get("Condition") or {}).values()
                if isinstance(block, Mapping) for key in block}:
            problems.append(f"{label} statement {sid} allows kms:CreateGrant, with which its "
                            "holders can hand out use of the key")
    for principal in sorted(set(administers) & set(uses)):
        if set(administers[principal]) & set(uses[principal]):
            continue  # one statement doing both is reported above
        problems.append(f"{label} lets {principal} administer the key (statement "
                        f"{', '.join(administers[principal])}) and use it (statement "
                        f"{', '.join(uses[principal])})")
    return problems


def kms_key_policy_least_privilege(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    document = known(resource, "policy")
    if document is UNKNOWN:
        return []  # computed from resources of this update; checked again when known
    if not document:
        if resource.type in (KEY, REPLICA_KEY):
            return [f"key {resource.name} has no policy: AWS's default grants kms:* to every "
                    "IAM principal of the account that is allowed it"]
        return [f"{resource.name} sets an empty key policy"]
    break_glass = set(as_list(config.get("breakGlassPrincipalArns")))
    return document_problems(document, resource.name, break_glass)


RULE = Rule(
    name="kms-key-policy-least-privilege",
    description="KMS key policies must name their principals, keep kms:* for break-glass only, "
                "and separate administration from use.",
    section="4.2",
    severity=Severity.CRITICAL,
    remediation="Let KeyHierarchy write the policy and grant use with grant_encrypt/"
                "grant_decrypt/...; list the break-glass role in breakGlassPrincipalArns.",
    resource_check=kms_key_policy_least_privilege,
    resource_types=frozenset({KEY, KEY_POLICY, REPLICA_KEY}),
    config={"breakGlassPrincipalArns": {"type": "array", "items": {"type": "string"}, "default": [],
                                        "description": "Principals allowed kms:* (break glass)."}},
)
