"""The pack served through its own gRPC Analyzer, as the engine runs it: policies, configuration,
enforcement levels and exclusions over the protocol."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PACK_DIR
from ztai.policy.analyzer import (
    AnalyzedResource,
    PolicyPackError,
    PolicyPackProcess,
    PolicyResult,
    analyze,
    pack_environment,
)
from ztai.policy.config import PolicyConfigError

PREFIX = "urn:pulumi:test::zero-trust-ai::"


def resource(token: str, name: str, deps: dict[str, list[str]] | None = None,
             **props: Any) -> AnalyzedResource:
    return AnalyzedResource(urn=f"{PREFIX}{token}::{name}", type=token, name=name,
                            properties=props, property_dependencies=deps or {})


VPC = resource("aws:ec2/vpc:Vpc", "data-vpc", cidrBlock="10.10.0.0/16",
               tags={"ztai:segment": "data", "ztai:egress": "none"})
SECURE = [
    VPC,
    resource("aws:ec2/flowLog:FlowLog", "data-flow-log", {"vpcId": [VPC.urn]}, trafficType="ALL"),
    resource("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "data-default-sg",
             {"vpcId": [VPC.urn]}, ingress=[], egress=[]),
    resource("aws:ec2/subnet:Subnet", "data-private-0", {"vpcId": [VPC.urn]},
             mapPublicIpOnLaunch=False),
]
# The DNS walled garden an egress-free VPC needs (egress-free-segment-dns-firewall).
_EVERYTHING = resource("aws:route53/resolverFirewallDomainList:ResolverFirewallDomainList",
                       "dns-everything", domains=["*"])
_DNS_GROUP = resource("aws:route53/resolverFirewallRuleGroup:ResolverFirewallRuleGroup", "dns-group")
SECURE += [
    _EVERYTHING, _DNS_GROUP,
    resource("aws:route53/resolverFirewallRule:ResolverFirewallRule", "dns-block",
             {"firewallRuleGroupId": [_DNS_GROUP.urn], "firewallDomainListId": [_EVERYTHING.urn]},
             action="BLOCK", priority=200, blockResponse="NXDOMAIN"),
    resource("aws:route53/resolverFirewallRuleGroupAssociation:ResolverFirewallRuleGroupAssociation",
             "data-dns", {"vpcId": [VPC.urn], "firewallRuleGroupId": [_DNS_GROUP.urn]}, priority=100),
    resource("aws:route53/resolverFirewallConfig:ResolverFirewallConfig", "data-dns-config",
             {"resourceId": [VPC.urn]}, firewallFailOpen="DISABLED"),
    resource("aws:route53/resolverQueryLogConfigAssociation:ResolverQueryLogConfigAssociation",
             "data-query-log", {"resourceId": [VPC.urn]}),
]
PUBLIC_SUBNET = resource("aws:ec2/subnet:Subnet", "edge-public-0", {"vpcId": [VPC.urn]},
                         mapPublicIpOnLaunch=True)
OPEN_GROUP = resource("aws:ec2/securityGroup:SecurityGroup", "ssh-from-anywhere",
                      ingress=[{"protocol": "tcp", "fromPort": 22, "toPort": 22,
                                "cidrBlocks": ["0.0.0.0/0"]}])
UNLOGGED_VPC = resource("aws:ec2/vpc:Vpc", "shadow-vpc", cidrBlock="10.99.0.0/16")


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as running:
        yield running


def run(pack: PolicyPackProcess, resources: list[AnalyzedResource],
        config: dict[str, Any] | None = None) -> PolicyResult:
    return analyze(pack, resources, user_config=config, project="zero-trust-ai", stack="test")


def violated(result: PolicyResult) -> set[tuple[str, str]]:
    return {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations}


def test_pack_describes_its_policies(pack: PolicyPackProcess) -> None:
    result = run(pack, SECURE)
    assert result.pack_name == "zero-trust-ai" and result.pack_version == "0.1.0"
    by_name = {p.name: p for p in result.policies}
    # One policy per rule file (in the service folders), each registered once and served under its
    # file's name.
    rules_dir = PACK_DIR / "ztpolicy" / "rules"
    rule_files = {path.stem.replace("_", "-") for path in rules_dir.rglob("*.py") if path.stem != "__init__"}
    # Every rule sits in its service's folder, none loose beside them.
    assert [path.name for path in rules_dir.glob("*.py")] == ["__init__.py"]
    assert len(result.policies) == len(by_name) == len(rule_files) >= 32
    assert set(by_name) == rule_files
    flow = by_name["vpc-flow-logs-enabled"]
    assert (flow.policy_type, flow.enforcement_level, flow.severity, flow.control) == (
        "stack", "mandatory", "high", "segmented network")
    assert by_name["no-unrestricted-ingress"].severity == "critical"
    assert all(p.remediation for p in result.policies)


def test_secure_configuration_passes(pack: PolicyPackProcess) -> None:
    result = run(pack, SECURE)
    assert result.violations == [] and result.exclusions == []


def test_insecure_resources_are_named_by_urn(pack: PolicyPackProcess) -> None:
    result = run(pack, [*SECURE, PUBLIC_SUBNET, OPEN_GROUP, UNLOGGED_VPC])
    assert violated(result) == {
        ("subnet-no-public-ip", "edge-public-0"),
        ("no-unrestricted-ingress", "ssh-from-anywhere"),
        ("vpc-flow-logs-enabled", "shadow-vpc"),
        ("default-security-group-closed", "shadow-vpc"),
        ("egress-free-segment-dns-firewall", "shadow-vpc"),
        # Untagged: the organisation guardrail for egress-free VPCs does not cover it.
        ("guardrail-vpc-egress-tagged", "shadow-vpc"),
    }
    assert all(v.level == "mandatory" for v in result.violations)
    assert {v.urn for v in result.violations} >= {PUBLIC_SUBNET.urn, OPEN_GROUP.urn, UNLOGGED_VPC.urn}


def test_a_property_of_the_wrong_type_fails_the_rule_closed_naming_it(pack: PolicyPackProcess) -> None:
    # A hand-edited export can hold what AWS never returns: the rule reports the resource instead
    # of crashing the pack, and an exclusion does not cover it.
    key = resource("aws:kms/key:Key", "doctored-key", deletionWindowInDays="abc")
    exclusion = {"kms-key-deletion-window": {"exclusions": [
        {"resource": "doctored-key", "reason": "a reason long enough to be accepted"}]}}
    result = run(pack, [*SECURE, key], exclusion)
    [failed] = [v for v in result.violations if v.policy == "kms-key-deletion-window"]
    assert failed.urn == key.urn and failed.level == "mandatory"
    assert failed.message.startswith("kms-key-deletion-window could not evaluate this (TypeError: ")
    assert result.exclusions == []


def test_exclusion_suppresses_and_is_reported_with_its_reason(pack: PolicyPackProcess) -> None:
    reason = "partner load balancer subnets, reviewed in SEC-123"
    result = run(pack, [*SECURE, PUBLIC_SUBNET, OPEN_GROUP],
                 {"subnet-no-public-ip": {"exclusions": [{"resource": "edge-*", "reason": reason}]}})
    assert violated(result) == {("no-unrestricted-ingress", "ssh-from-anywhere")}
    [exclusion] = result.exclusions
    assert (exclusion.policy, exclusion.urn, exclusion.pattern, exclusion.reason) == (
        "subnet-no-public-ip", PUBLIC_SUBNET.urn, "edge-*", reason)
    assert "mapPublicIpOnLaunch" in exclusion.suppressed[0]


def test_stack_rule_exclusion_is_reported(pack: PolicyPackProcess) -> None:
    igw = resource("aws:ec2/internetGateway:InternetGateway", "data-igw", {"vpcId": [VPC.urn]})
    reason = "temporary dataset import, removed after SEC-77 closes"
    result = run(pack, [*SECURE, igw], {"egress-free-segment-no-internet-path": {
        "exclusions": [{"resource": "data-igw", "reason": reason}]}})
    assert result.violations == []
    [exclusion] = result.exclusions
    assert exclusion.urn == igw.urn and exclusion.reason == reason


@pytest.mark.parametrize("pattern", ["shadow-*", "*"])
def test_non_suppressible_rule_refuses_exclusions(pack: PolicyPackProcess, pattern: str) -> None:
    # Refused as configuration, whether or not the exclusion matches anything.
    config = {"vpc-flow-logs-enabled": {"exclusions": [
        {"resource": pattern, "reason": "nobody should be able to waive flow logs"}]}}
    with pytest.raises(PolicyConfigError, match=r'vpc-flow-logs-enabled cannot be suppressed: it '
                                                r'accepts no exclusions; remove its "exclusions" '
                                                r'\(rules that accept exclusions: .*subnet-no-public-ip'):
        run(pack, [*SECURE, UNLOGGED_VPC], config)


def test_non_suppressible_rule_fails_closed_when_exclusions_reach_it(
        pack: PolicyPackProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # An engine that skips the schema (which refuses them) hands the exclusions over anyway: the
    # rule still reports the violation, marked as an exclusion refused, and suppresses nothing.
    from ztai.policy.config import effective_config

    def unchecked(info: Any, user: Any) -> Any:
        config = effective_config(info, {})
        level, properties = config["vpc-flow-logs-enabled"]
        config["vpc-flow-logs-enabled"] = (level, {**properties, "exclusions": [
            {"resource": "shadow-*", "reason": "nobody should be able to waive flow logs"}]})
        return config

    monkeypatch.setattr("ztai.policy.analyzer.effective_config", unchecked)
    result = run(pack, [*SECURE, UNLOGGED_VPC])
    [flow] = [v for v in result.violations if v.policy == "vpc-flow-logs-enabled"]
    assert "cannot be suppressed" in flow.message
    assert result.exclusions == []


def test_enforcement_level_can_be_lowered_visibly(pack: PolicyPackProcess) -> None:
    result = run(pack, [*SECURE, PUBLIC_SUBNET], {"subnet-no-public-ip": "advisory"})
    [violation] = result.violations
    assert violation.level == "advisory" and result.mandatory_violations == []
    assert result.config["subnet-no-public-ip"]["enforcementLevel"] == "advisory"
    assert run(pack, [*SECURE, PUBLIC_SUBNET], {"subnet-no-public-ip": "disabled"}).violations == []


@pytest.mark.parametrize("config", [{"vpc-flow-logs-enabled": "advisory"},
                                    {"default-security-group-closed": {"enforcementLevel": "disabled"}},
                                    {"all": "advisory"}])
def test_non_suppressible_rules_cannot_be_lowered(pack: PolicyPackProcess,
                                                  config: dict[str, Any]) -> None:
    with pytest.raises(PolicyConfigError, match="cannot be suppressed"):
        run(pack, SECURE, config)


def test_egress_allowed_segments_default_is_reported_in_config(pack: PolicyPackProcess) -> None:
    result = run(pack, SECURE)
    assert result.config["egress-free-segment-no-internet-path"]["egressAllowedSegments"] == [
        "management"]


@pytest.mark.parametrize("config, message", [
    ({"no-such-policy": "advisory"}, "unknown policies no-such-policy"),
    ({"subnet-no-public-ip": {"exclusions": [{"resource": "edge-*"}]}}, "'reason' is a required"),
    ({"subnet-no-public-ip": {"exclusions": [{"resource": "edge-*", "reason": "short"}]}},
     "needs a reason of at least 10 characters besides blanks"),
    ({"subnet-no-public-ip": {"exclusion": []}}, "Additional properties"),
    ({"subnet-no-public-ip": "sometimes"}, "is not one of advisory"),
])
def test_bad_policy_config_is_refused(pack: PolicyPackProcess, config: dict[str, Any],
                                      message: str) -> None:
    with pytest.raises(PolicyConfigError, match=message):
        run(pack, SECURE, config)


def test_a_directory_without_a_pack_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyPackError, match="is not a policy pack"), PolicyPackProcess(tmp_path):
        pass


def test_a_pack_that_crashes_is_reported_with_its_stderr(tmp_path: Path) -> None:
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\n")
    (tmp_path / "__main__.py").write_text("raise SystemExit('pack exploded: missing rule module')\n")
    with PolicyPackProcess(tmp_path) as broken, pytest.raises(PolicyPackError) as caught:
        run(broken, SECURE)
    assert "did not start" in str(caught.value) and "pack exploded" in str(caught.value)


def test_unknown_ids_in_a_real_preview_do_not_disable_stack_rules(pack: PolicyPackProcess) -> None:
    # In `pulumi preview` the ids of new resources are unknown; the engine sends this sentinel and
    # the SDK skips a policy that reads one. Links must come from property dependencies instead.
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    other = resource("aws:ec2/vpc:Vpc", "training-vpc",
                     tags={"ztai:segment": "training", "ztai:egress": "none"})
    resources = [
        *SECURE,
        other,
        resource("aws:ec2/flowLog:FlowLog", "training-flow-log", {"vpcId": [other.urn]},
                 vpcId=unknown, trafficType="ALL"),
        resource("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "training-default-sg",
                 {"vpcId": [other.urn]}, vpcId=unknown, ingress=[], egress=[]),
        resource("aws:ec2/internetGateway:InternetGateway", "training-igw", {"vpcId": [other.urn]},
                 vpcId=unknown),
    ]
    result = run(pack, resources)
    # The training VPC has no DNS walled garden either: that rule, too, links it without ids.
    assert violated(result) == {("egress-free-segment-no-internet-path", "training-igw"),
                                ("egress-free-segment-dns-firewall", "training-vpc")}
    assert not any("can't run policy" in v.message for v in result.violations)


def test_an_unknown_endpoint_policy_is_checked_later_not_skipped(pack: PolicyPackProcess) -> None:
    unknown_string = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    pending = resource("aws:ec2/vpcEndpoint:VpcEndpoint", "s3-pending",
                       vpcEndpointType="Gateway", policy=unknown_string)
    bare = resource("aws:ec2/vpcEndpoint:VpcEndpoint", "sts-bare", vpcEndpointType="Interface")
    result = run(pack, [*SECURE, pending, bare])
    # The stack rule still sees the other endpoint; the resource rule cannot read the pending
    # policy in a preview, says so (advisory), and runs again with it known during `pulumi up`.
    assert [(v.policy, v.urn) for v in result.mandatory_violations] == [
        ("vpc-endpoint-policy-present", bare.urn)]
    [deferred] = [v for v in result.violations if v.level == "advisory"]
    assert deferred.policy == "vpc-endpoint-policy-restrictive" and "can't run policy" in deferred.message


def test_api_stack_rules_link_by_dependencies_in_a_real_preview(pack: PolicyPackProcess) -> None:
    # ARNs and ids unknown, lists and maps behind the SDK's proxy: the WAF and partner-scope links
    # come from property dependencies, and nothing is skipped as "can't run policy".
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    acl = resource("aws:wafv2/webAcl:WebAcl", "api-waf", arn=unknown, scope="REGIONAL", rules=[
        {"name": "rate", "statement": {"rateBasedStatement": {"limit": 1000}}},
        {"name": "common", "statement": {"managedRuleGroupStatement": {
            "name": "AWSManagedRulesCommonRuleSet", "vendorName": "AWS"}}}])
    protected = resource("aws:apigateway/stage:Stage", "live", arn=unknown)
    bare = resource("aws:apigateway/stage:Stage", "canary", arn=unknown)
    association = resource("aws:wafv2/webAclAssociation:WebAclAssociation", "api-waf-live",
                           {"resourceArn": [protected.urn], "webAclArn": [acl.urn]},
                           resourceArn=unknown, webAclArn=unknown)
    api = resource("aws:apigatewayv2/api:Api", "gateway-api", id=unknown)

    def route(name: str, key: str, scope: str) -> AnalyzedResource:
        return resource("aws:apigatewayv2/route:Route", name, {"apiId": [api.urn]}, apiId=unknown,
                        routeKey=key, authorizationType="JWT", authorizerId=unknown,
                        authorizationScopes=[scope])

    routes = [route("acme-infer", "POST /partners/acme/v1/infer", "https://api/acme.invoke"),
              route("globex-infer", "POST /partners/globex/v1/infer", "https://api/globex.invoke"),
              route("status", "GET /v1/status", "https://api/acme.invoke")]
    result = run(pack, [*SECURE, acl, protected, bare, association, api, *routes])
    ours = {"api-rest-stage-waf", "api-partner-route-scoped"}
    assert {v for v in violated(result) if v[0] in ours} == {
        ("api-rest-stage-waf", "canary"), ("api-partner-route-scoped", "acme-infer")}
    assert not any("can't run policy" in v.message for v in result.violations if v.policy in ours)
