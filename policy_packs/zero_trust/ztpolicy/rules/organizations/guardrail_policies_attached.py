"""The organisation layer's guardrail policies are attached, and only deny (control:
organisation guardrails).

An SCP or RCP that is created but attached to nothing protects nothing. SCPs and RCPs never grant
(an Allow in one lets nothing through that FullAWSAccess or RCPFullAWSAccess did not already), so
a guardrail document holds Deny statements only, and an RCP's statements apply to every caller
(Principal "*", as the RCP syntax requires): a statement of another shape is a relaxation or a
mistake."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known, refers_to
from ztpolicy.guardrails import RESOURCE_CONTROL_POLICY, SERVICE_CONTROL_POLICY
from ztpolicy.rule import Finding, Resource, Rule

POLICY = "aws:organizations/policy:Policy"
ATTACHMENT = "aws:organizations/policyAttachment:PolicyAttachment"


def _content_problems(policy: Resource, kind: str) -> list[str]:
    content = known(policy, "content")
    if content is UNKNOWN:
        return []
    try:
        document = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        document = None
    if not isinstance(document, Mapping):
        return [f"guardrail policy {policy.name}'s content is not a JSON policy document"]
    problems = []
    for index, statement in enumerate(as_list(document.get("Statement"))):
        sid = statement.get("Sid", index) if isinstance(statement, Mapping) else index
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Deny":
            problems.append(f"guardrail policy {policy.name} statement {sid!r} is not a Deny: "
                            "a guardrail only ever denies")
        elif kind == RESOURCE_CONTROL_POLICY and statement.get("Principal") != "*":
            problems.append(f"guardrail policy {policy.name} statement {sid!r} is an RCP statement "
                            "whose Principal is not \"*\"")
    return problems


def guardrail_policies_attached(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    attachments = [r for r in resources if r.type == ATTACHMENT]
    findings = []
    for policy in (r for r in resources if r.type == POLICY):
        kind = known(policy, "type") or SERVICE_CONTROL_POLICY  # the provider's default
        if kind not in (SERVICE_CONTROL_POLICY, RESOURCE_CONTROL_POLICY):
            continue
        if not any(refers_to(attachment, "policyId", policy) for attachment in attachments):
            findings.append(Finding(policy.urn, f"guardrail policy {policy.name} is attached to "
                                                "nothing: it protects no account"))
        findings += [Finding(policy.urn, problem) for problem in _content_problems(policy, kind)]
    return findings


RULE = Rule(
    name="guardrail-policies-attached",
    description="The stack's SCPs and RCPs are attached to a target and hold Deny statements only.",
    control="organisation guardrails",
    severity=Severity.HIGH,
    remediation="Build the guardrails with OrganizationGuardrails (it attaches each document to "
                "every guardrailTargetIds entry) and keep their statements as it renders them.",
    stack_check=guardrail_policies_attached,
)
