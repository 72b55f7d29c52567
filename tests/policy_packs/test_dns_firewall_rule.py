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
from ztpolicy.rules.egress_free_segment_dns_firewall import egress_free_segment_dns_firewall

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
