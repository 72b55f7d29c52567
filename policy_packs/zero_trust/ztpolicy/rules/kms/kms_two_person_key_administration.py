"""Only an approved two-person elevation may change the model-weights key's policy (control: just-in-time
access).

A key administrator who can rewrite the model key's policy can drop its attestation denies,
decrypt the weights and put the policy back, unseen. So on every model key (the keys
model-key-attestation-required finds, with the same `attestedKeyPurposes` and `attestedAliases`
settings) the effective policy must

- deny `kms:PutKeyPolicy`, `kms:ScheduleKeyDeletion`, `kms:DisableKey`, `kms:UpdateAlias` and
  `kms:DeleteAlias` to every principal (`*`) except the roles listed in one `ArnNotEquals`
  (or `ArnNotLike`) condition on `aws:PrincipalArn`, the statement's only condition; a
  listed ARN may hold no wildcard (a pattern would admit roles made later);
- list only roles of this stack that are just-in-time key-admin elevations (tags
  `ztai:access=jit-elevation` and `ztai:grant=key-admin`): their trust admits nobody until two
  other people approve a request, and only until the grant's expiry (jit-grant-expiry checks that).

An explicit Deny in a key policy binds everyone, administrators, break-glass and the account root
included, whatever their IAM policies say. Stack key `twoPersonKeys: []` turns this off: the rule
then fails, and an exclusion with a reason is how a fork records that relaxation. Policies not
known yet are checked when they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known, of_type, refers_to_key
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.kms.kms_key_policy_least_privilege import KEY, KEY_POLICY, REPLICA_KEY
from ztpolicy.rules.kms.model_key_attestation_required import ATTESTED_KEY_CONFIG, attested_keys

ROLE = "aws:iam/role:Role"
TWO_PERSON_ACTIONS = ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey",
                      "kms:UpdateAlias", "kms:DeleteAlias")
_NEGATED_ARN_OPERATORS = {"arnnotequals", "arnnotlike"}
_EVERYONE = ("*", {"AWS": "*"}, {"AWS": ["*"]})


def _covers(statement: Mapping[str, Any], action: str) -> bool:
    return any(fnmatchcase(action.lower(), str(p).lower()) for p in as_list(statement.get("Action")))


def _exempted(statement: Mapping[str, Any]) -> list[str] | None:
    """The ARNs a Deny to everyone leaves out through its only condition, or None when the
    statement is not such a Deny."""
    if (statement.get("Effect") != "Deny" or statement.get("Principal") not in _EVERYONE
            or "NotPrincipal" in statement or "NotAction" in statement or "NotResource" in statement
            or "*" not in as_list(statement.get("Resource"))):
        return None
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping) or len(condition) != 1:
        return None
    [(operator, block)] = condition.items()
    if str(operator).lower() not in _NEGATED_ARN_OPERATORS or not isinstance(block, Mapping) \
            or len(block) != 1:
        return None
    [(key, values)] = block.items()
    if str(key).lower() != "aws:principalarn":
        return None
    return [str(value) for value in as_list(values)]


def two_person_exemptions(document: Any) -> tuple[list[str], list[str]]:
    """(the ARNs the two-person Deny leaves out, the actions no such Deny covers) of a policy
    document (JSON text or a mapping); ([], every action) when it has none."""
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError:
        return [], list(TWO_PERSON_ACTIONS)
    statements = as_list(parsed.get("Statement")) if isinstance(parsed, Mapping) else []
    exempt: list[str] = []
    uncovered = []
    for action in TWO_PERSON_ACTIONS:
        denies = [arns for s in statements if isinstance(s, Mapping) and _covers(s, action)
                  and (arns := _exempted(s)) is not None and arns]
        if not denies:
            uncovered.append(action)
        for arns in denies:
            exempt += [arn for arn in arns if arn not in exempt]
    return exempt, uncovered


def _elevation_roles(resources: Sequence[Resource]) -> dict[str, Resource]:
    """ARN (known, or made from the role's name and any account) -> key-admin elevation role."""
    roles: dict[str, Resource] = {}
    for role in of_type(resources, ROLE):
        tags = role.tags()
        if tags.get("ztai:access") != "jit-elevation" or tags.get("ztai:grant") != "key-admin":
            continue
        arn, name = known(role, "arn"), known(role, "name")
        if isinstance(arn, str) and arn:
            roles[arn] = role
        if isinstance(name, str) and name:
            roles[f"name:{name}"] = role
    return roles


def _is_elevation(arn: str, roles: Mapping[str, Resource]) -> bool:
    if arn in roles:
        return True
    role_name = arn.split(":role/", 1)[1].rsplit("/", 1)[-1] if ":role/" in arn else None
    return role_name is not None and f"name:{role_name}" in roles


def kms_two_person_key_administration(resources: Sequence[Resource],
                                      config: Mapping[str, Any]) -> list[Finding]:
    policies = of_type(resources, KEY_POLICY)
    keys = of_type(resources, KEY, REPLICA_KEY)
    roles = _elevation_roles(resources)
    findings: list[Finding] = []
    for key, _why in attested_keys(resources, config).values():
        linked = [policy for policy in policies if refers_to_key(policy, "keyId", key, among=keys)]
        for holder in linked or [key]:
            document = known(holder, "policy")
            if document is UNKNOWN or document is None:
                continue
            label = f"model key {key.name}" + (f" (policy {holder.name})" if holder is not key else "")
            exempt, uncovered = two_person_exemptions(document)
            if uncovered:
                findings.append(Finding(holder.urn, (
                    f"{label} does not deny {', '.join(uncovered)} to every principal but its key-admin "
                    "elevation (a Deny to `*` with only an ArnNotEquals aws:PrincipalArn condition): a "
                    "standing administrator could rewrite the policy, decrypt the weights and put it back")))
                continue
            for arn in exempt:
                if "*" in arn or "?" in arn:
                    findings.append(Finding(holder.urn, f"{label} exempts the pattern {arn} from its "
                                            "two-person deny: name each key-admin elevation role exactly"))
                elif not _is_elevation(arn, roles):
                    findings.append(Finding(holder.urn, (
                        f"{label} exempts {arn} from its two-person deny, which is not a just-in-time "
                        "key-admin elevation role of this stack (tags ztai:access=jit-elevation, "
                        "ztai:grant=key-admin): it could change the policy without two approvals")))
    return findings


RULE = Rule(
    name="kms-two-person-key-administration",
    description="Only an approved two-person key-admin elevation may change the model key's policy, "
                "alias, state or deletion.",
    control="just-in-time access",
    severity=Severity.CRITICAL,
    remediation="Keep the model key in twoPersonKeys and give it a key-admin elevation in the JIT "
                "catalogue (keys.grant_key_administration); name only that role in the deny's "
                "ArnNotEquals aws:PrincipalArn.",
    stack_check=kms_two_person_key_administration,
    config=ATTESTED_KEY_CONFIG,
)
