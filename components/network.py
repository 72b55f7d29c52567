"""Segmented network (control map §2.1).

One VPC per segment (data, training, inference, management), private subnets across the configured
Availability Zones, and nothing that reaches the internet unless the segment is named in
`egress_segments`. Every VPC gets:

- flow logs (ALL traffic, 60 s aggregation) into a KMS-encrypted CloudWatch log group with retention;
- its default security group and default network ACL taken over with no rules, so nothing that
  lands on a default is reachable or can reach out;
- a network ACL on its subnets that admits the VPC itself and return traffic only;
- an S3 gateway endpoint and interface endpoints (kms, sts, logs, ecr.api, ecr.dkr, ssm,
  ssmmessages, ec2messages) whose policies form a data perimeter: only principals of this account
  (or organisation) may use them, and for S3, KMS and Logs only on resources of the same account
  (or organisation), with the few AWS-owned buckets that ECR and SSM need named explicitly.

Tags on every taggable resource: environment, owner, data-classification, project, and the
`ztai:segment` / `ztai:egress` tags the policy pack reads to know which VPCs must stay egress-free.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_facts import partition_for_region
from components.functions import policy_document

SEGMENT_NAMES: tuple[str, ...] = ("data", "training", "inference", "management")
# A segment VPC is carved into 16 equal subnets (prefix + 4). A /22 gives /26 subnets: 59 usable
# addresses once AWS keeps its five, of which the eight interface endpoints take one each. Smaller
# VPCs would leave a handful of addresses for workloads. AWS's largest VPC is a /16.
MIN_SEGMENT_PREFIX, MAX_SEGMENT_PREFIX = 16, 22

# Services every segment reaches privately. SSM's three endpoints replace SSH and bastions;
# ECR's two let nodes pull images; kms/sts/logs serve encryption, role sessions and logging.
DEFAULT_INTERFACE_ENDPOINTS: tuple[str, ...] = (
    "kms", "sts", "logs", "ecr.api", "ecr.dkr", "ssm", "ssmmessages", "ec2messages",
)

# Services whose endpoint policy also pins the *resource* to the account/organisation, so a valid
# insider credential cannot push weights into a foreign bucket, key, log group, ECR repository or
# role through the endpoint. ssmmessages/ec2messages carry Session Manager's channels, which have no
# account-owned resource: they get the principal check only.
RESOURCE_PERIMETER_SERVICES: frozenset[str] = frozenset(
    {"s3", "kms", "logs", "ecr.api", "ecr.dkr", "sts", "ssm"})

# AWS-owned buckets that instances in an egress-free segment legitimately read through the S3
# gateway endpoint: package repositories, SSM agent and documents, CloudWatch agent, Image Builder,
# ECR image layers and the Nitro Enclaves certificate bucket (AWS data-perimeter guidance).
_AWS_OWNED_BUCKETS: tuple[str, ...] = (
    "al2023-repos-{region}-de612dc2", "amazonlinux-2-repos-{region}",
    "amazon-ssm-{region}", "amazon-ssm-packages-{region}", "aws-ssm-{region}",
    "{region}-birdwatcher-prod", "aws-ssm-distributor-file-{region}",
    "aws-ssm-document-attachments-{region}", "patch-baseline-snapshot-{region}",
    "amazoncloudwatch-agent-{region}", "ec2imagebuilder-toe-{region}-prod",
    "prod-{region}-starport-layer-bucket", "aws-ec2-enclave-certificate-{region}-prod",
)

# Each segment's CIDR is cut into 16 equal blocks: private subnets use the first eight (one per AZ),
# public subnets (egress segments only, for NAT gateways) the last eight.
_SUBNET_SPLIT_BITS = 4
_PUBLIC_BLOCK_OFFSET = 8

EGRESS_TAG = "ztai:egress"
SEGMENT_TAG = "ztai:segment"


@dataclass(frozen=True)
class Segment:
    """One network segment.

    name: one of SEGMENT_NAMES.
    cidr: the segment VPC's IPv4 CIDR (/16 to /22).
    egress: give the segment internet egress through per-AZ NAT gateways. Default False: no
        internet gateway, no NAT, no default route. Changing it replaces nothing but adds or
        removes the public tier.
    data_classification: value of the data-classification tag.
    """

    name: str
    cidr: str
    egress: bool = False
    data_classification: str = "restricted"


@dataclass
class SegmentedNetworkArgs:
    """Inputs of `SegmentedNetwork`; every default is the secure one.

    segments: the segments to build (one VPC each).
    environment, owner: written to the environment and owner tags.
    region: the AWS region the provider deploys to (names the endpoint services).
    az_count: Availability Zones per segment; default 2.
    flow_log_retention_days: CloudWatch retention of flow logs; default 365.
    flow_log_key_arn: ARN of the CMK that encrypts flow logs. Default None: the component creates
        its own key. This is the hand-over point for the key hierarchy: pass its logs key here. To
        keep the component's key instead of replacing it, give the hierarchy's key the alias
        `pulumi.Alias(parent=<network>, name="<network>-flow-logs-key")` or `pulumi state move` it.
    organization_id: AWS Organizations id; default None pins endpoint policies to this account.
    interface_endpoints: interface endpoint services per VPC; default DEFAULT_INTERFACE_ENDPOINTS.
    protect: set `protect` (and log-group deletion protection) on the key and flow-log groups;
        default False, True in prod.
    """

    segments: Sequence[Segment]
    environment: str
    owner: str
    region: str
    az_count: int = 2
    flow_log_retention_days: int = 365
    flow_log_key_arn: pulumi.Input[str] | None = None
    organization_id: str | None = None
    interface_endpoints: Sequence[str] = field(default=DEFAULT_INTERFACE_ENDPOINTS)
    protect: bool = False



def perimeter_conditions(account_id: str, organization_id: str | None,
                         resource_perimeter: bool) -> dict[str, dict[str, str]]:
    """IAM condition block that admits only principals (and resources) of our account or org."""
    if organization_id:
        equals = {"aws:PrincipalOrgID": organization_id}
        if resource_perimeter:
            equals["aws:ResourceOrgID"] = organization_id
    else:
        equals = {"aws:PrincipalAccount": account_id}
        if resource_perimeter:
            equals["aws:ResourceAccount"] = account_id
    return {"StringEquals": equals}


def _statement(sid: str, conditions: dict[str, dict[str, str]], *, action: Any = "*",
               resource: Any = "*", principal: Any = None) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Principal": principal or {"AWS": "*"},
            "Action": action, "Resource": resource, "Condition": conditions}


def interface_endpoint_policy(service: str, account_id: str, *, organization_id: str | None,
                              region: str) -> str:
    """Endpoint policy of an interface endpoint: the data perimeter for one service."""
    partition = partition_for_region(region)
    pinned = service in RESOURCE_PERIMETER_SERVICES
    statements = [_statement("OurPrincipalsOnOurResources" if pinned else "OurPrincipals",
                             perimeter_conditions(account_id, organization_id, pinned))]
    if service == "sts":
        # Web-identity and SAML calls are unsigned, so there is no principal account to check;
        # admit them only into our own roles (IRSA and SSO keep working).
        resource_key = "aws:ResourceOrgID" if organization_id else "aws:ResourceAccount"
        statements.append(_statement(
            "FederatedSessionsIntoOurRoles", {"StringEquals": {resource_key: organization_id or account_id}},
            action=["sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithSAML"],
            principal={"Federated": "*"}))
    if service == "ssm":
        # Session Manager and Run Command use AWS-owned documents and public parameters, which
        # have no account; our principals may read and run those, nothing else of AWS's.
        statements.append(_statement(
            "OurPrincipalsUseAwsOwnedDocuments",
            perimeter_conditions(account_id, organization_id, False),
            action=["ssm:Describe*", "ssm:List*", "ssm:Get*", "ssm:SendCommand",
                    "ssm:StartSession", "ssm:CreateAssociation"],
            resource=[f"arn:{partition}:ssm:{region}::document/*",
                      f"arn:{partition}:ssm:{region}::parameter/aws/*"]))
    return policy_document(statements)


def s3_endpoint_policy(account_id: str, organization_id: str | None, region: str) -> str:
    """S3 gateway endpoint policy: our principals on our buckets, plus read-only access to the
    AWS-owned buckets instances need.

    The AWS-owned statement has no principal condition on purpose: ECR serves layers through
    URLs presigned by an AWS account, and the SSM agent reads its buckets anonymously, so a
    principal condition would break image pulls and agent updates. It only reads named objects.
    """
    partition = partition_for_region(region)
    return policy_document([
        _statement("OurPrincipalsOnOurBuckets",
                   perimeter_conditions(account_id, organization_id, True)),
        {"Sid": "ReadAwsOwnedServiceBuckets", "Effect": "Allow", "Principal": {"AWS": "*"},
         "Action": "s3:GetObject",
         "Resource": [f"arn:{partition}:s3:::{bucket.format(region=region)}/*"
                      for bucket in _AWS_OWNED_BUCKETS]},
    ])


def flow_log_key_policy(account_id: str, region: str, log_group_prefix: str) -> str:
    """Key policy of the component's own flow-log key.

    The account may administer the key (through IAM) but not use it; only CloudWatch Logs may use
    it, and only for log groups under `log_group_prefix`.
    """
    partition = partition_for_region(region)
    return policy_document([
        {
            "Sid": "AccountAdministersButCannotUse",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            # Listed one by one: kms:Create* would include CreateGrant, with which an
            # administrator could grant themselves use of the key.
            "Action": [
                "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
                "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies",
                "kms:ListResourceTags", "kms:ListKeyRotations", "kms:PutKeyPolicy",
                "kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias",
                "kms:UpdateKeyDescription", "kms:EnableKeyRotation", "kms:RotateKeyOnDemand",
                "kms:TagResource", "kms:UntagResource", "kms:RevokeGrant", "kms:RetireGrant",
                "kms:EnableKey", "kms:DisableKey", "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion",
            ],
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchLogsEncryptsFlowLogGroups",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                       "kms:Describe*"],
            "Resource": "*",
            "Condition": {"ArnLike": {
                "kms:EncryptionContext:aws:logs:arn":
                    f"arn:{partition}:logs:{region}:{account_id}:log-group:{log_group_prefix}*",
            }},
        },
    ])


def subnet_blocks(cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """Private and public subnet CIDRs for a segment: one of each per AZ."""
    network = ipaddress.IPv4Network(cidr)
    blocks = list(network.subnets(prefixlen_diff=_SUBNET_SPLIT_BITS))
    if az_count > _PUBLIC_BLOCK_OFFSET:
        raise ValueError(f"az_count {az_count} exceeds the {_PUBLIC_BLOCK_OFFSET} subnet blocks per tier")
    private = [str(block) for block in blocks[:az_count]]
    public = [str(block) for block in blocks[_PUBLIC_BLOCK_OFFSET:_PUBLIC_BLOCK_OFFSET + az_count]]
    return private, public


def _zone(names: list[str], *, index: int, region: str) -> str:
    if index >= len(names):
        raise ValueError(f"{region} offers {len(names)} Availability Zones to this account; "
                         f"azCount asks for at least {index + 1}")
    return names[index]


def _segment_acl(name: str, vpc_id: pulumi.Input[str], cidr: str, *, return_from_port: int,
                 to_segment: aws.ec2.NetworkAclEgressArgs, tags: dict[str, str],
                 opts: pulumi.ResourceOptions) -> aws.ec2.NetworkAcl:
    """A stateless ACL: everything from the segment itself, TCP replies from anywhere on
    `return_from_port`-65535 (S3 gateway-endpoint targets are S3's public addresses, and NAT
    replies come from the internet), HTTPS out, and `to_segment` towards the segment."""
    return aws.ec2.NetworkAcl(
        name,
        vpc_id=vpc_id,
        ingress=[
            aws.ec2.NetworkAclIngressArgs(rule_no=100, action="allow", protocol="-1",
                                          cidr_block=cidr, from_port=0, to_port=0),
            aws.ec2.NetworkAclIngressArgs(rule_no=200, action="allow", protocol="tcp",
                                          cidr_block="0.0.0.0/0", from_port=return_from_port,
                                          to_port=65535),
        ],
        egress=[
            to_segment,
            aws.ec2.NetworkAclEgressArgs(rule_no=200, action="allow", protocol="tcp",
                                         cidr_block="0.0.0.0/0", from_port=443, to_port=443),
        ],
        tags=tags,
        opts=opts,
    )


class NetworkSegment(pulumi.ComponentResource):
    """One segment's VPC with its subnets, ACLs, routes, endpoints and flow log."""

    vpc: aws.ec2.Vpc
    private_subnets: list[aws.ec2.Subnet]

    def __init__(self, name: str, segment: Segment, args: SegmentedNetworkArgs, *,
                 account_id: pulumi.Output[str], zone_names: pulumi.Output[list[str]],
                 flow_log_key_arn: pulumi.Input[str], flow_log_role_arn: pulumi.Input[str],
                 log_group_name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zero-trust-ai:network:Segment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {
            "environment": args.environment,
            "owner": args.owner,
            "data-classification": segment.data_classification,
            "project": "zero-trust-ai",
            SEGMENT_TAG: segment.name,
            EGRESS_TAG: "nat" if segment.egress else "none",
        }

        def named(suffix: str) -> dict[str, str]:
            return {**tags, "Name": f"{args.environment}-{segment.name}-{suffix}"}

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=segment.cidr,
            # Interface endpoints with private DNS need both; without them calls go to public names.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=named("vpc"),
            opts=child,
        )
        vpc_child = pulumi.ResourceOptions(parent=self.vpc)

        # AWS creates every VPC with a default SG that allows all traffic between its members and
        # all egress; owning it with no rules closes it for anything that falls back to it.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=self.vpc.id, ingress=[], egress=[],
            tags=named("default-sg-closed"), opts=vpc_child,
        )
        # Likewise the default network ACL allows everything; with no rules it denies everything,
        # so a subnet someone adds without an ACL association is isolated, not open.
        aws.ec2.DefaultNetworkAcl(
            f"{name}-default-nacl", default_network_acl_id=self.vpc.default_network_acl_id,
            ingress=[], egress=[], tags=named("default-nacl-deny-all"), opts=vpc_child,
        )

        private_cidrs, public_cidrs = subnet_blocks(segment.cidr, args.az_count)
        zones = [zone_names.apply(functools.partial(_zone, index=i, region=args.region))
                 for i in range(args.az_count)]

        self.private_subnets = [
            aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zones[i],
                map_public_ip_on_launch=False,
                tags=named(f"private-{i}"),
                opts=vpc_child,
            )
            for i, cidr in enumerate(private_cidrs)
        ]

        # Linux and Windows pick ephemeral ports from 32768 up, so services on 1024-32767 of
        # the segment's hosts stay shut to anything outside the segment.
        private_acl = _segment_acl(
            f"{name}-private-nacl", self.vpc.id, segment.cidr, return_from_port=32768,
            to_segment=aws.ec2.NetworkAclEgressArgs(rule_no=100, action="allow", protocol="-1",
                                                    cidr_block=segment.cidr, from_port=0, to_port=0),
            tags=named("private-nacl"), opts=vpc_child)
        for i, subnet in enumerate(self.private_subnets):
            aws.ec2.NetworkAclAssociation(
                f"{name}-private-nacl-{i}", network_acl_id=private_acl.id, subnet_id=subnet.id,
                opts=pulumi.ResourceOptions(parent=private_acl),
            )

        route_tables = self._routes(name, segment, args, zones, public_cidrs, named, vpc_child)

        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[table.id for table in route_tables],
            policy=account_id.apply(
                lambda account: s3_endpoint_policy(account, args.organization_id, args.region)),
            tags=named("s3-endpoint"),
            opts=vpc_child,
        )

        self.endpoint_security_group = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=self.vpc.id,
            description=f"HTTPS from the {segment.name} segment to its interface endpoints",
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=443, to_port=443, cidr_blocks=[segment.cidr],
                description="HTTPS from inside the segment")],
            egress=[],  # endpoints answer; they never open connections
            tags=named("endpoints-sg"),
            opts=vpc_child,
        )
        for service in args.interface_endpoints:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[subnet.id for subnet in self.private_subnets],
                security_group_ids=[self.endpoint_security_group.id],
                policy=account_id.apply(functools.partial(
                    interface_endpoint_policy, service, organization_id=args.organization_id,
                    region=args.region)),
                tags=named(f"{service}-endpoint"),
                opts=vpc_child,
            )

        self.flow_log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=log_group_name,
            retention_in_days=args.flow_log_retention_days,
            kms_key_id=flow_log_key_arn,
            deletion_protection_enabled=args.protect,
            tags=named("flow-logs"),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=flow_log_role_arn,
            max_aggregation_interval=60,
            tags=named("flow-log"),
            opts=vpc_child,
        )
        self.register_outputs({
            "vpcId": self.vpc.id,
            "privateSubnetIds": [subnet.id for subnet in self.private_subnets],
            "flowLogGroup": self.flow_log_group.name,
        })

    def _routes(self, name: str, segment: Segment, args: SegmentedNetworkArgs,
                zones: list[pulumi.Output[str]], public_cidrs: list[str],
                named: Any, vpc_child: pulumi.ResourceOptions) -> list[aws.ec2.RouteTable]:
        """Route tables of the private subnets; the internet path exists only for egress segments."""
        if not segment.egress:
            # Only the implicit local route (and the S3 endpoint's prefix-list route).
            table = aws.ec2.RouteTable(f"{name}-private-rt", vpc_id=self.vpc.id,
                                       tags=named("private-rt"), opts=vpc_child)
            for i, subnet in enumerate(self.private_subnets):
                aws.ec2.RouteTableAssociation(f"{name}-private-rt-{i}", route_table_id=table.id,
                                              subnet_id=subnet.id,
                                              opts=pulumi.ResourceOptions(parent=table))
            return [table]

        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=named("igw"),
                                          opts=vpc_child)
        public_table = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            tags=named("public-rt"), opts=vpc_child,
        )
        # NAT gateways translate to source ports 1024-65535, so their replies come back there;
        # towards the segment only replies leave the NAT subnet.
        public_acl = _segment_acl(
            f"{name}-public-nacl", self.vpc.id, segment.cidr, return_from_port=1024,
            to_segment=aws.ec2.NetworkAclEgressArgs(rule_no=100, action="allow", protocol="tcp",
                                                    cidr_block=segment.cidr, from_port=1024,
                                                    to_port=65535),
            tags=named("public-nacl"), opts=vpc_child)
        private_tables = []
        for i, cidr in enumerate(public_cidrs):
            public_subnet = aws.ec2.Subnet(
                f"{name}-public-{i}", vpc_id=self.vpc.id, cidr_block=cidr,
                availability_zone=zones[i],
                # NAT gateways carry their own Elastic IP; nothing else here gets a public address.
                map_public_ip_on_launch=False,
                tags=named(f"public-{i}"), opts=vpc_child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-public-rt-{i}", route_table_id=public_table.id,
                                          subnet_id=public_subnet.id,
                                          opts=pulumi.ResourceOptions(parent=public_table))
            aws.ec2.NetworkAclAssociation(f"{name}-public-nacl-{i}", network_acl_id=public_acl.id,
                                          subnet_id=public_subnet.id,
                                          opts=pulumi.ResourceOptions(parent=public_acl))
            address = aws.ec2.Eip(f"{name}-nat-eip-{i}", domain="vpc", tags=named(f"nat-eip-{i}"),
                                  opts=vpc_child)
            # One NAT per zone, so losing a zone never cuts the others off.
            nat = aws.ec2.NatGateway(f"{name}-nat-{i}", subnet_id=public_subnet.id,
                                     allocation_id=address.id, connectivity_type="public",
                                     tags=named(f"nat-{i}"), opts=vpc_child)
            table = aws.ec2.RouteTable(
                f"{name}-private-rt-{i}", vpc_id=self.vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags=named(f"private-rt-{i}"), opts=vpc_child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-private-rt-{i}", route_table_id=table.id,
                                          subnet_id=self.private_subnets[i].id,
                                          opts=pulumi.ResourceOptions(parent=table))
            private_tables.append(table)
        return private_tables


class SegmentedNetwork(pulumi.ComponentResource):
    """All segments, the flow-log role they share and (until the key hierarchy owns it) the
    flow-log key. Type token `zero-trust-ai:network:SegmentedNetwork`."""

    segments: dict[str, NetworkSegment]
    flow_log_key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: SegmentedNetworkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)  # before registering anything: bad input leaves nothing half-declared
        super().__init__("zero-trust-ai:network:SegmentedNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        partition = partition_for_region(args.region)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        zone_names = aws.get_availability_zones_output(
            state="available",
            # Local and Wavelength Zones are opt-in; subnets belong in the region's real AZs.
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status",
                                                        values=["opt-in-not-required"])],
            opts=pulumi.InvokeOptions(parent=self),
        ).names
        log_group_prefix = f"/zero-trust-ai/{args.environment}/vpc-flow-logs/"
        # What a handed-over key must let CloudWatch Logs encrypt (KeyHierarchy.grant_cloudwatch_logs).
        self.log_group_prefix = log_group_prefix

        base_tags = {"environment": args.environment, "owner": args.owner,
                     "data-classification": "internal", "project": "zero-trust-ai"}
        if args.flow_log_key_arn is None:
            key = aws.kms.Key(
                f"{name}-flow-logs-key",
                description=f"Encrypts VPC flow logs of the {args.environment} segments",
                enable_key_rotation=True,
                rotation_period_in_days=90,  # shortest automatic rotation KMS allows
                deletion_window_in_days=30,
                policy=account_id.apply(
                    lambda account: flow_log_key_policy(account, args.region, log_group_prefix)),
                tags={**base_tags, "Name": f"{args.environment}-flow-logs-key"},
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            )
            aws.kms.Alias(f"{name}-flow-logs-key-alias",
                          name=f"alias/zero-trust-ai/{args.environment}/flow-logs",
                          target_key_id=key.key_id, opts=pulumi.ResourceOptions(parent=key))
            self.flow_log_key_arn = key.arn
        else:
            self.flow_log_key_arn = pulumi.Output.from_input(args.flow_log_key_arn)

        log_group_arns = account_id.apply(lambda account: [
            f"arn:{partition}:logs:{args.region}:{account}:log-group:{log_group_prefix}{segment.name}"
            for segment in args.segments
        ])
        flow_log_role = aws.iam.Role(
            f"{name}-flow-logs-role",
            description="VPC flow logs delivery into the segment log groups",
            max_session_duration=3600,
            assume_role_policy=account_id.apply(lambda account: policy_document([{
                "Effect": "Allow",
                "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                "Action": "sts:AssumeRole",
                # Confused-deputy guard: only flow logs of this account may assume the role.
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn":
                                f"arn:{partition}:ec2:{args.region}:{account}:vpc-flow-log/*"},
                },
            }])),
            tags={**base_tags, "Name": f"{args.environment}-flow-logs-role"},
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-write",
            role=flow_log_role.id,
            policy=log_group_arns.apply(lambda arns: policy_document([{
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [*arns, *(f"{arn}:log-stream:*" for arn in arns)],
            }])),
            opts=pulumi.ResourceOptions(parent=flow_log_role),
        )

        self.segments = {
            segment.name: NetworkSegment(
                f"{name}-{segment.name}", segment, args,
                account_id=account_id, zone_names=zone_names,
                flow_log_key_arn=self.flow_log_key_arn, flow_log_role_arn=flow_log_role.arn,
                log_group_name=f"{log_group_prefix}{segment.name}",
                opts=child,
            )
            for segment in args.segments
        }
        self.register_outputs({
            "vpcIds": {n: s.vpc.id for n, s in self.segments.items()},
            "flowLogKeyArn": self.flow_log_key_arn,
        })

    def vpc_ids(self) -> Mapping[str, pulumi.Output[str]]:
        return {name: segment.vpc.id for name, segment in self.segments.items()}


def _validate(args: SegmentedNetworkArgs) -> None:
    """Reject arguments AWS would reject later, before any child resource is declared."""
    names = [segment.name for segment in args.segments]
    if not names:
        raise ValueError("SegmentedNetwork needs at least one segment")
    if len(set(names)) != len(names):
        raise ValueError(f"segment names must be unique, got {names}")
    for segment in args.segments:
        if segment.name not in SEGMENT_NAMES:
            raise ValueError(f"unknown segment {segment.name!r}; segments are {', '.join(SEGMENT_NAMES)}")
        prefix = ipaddress.IPv4Network(segment.cidr).prefixlen
        if not MIN_SEGMENT_PREFIX <= prefix <= MAX_SEGMENT_PREFIX:
            raise ValueError(f"segment {segment.name} CIDR {segment.cidr} must be "
                             f"/{MIN_SEGMENT_PREFIX} to /{MAX_SEGMENT_PREFIX}")
    if not 2 <= args.az_count <= _PUBLIC_BLOCK_OFFSET:
        raise ValueError(f"az_count must be 2 to {_PUBLIC_BLOCK_OFFSET}, got {args.az_count}")
