"""Egress-free segments resolve only what they need, fail closed, and log every query (§2.1).

A VPC with no route out still reaches the internet through DNS: the VPC resolver forwards a query
for `<data>.attacker.example` to the attacker's name server. So every egress-free VPC (the same
fail-closed reading as egress-free-segment-no-internet-path) must have:

- a Route 53 Resolver DNS Firewall rule-group association whose rules, in priority order across
  the VPC's associations, reach a BLOCK rule on a domain list holding `*` before any ALLOW or
  ALERT of `*` (a walled garden: allow list first, then everything else blocked);
- a firewall configuration with `firewallFailOpen` DISABLED (declared, so turning fail-open on
  shows as drift);
- a Resolver query-log configuration association.

Domain lists the stack does not declare (an id pasted in) cannot be read: they count as not
blocking everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known, known_items, of_type, referenced, refers_to
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.egress_free_segment_no_internet_path import egress_free_vpcs

ASSOCIATION = "aws:route53/resolverFirewallRuleGroupAssociation:ResolverFirewallRuleGroupAssociation"
RULE_GROUP = "aws:route53/resolverFirewallRuleGroup:ResolverFirewallRuleGroup"
FIREWALL_RULE = "aws:route53/resolverFirewallRule:ResolverFirewallRule"
DOMAIN_LIST = "aws:route53/resolverFirewallDomainList:ResolverFirewallDomainList"
FIREWALL_CONFIG = "aws:route53/resolverFirewallConfig:ResolverFirewallConfig"
QUERY_LOG_ASSOCIATION = ("aws:route53/resolverQueryLogConfigAssociation:"
                         "ResolverQueryLogConfigAssociation")


def _priority(resource: Resource) -> float:
    value = known(resource, "priority")
    return float(value) if isinstance(value, (int, float)) else float("inf")


def _walls_everything_else(vpc: Resource, resources: Sequence[Resource]) -> str | None:
    """None when the VPC's firewall blocks every name not allowed before; else why not."""
    groups, rules = of_type(resources, RULE_GROUP), of_type(resources, FIREWALL_RULE)
    lists = of_type(resources, DOMAIN_LIST)
    associations = sorted((a for a in of_type(resources, ASSOCIATION) if refers_to(a, "vpcId", vpc)),
                          key=_priority)
    if not associations:
        return "has no DNS Firewall rule group"
    for association in associations:
        group = referenced(association, "firewallRuleGroupId", groups)
        if group is None:
            continue
        for rule in sorted((r for r in rules if refers_to(r, "firewallRuleGroupId", group)),
                           key=_priority):
            domain_list = referenced(rule, "firewallDomainListId", lists)
            domains = known_items(known(domain_list, "domains")) if domain_list else []
            if "*" not in domains:
                continue
            action = known(rule, "action")
            if action == "BLOCK":
                return None
            return (f"lets every name through: rule {rule.name} ({action}) matches `*` before any "
                    "BLOCK of it")
    return "has no rule blocking `*` (every name not on an allow list) in its DNS Firewall"


def egress_free_segment_dns_firewall(resources: Sequence[Resource],
                                     config: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for vpc in egress_free_vpcs(resources, config):
        where = f"egress-free VPC {vpc.name}"
        if (problem := _walls_everything_else(vpc, resources)) is not None:
            findings.append(Finding(vpc.urn, f"{where} {problem}: DNS queries carry data to any "
                                    "name server on the internet"))
        configs = [c for c in of_type(resources, FIREWALL_CONFIG) if refers_to(c, "resourceId", vpc)]
        fail_open = [known(c, "firewallFailOpen") for c in configs]
        if not configs:
            findings.append(Finding(vpc.urn, f"{where} has no declared DNS Firewall configuration "
                                    "with firewallFailOpen DISABLED"))
        elif any(value not in ("DISABLED", UNKNOWN) for value in fail_open):
            findings.append(Finding(configs[0].urn, f"{where} lets DNS queries through when the "
                                    f"firewall cannot evaluate them (firewallFailOpen {as_list(fail_open)})"))
        if not any(refers_to(a, "resourceId", vpc) for a in of_type(resources, QUERY_LOG_ASSOCIATION)):
            findings.append(Finding(vpc.urn, f"{where} has no Resolver query logging"))
    return findings


RULE = Rule(
    name="egress-free-segment-dns-firewall",
    description="Egress-free VPCs have a DNS Firewall that blocks every name not allowed, fails "
                "closed, and Resolver query logging.",
    section="2.1",
    severity=Severity.HIGH,
    remediation="Use SegmentedNetwork: it associates an allow-list-then-block-`*` rule group, a "
                "fail-closed firewall configuration and query logging with each egress-free VPC. "
                "Add names a segment needs to dns_allowed_domains, never an ALLOW of `*`.",
    stack_check=egress_free_segment_dns_firewall,
    config={"egressAllowedSegments": {
        "type": "array", "items": {"type": "string"}, "default": ["management"],
        "description": "Segments (ztai:segment tag, with ztai:egress=nat) exempt from the DNS "
                       "walled garden; keep equal to egress-free-segment-no-internet-path's.",
    }},
)
