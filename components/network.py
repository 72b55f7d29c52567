"""Segmented network: one VPC per segment.

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
import re
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

# Every endpoint policy also pins the *resource* to the account/organisation, so a valid insider
# credential cannot push weights into a foreign bucket, key, log group, ECR repository, role (or,
# for a service added to interface_endpoints, queue, topic, stream...) through the endpoint. But
# ssmmessages/ec2messages: they carry Session Manager's and Run Command's channels, whose actions
# name no resource (Service Authorization Reference, list_ssmmessages.html, list_ec2messages.html),
# so they get the principal check only. vpc-endpoint-policy-restrictive holds the same list.
SERVICES_WITHOUT_RESOURCES: frozenset[str] = frozenset({"ssmmessages", "ec2messages"})

# Services whose endpoints admit only this stack's resources by ARN (restrict_endpoints): the
# ones where data can be written into a resource and read back from outside the segment.
RESTRICTED_ENDPOINT_SERVICES: frozenset[str] = frozenset({"s3", "logs", "ecr.api", "ecr.dkr", "ssm"})

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
    flow_log_retention_days: CloudWatch retention of flow logs and Resolver query logs; default 365.
    flow_log_key_arn: ARN of the CMK that encrypts flow logs. Default None: the component creates
        its own key. This is the hand-over point for the key hierarchy: pass its logs key here. To
        keep the component's key instead of replacing it, give the hierarchy's key the alias
        `pulumi.Alias(parent=<network>, name="<network>-flow-logs-key")` or `pulumi state move` it.
    organization_id: AWS Organizations id; default None pins endpoint policies to this account.
    interface_endpoints: interface endpoint services per VPC; default DEFAULT_INTERFACE_ENDPOINTS.
        The policy pack refuses, in egress-free VPCs, any service not also listed in
        egress-free-segment-no-internet-path's `egressFreeEndpointServices` (same default): SQS,
        SNS, Lambda... reach other accounts' resources, so adding one is a reviewed change in both.
    protect: set `protect` (and log-group deletion protection) on the key and flow-log groups;
        default False, True in prod.
    dns_allowed_domains: names, beyond `dns_firewall_allow_list(region)`, that egress-free
        segments may resolve (e.g. `internal.example.com` and `*.internal.example.com` for a
        private hosted zone). Default none: only AWS-answered names. Each entry is a domain
        name, optionally starting with `*.`; never add a name served from outside AWS, since
        DNS queries carry data to whoever answers them. List the same entries in the policy
        configuration's egress-free-segment-dns-firewall `dnsAllowedDomains`, or the pack
        refuses them.
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
    dns_allowed_domains: Sequence[str] = ()



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


@dataclass(frozen=True)
class StackResources:
    """This stack's data-bearing resources that principals in the segments may reach through the
    endpoints, by ARN (`SegmentedNetwork.restrict_endpoints`). Anything else of the account
    (another environment's bucket, parameter, repository or log group) is refused, so data
    cannot be staged there from inside a segment and read from outside.

    bucket_arns: S3 buckets (`arn:<partition>:s3:::<bucket>`); their objects are included.
    parameter_arns: SSM parameters (`arn:...:ssm:<region>:<account>:parameter/<name>`), read only.
    repository_arns: ECR repositories (`arn:...:ecr:<region>:<account>:repository/<name>`), pull only.
    log_group_arns: CloudWatch log groups (`arn:...:logs:<region>:<account>:log-group:<name>`,
        as the `arn` output of `aws.cloudwatch.LogGroup`, without `:*`); their streams are included.
    """

    bucket_arns: Sequence[str] = ()
    parameter_arns: Sequence[str] = ()
    repository_arns: Sequence[str] = ()
    log_group_arns: Sequence[str] = ()

    def checked(self) -> StackResources:
        """These ARNs, refused with a clear message when one is not an ARN of its kind or
        carries a wildcard (a wildcard would readmit the account's other resources)."""
        kinds = (("bucket_arns", self.bucket_arns, ":s3:::"),
                 ("parameter_arns", self.parameter_arns, ":parameter/"),
                 ("repository_arns", self.repository_arns, ":repository/"),
                 ("log_group_arns", self.log_group_arns, ":log-group:"))
        for field_name, arns, marker in kinds:
            for arn in arns:
                if not (isinstance(arn, str) and arn.startswith("arn:") and marker in arn) or any(
                        wildcard in arn for wildcard in "*?"):
                    raise ValueError(f"StackResources.{field_name}: {arn!r} is not an ARN containing "
                                     f"{marker!r} without wildcards")
        return self


# What each endpoint lets our principals do on this stack's resources. S3 and Logs are data
# services through and through; ECR is limited to pulls and SSM to reading parameters (nothing
# inside a segment writes either; Image Builder writes the AMI parameter from AWS's side).
_ECR_PULL_ACTIONS = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                     "ecr:GetDownloadUrlForLayer", "ecr:DescribeImages", "ecr:DescribeRepositories"]
_PARAMETER_READ_ACTIONS = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]
# What SSM Agent calls on the ssm endpoint (AmazonSSMManagedInstanceCore without its parameter
# reads): registration, associations (State Manager), inventory, compliance and patching.
# Their resources are the instance, its associations and documents: none can carry our data out
# of the account, so the account perimeter is enough there.
SSM_AGENT_ACTIONS: tuple[str, ...] = (
    "ssm:UpdateInstanceInformation", "ssm:ListAssociations", "ssm:ListInstanceAssociations",
    "ssm:DescribeAssociation", "ssm:DescribeDocument", "ssm:GetDocument", "ssm:GetManifest",
    "ssm:GetDeployablePatchSnapshotForInstance", "ssm:PutInventory", "ssm:PutComplianceItems",
    "ssm:PutConfigurePackageResult", "ssm:UpdateAssociationStatus",
    "ssm:UpdateInstanceAssociationStatus",
)
# A policy needs at least one statement; until `restrict_endpoints` names the stack's resources,
# the data services admit nothing of ours (explicitly, so a reader sees why).
_NOTHING_YET = {"Sid": "NoResourceOfThisStackNamedYet", "Effect": "Deny", "Principal": "*",
                "Action": "*", "Resource": "*"}


def interface_endpoint_policy(service: str, account_id: str, *, organization_id: str | None,
                              region: str, resources: StackResources | None = None) -> str:
    """Endpoint policy of an interface endpoint: the data perimeter for one service.

    For logs, ecr.api/ecr.dkr and ssm, our principals reach only the `resources` named (none
    until `SegmentedNetwork.restrict_endpoints` is called); other services stay pinned to the
    account's (or organisation's) principals and resources, ssmmessages/ec2messages (no
    resources) to its principals.
    """
    partition = partition_for_region(region)
    named = resources or StackResources()
    pinned = service not in SERVICES_WITHOUT_RESOURCES
    ours = perimeter_conditions(account_id, organization_id, pinned)
    statements: list[dict[str, Any]] = []
    if service == "logs":
        if named.log_group_arns:
            statements.append(_statement(
                "OurPrincipalsOnThisStacksLogGroups", ours, action="logs:*",
                resource=[arn for group in named.log_group_arns for arn in (group, f"{group}:*")]))
    elif service in ("ecr.api", "ecr.dkr"):
        # The token is per registry (the account), not per repository.
        statements.append(_statement("OurPrincipalsGetRegistryTokens", ours,
                                     action="ecr:GetAuthorizationToken"))
        if named.repository_arns:
            statements.append(_statement("OurPrincipalsPullThisStacksRepositories", ours,
                                         action=_ECR_PULL_ACTIONS,
                                         resource=list(named.repository_arns)))
    elif service == "ssm":
        statements.append(_statement("OurInstancesRunTheAgent", ours, action=list(SSM_AGENT_ACTIONS)))
        if named.parameter_arns:
            statements.append(_statement("OurPrincipalsReadThisStacksParameters", ours,
                                         action=_PARAMETER_READ_ACTIONS,
                                         resource=list(named.parameter_arns)))
        # Session Manager and Run Command use AWS-owned documents and public parameters, which
        # have no account; our principals may read and run those, nothing else of AWS's.
        statements.append(_statement(
            "OurPrincipalsUseAwsOwnedDocuments",
            perimeter_conditions(account_id, organization_id, False),
            action=["ssm:Describe*", "ssm:List*", "ssm:Get*", "ssm:SendCommand",
                    "ssm:StartSession", "ssm:CreateAssociation"],
            resource=[f"arn:{partition}:ssm:{region}::document/*",
                      f"arn:{partition}:ssm:{region}::parameter/aws/*"]))
    else:
        statements.append(_statement("OurPrincipalsOnOurResources" if pinned else "OurPrincipals",
                                     ours))
    if service == "sts":
        # Web-identity and SAML calls are unsigned, so there is no principal account to check;
        # admit them only into our own roles (IRSA and SSO keep working). AWS documents the
        # wildcard principal for these callers, not a `Federated` principal: "Example: Allow
        # federation while denying non-organization access",
        # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sts_vpc_endpoint_policies.html
        resource_key = "aws:ResourceOrgID" if organization_id else "aws:ResourceAccount"
        statements.append(_statement(
            "FederatedSessionsIntoOurRoles", {"StringEquals": {resource_key: organization_id or account_id}},
            action=["sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithSAML"], principal="*"))
    return policy_document(statements or [_NOTHING_YET])


def s3_endpoint_policy(account_id: str, organization_id: str | None, region: str,
                       bucket_arns: Sequence[str] = ()) -> str:
    """S3 gateway endpoint policy: our principals on this stack's buckets (by name, and still
    of our account or organisation: a deleted bucket's name can be taken by anyone), plus
    read-only access to the AWS-owned buckets instances need.

    The AWS-owned statement has no principal condition on purpose: ECR serves layers through
    URLs presigned by an AWS account, and the SSM agent reads its buckets anonymously, so a
    principal condition would break image pulls and agent updates. It only reads named objects.
    """
    partition = partition_for_region(region)
    statements: list[dict[str, Any]] = []
    if bucket_arns:
        statements.append(_statement(
            "OurPrincipalsOnThisStacksBuckets", perimeter_conditions(account_id, organization_id, True),
            action="s3:*", resource=[arn for bucket in bucket_arns for arn in (bucket, f"{bucket}/*")]))
    statements.append(
        {"Sid": "ReadAwsOwnedServiceBuckets", "Effect": "Allow", "Principal": {"AWS": "*"},
         "Action": "s3:GetObject",
         "Resource": [f"arn:{partition}:s3:::{bucket.format(region=region)}/*"
                      for bucket in _AWS_OWNED_BUCKETS]})
    return policy_document(statements)


def flow_log_key_policy(account_id: str, region: str, log_group_prefix: str | Sequence[str]) -> str:
    """Key policy of the component's own flow-log key.

    The account may administer the key (through IAM) but not use it; only CloudWatch Logs may use
    it, and only for log groups under `log_group_prefix` (one prefix or several).
    """
    partition = partition_for_region(region)
    prefixes = [log_group_prefix] if isinstance(log_group_prefix, str) else list(log_group_prefix)
    group_arns = [f"arn:{partition}:logs:{region}:{account_id}:log-group:{prefix}*" for prefix in prefixes]
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
                "kms:EncryptionContext:aws:logs:arn": group_arns[0] if len(group_arns) == 1 else group_arns,
            }},
        },
    ])


# DNS Firewall priorities: rules within the group (lowest first, first match decides), and the
# group's association with a VPC (AWS accepts 100 to 9900; botocore route53resolver model).
DNS_ALLOW_PRIORITY, DNS_BLOCK_PRIORITY = 100, 200
DNS_ASSOCIATION_PRIORITY = 100
_DOMAIN = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}\.?$")


def dns_firewall_allow_list(region: str) -> list[str]:
    """What an egress-free segment may resolve; everything else gets NXDOMAIN.

    Only names that AWS itself answers, so no query reaches a name server someone else runs:
    - `*.<region>.amazonaws.com`: the regional service names. Interface endpoints with private
      DNS answer kms, sts, logs, ecr, ssm... with their own addresses; S3 names (the gateway
      endpoint, ECR's layer bucket `prod-<region>-starport-layer-bucket.s3.<region>...`, the
      AL2023 repositories' `al2023-repos-<region>-....s3.dualstack.<region>...`) and internal
      load balancers (`*.elb.<region>...`) resolve under it too, CNAME targets included;
    - `*.<region>.vpce.amazonaws.com`: the endpoints' own DNS names;
    - `*.<region>.compute.internal` (`*.ec2.internal` in us-east-1): instances' private names;
    - reverse lookups in private address space (RFC 1918), answered by the VPC resolver.
    Global names (`s3.amazonaws.com`, `sts.amazonaws.com`) are left out: without an internet
    path they lead nowhere, and SDKs use the regional names.
    """
    suffix = "amazonaws.com.cn" if partition_for_region(region) == "aws-cn" else "amazonaws.com"
    internal = ["*.ec2.internal"] if region == "us-east-1" else [f"*.{region}.compute.internal"]
    reverse = ["*.10.in-addr.arpa", "*.168.192.in-addr.arpa",
               *(f"*.{octet}.172.in-addr.arpa" for octet in range(16, 32))]
    return [f"*.{region}.{suffix}", f"*.{region}.vpce.{suffix}", *internal, *reverse]


def query_log_delivery_policy(account_id: str, region: str, log_group_arn: str) -> str:
    """CloudWatch Logs resource policy letting the log delivery service write this account's
    Resolver query logs into the query-log group, and nothing else."""
    partition = partition_for_region(region)
    return policy_document([{
        "Sid": "ResolverQueryLogDelivery",
        "Effect": "Allow",
        "Principal": {"Service": "delivery.logs.amazonaws.com"},
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": f"{log_group_arn}:*",
        # Confused-deputy guard: deliveries of this account only.
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id},
                      "ArnLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account_id}:*"}},
    }])


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
    endpoints: dict[str, aws.ec2.VpcEndpoint]

    def __init__(self, name: str, segment: Segment, args: SegmentedNetworkArgs, *,
                 account_id: pulumi.Output[str], zone_names: pulumi.Output[list[str]],
                 flow_log_key_arn: pulumi.Input[str], flow_log_role_arn: pulumi.Input[str],
                 log_group_name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zero-trust-ai:network:Segment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.component_name, self.segment_name, self.egress = name, segment.name, segment.egress
        tags = {
            "data-classification": segment.data_classification,
            SEGMENT_TAG: segment.name,
            EGRESS_TAG: "nat" if segment.egress else "none",
        }

        def named(suffix: str) -> dict[str, str]:
            return {**tags, "Name": f"{args.environment}-{segment.name}-{suffix}"}

        self.tags = named

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

        # Endpoints of the services in RESTRICTED_ENDPOINT_SERVICES start with a policy that
        # admits none of the stack's resources; `SegmentedNetwork.restrict_endpoints` then owns
        # their policy (an aws.ec2.VpcEndpointPolicy naming the resources), so the endpoint
        # ignores later changes of its inline policy, as a key does once KeyHierarchy seals it.
        restricted = pulumi.ResourceOptions(parent=self.vpc, ignore_changes=["policy"])
        self.endpoints: dict[str, aws.ec2.VpcEndpoint] = {}
        self.endpoints["s3"] = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[table.id for table in route_tables],
            policy=account_id.apply(
                lambda account: s3_endpoint_policy(account, args.organization_id, args.region)),
            tags=named("s3-endpoint"),
            opts=restricted,
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
            self.endpoints[service] = aws.ec2.VpcEndpoint(
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
                opts=restricted if service in RESTRICTED_ENDPOINT_SERVICES else vpc_child,
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
            # A public NAT gateway created before its VPC's internet gateway is attached fails
            # (Gateway.NotAttached) or never routes: nothing in its inputs names the gateway, so
            # the order is explicit. In pulumi-aws v7 an InternetGateway given `vpc_id` is
            # attached as part of its creation, so depending on it is depending on the attachment.
            nat = aws.ec2.NatGateway(f"{name}-nat-{i}", subnet_id=public_subnet.id,
                                     allocation_id=address.id, connectivity_type="public",
                                     tags=named(f"nat-{i}"),
                                     opts=pulumi.ResourceOptions(parent=self.vpc,
                                                                 depends_on=[gateway]))
            table = aws.ec2.RouteTable(
                f"{name}-private-rt-{i}", vpc_id=self.vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags=named(f"private-rt-{i}"),
                opts=pulumi.ResourceOptions(parent=self.vpc, depends_on=[gateway]),
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
        # What a handed-over key must let CloudWatch Logs encrypt (KeyHierarchy.grant_cloudwatch_logs):
        # the flow-log groups, and the Resolver query-log group.
        self.log_group_prefix = log_group_prefix
        self.query_log_group_name = f"/zero-trust-ai/{args.environment}/resolver-query-logs"
        self.query_log_group_prefix = self.query_log_group_name
        self._account_id, self._args, self._name = account_id, args, name
        self._endpoint_policies: list[aws.ec2.VpcEndpointPolicy] | None = None

        base_tags = {"data-classification": "internal"}
        if args.flow_log_key_arn is None:
            key = aws.kms.Key(
                f"{name}-flow-logs-key",
                description=f"Encrypts VPC flow logs of the {args.environment} segments",
                enable_key_rotation=True,
                rotation_period_in_days=90,  # shortest automatic rotation KMS allows
                deletion_window_in_days=30,
                policy=account_id.apply(
                    lambda account: flow_log_key_policy(
                        account, args.region, [log_group_prefix, self.query_log_group_prefix])),
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
        self._dns_firewall(name, args, base_tags)
        self._query_logging(name, args, account_id, partition, base_tags)
        self.register_outputs({
            "vpcIds": {n: s.vpc.id for n, s in self.segments.items()},
            "flowLogKeyArn": self.flow_log_key_arn,
            "queryLogGroup": self.query_log_group.name,
        })

    def vpc_ids(self) -> Mapping[str, pulumi.Output[str]]:
        return {name: segment.vpc.id for name, segment in self.segments.items()}

    def restrict_endpoints(self, *, bucket_names: Sequence[pulumi.Input[str]] = (),
                           parameter_arns: Sequence[pulumi.Input[str]] = (),
                           repository_arns: Sequence[pulumi.Input[str]] = (),
                           log_group_names: Sequence[pulumi.Input[str]] = ()
                           ) -> list[aws.ec2.VpcEndpointPolicy]:
        """Let principals in the segments reach, through the s3, logs, ecr and ssm endpoints,
        the buckets, parameters, repositories and log groups of this stack named here, and no
        other resource of the account (StackResources). Buckets and log groups are given by
        name (what their owners expose), the others by ARN. Call once, after every such resource
        is declared: until then the endpoints admit none of them. Returns the policies, so
        whatever needs the endpoints at deploy (an image build) can wait for them.
        """
        if self._endpoint_policies is not None:
            raise ValueError("restrict_endpoints was already called: name every resource in one call")
        args = self._args
        partition = partition_for_region(args.region)

        def named(account: str, buckets: Sequence[str], parameters: Sequence[str],
                  repositories: Sequence[str], groups: Sequence[str]) -> StackResources:
            return StackResources(
                bucket_arns=[f"arn:{partition}:s3:::{bucket}" for bucket in buckets],
                parameter_arns=parameters, repository_arns=repositories,
                log_group_arns=[f"arn:{partition}:logs:{args.region}:{account}:log-group:{group}"
                                for group in groups]).checked()

        # Values known now are checked now (a clear error before anything is declared); the
        # others when they resolve.
        def literal(values: Sequence[pulumi.Input[str]]) -> list[str]:
            return [value for value in values if isinstance(value, str)]

        named("000000000000", literal(bucket_names), literal(parameter_arns),
              literal(repository_arns), literal(log_group_names))
        resolved = pulumi.Output.all(
            self._account_id, pulumi.Output.all(*bucket_names), pulumi.Output.all(*parameter_arns),
            pulumi.Output.all(*repository_arns), pulumi.Output.all(*log_group_names))

        def document(service: str, values: list[Any]) -> str:
            resources = named(*values)
            account = values[0]
            if service == "s3":
                return s3_endpoint_policy(account, args.organization_id, args.region,
                                          resources.bucket_arns)
            return interface_endpoint_policy(service, account, organization_id=args.organization_id,
                                             region=args.region, resources=resources)

        self._endpoint_policies = [
            aws.ec2.VpcEndpointPolicy(
                f"{segment.component_name}-{service.replace('.', '-')}-policy",
                vpc_endpoint_id=endpoint.id,
                policy=resolved.apply(functools.partial(document, service)),
                # Deleting a VpcEndpointPolicy resets the endpoint to AWS's default full-access
                # policy; dropping this resource from the program must leave the restriction.
                opts=pulumi.ResourceOptions(parent=endpoint, retain_on_delete=True))
            for segment in self.segments.values()
            for service, endpoint in segment.endpoints.items()
            if service in RESTRICTED_ENDPOINT_SERVICES
        ]
        return self._endpoint_policies

    # -- DNS -------------------------------------------------------------------------------------
    def _dns_firewall(self, name: str, args: SegmentedNetworkArgs, tags: dict[str, str]) -> None:
        """A walled garden for the egress-free segments' DNS: Route 53 Resolver answers only the
        names on the allow list and NXDOMAIN for everything else. Without it a host with no route
        out still talks to the internet: every query for `<data>.attacker.example` reaches the
        attacker's name server through the VPC resolver (DNS tunnelling).
        """
        closed = [segment for segment in self.segments.values() if not segment.egress]
        if not closed:
            return
        child = pulumi.ResourceOptions(parent=self)
        allowed = aws.route53.ResolverFirewallDomainList(
            f"{name}-dns-allowed", name=f"zero-trust-ai-{args.environment}-dns-allowed",
            domains=[*dns_firewall_allow_list(args.region), *args.dns_allowed_domains],
            tags={**tags, "Name": f"{args.environment}-dns-allowed"}, opts=child)
        everything = aws.route53.ResolverFirewallDomainList(
            f"{name}-dns-everything", name=f"zero-trust-ai-{args.environment}-dns-everything",
            domains=["*"], tags={**tags, "Name": f"{args.environment}-dns-everything"}, opts=child)
        self.dns_rule_group = aws.route53.ResolverFirewallRuleGroup(
            f"{name}-dns-firewall", name=f"zero-trust-ai-{args.environment}-egress-free",
            tags={**tags, "Name": f"{args.environment}-dns-firewall"}, opts=child)
        group_child = pulumi.ResourceOptions(parent=self.dns_rule_group)
        # Rules run from the lowest priority; the first match decides.
        aws.route53.ResolverFirewallRule(
            f"{name}-dns-allow-aws", name="allow-aws-service-names", priority=DNS_ALLOW_PRIORITY,
            action="ALLOW", firewall_domain_list_id=allowed.id,
            firewall_rule_group_id=self.dns_rule_group.id,
            # A CNAME target must be on the list too (the default, written out): otherwise an
            # allowed name could point anywhere.
            firewall_domain_redirection_action="INSPECT_REDIRECTION_DOMAIN",
            opts=group_child)
        aws.route53.ResolverFirewallRule(
            f"{name}-dns-block-rest", name="block-everything-else", priority=DNS_BLOCK_PRIORITY,
            action="BLOCK", block_response="NXDOMAIN", firewall_domain_list_id=everything.id,
            firewall_rule_group_id=self.dns_rule_group.id, opts=group_child)
        for segment in closed:
            vpc_child = pulumi.ResourceOptions(parent=segment.vpc)
            aws.route53.ResolverFirewallRuleGroupAssociation(
                f"{segment.component_name}-dns-firewall",
                name=f"zero-trust-ai-{args.environment}-{segment.segment_name}",
                firewall_rule_group_id=self.dns_rule_group.id, vpc_id=segment.vpc.id,
                priority=DNS_ASSOCIATION_PRIORITY,
                # Removing or changing the association first needs this switched off: one more
                # visible step (a CloudTrail event) for whoever wants the filter gone.
                mutation_protection="ENABLED",
                tags=segment.tags("dns-firewall"), opts=vpc_child)
            # Fail closed: when DNS Firewall cannot evaluate a query, Resolver drops it. This is
            # AWS's default, written out so that turning it on shows as drift and in the pack.
            aws.route53.ResolverFirewallConfig(
                f"{segment.component_name}-dns-firewall-config", resource_id=segment.vpc.id,
                firewall_fail_open="DISABLED", opts=vpc_child)

    def _query_logging(self, name: str, args: SegmentedNetworkArgs, account_id: pulumi.Output[str],
                       partition: str, tags: dict[str, str]) -> None:
        """Every query each VPC's resolver answers (or blocks), into one log group encrypted with
        the logs key: what a host tried to resolve is evidence even when the firewall said no."""
        self.query_log_group = aws.cloudwatch.LogGroup(
            f"{name}-resolver-query-logs", name=self.query_log_group_name,
            retention_in_days=args.flow_log_retention_days, kms_key_id=self.flow_log_key_arn,
            deletion_protection_enabled=args.protect,
            tags={**tags, "Name": f"{args.environment}-resolver-query-logs"},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        # Resolver delivers query logs as vended logs, through delivery.logs.amazonaws.com, which
        # needs a resource policy on the log group ("Logs sent to CloudWatch Logs",
        # https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/AWS-logs-infrastructure-CWL.html).
        # Written here rather than by Resolver on first use, pinned to our account's deliveries.
        policy = aws.cloudwatch.LogResourcePolicy(
            f"{name}-resolver-query-logs-delivery",
            policy_name=f"zero-trust-ai-{args.environment}-resolver-query-logs",
            policy_document=pulumi.Output.all(account_id, self.query_log_group.arn).apply(
                lambda values: query_log_delivery_policy(values[0], args.region, values[1])),
            opts=pulumi.ResourceOptions(parent=self.query_log_group))
        config = aws.route53.ResolverQueryLogConfig(
            f"{name}-resolver-query-log", name=f"zero-trust-ai-{args.environment}-queries",
            destination_arn=self.query_log_group.arn,
            tags={**tags, "Name": f"{args.environment}-resolver-query-log"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
        for segment in self.segments.values():
            aws.route53.ResolverQueryLogConfigAssociation(
                f"{segment.component_name}-query-log", resolver_query_log_config_id=config.id,
                resource_id=segment.vpc.id, opts=pulumi.ResourceOptions(parent=segment.vpc))


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
    for domain in args.dns_allowed_domains:
        if not isinstance(domain, str) or not _DOMAIN.match(domain):
            raise ValueError(f"dns_allowed_domains: {domain!r} is not a lower-case domain name "
                             "(optionally starting with '*.'), e.g. *.internal.example.com")
    if not 2 <= args.az_count <= _PUBLIC_BLOCK_OFFSET:
        raise ValueError(f"az_count must be 2 to {_PUBLIC_BLOCK_OFFSET}, got {args.az_count}")
