"""Nobody skips the key-policy lockout safety check (control: encryption and key management).

One exception: a key policy (`aws.kms.KeyPolicy`) of a two-person key. Its policy lets only the
just-in-time key-admin elevation change it, so KMS's check, which asks whether the writer (the
deployer) could write the policy again, fails by design. The bypass is accepted there only when the
policy denies the two-person actions to everyone but named roles (kms-two-person-key-administration
checks who they are) and allows one of those roles kms:PutKeyPolicy (the JIT API's, which writes
approved documents): the key is never left without someone who can manage it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known
from ztpolicy.rule import Resource, Rule
from ztpolicy.rules.kms.kms_key_policy_least_privilege import statement_principals
from ztpolicy.rules.kms.kms_two_person_key_administration import two_person_exemptions

KEY = "aws:kms/key:Key"
# Replicas of multi-Region keys have policies and deletion windows of their own.
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"


def _still_managed(document: Any) -> bool:
    """Does the policy deny the two-person actions to all but named roles, and allow one of them
    kms:PutKeyPolicy (so someone can always change it)?"""
    exempt, uncovered = two_person_exemptions(document)
    if uncovered or not exempt or any("*" in arn or "?" in arn for arn in exempt):
        return False
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError:
        return False
    statements = [s for s in as_list(parsed.get("Statement")) if isinstance(s, Mapping)] \
        if isinstance(parsed, Mapping) else []
    allowed = {principal for s in statements if s.get("Effect") == "Allow" and "Condition" not in s
               and any(fnmatchcase("kms:putkeypolicy", str(a).lower()) for a in as_list(s.get("Action")))
               for principal in statement_principals(s)}
    return any(arn in allowed for arn in exempt)


def kms_no_lockout_bypass(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if resource.get("bypassPolicyLockoutSafetyCheck") is True:
        if resource.type == KEY_POLICY:
            document = known(resource, "policy")
            if document is UNKNOWN:
                return []  # computed from this update's resources (its roles): checked when known
            if _still_managed(document):
                return []
        return [f"{resource.name} sets bypass_policy_lockout_safety_check: a policy that locks "
                "everyone out makes the key, and all it encrypts, unmanageable"]
    return []


RULE = Rule(
    name="kms-no-lockout-bypass",
    description="KMS keys and key policies must never bypass the policy lockout safety check.",
    control="key hierarchy",
    severity=Severity.CRITICAL,
    remediation="Remove bypass_policy_lockout_safety_check; keep an administrator in the policy.",
    resource_check=kms_no_lockout_bypass,
    resource_types=frozenset({KEY, KEY_POLICY, REPLICA_KEY}),
    suppressible=False,
)
