"""VPC endpoints carry a policy that keeps them inside the data perimeter (§2.1)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule

ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ENDPOINT_POLICY = "aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy"
# Endpoint types that accept an endpoint policy (Gateway Load Balancer and resource endpoints don't).
POLICY_TYPES = {"Gateway", "Interface"}
# Condition keys that tie the caller to known identities.
PRINCIPAL_KEYS = {"aws:principalorgid", "aws:principalaccount", "aws:principalarn",
                  "aws:principalorgpaths", "aws:userid"}


def _is_anyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any(value == "*" or "*" in as_list(value) for value in principal.values())
    return False


def _condition_keys(statement: Mapping[str, Any]) -> set[str]:
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return set()
    return {key.lower() for block in condition.values() if isinstance(block, Mapping) for key in block}


def policy_problems(document: Any, label: str) -> list[str]:
    """Why an endpoint policy document does not keep the endpoint inside the perimeter."""
    if document in (None, ""):
        return [f"{label} has no endpoint policy: the AWS default allows any principal, any action, "
                "any resource (including other accounts' buckets and keys)"]
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError as error:
        return [f"{label} endpoint policy is not valid JSON ({error.msg})"]
    if not isinstance(parsed, Mapping):
        return [f"{label} endpoint policy is not a JSON object"]
    problems = []
    for index, statement in enumerate(as_list(parsed.get("Statement"))):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid") or f"#{index}"
        if _is_anyone(statement.get("Principal")) and not (_condition_keys(statement) & PRINCIPAL_KEYS):
            problems.append(f"{label} endpoint policy statement {sid} allows any principal without "
                            "an aws:PrincipalOrgID / aws:PrincipalAccount / aws:PrincipalArn condition")
    return problems


def vpc_endpoint_policy_restrictive(resources: Sequence[Resource],
                                    _config: Mapping[str, Any]) -> list[Finding]:
    separate = of_type(resources, ENDPOINT_POLICY)
    findings = []
    for endpoint in of_type(resources, ENDPOINT):
        if endpoint.get("vpcEndpointType", "Gateway") not in POLICY_TYPES:
            continue
        attached = [p for p in separate if refers_to(p, "vpcEndpointId", endpoint)]
        document = known(attached[0] if attached else endpoint, "policy")
        if document is UNKNOWN:
            continue  # computed from resources not created yet; checked when it is known
        findings += [Finding(endpoint.urn, problem)
                     for problem in policy_problems(document, f"endpoint {endpoint.name}")]
    for policy in separate:
        document = known(policy, "policy")
        if document is not UNKNOWN and document:
            findings += [Finding(policy.urn, problem)
                         for problem in policy_problems(document, policy.name)]
    return findings


RULE = Rule(
    name="vpc-endpoint-policy-restrictive",
    description="Gateway and interface VPC endpoints must have a policy that admits only our principals.",
    section="2.1",
    severity=Severity.HIGH,
    remediation="Give every endpoint a policy whose Allow statements carry aws:PrincipalOrgID (or "
                "aws:PrincipalAccount) conditions, plus aws:ResourceOrgID/ResourceAccount where the "
                "service supports it (SegmentedNetwork writes these).",
    stack_check=vpc_endpoint_policy_restrictive,
)
