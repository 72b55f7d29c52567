"""The roles the organisation guardrails exempt by name are named so (control: organisation
guardrails).

The SCPs exempt roles by name pattern (ArnNotLike aws:PrincipalArn): the key-administration roles
(the JIT elevations) from the keys guardrail, the image pipeline's execution role from the image
parameter guardrail. A JIT elevation role or pipeline execution role named otherwise is denied
what it exists to do once the guardrails are attached: an approved key-policy change, a new AMI's
id. The patterns are this rule's settings, and must equal the organisation layer's
(`guardrailKeyAdminRolePatterns`, `guardrailImagePublisherRolePatterns`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known, refers_to_by_value
from ztpolicy.guardrails import (
    DEFAULT_IMAGE_PUBLISHER_ROLE_PATTERNS,
    DEFAULT_KEY_ADMIN_ROLE_PATTERNS,
    name_matches,
)
from ztpolicy.iam import JIT_ELEVATION, access_tag, loosely
from ztpolicy.rule import Finding, Resource, Rule

ROLE = "aws:iam/role:Role"
PIPELINE = "aws:imagebuilder/imagePipeline:ImagePipeline"


def _problem(role: Resource, what: str, patterns: list[str]) -> str | None:
    name = known(role, "name")
    if name is UNKNOWN:
        return None  # checked once known
    if isinstance(name, str) and name_matches(name, patterns):
        return None
    shown = f"named {name!r}" if isinstance(name, str) and name else "named by Pulumi (no name given)"
    return (f"{what} {role.name} is {shown}, which matches none of {patterns}: the organisation "
            "guardrails exempt it by name, so it would be denied what it exists to do")


def guardrail_role_names(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    key_admins = [str(p) for p in as_list(config.get("keyAdminRolePatterns",
                                                     list(DEFAULT_KEY_ADMIN_ROLE_PATTERNS)))]
    publishers = [str(p) for p in as_list(config.get("imagePublisherRolePatterns",
                                                     list(DEFAULT_IMAGE_PUBLISHER_ROLE_PATTERNS)))]
    roles = [r for r in resources if r.type == ROLE]
    findings = []
    for role in roles:
        if loosely(access_tag(role)) == JIT_ELEVATION and (
                problem := _problem(role, "JIT elevation role", key_admins)):
            findings.append(Finding(role.urn, problem))
    for pipeline in (r for r in resources if r.type == PIPELINE):
        for role in roles:
            if refers_to_by_value(pipeline, "executionRole", role, "arn") and (
                    problem := _problem(role, f"image pipeline {pipeline.name}'s execution role",
                                        publishers)):
                findings.append(Finding(role.urn, problem))
    return findings


_PATTERNS = {"type": "array", "items": {"type": "string"}}
RULE = Rule(
    name="guardrail-role-names",
    description="JIT elevation roles and the image pipeline's execution role are named as the "
                "organisation guardrails' exemptions expect.",
    control="organisation guardrails",
    severity=Severity.HIGH,
    remediation="Keep JustInTimeAccess's and ImmutableAmiPipeline's role names "
                "(zero-trust-ai-<env>-jit-<elevation>, zero-trust-ai-<env>-enclave-parent-"
                "imagebuilder-execution), or set the same patterns here and in the organisation "
                "layer's guardrail*RolePatterns.",
    stack_check=guardrail_role_names,
    config={
        "keyAdminRolePatterns": {**_PATTERNS, "default": list(DEFAULT_KEY_ADMIN_ROLE_PATTERNS),
                                 "description": "Role names the keys guardrail exempts."},
        "imagePublisherRolePatterns": {
            **_PATTERNS, "default": list(DEFAULT_IMAGE_PUBLISHER_ROLE_PATTERNS),
            "description": "Role names the image parameter guardrail exempts."},
    },
)
