"""egress-free-segment-dns-firewall: what SegmentedNetwork declares passes (read from inputs as in
a preview, and from outputs with literal ids as in an export); each way to open DNS is caught."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.components.test_network import ARGS, SEGMENTS, build
from tests.policy_packs.test_rules import res, urns, vpc
from ztai.preview.recorder import RecordedResource
from ztpolicy.rule import Resource
from ztpolicy.rules.network.egress_free_segment_dns_firewall import (
    _answered_by_aws,
    egress_free_segment_dns_firewall,
)

DEFAULTS = {"egressAllowedSegments": ["management"]}
GROUP = "aws:route53/resolverFirewallRuleGroup:ResolverFirewallRuleGroup"
LIST = "aws:route53/resolverFirewallDomainList:ResolverFirewallDomainList"
RULE = "aws:route53/resolverFirewallRule:ResolverFirewallRule"
ASSOCIATION = "aws:route53/resolverFirewallRuleGroupAssociation:ResolverFirewallRuleGroupAssociation"
CONFIG = "aws:route53/resolverFirewallConfig:ResolverFirewallConfig"
QUERY_LOG = "aws:route53/resolverQueryLogConfigAssociation:ResolverQueryLogConfigAssociation"


def from_inputs(resource: RecordedResource) -> Resource:
    return Resource(type=resource.type, name=resource.name, urn=resource.urn, props=resource.inputs,
                    property_dependencies={k: tuple(v) for k, v in resource.property_dependencies.items()})


def from_outputs(resource: RecordedResource) -> Resource:
    # An export: outputs with real ids, no property dependencies.
    return Resource(type=resource.type, name=resource.name, urn=resource.urn,
                    props={**resource.inputs, **resource.outputs, "id": resource.id})


@pytest.fixture(scope="module")
def recorded() -> list[RecordedResource]:
    return build(replace(ARGS, segments=SEGMENTS)).resources


@pytest.mark.parametrize("convert", [from_inputs, from_outputs])
def test_the_components_network_passes(recorded: list[RecordedResource], convert: Any) -> None:
    resources = [convert(r) for r in recorded]
    assert egress_free_segment_dns_firewall(resources, DEFAULTS) == []
    # Without the component's DNS resources every egress-free VPC fails three ways.
    bare = [r for r in resources if not r.type.startswith("aws:route53/")]
    findings = egress_free_segment_dns_firewall(bare, DEFAULTS)
    assert len(findings) == 9
    assert {f.urn.rsplit("::", 1)[-1] for f in findings} == {
        "network-data-vpc", "network-training-vpc", "network-inference-vpc"}


def walled(action_for_star: str = "BLOCK", *, allow_first: bool = False,
           fail_open: str = "DISABLED") -> list[Resource]:
    data = vpc("data-vpc", "data")
    allowed = res(LIST, "allowed", id="rslvr-fdl-allowed", domains=["*.eu-west-1.amazonaws.com"])
    everything = res(LIST, "everything", id="rslvr-fdl-all", domains=["*"])
    group = res(GROUP, "group", id="rslvr-frg-1")
    rules = [
        res(RULE, "allow-aws", deps={"firewallRuleGroupId": [group.urn],
                                    "firewallDomainListId": [allowed.urn]},
            action="ALLOW", priority=100),
        res(RULE, "star", deps={"firewallRuleGroupId": [group.urn],
                               "firewallDomainListId": [everything.urn]},
            action=action_for_star, priority=200, blockResponse="NXDOMAIN"),
    ]
    if allow_first:
        rules.append(res(RULE, "allow-all", deps={"firewallRuleGroupId": [group.urn],
                                                 "firewallDomainListId": [everything.urn]},
                         action="ALLOW", priority=50))
    return [
        data, allowed, everything, group, *rules,
        res(ASSOCIATION, "association", deps={"vpcId": [data.urn], "firewallRuleGroupId": [group.urn]},
            priority=100),
        res(CONFIG, "config", deps={"resourceId": [data.urn]}, firewallFailOpen=fail_open),
        res(QUERY_LOG, "query-log", deps={"resourceId": [data.urn]}),
    ]


def test_a_walled_garden_passes() -> None:
    assert egress_free_segment_dns_firewall(walled(), DEFAULTS) == []


@pytest.mark.parametrize("resources, fragment", [
    (walled("ALERT"), "lets every name through: rule star (ALERT)"),
    (walled("ALLOW"), "lets every name through: rule star (ALLOW)"),
    (walled(allow_first=True), "lets every name through: rule allow-all (ALLOW)"),
    ([r for r in walled() if r.name != "star"], "has no rule blocking `*`"),
    ([r for r in walled() if r.type != ASSOCIATION], "has no DNS Firewall rule group"),
    (walled(fail_open="ENABLED"), "firewallFailOpen ['ENABLED']"),
    ([r for r in walled() if r.type != CONFIG], "no declared DNS Firewall configuration"),
    ([r for r in walled() if r.type != QUERY_LOG], "has no Resolver query logging"),
])
def test_ways_to_open_dns_are_caught(resources: list[Resource], fragment: str) -> None:
    [finding] = egress_free_segment_dns_firewall(resources, DEFAULTS)
    assert fragment in finding.message


def test_a_pasted_domain_list_cannot_be_read_and_does_not_count() -> None:
    resources = [r if r.name != "star" else res(
        RULE, "star", deps={"firewallRuleGroupId": [r.property_dependencies["firewallRuleGroupId"][0]]},
        firewallDomainListId="rslvr-fdl-elsewhere", action="BLOCK", priority=200) for r in walled()]
    [finding] = egress_free_segment_dns_firewall(resources, DEFAULTS)
    assert "has no rule blocking `*`" in finding.message


def test_the_egress_segment_is_exempt_and_tags_cannot_exempt_others() -> None:
    management = vpc("mgmt-vpc", "management", egress="nat")
    flipped = vpc("data-vpc", "data", egress="nat")
    assert urns(egress_free_segment_dns_firewall([management, flipped], DEFAULTS)) == {"data-vpc"}


# -- the allow list holds only names AWS answers -------------------------------------------------
def _with_domains(resources: list[Resource], extra: list[str]) -> list[Resource]:
    return [replace(r, props={**r.props, "domains": [*r.props["domains"], *extra]})
            if r.type == LIST and "*" not in r.props["domains"] else r for r in resources]


@pytest.mark.parametrize("convert", [from_inputs, from_outputs], ids=["preview", "export"])
def test_a_public_suffix_on_the_allow_list_is_caught(recorded: list[RecordedResource],
                                                     convert: Any) -> None:
    # The review's edit: an allow list that lets every .com, .net and .io name out.
    resources = _with_domains([convert(r) for r in recorded], ["*.com", "*.net", "*.io"])
    findings = egress_free_segment_dns_firewall(resources, DEFAULTS)
    assert len(findings) == 3  # one per egress-free VPC, on the allowing rule
    assert {f.urn.rsplit("::", 1)[-1] for f in findings} == {"network-dns-allow-aws"}
    assert all("resolve *.com, *.io, *.net: names not answered by AWS" in f.message for f in findings)
    assert {f.message.split("lets egress-free VPC ")[1].split(" ")[0] for f in findings} == {
        "network-data-vpc", "network-training-vpc", "network-inference-vpc"}


@pytest.mark.parametrize("convert", [from_inputs, from_outputs], ids=["preview", "export"])
def test_the_components_extra_domains_need_the_same_entries_in_the_rule(convert: Any) -> None:
    zone = ("internal.example.com", "*.internal.example.com")
    built = build(replace(ARGS, segments=SEGMENTS, dns_allowed_domains=zone)).resources
    resources = [convert(r) for r in built]
    findings = egress_free_segment_dns_firewall(resources, DEFAULTS)
    assert len(findings) == 3 and all(
        "resolve *.internal.example.com, internal.example.com" in f.message for f in findings)
    assert egress_free_segment_dns_firewall(resources, {**DEFAULTS, "dnsAllowedDomains": list(zone)}) == []
    # Matched exactly: the zone does not admit its parent, nor `*` anything.
    wider = _with_domains(resources, ["example.com"])
    assert len(egress_free_segment_dns_firewall(wider, {**DEFAULTS, "dnsAllowedDomains": [*zone, "*"]})) == 3


@pytest.mark.parametrize("entry, aws", [
    ("*.eu-west-1.amazonaws.com", True), ("*.cn-north-1.amazonaws.com.cn", True),
    ("ec2.eu-west-1.api.aws", True), ("*.eu-west-1.compute.internal", True), ("*.ec2.internal", True),
    ("*.10.in-addr.arpa", True), ("*.20.172.in-addr.arpa", True), ("AMAZONAWS.COM.", True),
    ("*amazonaws.com", False), ("amazonaws.com.attacker.io", False), ("*.com", False),
    ("*.in-addr.arpa", False), ("*.8.8.8.in-addr.arpa", False), ("*.32.172.in-addr.arpa", False),
    ("*.aws.amazon.com", False), ("x.*.amazonaws.com", False), ("*", False),
])
def test_names_answered_by_aws(entry: str, aws: bool) -> None:
    assert _answered_by_aws(entry) is aws


def _rule(name: str, domains: list[str] | None, action: str, priority: int, **props: Any) -> list[Resource]:
    group = next(r for r in walled() if r.type == GROUP)
    listed = ([res(LIST, f"{name}-list", id=f"rslvr-fdl-{name}", domains=domains)]
              if domains is not None else [])
    deps = {"firewallRuleGroupId": [group.urn], "firewallDomainListId": [r.urn for r in listed]}
    return [*listed, res(RULE, name, deps=deps, action=action, priority=priority,
                         firewallDomainListId=None if listed else "rslvr-fdl-pasted", **props)]


@pytest.mark.parametrize("extra, fragment", [
    (_rule("alert-partner", ["*.partner.example"], "ALERT", 50), "resolve *.partner.example"),
    (_rule("allow-look-alike", ["*amazonaws.com"], "ALLOW", 150), "resolve *amazonaws.com"),
    (_rule("pasted", None, "ALLOW", 150), "a domain list the stack does not declare"),
    (_rule("trusting", ["*.eu-west-1.amazonaws.com"], "ALLOW", 150,
           firewallDomainRedirectionAction="TRUST_REDIRECTION_DOMAIN"), "trusts CNAME targets"),
])
def test_every_rule_that_lets_names_through_before_the_block_is_bounded(
        extra: list[Resource], fragment: str) -> None:
    [finding] = egress_free_segment_dns_firewall([*walled(), *extra], DEFAULTS)
    assert finding.urn == extra[-1].urn and fragment in finding.message


def test_rules_after_the_block_of_everything_are_never_reached() -> None:
    late = _rule("late-allow", ["*.com"], "ALLOW", 300)
    assert egress_free_segment_dns_firewall([*walled(), *late], DEFAULTS) == []
