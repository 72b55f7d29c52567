"""Egress-free segments resolve only what they need, fail closed, and log every query (control:
network segmentation).

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

The allow list is bounded too. Every rule that lets a query through (ALLOW, or ALERT, which
only logs) before that BLOCK of `*` may name only what AWS answers itself, so no query from the
VPC reaches a name server someone else runs: names under `amazonaws.com`, `amazonaws.com.cn` and
`api.aws` (AWS's service names, dual-stack ones included), instances' private names
(`compute.internal`, `ec2.internal`, answered by the VPC resolver) and reverse lookups of
RFC 1918 addresses. Anything else (`*.com`, a partner's domain, an unreadable list) is a finding
naming the entry, unless listed exactly in `dnsAllowedDomains`: the same values as
SegmentedNetworkArgs.dns_allowed_domains, a reviewed change in both places. Such a rule must
also inspect CNAME targets (`INSPECT_REDIRECTION_DOMAIN`, AWS's default): trusting them lets an
allowed name (a private hosted zone's record) point the resolver at any domain.
Forwarding (Resolver rules) is egress-free-segment-no-internet-path's: it is a way out whatever
the firewall says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known, known_items, of_type, referenced, refers_to
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.network.egress_free_segment_no_internet_path import egress_free_vpcs

ASSOCIATION = "aws:route53/resolverFirewallRuleGroupAssociation:ResolverFirewallRuleGroupAssociation"
RULE_GROUP = "aws:route53/resolverFirewallRuleGroup:ResolverFirewallRuleGroup"
FIREWALL_RULE = "aws:route53/resolverFirewallRule:ResolverFirewallRule"
DOMAIN_LIST = "aws:route53/resolverFirewallDomainList:ResolverFirewallDomainList"
FIREWALL_CONFIG = "aws:route53/resolverFirewallConfig:ResolverFirewallConfig"
QUERY_LOG_ASSOCIATION = ("aws:route53/resolverQueryLogConfigAssociation:"
                         "ResolverQueryLogConfigAssociation")


# What AWS answers itself (components/network.py dns_firewall_allow_list admits a regional part
# of the first two): its service names, instances' private names, private reverse zones.
AWS_DNS_SUFFIXES = ("amazonaws.com", "amazonaws.com.cn", "api.aws", "compute.internal",
                    "ec2.internal", "10.in-addr.arpa", "168.192.in-addr.arpa",
                    *(f"{octet}.172.in-addr.arpa" for octet in range(16, 32)))
# A domain list entry: a lower-case name, optionally starting with `*.` (as the component's
# dns_allowed_domains); the pack configuration's dnsAllowedDomains must look the same.
DOMAIN_PATTERN = r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}\.?$"
_DOMAIN = re.compile(DOMAIN_PATTERN)
_ALLOWING = ("ALLOW", "ALERT")


def _answered_by_aws(entry: str) -> bool:
    """Is every name this domain-list entry matches under one of AWS's own suffixes? A leading
    `*` matches any prefix, so `*amazonaws.com` (which matches `evilamazonaws.com`) is not."""
    name = entry.lower().rstrip(".")
    if name.startswith("*."):
        name = name[2:]
    if "*" in name or not _DOMAIN.match(name):
        return False
    return any(name == suffix or name.endswith("." + suffix) for suffix in AWS_DNS_SUFFIXES)


def _priority(resource: Resource) -> float:
    value = known(resource, "priority")
    return float(value) if isinstance(value, (int, float)) else float("inf")


def _firewall_rules(vpc: Resource, resources: Sequence[Resource]) -> list[Resource] | None:
    """The firewall rules of the VPC's associations in evaluation order (association priority,
    then rule priority); None when the VPC has no association."""
    groups, rules = of_type(resources, RULE_GROUP), of_type(resources, FIREWALL_RULE)
    associations = sorted((a for a in of_type(resources, ASSOCIATION) if refers_to(a, "vpcId", vpc)),
                          key=_priority)
    if not associations:
        return None
    ordered = []
    for association in associations:
        group = referenced(association, "firewallRuleGroupId", groups)
        if group is not None:
            ordered += sorted((r for r in rules if refers_to(r, "firewallRuleGroupId", group)),
                              key=_priority)
    return ordered


def _domains(rule: Resource, resources: Sequence[Resource]) -> list[Any] | None:
    """The entries of the rule's domain list; None when the stack does not declare it."""
    domain_list = referenced(rule, "firewallDomainListId", of_type(resources, DOMAIN_LIST))
    return known_items(known(domain_list, "domains")) if domain_list is not None else None


def _walls_everything_else(vpc: Resource, resources: Sequence[Resource]) -> str | None:
    """None when the VPC's firewall blocks every name not allowed before; else why not."""
    rules = _firewall_rules(vpc, resources)
    if rules is None:
        return "has no DNS Firewall rule group"
    for rule in rules:
        if "*" not in (_domains(rule, resources) or []):
            continue
        action = known(rule, "action")
        if action == "BLOCK":
            return None
        return (f"lets every name through: rule {rule.name} ({action}) matches `*` before any "
                "BLOCK of it")
    return "has no rule blocking `*` (every name not on an allow list) in its DNS Firewall"


def _allow_list_findings(vpc: Resource, resources: Sequence[Resource],
                         extra: set[str]) -> list[Finding]:
    """Rules that let names outside AWS through, up to the first BLOCK of `*` (rules after it
    are never reached; a `*` before it is _walls_everything_else's finding)."""
    findings = []
    where = f"egress-free VPC {vpc.name}"
    for rule in _firewall_rules(vpc, resources) or []:
        domains, action = _domains(rule, resources), known(rule, "action")
        if action == "BLOCK" and "*" in (domains or []):
            break
        if action not in _ALLOWING and action is not UNKNOWN:
            continue
        verb = f"rule {rule.name} ({'action known only at deploy' if action is UNKNOWN else action})"
        if domains is None:
            findings.append(Finding(rule.urn, f"{verb} lets through the names of a domain list "
                                    f"the stack does not declare, for {where}: cannot tell they "
                                    "are AWS's"))
            continue
        outside = sorted({"(known only at deploy)" if entry is UNKNOWN else str(entry)
                          for entry in domains if entry != "*" and (
                              entry is UNKNOWN or not (_answered_by_aws(str(entry))
                                                       or str(entry).lower().rstrip(".") in extra))})
        if outside:
            findings.append(Finding(rule.urn, f"{verb} lets {where} resolve {', '.join(outside)}: "
                                    "names not answered by AWS, so queries carry data to whoever "
                                    "runs their name servers (list a private zone in "
                                    "dnsAllowedDomains and dns_allowed_domains)"))
        if known(rule, "firewallDomainRedirectionAction") == "TRUST_REDIRECTION_DOMAIN":
            findings.append(Finding(rule.urn, f"{verb} of {where} trusts CNAME targets "
                                    "(TRUST_REDIRECTION_DOMAIN): an allowed name can send the "
                                    "resolver to any domain"))
    return findings


def egress_free_segment_dns_firewall(resources: Sequence[Resource],
                                     config: Mapping[str, Any]) -> list[Finding]:
    findings = []
    # Only well-formed entries count: the schema refuses others, and a direct caller gets nothing
    # admitted by a malformed one (`*`, `*.com`).
    extra = {str(d).lower().rstrip(".") for d in as_list(config.get("dnsAllowedDomains"))
             if isinstance(d, str) and _DOMAIN.match(d)}
    for vpc in egress_free_vpcs(resources, config):
        where = f"egress-free VPC {vpc.name}"
        if (problem := _walls_everything_else(vpc, resources)) is not None:
            findings.append(Finding(vpc.urn, f"{where} {problem}: DNS queries carry data to any "
                                    "name server on the internet"))
        findings += _allow_list_findings(vpc, resources, extra)
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
    description="Egress-free VPCs have a DNS Firewall that allows only names AWS answers (plus "
                "dnsAllowedDomains), blocks every other name, fails closed, and Resolver query "
                "logging.",
    control="DNS walled garden",
    severity=Severity.HIGH,
    remediation="Use SegmentedNetwork: it associates an allow-list-then-block-`*` rule group, a "
                "fail-closed firewall configuration and query logging with each egress-free VPC. "
                "Add a private zone a segment needs to dns_allowed_domains AND to this rule's "
                "dnsAllowedDomains (the same entries); never a name served from outside AWS, "
                "never an ALLOW of `*`.",
    stack_check=egress_free_segment_dns_firewall,
    config={"egressAllowedSegments": {
        "type": "array", "items": {"type": "string"}, "default": ["management"],
        "description": "Segments (ztai:segment tag, with ztai:egress=nat) exempt from the DNS "
                       "walled garden; keep equal to egress-free-segment-no-internet-path's.",
    }, "dnsAllowedDomains": {
        "type": "array", "items": {"type": "string", "pattern": DOMAIN_PATTERN}, "default": [],
        "description": "Domain-list entries beyond AWS's own names that egress-free VPCs may "
                       "resolve, matched exactly (`zone.example`, `*.zone.example`); keep equal to "
                       "SegmentedNetworkArgs.dns_allowed_domains. Only zones answered inside AWS "
                       "(private hosted zones): a query carries data to whoever answers it.",
    }},
)
