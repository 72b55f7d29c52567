"""A split deployment's workload declares none of the identity part (control: two-layer
deployment).

The key policies name the human roles, the just-in-time elevations and the JIT API's role (the
only writer of a two-person key's policy). Whoever sets such a role's trust or tags, or the JIT
functions' code, or the requests table the JIT API trusts, holds what the keys grant them: in a
split deployment they are the key layer's (`compose_identity` in __main__.py), deployed by the key
layer's deployer, and the CI roles' boundary and the guardrails deny every other role their
changes. A workload stack (stack key `layer: workload`) that declares one of them again hands them
to the workload's deployer, and so does one the guardrails would not recognise by name.

What counts as the identity part, by the names the project gives it (the guardrails and the CI
boundary key on the same names): a role named as a human role or `zero-trust-ai-<env>-jit-*`, or
tagged `ztai:access` human, break-glass or jit-elevation; a Lambda function named
`zero-trust-ai-<env>-jit-*`; the table `zero-trust-ai-<env>-jit`; the policy
`zero-trust-ai-<env>-human-boundary`. The workload reads the roles it grants by name
(`aws.iam.Role.get`), which declares nothing. A combined stack and the key layer are not checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known
from ztpolicy.guardrails import name_matches
from ztpolicy.iam import ACCESS_KINDS, IDENTITY_ROLE_PATTERNS, access_tag, loosely
from ztpolicy.rule import Resource, Rule
from ztpolicy.stack import stack_settings

ROLE = "aws:iam/role:Role"
FUNCTION = "aws:lambda/function:Function"
TABLE = "aws:dynamodb/table:Table"
POLICY = "aws:iam/policy:Policy"
IDENTITY_NAMES = {
    ROLE: IDENTITY_ROLE_PATTERNS,
    FUNCTION: ("zero-trust-ai-*-jit-*",),
    TABLE: ("zero-trust-ai-*-jit",),
    POLICY: ("zero-trust-ai-*-human-boundary",),
}
_KIND = {ROLE: "role", FUNCTION: "Lambda function", TABLE: "DynamoDB table", POLICY: "IAM policy"}


def identity_part_in_key_layer(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    if not stack_settings(config).is_workload:
        return []
    name = known(resource, "name")
    named = isinstance(name, str) and name_matches(name, IDENTITY_NAMES[resource.type])
    tag = access_tag(resource) if resource.type == ROLE else None
    tagged = tag is not None and loosely(tag) in ACCESS_KINDS
    if name is UNKNOWN and not tagged:
        return []  # checked once known
    if not named and not tagged:
        return []
    why = f"named {name!r}" if named else f"tagged ztai:access={tag}"
    return [f"{_KIND[resource.type]} {resource.name} ({why}) is part of the identity the key policies "
            "name, declared in a workload stack: its deployer would hold what the keys grant it. "
            "Declare it in the key layer (compose_identity) and read it here by name"]


RULE = Rule(
    name="identity-part-in-key-layer",
    description="A split deployment's workload declares no human or JIT role, JIT function or "
                "table, or human boundary: they are the key layer's.",
    control="two-layer deployment",
    severity=Severity.CRITICAL,
    remediation="Compose the human roles and the JIT with the keys (compose_identity in the key "
                "layer) and read the roles in the workload with IdentityReference (aws.iam.Role.get).",
    resource_check=identity_part_in_key_layer,
    resource_types=frozenset(IDENTITY_NAMES),
    suppressible=False,
)
