"""Human and machine reports of a preview or an analysis."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ztai.policy.analyzer import PolicyResult


@dataclass(frozen=True)
class ReportResource:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    protect: bool
    inputs: dict[str, Any]


def display_type(token: str) -> str:
    """`aws:ec2/vpc:Vpc` → `aws:ec2:Vpc`, as `pulumi preview` shows types."""
    package, _, rest = token.partition(":")
    module, _, name = rest.rpartition(":")
    return f"{package}:{module.split('/')[0]}:{name}" if module else token


def _tree_rows(resources: Sequence[ReportResource]) -> list[tuple[str, ReportResource]]:
    children: dict[str, list[ReportResource]] = defaultdict(list)
    urns = {resource.urn for resource in resources}
    roots = []
    for resource in resources:
        if resource.parent and resource.parent in urns:
            children[resource.parent].append(resource)
        else:
            roots.append(resource)
    rows: list[tuple[str, ReportResource]] = []

    def walk(resource: ReportResource, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        rows.append((prefix + branch, resource))
        # Siblings by name: registration order varies from run to run (the SDK registers
        # concurrently), and a stable tree can be diffed between two previews.
        kids = sorted(children.get(resource.urn, []), key=lambda kid: (kid.name, kid.type))
        extension = "" if top else ("   " if last else "│  ")
        for index, kid in enumerate(kids):
            walk(kid, prefix + extension, index == len(kids) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return rows


def render_text(*, title: str, resources: Sequence[ReportResource], outputs: dict[str, Any] | None,
                result: PolicyResult, pack_label: str, plan: str, quiet: bool = False) -> str:
    """A `pulumi preview`-like tree, the stack outputs and the policy summary; `quiet` keeps only
    the policy section (violations, exclusions, disabled policies and the summary)."""
    if quiet:
        return "\n".join(render_policies(result, pack_label)) + "\n"
    rows = _tree_rows(resources)
    type_width = max((len(prefix) + len(display_type(r.type)) for prefix, r in rows), default=4)
    name_width = max((len(r.name) for _, r in rows), default=4)
    lines = [title, "", f"     {'Type':<{type_width}}  {'Name':<{name_width}}  Plan"]
    symbol = "+" if plan == "create" else " "
    for prefix, resource in rows:
        kind = prefix + display_type(resource.type)
        flags = "  [protect]" if resource.protect else ""
        lines.append(f" {symbol}   {kind:<{type_width}}  {resource.name:<{name_width}}  {plan}{flags}")
    if outputs:
        lines += ["", "Outputs:"]
        width = max(len(key) for key in outputs)
        for key, value in outputs.items():
            lines.append(f"    {key:<{width}}: {json.dumps(value, sort_keys=True)}")
    lines += ["", "Resources:", f"    {symbol} {len(resources)} to {plan}" if plan == "create"
              else f"    {len(resources)} analysed", ""]
    lines += render_policies(result, pack_label)
    return "\n".join(lines) + "\n"


def disabled_policies(result: PolicyResult) -> list[str]:
    """Policies the policy configuration disabled: not run, so neither passed nor failed."""
    return sorted(name for name, config in result.config.items()
                  if config.get("enforcementLevel") == "disabled")


def render_policies(result: PolicyResult, pack_label: str) -> list[str]:
    policies = {policy.name: policy for policy in result.policies}
    mandatory = len(result.mandatory_violations)
    advisory = len(result.violations) - mandatory
    disabled = disabled_policies(result)
    mark = "FAILED" if mandatory else "PASSED"
    if disabled:
        mark += f" ({len(disabled)} disabled {'policy' if len(disabled) == 1 else 'policies'} not checked)"
    lines = ["Policies:", f"    {result.pack_name}@v{result.pack_version} ({pack_label}): {mark}"]
    by_policy: dict[str, list[Any]] = defaultdict(list)
    for violation in result.violations:
        by_policy[violation.policy].append(violation)
    for name, violations in by_policy.items():
        policy = policies.get(name)
        control = f" ({policy.control})" if policy and policy.control else ""
        lines.append(f"    - [{violations[0].level}] [{violations[0].severity}] {name}{control}: "
                     f"{policy.description if policy else ''}")
        for violation in violations:
            lines.append(f"        {violation.urn or '(stack)'}")
            lines.append(f"          {violation.message}")
        if policy and policy.remediation:
            lines.append(f"        remediation: {policy.remediation}")
    if result.exclusions:
        lines.append(f"    Exclusions ({len(result.exclusions)}), each suppressing findings:")
        for exclusion in result.exclusions:
            lines.append(f"    - {exclusion.policy}: {exclusion.urn}")
            lines.append(f"        pattern {exclusion.pattern!r}, reason: {exclusion.reason}")
            for message in exclusion.suppressed:
                lines.append(f"        suppressed: {message}")
    if disabled:
        # A disabled policy never ran: listed apart so that nobody reads it as passed.
        lines.append(f"    Disabled by the policy configuration, not checked ({len(disabled)}):")
        lines += [f"    - {name}" for name in disabled]
    checked = len(result.policies) - len(disabled)
    counted = (f"{checked} policies checked, {len(disabled)} disabled" if disabled
               else f"{len(result.policies)} policies")
    lines.append(f"    {counted}, {mandatory} mandatory and {advisory} advisory "
                 f"violation(s), {len(result.exclusions)} exclusion(s)")
    return lines


def render_json(*, mode: str, project: str, stack: str, resources: Sequence[ReportResource],
                outputs: dict[str, Any] | None, result: PolicyResult,
                warnings: Sequence[str] = ()) -> str:
    """One JSON document: resources, policies, violations, exclusions, the warnings also printed
    on stderr, and a summary in which disabled policies are counted apart from checked ones."""
    policies = {policy.name: policy for policy in result.policies}
    disabled = disabled_policies(result)
    document = {
        "mode": mode,
        "project": project,
        "stack": stack,
        "resources": [{"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent or None,
                       "custom": r.custom, "protect": r.protect, "inputs": r.inputs}
                      for r in resources],
        "outputs": outputs or {},
        "policyPack": {
            "name": result.pack_name, "version": result.pack_version,
            "policies": [{"name": p.name, "description": p.description, "type": p.policy_type,
                          "enforcementLevel": p.enforcement_level, "severity": p.severity,
                          "control": p.control, "remediation": p.remediation}
                         for p in result.policies],
            "config": result.config,
        },
        "violations": [{"policy": v.policy, "level": v.level, "severity": v.severity,
                        "control": policies[v.policy].control if v.policy in policies else "",
                        "urn": v.urn, "message": v.message} for v in result.violations],
        "exclusions": [{"policy": e.policy, "urn": e.urn, "pattern": e.pattern, "reason": e.reason,
                        "suppressed": list(e.suppressed)} for e in result.exclusions],
        "summary": {
            "resources": len(resources),
            "mandatoryViolations": len(result.mandatory_violations),
            "advisoryViolations": len(result.violations) - len(result.mandatory_violations),
            "exclusions": len(result.exclusions),
            "policiesChecked": len(result.policies) - len(disabled),
            "disabledPolicies": disabled,
            "passed": not result.mandatory_violations,
        },
        "warnings": list(warnings),
    }
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
