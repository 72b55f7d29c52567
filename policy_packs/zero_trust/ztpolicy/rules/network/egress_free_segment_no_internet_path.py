"""Only segments allowed egress have a path out of their VPC (control: network segmentation).

Fail closed: every VPC is egress-free unless it is tagged `ztai:egress=nat` AND its `ztai:segment`
tag is one of the rule's `egressAllowedSegments` (default: management). Flipping a tag,
renaming a segment or adding an untagged VPC therefore never opens a way out; giving a segment
egress takes an explicit change of this rule's configuration (or an exclusion with a reason), both
visible in the policy report.

A way out is: an internet, egress-only, VPN or transit gateway (or an attachment or accepter of
one, Cloud WAN included), a peering connection or its accepter, a public NAT gateway, a VPC Lattice
service-network association or resource gateway, a VPC endpoint that is not an AWS service's
(a `com.amazonaws.vpce.*` endpoint service of anyone's, a Gateway Load Balancer, a Lattice
resource or service network: AWS ignores endpoint policies on those), a network interface shared
with an instance of another VPC (multi-VPC ENIs), VPN route propagation, and any route (inline,
in the main route table, or separate) in the VPC's route tables to a target other than `local`
or a gateway endpoint, whatever its destination: a private CIDR behind a peering connection or a
transit gateway leads out of the segment as surely as 0.0.0.0/0 does.

AWS services' own endpoints are ways out too when the service can carry data to someone else's
resource: an SQS, SNS, Kinesis, execute-api, Secrets Manager or Lambda endpoint lets a principal of
ours send to a queue, topic or function of another account. So an egress-free VPC may have
interface endpoints only for the services in `egressFreeEndpointServices` (default: the ones
SegmentedNetwork creates: kms, sts, logs, ecr.api, ecr.dkr, ssm, ssmmessages, ec2messages) and
gateway endpoints only for S3 and DynamoDB; add a service in a reviewed change of this rule's
configuration, after giving its endpoint a policy with a resource perimeter.

DNS is a way out when the VPC's resolver forwards queries: a Resolver rule of any type but SYSTEM
(FORWARD to an outbound endpoint whose target name server anyone may run, RECURSIVE or DELEGATE)
associated with an egress-free VPC, or one not declared in the stack (a rule shared from another
account), sends `<data>.<domain>` to a name server outside AWS whatever the DNS Firewall allowed.
A Route 53 Profile associated with an egress-free VPC counts as well: it can carry such rules.
This lives here, not in egress-free-segment-dns-firewall, because it is a path out that does not
depend on the firewall's verdict (the firewall allows the name, the rule then sends it out).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import (
    ROUTE_TABLE,
    SUBNET,
    UNKNOWN,
    VPC,
    as_list,
    known,
    known_field,
    known_items,
    of_type,
    referenced,
    refers_to,
)
from ztpolicy.rule import Finding, Resource, Rule

EGRESS_TAG = "ztai:egress"
SEGMENT_TAG = "ztai:segment"
DEFAULT_EGRESS_ALLOWED = ["management"]

# Resources that attach a way out to a VPC, with the properties that name the VPC.
_GATEWAYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "aws:ec2/internetGateway:InternetGateway": ("internet gateway", ("vpcId",)),
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment":
        ("internet gateway attachment", ("vpcId",)),
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway":
        ("egress-only internet gateway", ("vpcId",)),
    "aws:ec2/vpnGateway:VpnGateway": ("VPN gateway", ("vpcId",)),
    "aws:ec2/vpnGatewayAttachment:VpnGatewayAttachment": ("VPN gateway attachment", ("vpcId",)),
    "aws:ec2transitgateway/vpcAttachment:VpcAttachment": ("transit gateway attachment", ("vpcId",)),
    "aws:ec2transitgateway/vpcAttachmentAccepter:VpcAttachmentAccepter":
        ("transit gateway attachment accepter", ("vpcId",)),
    "aws:networkmanager/vpcAttachment:VpcAttachment": ("Cloud WAN attachment", ("vpcArn",)),
    "aws:ec2/vpcPeeringConnection:VpcPeeringConnection": ("peering connection", ("vpcId", "peerVpcId")),
    # The accepter names the connection only; its outputs (an export, a refresh) name the VPCs.
    "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter":
        ("peering connection accepter", ("vpcId", "peerVpcId")),
    "aws:vpclattice/serviceNetworkVpcAssociation:ServiceNetworkVpcAssociation":
        ("VPC Lattice service-network association", ("vpcIdentifier",)),
    "aws:vpclattice/resourceGateway:ResourceGateway": ("VPC Lattice resource gateway", ("vpcId",)),
}
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
VPN_PROPAGATION = "aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation"
INSTANCE = "aws:ec2/instance:Instance"
NETWORK_INTERFACE = "aws:ec2/networkInterface:NetworkInterface"
ENI_ATTACHMENT = "aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment"
# An AWS service's endpoint: com.amazonaws.<region>.<service>. Endpoint services of any account
# (marketplace partners, another team, an attacker) are com.amazonaws.vpce.<region>.vpce-svc-...
_AWS_SERVICE = re.compile(r"^com\.amazonaws\.(?!vpce\.)[a-z]{2}(-[a-z]+)+-\d\.(?P<service>[a-z0-9.-]+)$")
_GATEWAY_ENDPOINT_SERVICES = ("s3", "dynamodb")
# The interface endpoints SegmentedNetwork creates (components/network.py
# DEFAULT_INTERFACE_ENDPOINTS): the only services an egress-free VPC reaches unless configured.
DEFAULT_ENDPOINT_SERVICES = ["kms", "sts", "logs", "ecr.api", "ecr.dkr", "ssm", "ssmmessages",
                             "ec2messages"]
RESOLVER_RULE = "aws:route53/resolverRule:ResolverRule"
RESOLVER_RULE_ASSOCIATION = "aws:route53/resolverRuleAssociation:ResolverRuleAssociation"
PROFILE_ASSOCIATION = "aws:route53/profilesAssociation:ProfilesAssociation"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"
DEFAULT_ROUTE_TABLE = "aws:ec2/defaultRouteTable:DefaultRouteTable"
# Route targets that lead out of the VPC, whatever the destination. `vpcEndpointId` is a Gateway
# Load Balancer endpoint (gateway endpoints add their routes through the route table association,
# not as routes); `gatewayId` is allowed only as `local` or a gateway endpoint (vpce-...).
_EXIT_TARGETS = ("natGatewayId", "egressOnlyGatewayId", "transitGatewayId", "vpcPeeringConnectionId",
                 "networkInterfaceId", "carrierGatewayId", "localGatewayId", "coreNetworkArn",
                 "vpcEndpointId", "instanceId")


def egress_free_vpcs(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Resource]:
    allowed = set(as_list(config.get("egressAllowedSegments", DEFAULT_EGRESS_ALLOWED)))
    return [vpc for vpc in of_type(resources, VPC)
            if not (vpc.tags().get(EGRESS_TAG) == "nat" and vpc.tags().get(SEGMENT_TAG) in allowed)]


def _leaves_vpc(route: Resource | Mapping[str, Any]) -> bool:
    """Does this route send anything (any destination, private ones included) to a target
    other than `local` or a gateway endpoint? A target known only at deploy counts: an output of
    a gateway, peering connection or interface cannot be a gateway endpoint's route."""
    def get(key: str) -> Any:
        return known(route, key) if isinstance(route, Resource) else known_field(route, key)

    gateway = get("gatewayId")
    if gateway is UNKNOWN or (isinstance(gateway, str) and gateway
                              and gateway != "local" and not gateway.startswith("vpce-")):
        return True
    return any(value is UNKNOWN or bool(value) for value in map(get, _EXIT_TARGETS))


def _owner(resource: Resource, prop: str, closed: Sequence[Resource]) -> Resource | None:
    return next((vpc for vpc in closed if refers_to(resource, prop, vpc)), None)


def egress_free_segment_no_internet_path(resources: Sequence[Resource],
                                         config: Mapping[str, Any]) -> list[Finding]:
    closed = egress_free_vpcs(resources, config)
    if not closed:
        return []
    findings = []
    for resource in resources:
        if resource.type not in _GATEWAYS:
            continue
        label, props = _GATEWAYS[resource.type]
        for prop in props:
            if (vpc := _owner(resource, prop, closed)) is not None:
                findings.append(Finding(resource.urn, f"{label} {resource.name} connects "
                                        f"egress-free VPC {vpc.name} to the outside"))
                break

    subnet_vpc = {s.urn: vpc for s in of_type(resources, SUBNET) if (vpc := _owner(s, "vpcId", closed))}
    subnets = [s for s in of_type(resources, SUBNET) if s.urn in subnet_vpc]
    for nat in of_type(resources, NAT_GATEWAY):
        if known(nat, "connectivityType", "public") == "private":
            continue
        subnet = next((s for s in subnets if refers_to(nat, "subnetId", s)), None)
        vpc = subnet_vpc[subnet.urn] if subnet else _owner(nat, "vpcId", closed)  # regional NAT
        if vpc is not None:
            findings.append(Finding(nat.urn, f"NAT gateway {nat.name} gives egress-free VPC "
                                    f"{vpc.name} a way to the internet"))

    table_vpc: dict[str, Resource] = {}
    for table in of_type(resources, ROUTE_TABLE):
        if (vpc := _owner(table, "vpcId", closed)) is not None:
            table_vpc[table.urn] = vpc
    for table in of_type(resources, DEFAULT_ROUTE_TABLE):
        # The main route table: linked through the VPC output it was given.
        for vpc in closed:
            deps = table.property_dependencies.get("defaultRouteTableId", ())
            value = known(table, "defaultRouteTableId")
            if vpc.urn in deps or (value and value == known(vpc, "defaultRouteTableId")):
                table_vpc[table.urn] = vpc
    for table in [*of_type(resources, ROUTE_TABLE), *of_type(resources, DEFAULT_ROUTE_TABLE)]:
        if table.urn in table_vpc and any(
                isinstance(route, Mapping) and _leaves_vpc(route)
                for route in known_items(known(table, "routes"))):
            findings.append(Finding(table.urn, f"route table {table.name} of egress-free VPC "
                                    f"{table_vpc[table.urn].name} routes outside the VPC"))
    tables = [t for t in resources if t.urn in table_vpc]

    def table_owner(resource: Resource) -> Resource | None:
        owner_table = next((t for t in tables if refers_to(resource, "routeTableId", t)), None)
        return table_vpc[owner_table.urn] if owner_table else next(  # vpc.main_route_table_id
            (v for v in closed if v.urn in resource.property_dependencies.get("routeTableId", ())), None)

    for route in of_type(resources, ROUTE):
        if (owner := table_owner(route)) is not None and _leaves_vpc(route):
            findings.append(Finding(route.urn, f"route {route.name} sends traffic of egress-free "
                                    f"VPC {owner.name} outside the VPC"))
    for propagation in of_type(resources, VPN_PROPAGATION):
        if (owner := table_owner(propagation)) is not None:
            findings.append(Finding(propagation.urn, f"VPN route propagation {propagation.name} "
                                    f"routes egress-free VPC {owner.name} to a VPN"))
    services = set(as_list(config.get("egressFreeEndpointServices", DEFAULT_ENDPOINT_SERVICES)))
    findings += _endpoint_findings(resources, closed, services)
    findings += _shared_interface_findings(resources, closed)
    findings += _dns_forwarding_findings(resources, closed)
    return findings


def _dns_forwarding_findings(resources: Sequence[Resource],
                             closed: Sequence[Resource]) -> list[Finding]:
    """Resolver rules that send an egress-free VPC's queries to a name server someone runs."""
    findings = []
    rules = of_type(resources, RESOLVER_RULE)
    for association in of_type(resources, RESOLVER_RULE_ASSOCIATION):
        if (vpc := _owner(association, "vpcId", closed)) is None:
            continue
        rule = referenced(association, "resolverRuleId", rules)
        kind = known(rule, "ruleType") if rule is not None else None
        if kind == "SYSTEM":
            continue  # Resolver answers itself: the rule undoes a forwarding rule for a subdomain
        what = (f"Resolver rule {rule.name} ({'type known only at deploy' if kind is UNKNOWN else kind}"
                f" {known(rule, 'domainName')!r})" if rule is not None else
                "a Resolver rule the stack does not declare (shared from another account?)")
        findings.append(Finding(association.urn, f"Resolver rule association {association.name} "
                                f"applies {what} to egress-free VPC {vpc.name}: queries are sent "
                                "to a name server outside AWS, carrying data whatever the DNS "
                                "Firewall allows"))
    for association in of_type(resources, PROFILE_ASSOCIATION):
        if (vpc := _owner(association, "resourceId", closed)) is not None:
            findings.append(Finding(association.urn, f"Route 53 Profile association "
                                    f"{association.name} applies a profile to egress-free VPC "
                                    f"{vpc.name}: a profile can forward its queries outside AWS "
                                    "(Resolver rules) and brings DNS Firewall rules of its own"))
    return findings


def _endpoint_findings(resources: Sequence[Resource], closed: Sequence[Resource],
                       services: set[str]) -> list[Finding]:
    """VPC endpoints in an egress-free VPC must be AWS services' own: anything else is a private
    link to whoever runs the service, and AWS does not apply endpoint policies there. Of AWS's
    services only the configured ones: SQS, SNS, Kinesis, execute-api, Lambda... reach other
    accounts' queues, topics and functions, which an account-pinned endpoint policy admits."""
    findings = []
    for endpoint in of_type(resources, ENDPOINT):
        if (vpc := _owner(endpoint, "vpcId", closed)) is None:
            continue
        kind, service = known(endpoint, "vpcEndpointType", "Gateway"), known(endpoint, "serviceName")
        where = f"endpoint {endpoint.name} in egress-free VPC {vpc.name}"
        aws_service = _AWS_SERVICE.match(service) if isinstance(service, str) else None
        if kind is UNKNOWN or service is UNKNOWN:
            findings.append(Finding(endpoint.urn, f"{where} names a service or type known only at "
                                    "deploy (an endpoint service of this stack?): cannot tell it is AWS's"))
        elif kind not in ("Interface", "Gateway"):
            findings.append(Finding(endpoint.urn, f"{where} is of type {kind}: traffic leaves the "
                                    "VPC to whatever is behind it, and AWS ignores its endpoint policy"))
        elif aws_service is None:
            findings.append(Finding(endpoint.urn, f"{where} connects to {service!r}, not an AWS "
                                    "service (com.amazonaws.<region>.<service>): a private link "
                                    "to whoever runs that endpoint service"))
        elif kind == "Gateway" and service.rsplit(".", 1)[-1] not in _GATEWAY_ENDPOINT_SERVICES:
            findings.append(Finding(endpoint.urn, f"{where} is a Gateway endpoint for {service}"))
        elif kind == "Interface" and aws_service["service"] not in services:
            findings.append(Finding(endpoint.urn, f"{where} reaches {aws_service['service']}, "
                                    "which is not in "
                                    "egressFreeEndpointServices "
                                    f"({', '.join(sorted(services)) or 'none'}): through it "
                                    "principals of ours can send data to another account's "
                                    "resources of that service"))
    return findings


def _shared_interface_findings(resources: Sequence[Resource],
                               closed: Sequence[Resource]) -> list[Finding]:
    """Network interfaces that join an egress-free VPC to another VPC through one instance
    (multi-VPC ENIs): the instance is then a router between the two."""
    vpcs = of_type(resources, VPC)
    closed_urns = {vpc.urn for vpc in closed}
    subnet_vpc = {s.urn: vpc for s in of_type(resources, SUBNET)
                  if (vpc := referenced(s, "vpcId", vpcs)) is not None}
    subnets = [s for s in of_type(resources, SUBNET) if s.urn in subnet_vpc]

    def vpc_of(resource: Resource) -> Resource | None:
        subnet = referenced(resource, "subnetId", subnets)
        return subnet_vpc[subnet.urn] if subnet is not None else None

    interfaces = of_type(resources, NETWORK_INTERFACE)
    instances = of_type(resources, INSTANCE)
    # instance urn -> VPCs its interfaces (primary subnet, listed ENIs, attachments) sit in
    joined: dict[str, dict[str, Resource]] = {}
    def join(instance: Resource, interface: Resource) -> None:
        if (vpc := vpc_of(interface)) is not None:
            joined.setdefault(instance.urn, {})[vpc.urn] = vpc

    for instance in instances:
        if (vpc := vpc_of(instance)) is not None:
            joined.setdefault(instance.urn, {})[vpc.urn] = vpc
        # Listed interfaces: by literal id (an export), or through the instance's property
        # dependencies when ids are unknown (a preview).
        listed = {value for item in known_items(known(instance, "networkInterfaces"))
                  if isinstance(value := known_field(item, "networkInterfaceId"), str)}
        linked = set(instance.property_dependencies.get("networkInterfaces", ()))
        for interface in interfaces:
            if interface.urn in linked or known(interface, "id") in listed:
                join(instance, interface)
    for attachment in of_type(resources, ENI_ATTACHMENT):
        attached_to = referenced(attachment, "instanceId", instances)
        attached = referenced(attachment, "networkInterfaceId", interfaces)
        if attached_to is not None and attached is not None:
            join(attached_to, attached)
    for interface in interfaces:
        for item in known_items(known(interface, "attachments")):
            instance_id = known_field(item, "instance")
            target = next((i for i in instances if isinstance(instance_id, str)
                           and instance_id == known(i, "id")), None)
            if target is not None:
                join(target, interface)
    findings = []
    for instance in instances:
        found = joined.get(instance.urn, {})
        closed_found = sorted(v.name for urn, v in found.items() if urn in closed_urns)
        if len(found) > 1 and closed_found:
            findings.append(Finding(instance.urn, f"instance {instance.name} has network interfaces "
                                    f"in VPCs {', '.join(sorted(v.name for v in found.values()))}: "
                                    f"it joins egress-free VPC {closed_found[0]} to another VPC"))
    return findings


RULE = Rule(
    name="egress-free-segment-no-internet-path",
    description="Only VPCs of segments allowed egress may have gateways, peering, non-AWS, "
                "unlisted AWS-service or Lattice endpoints, multi-VPC interfaces, non-local routes "
                "or forwarding Resolver rules leading out of the VPC.",
    control="segmented network",
    severity=Severity.CRITICAL,
    remediation="Reach AWS services through VPC endpoints of the services in "
                "egressFreeEndpointServices (add one there, and to interface_endpoints, in a "
                "reviewed change); resolve names through Route 53 Resolver, never a forwarding "
                "rule. If a segment really needs egress, add it to egressSegments in the stack "
                "config AND to this rule's egressAllowedSegments (or add an exclusion with a reason).",
    stack_check=egress_free_segment_no_internet_path,
    config={"egressAllowedSegments": {
        "type": "array", "items": {"type": "string"}, "default": DEFAULT_EGRESS_ALLOWED,
        "description": "Segments (ztai:segment tag, with ztai:egress=nat) that may have internet "
                       "egress; every other VPC must have none.",
    }, "egressFreeEndpointServices": {
        "type": "array", "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]*$"},
        "default": DEFAULT_ENDPOINT_SERVICES,
        "description": "AWS services (the part of com.amazonaws.<region>.<service> after the "
                       "region) that egress-free VPCs may have interface endpoints for; keep equal "
                       "to SegmentedNetworkArgs.interface_endpoints. Gateway endpoints: S3 and "
                       "DynamoDB only.",
    }},
)
