"""SegmentedNetwork under Pulumi's mock monitor: the security-relevant properties of what it
declares, read from the registrations the engine would receive."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from typing import Any

import pytest

from components.network import (
    DEFAULT_INTERFACE_ENDPOINTS,
    Segment,
    SegmentedNetwork,
    SegmentedNetworkArgs,
    subnet_blocks,
)
from components.tags import register_standard_tags
from ztai.preview.recorder import RecordedResource, RecordedStack, record

SEGMENTS = (
    Segment("data", "10.10.0.0/16"),
    Segment("training", "10.11.0.0/16"),
    Segment("inference", "10.12.0.0/16", data_classification="confidential"),
    Segment("management", "10.13.0.0/16", egress=True, data_classification="internal"),
)
ARGS = SegmentedNetworkArgs(segments=SEGMENTS, environment="dev", owner="ml-platform",
                            region="eu-west-1", az_count=2)
TAGGABLE_EXEMPT = {"aws:kms/alias:Alias", "aws:iam/rolePolicy:RolePolicy",
                   "aws:ec2/networkAclAssociation:NetworkAclAssociation",
                   "aws:ec2/routeTableAssociation:RouteTableAssociation",
                   # pulumi-aws offers no tags on these
                   "aws:route53/resolverFirewallRule:ResolverFirewallRule",
                   "aws:route53/resolverFirewallConfig:ResolverFirewallConfig",
                   "aws:route53/resolverQueryLogConfigAssociation:ResolverQueryLogConfigAssociation",
                   "aws:cloudwatch/logResourcePolicy:LogResourcePolicy"}


def build(args: SegmentedNetworkArgs = ARGS) -> RecordedStack:
    def program() -> None:
        register_standard_tags(args.environment, args.owner)  # as __main__.py does
        SegmentedNetwork("network", args)

    return record(program, project="zero-trust-ai",
                  stack="test", config={"aws:region": args.region}, region=args.region)


@pytest.fixture(scope="module")
def dev() -> RecordedStack:
    return build()


def of_type(stack: RecordedStack, token: str) -> list[RecordedResource]:
    return [r for r in stack.resources if r.type == token]


def in_segment(stack: RecordedStack, token: str, segment: str) -> list[RecordedResource]:
    return [r for r in of_type(stack, token) if r.name.startswith(f"network-{segment}-")]


def vpc_of(stack: RecordedStack, segment: str) -> RecordedResource:
    [vpc] = in_segment(stack, "aws:ec2/vpc:Vpc", segment)
    return vpc


def policy(resource: RecordedResource) -> dict[str, Any]:
    document = json.loads(resource.inputs["policy"])
    assert isinstance(document, dict)
    return document


def test_one_vpc_per_segment_with_dns_for_private_endpoints(dev: RecordedStack) -> None:
    vpcs = of_type(dev, "aws:ec2/vpc:Vpc")
    assert sorted(v.inputs["cidrBlock"] for v in vpcs) == [s.cidr for s in SEGMENTS]
    assert all(v.inputs["enableDnsSupport"] and v.inputs["enableDnsHostnames"] for v in vpcs)


def test_private_subnets_in_each_zone_without_public_addresses(dev: RecordedStack) -> None:
    for segment in SEGMENTS:
        private = [s for s in in_segment(dev, "aws:ec2/subnet:Subnet", segment.name)
                   if "-private-" in s.name]
        assert sorted(s.inputs["availabilityZone"] for s in private) == ["eu-west-1a", "eu-west-1b"]
        for subnet in private:
            assert ipaddress.IPv4Network(subnet.inputs["cidrBlock"]).subnet_of(
                ipaddress.IPv4Network(segment.cidr))
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in of_type(dev, "aws:ec2/subnet:Subnet"))


def test_internet_path_only_in_egress_segments(dev: RecordedStack) -> None:
    for token in ("aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway",
                  "aws:ec2/eip:Eip"):
        owners = {r.name.split("-")[1] for r in of_type(dev, token)}
        assert owners == {"management"}, token
    for segment in ("data", "training", "inference"):
        [table] = in_segment(dev, "aws:ec2/routeTable:RouteTable", segment)
        assert not table.inputs.get("routes")
    nat_tables = [t for t in in_segment(dev, "aws:ec2/routeTable:RouteTable", "management")
                  if "private-rt" in t.name]
    assert len(nat_tables) == 2  # one NAT route table per zone
    assert all(t.inputs["routes"][0]["natGatewayId"].startswith("nat-") for t in nat_tables)


def test_nat_gateways_and_their_routes_wait_for_the_internet_gateway(dev: RecordedStack) -> None:
    # A NAT gateway created before the gateway is attached ends Gateway.NotAttached; nothing in
    # its inputs names the gateway, so the dependency must be explicit. (pulumi-aws v7 attaches
    # an InternetGateway given vpc_id as part of creating it: the gateway is the attachment.)
    [gateway] = of_type(dev, "aws:ec2/internetGateway:InternetGateway")
    assert gateway.inputs["vpcId"] == vpc_of(dev, "management").id
    nats = of_type(dev, "aws:ec2/natGateway:NatGateway")
    assert len(nats) == 2
    assert all(gateway.urn in nat.dependencies for nat in nats)
    nat_tables = [t for t in in_segment(dev, "aws:ec2/routeTable:RouteTable", "management")
                  if "private-rt" in t.name]
    assert nat_tables and all(gateway.urn in table.dependencies for table in nat_tables)


def test_dns_firewall_walls_in_every_egress_free_vpc(dev: RecordedStack) -> None:
    [group] = of_type(dev, "aws:route53/resolverFirewallRuleGroup:ResolverFirewallRuleGroup")
    lists = {d.id: d for d in of_type(
        dev, "aws:route53/resolverFirewallDomainList:ResolverFirewallDomainList")}
    rules = sorted(of_type(dev, "aws:route53/resolverFirewallRule:ResolverFirewallRule"),
                   key=lambda rule: rule.inputs["priority"])
    assert all(rule.inputs["firewallRuleGroupId"] == group.id for rule in rules)
    allow, block = rules
    assert allow.inputs["action"] == "ALLOW"
    allowed = lists[allow.inputs["firewallDomainListId"]].inputs["domains"]
    assert allowed[:3] == ["*.eu-west-1.amazonaws.com", "*.eu-west-1.vpce.amazonaws.com",
                           "*.eu-west-1.compute.internal"]
    assert "*" not in allowed and "*.amazonaws.com" not in allowed
    assert allow.inputs["firewallDomainRedirectionAction"] == "INSPECT_REDIRECTION_DOMAIN"
    # The last rule blocks every other name.
    assert (block.inputs["action"], block.inputs["blockResponse"]) == ("BLOCK", "NXDOMAIN")
    assert lists[block.inputs["firewallDomainListId"]].inputs["domains"] == ["*"]

    associations = of_type(dev, "aws:route53/resolverFirewallRuleGroupAssociation:"
                                "ResolverFirewallRuleGroupAssociation")
    configs = of_type(dev, "aws:route53/resolverFirewallConfig:ResolverFirewallConfig")
    closed = {vpc_of(dev, name).id for name in ("data", "training", "inference")}
    assert {a.inputs["vpcId"] for a in associations} == closed  # not the NAT segment
    assert all(a.inputs["firewallRuleGroupId"] == group.id and 100 <= a.inputs["priority"] <= 9900
               and a.inputs["mutationProtection"] == "ENABLED" for a in associations)
    assert {c.inputs["resourceId"] for c in configs} == closed
    assert all(c.inputs["firewallFailOpen"] == "DISABLED" for c in configs)


def test_resolver_queries_of_every_vpc_are_logged_encrypted(dev: RecordedStack) -> None:
    [key] = of_type(dev, "aws:kms/key:Key")
    [group] = [g for g in of_type(dev, "aws:cloudwatch/logGroup:LogGroup")
               if g.name == "network-resolver-query-logs"]
    assert group.inputs["name"] == "/zero-trust-ai/dev/resolver-query-logs"
    assert group.inputs["kmsKeyId"] == key.outputs["arn"] and group.inputs["retentionInDays"] == 365
    [config] = of_type(dev, "aws:route53/resolverQueryLogConfig:ResolverQueryLogConfig")
    assert config.inputs["destinationArn"] == group.outputs["arn"]
    associations = of_type(dev, "aws:route53/resolverQueryLogConfigAssociation:"
                                "ResolverQueryLogConfigAssociation")
    assert {a.inputs["resourceId"] for a in associations} == {vpc_of(dev, s.name).id for s in SEGMENTS}
    assert all(a.inputs["resolverQueryLogConfigId"] == config.id for a in associations)
    # Resolver delivers through the log delivery service, which the group's policy admits for
    # this account's deliveries only; the config waits for that policy.
    [delivery] = of_type(dev, "aws:cloudwatch/logResourcePolicy:LogResourcePolicy")
    [statement] = json.loads(delivery.inputs["policyDocument"])["Statement"]
    assert statement["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert statement["Resource"] == f"{group.outputs['arn']}:*"
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "111122223333"}
    assert delivery.urn in config.dependencies


def test_default_security_group_and_acl_are_taken_over_empty(dev: RecordedStack) -> None:
    for token in ("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
                  "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl"):
        resources = of_type(dev, token)
        assert len(resources) == 4
        assert all(r.inputs["ingress"] == [] and r.inputs["egress"] == [] for r in resources)
    vpc = vpc_of(dev, "data")
    [acl] = in_segment(dev, "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl", "data")
    assert acl.inputs["defaultNetworkAclId"] == vpc.outputs["defaultNetworkAclId"]


def test_private_acl_admits_the_segment_and_return_traffic_only(dev: RecordedStack) -> None:
    [acl] = [a for a in in_segment(dev, "aws:ec2/networkAcl:NetworkAcl", "data")]
    rules = {(r["cidrBlock"], r["protocol"], r["fromPort"], r["toPort"]) for r in acl.inputs["ingress"]}
    assert rules == {("10.10.0.0/16", "-1", 0, 0), ("0.0.0.0/0", "tcp", 32768, 65535)}
    associations = [a for a in of_type(dev, "aws:ec2/networkAclAssociation:NetworkAclAssociation")
                    if a.name.startswith("network-data-private-nacl")]
    assert len(associations) == 2


def test_flow_logs_capture_all_traffic_into_encrypted_retained_groups(dev: RecordedStack) -> None:
    [key] = of_type(dev, "aws:kms/key:Key")
    for segment in SEGMENTS:
        [flow_log] = in_segment(dev, "aws:ec2/flowLog:FlowLog", segment.name)
        [group] = in_segment(dev, "aws:cloudwatch/logGroup:LogGroup", segment.name)
        assert flow_log.inputs["trafficType"] == "ALL"
        assert flow_log.inputs["vpcId"] == vpc_of(dev, segment.name).id
        assert flow_log.inputs["logDestination"] == group.outputs["arn"]
        assert group.inputs["kmsKeyId"] == key.outputs["arn"]
        assert group.inputs["retentionInDays"] == 365
        assert group.inputs["name"] == f"/zero-trust-ai/dev/vpc-flow-logs/{segment.name}"


def test_flow_log_key_rotates_and_only_logs_may_use_it(dev: RecordedStack) -> None:
    [key] = of_type(dev, "aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["rotationPeriodInDays"] == 90
    assert key.inputs["deletionWindowInDays"] == 30
    assert "bypassPolicyLockoutSafetyCheck" not in key.inputs
    statements = {s["Sid"]: s for s in policy(key)["Statement"]}
    admin = statements["AccountAdministersButCannotUse"]
    assert not any(a.startswith(("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncrypt"))
                   or "*" in a or a == "kms:CreateGrant" for a in admin["Action"])
    use = statements["CloudWatchLogsEncryptsFlowLogGroups"]
    assert use["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert use["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == [
        "arn:aws:logs:eu-west-1:111122223333:log-group:/zero-trust-ai/dev/vpc-flow-logs/*",
        "arn:aws:logs:eu-west-1:111122223333:log-group:/zero-trust-ai/dev/resolver-query-logs*"]


def test_flow_log_role_is_scoped_to_its_groups_and_to_our_flow_logs(dev: RecordedStack) -> None:
    [role] = of_type(dev, "aws:iam/role:Role")
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": "111122223333"}
    [grant] = policy(of_type(dev, "aws:iam/rolePolicy:RolePolicy")[0])["Statement"]
    assert "logs:CreateLogGroup" not in grant["Action"]
    assert all(arn.startswith("arn:aws:logs:eu-west-1:111122223333:log-group:/zero-trust-ai/dev/")
               for arn in grant["Resource"])


def test_endpoints_form_a_data_perimeter(dev: RecordedStack) -> None:
    endpoints = in_segment(dev, "aws:ec2/vpcEndpoint:VpcEndpoint", "inference")
    services = {e.inputs["serviceName"].split("eu-west-1.")[1] for e in endpoints}
    assert services == {"s3", *DEFAULT_INTERFACE_ENDPOINTS}
    by_service = {e.inputs["serviceName"].split("eu-west-1.")[1]: e for e in endpoints}
    for endpoint in endpoints:
        for statement in policy(endpoint)["Statement"]:
            if statement["Effect"] == "Allow" and "Condition" in statement:
                equals = statement["Condition"]["StringEquals"]
                assert equals.get("aws:PrincipalAccount", "111122223333") == "111122223333"
        if endpoint.inputs["vpcEndpointType"] == "Interface":
            assert endpoint.inputs["privateDnsEnabled"] is True
    for service in ("kms", "sts", "ecr.api", "ecr.dkr", "ssm"):
        first = policy(by_service[service])["Statement"][0]
        assert first["Condition"]["StringEquals"]["aws:ResourceAccount"] == "111122223333", service
    # Session Manager's channels have no account-owned resource.
    assert "aws:ResourceAccount" not in policy(
        by_service["ssmmessages"])["Statement"][0]["Condition"]["StringEquals"]
    # ECR layers come presigned by AWS and the SSM agent reads anonymously: no principal
    # condition, read-only, named buckets only.
    [aws_owned] = policy(by_service["s3"])["Statement"]
    assert "Condition" not in aws_owned and aws_owned["Action"] == "s3:GetObject"
    assert "arn:aws:s3:::prod-eu-west-1-starport-layer-bucket/*" in aws_owned["Resource"]
    assert not any("*" in arn.split(":::")[1].split("/")[0] for arn in aws_owned["Resource"])
    federated = policy(by_service["sts"])["Statement"][1]
    # Unsigned federation calls carry no principal: AWS documents the wildcard principal for
    # them; a `Federated` principal is not what its STS endpoint examples use.
    assert federated["Principal"] == "*"
    assert federated["Action"] == ["sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithSAML"]
    assert federated["Condition"] == {"StringEquals": {"aws:ResourceAccount": "111122223333"}}
    documents = policy(by_service["ssm"])["Statement"][-1]
    assert documents["Resource"] == ["arn:aws:ssm:eu-west-1::document/*",
                                     "arn:aws:ssm:eu-west-1::parameter/aws/*"]


def test_until_restricted_the_data_endpoints_admit_nothing_of_the_account(dev: RecordedStack) -> None:
    by_service = {e.inputs["serviceName"].split("eu-west-1.")[1]: e
                  for e in in_segment(dev, "aws:ec2/vpcEndpoint:VpcEndpoint", "data")}
    # Before: "s3:*" on any bucket of the account, another environment's included.
    assert [s["Sid"] for s in policy(by_service["s3"])["Statement"]] == ["ReadAwsOwnedServiceBuckets"]
    [nothing] = policy(by_service["logs"])["Statement"]
    assert (nothing["Effect"], nothing["Action"], nothing["Resource"]) == ("Deny", "*", "*")
    [token] = policy(by_service["ecr.dkr"])["Statement"]
    assert token["Action"] == "ecr:GetAuthorizationToken"
    agent = policy(by_service["ssm"])["Statement"][0]
    assert agent["Resource"] == "*" and not any("Parameter" in a for a in agent["Action"])
    assert of_type(dev, "aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy") == []
    # The later VpcEndpointPolicy owns these endpoints' policies; the others keep theirs inline.
    for service, endpoint in by_service.items():
        restricted = service in ("s3", "logs", "ecr.api", "ecr.dkr", "ssm")
        assert (endpoint.ignore_changes == ["policy"]) is restricted, service


MODEL_BUCKET = "inference-fleet-models-8955af5"
PARAMETER = "arn:aws:ssm:eu-west-1:111122223333:parameter/zero-trust-ai/dev/enclave-parent/ami-id"
REPOSITORY = "arn:aws:ecr:eu-west-1:111122223333:repository/zero-trust-ai-dev/agent"
BUILD_LOGS = "/aws/imagebuilder/zero-trust-ai-dev-enclave-parent"


def build_restricted(**names: Any) -> RecordedStack:
    def program() -> None:
        network = SegmentedNetwork("network", replace(ARGS, segments=SEGMENTS[:1]))
        network.restrict_endpoints(**names)

    return record(program, project="zero-trust-ai", stack="test",
                  config={"aws:region": ARGS.region}, region=ARGS.region)


def test_restricted_endpoints_admit_this_stacks_resources_by_arn_only() -> None:
    stack = build_restricted(bucket_names=[MODEL_BUCKET], parameter_arns=[PARAMETER],
                             repository_arns=[REPOSITORY], log_group_names=[BUILD_LOGS])
    policies = {p.name.removeprefix("network-data-").removesuffix("-policy"): p
                for p in of_type(stack, "aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy")}
    assert set(policies) == {"s3", "logs", "ecr-api", "ecr-dkr", "ssm"}
    endpoints = {e.name: e for e in of_type(stack, "aws:ec2/vpcEndpoint:VpcEndpoint")}
    for service, attached in policies.items():
        assert attached.inputs["vpcEndpointId"] == endpoints[f"network-data-{service}"].id
        assert attached.parent == endpoints[f"network-data-{service}"].urn
        # Deleting one would reset the endpoint to AWS's full-access default: never deleted.
        assert attached.retain_on_delete is True

    def statements(service: str) -> dict[str, Any]:
        return {s["Sid"]: s for s in policy(policies[service])["Statement"]}

    buckets = statements("s3")["OurPrincipalsOnThisStacksBuckets"]
    assert buckets["Resource"] == [f"arn:aws:s3:::{MODEL_BUCKET}", f"arn:aws:s3:::{MODEL_BUCKET}/*"]
    # Still of our account: a deleted bucket's name can be registered by anyone.
    assert buckets["Condition"]["StringEquals"]["aws:ResourceAccount"] == "111122223333"
    assert "ReadAwsOwnedServiceBuckets" in statements("s3")  # ECR layers, repos, SSM agent
    group = f"arn:aws:logs:eu-west-1:111122223333:log-group:{BUILD_LOGS}"
    assert statements("logs")["OurPrincipalsOnThisStacksLogGroups"]["Resource"] == [group, f"{group}:*"]
    assert statements("ecr-dkr")["OurPrincipalsPullThisStacksRepositories"]["Resource"] == [REPOSITORY]
    assert statements("ssm")["OurPrincipalsReadThisStacksParameters"]["Resource"] == [PARAMETER]
    for service in policies:
        for statement in statements(service).values():
            assert statement["Resource"] == "*" or all(
                not arn.endswith((":::*", "parameter/*", "repository/*", "log-group:*"))
                for arn in statement["Resource"]), (service, statement["Sid"])


def test_restricting_twice_or_with_wildcards_is_refused() -> None:
    def twice() -> None:
        network = SegmentedNetwork("network", replace(ARGS, segments=SEGMENTS[:1]))
        network.restrict_endpoints(bucket_names=[MODEL_BUCKET])
        network.restrict_endpoints(bucket_names=["other"])

    with pytest.raises(ValueError, match="already called"):
        record(twice, project="zero-trust-ai", stack="test", config={"aws:region": "eu-west-1"},
               region="eu-west-1")
    with pytest.raises(ValueError, match=r"bucket_arns: 'arn:aws:s3:::zero-trust-ai-\*' is not an ARN"):
        build_restricted(bucket_names=["zero-trust-ai-*"])


def test_endpoint_security_group_admits_https_from_the_segment_only(dev: RecordedStack) -> None:
    [group] = in_segment(dev, "aws:ec2/securityGroup:SecurityGroup", "data")
    [rule] = group.inputs["ingress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"], rule["cidrBlocks"]) == (
        "tcp", 443, 443, ["10.10.0.0/16"])
    assert group.inputs["egress"] == []


def test_every_taggable_resource_carries_the_tags(dev: RecordedStack) -> None:
    for resource in dev.resources:
        if not resource.custom or resource.type in TAGGABLE_EXEMPT:
            continue
        tags = resource.inputs.get("tags", {})
        assert {"environment", "owner", "data-classification"} <= set(tags), resource.name
        assert tags["environment"] == "dev" and tags["owner"] == "ml-platform"
    assert vpc_of(dev, "data").inputs["tags"]["ztai:egress"] == "none"
    assert vpc_of(dev, "management").inputs["tags"]["ztai:egress"] == "nat"
    assert vpc_of(dev, "inference").inputs["tags"]["data-classification"] == "confidential"


def test_organisation_perimeter_when_an_organisation_is_given() -> None:
    stack = build(replace(ARGS, segments=SEGMENTS[:1], organization_id="o-a1b2c3d4e5"))
    for endpoint in of_type(stack, "aws:ec2/vpcEndpoint:VpcEndpoint"):
        pinned = [s for s in policy(endpoint)["Statement"] if "Condition" in s]
        assert pinned or endpoint.name.endswith(("-s3", "-logs"))  # nothing of ours yet there
        for statement in pinned:
            if statement["Sid"] != "FederatedSessionsIntoOurRoles":
                assert statement["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == "o-a1b2c3d4e5"


def test_handed_over_key_replaces_the_component_key() -> None:
    key_arn = "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"
    stack = build(replace(ARGS, segments=SEGMENTS[:1], flow_log_key_arn=key_arn))
    assert of_type(stack, "aws:kms/key:Key") == []
    groups = of_type(stack, "aws:cloudwatch/logGroup:LogGroup")
    assert len(groups) == 2  # flow logs and Resolver query logs
    assert all(group.inputs["kmsKeyId"] == key_arn for group in groups)


def test_prod_protects_key_and_log_groups_and_spans_three_zones() -> None:
    stack = build(replace(ARGS, az_count=3, protect=True))
    assert all(r.protect for r in of_type(stack, "aws:kms/key:Key"))
    groups = of_type(stack, "aws:cloudwatch/logGroup:LogGroup")
    assert all(g.protect and g.inputs["deletionProtectionEnabled"] for g in groups)
    assert len(in_segment(stack, "aws:ec2/natGateway:NatGateway", "management")) == 3
    private = [s for s in in_segment(stack, "aws:ec2/subnet:Subnet", "data") if "private" in s.name]
    assert len({s.inputs["availabilityZone"] for s in private}) == 3


def test_subnet_blocks_do_not_overlap() -> None:
    private, public = subnet_blocks("10.0.0.0/24", 3)
    networks = [ipaddress.ip_network(block) for block in private + public]
    assert all(n.prefixlen == 28 for n in networks)
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1:])


@pytest.mark.parametrize("change, message", [
    ({"segments": ()}, "at least one segment"),
    ({"segments": (Segment("data", "10.0.0.0/16"), Segment("data", "10.1.0.0/16"))}, "unique"),
    ({"segments": (Segment("dmz", "10.0.0.0/16"),)}, "unknown segment 'dmz'"),
    ({"segments": (Segment("data", "10.0.0.0/12"),)}, "must be /16 to /22"),
    ({"segments": (Segment("data", "10.0.0.0/24"),)}, "must be /16 to /22"),
    ({"az_count": 1}, "az_count must be 2 to 8"),
    ({"dns_allowed_domains": ("*",)}, "dns_allowed_domains: '\\*' is not a lower-case domain"),
    ({"dns_allowed_domains": ("evil.*.example.com",)}, "is not a lower-case domain"),
])
def test_invalid_arguments_fail_before_any_child(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(replace(ARGS, **change))
