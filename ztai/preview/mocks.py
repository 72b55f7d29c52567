"""Mocks that answer like AWS would: ids, ARNs, zones and identity with the right shapes.

Values are derived from a hash of the resource's type and name, so two previews of the same stack
print the same ids. An invoke the mocks do not know fails loudly: a silent `{}` would let a
program that depends on real data source output pass the preview by accident.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

from components.aws_facts import REGION_AZ_COUNT, availability_zone_names, partition_for_region

# AWS's documentation account id: obviously not a real account in any report.
PREVIEW_ACCOUNT_ID = "111122223333"

# EC2 id prefix and ARN resource path per resource type.
_EC2: dict[str, tuple[str, str]] = {
    "Vpc": ("vpc", "vpc"),
    "Subnet": ("subnet", "subnet"),
    "DefaultSubnet": ("subnet", "subnet"),
    "SecurityGroup": ("sg", "security-group"),
    "DefaultSecurityGroup": ("sg", "security-group"),
    "RouteTable": ("rtb", "route-table"),
    "DefaultRouteTable": ("rtb", "route-table"),
    "InternetGateway": ("igw", "internet-gateway"),
    "EgressOnlyInternetGateway": ("eigw", "egress-only-internet-gateway"),
    "NatGateway": ("nat", "natgateway"),
    "Eip": ("eipalloc", "elastic-ip"),
    "NetworkAcl": ("acl", "network-acl"),
    "DefaultNetworkAcl": ("acl", "network-acl"),
    "NetworkAclAssociation": ("aclassoc", "network-acl-association"),
    "RouteTableAssociation": ("rtbassoc", "route-table-association"),
    "VpcEndpoint": ("vpce", "vpc-endpoint"),
    "FlowLog": ("fl", "vpc-flow-log"),
    "Instance": ("i", "instance"),
    "LaunchTemplate": ("lt", "launch-template"),
}


# Image Builder ARN resource path per resource type (the resource's id is its ARN).
_IMAGEBUILDER: dict[str, str] = {
    "Component": "component",
    "ImageRecipe": "image-recipe",
    "InfrastructureConfiguration": "infrastructure-configuration",
    "DistributionConfiguration": "distribution-configuration",
    "ImagePipeline": "image-pipeline",
    "Image": "image",
}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _version_id(digest: str) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._"
    return "".join(alphabet[int(digest[i:i + 2], 16) % len(alphabet)] for i in range(0, 64, 2))


def _api_id(digest: str, length: int = 10) -> str:
    """A lower-case alphanumeric id such as API Gateway's (10) or a Cognito client's (26)."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    value = int(_digest(digest), 16)
    return "".join(alphabet[(value >> (6 * i)) % 36] for i in range(length))


class AwsMocks(Mocks):
    """Realistic answers for one account and region.

    `unknowns=True` answers as the engine does in a first `pulumi preview` of an empty stack:
    ids and every computed output unknown (data sources still answer). Policies then see the
    unknown markers a real preview sends them.
    """

    def __init__(self, region: str, account_id: str = PREVIEW_ACCOUNT_ID, *,
                 unknowns: bool = False,
                 stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
                 existing: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> None:
        self.region = region
        self.account_id = account_id
        self.partition = partition_for_region(region)
        self.unknowns = unknowns
        # Stack name (as a StackReference names it) -> that stack's outputs.
        self.stack_outputs = dict(stack_outputs or {})
        # (type, id) -> the state of a resource that exists already (another stack's), which a
        # program reads with `<Resource>.get`: a workload reading the key layer's roles.
        self.existing = dict(existing or {})

    # -- invokes -------------------------------------------------------------------------------
    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": self.account_id,
                "arn": f"arn:{self.partition}:sts::{self.account_id}:assumed-role/ztai-preview/offline",
                "userId": "AROAPREVIEWOFFLINE00:offline",
                "id": self.account_id,
            }
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region,
                    "endpoint": f"ec2.{self.region}.amazonaws.com",
                    "description": self.region}
        if token == "aws:index/getPartition:getPartition":
            suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
            return {"partition": self.partition, "id": self.partition, "dnsSuffix": suffix,
                    "reverseDnsPrefix": ".".join(reversed(suffix.split(".")))}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = availability_zone_names(self.region) if self.region in REGION_AZ_COUNT else []
            short = self.region.replace("-", "")[:4]
            return {"names": names, "zoneIds": [f"{short}-az{i + 1}" for i in range(len(names))],
                    "groupNames": [self.region] * len(names), "id": self.region,
                    "state": args.args.get("state")}
        if token == "aws:ec2/getPrefixList:getPrefixList":
            # The AWS-managed prefix list of a service's gateway endpoint, e.g. com.amazonaws.<region>.s3.
            name = str(args.args.get("name") or f"com.amazonaws.{self.region}.s3")
            prefix_list_id = str(args.args.get("prefixListId") or f"pl-{_digest(name)[:8]}")
            return {"id": prefix_list_id, "prefixListId": prefix_list_id, "name": name,
                    "cidrBlocks": ["198.51.100.0/24", "203.0.113.0/24"], "region": self.region}
        if token == "aws:ssm/getParameter:getParameter":
            # AWS's public parameters name AMIs (/aws/service/ami-amazon-linux-latest/...): an
            # ami- id derived from the name; any other parameter a plain String value.
            name = str(args.args.get("name"))
            value = (f"ami-{_digest(self.region, name)[:17]}" if name.startswith("/aws/service/ami-")
                     else f"value-of-{name.strip('/').replace('/', '-')}")
            owner = "" if name.startswith("/aws/") else self.account_id  # public: no account
            return {"id": name, "name": name, "type": "String", "value": value,
                    "insecureValue": value, "version": 1, "withDecryption": True,
                    "region": self.region,
                    "arn": f"arn:{self.partition}:ssm:{self.region}:{owner}:parameter{name}"}
        raise NotImplementedError(
            f"the offline preview has no mock for invoke {token}; add one to ztai/preview/mocks.py "
            "that returns what AWS would")

    # -- resources -----------------------------------------------------------------------------
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        package_module, _, type_name = args.typ.rpartition(":")
        module = package_module.split(":")[-1].split("/")[0] if ":" in package_module else ""
        digest = _digest(args.typ, args.name)
        state: dict[str, Any] = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            # Read, not created: the id is the stack's name. A stack the preview has no outputs
            # for answers none, as a stack that was never deployed would fail to.
            name = str(args.inputs.get("name") or args.resource_id)
            if name not in self.stack_outputs:
                raise ValueError(f"stack reference {name}: the offline preview has no outputs for it "
                                 "(a workload stack's key layer is previewed first: keyLayerStack "
                                 "must end with the key layer's stack name)")
            return name, {"name": name, "outputs": dict(self.stack_outputs[name]),
                          "secretOutputNames": []}
        if args.resource_id:
            # Read, not created (`<Resource>.get`): the provider returns the resource's state as
            # it is, or fails when there is none, as reading a role never created would.
            found = self.existing.get((args.typ, str(args.resource_id)))
            if found is None:
                raise ValueError(f"read of {args.typ} {args.resource_id}: the offline preview has no "
                                 "state for it (a workload stack reads its key layer's roles: "
                                 "the key layer is previewed first, and declares them)")
            return str(args.resource_id), dict(found)
        if self.unknowns:
            return "", state  # a preview: the SDK marks the id and missing outputs unknown
        if not args.typ.startswith("aws:"):
            return f"{args.name}-{digest[:8]}", state

        region, account, partition = self.region, self.account_id, self.partition
        if module == "ec2" and type_name in _EC2:
            prefix, path = _EC2[type_name]
            resource_id = f"{prefix}-{digest[:17]}"
            if type_name == "DefaultNetworkAcl":
                resource_id = str(args.inputs.get("defaultNetworkAclId") or resource_id)
            state["arn"] = f"arn:{partition}:ec2:{region}:{account}:{path}/{resource_id}"
            if type_name == "Vpc":
                state.update({
                    "defaultNetworkAclId": f"acl-{digest[17:34]}",
                    "defaultSecurityGroupId": f"sg-{digest[17:34]}",
                    "defaultRouteTableId": f"rtb-{digest[17:34]}",
                    "mainRouteTableId": f"rtb-{digest[17:34]}",
                    "ownerId": account,
                })
            if type_name == "Eip":
                state.update({"allocationId": resource_id,
                              "publicIp": f"203.0.113.{int(digest[:2], 16) % 254 + 1}"})
            if type_name == "LaunchTemplate":
                state.update({"latestVersion": 1, "defaultVersion": 1})
            if type_name in ("SecurityGroup", "DefaultSecurityGroup"):
                state.setdefault("name", args.name if type_name == "SecurityGroup" else "default")
                state["ownerId"] = account
        elif args.typ == "aws:kms/key:Key":
            # Multi-Region keys have ids starting with mrk- that their replicas share.
            resource_id = (f"mrk-{digest[:32]}" if args.inputs.get("multiRegion")
                           else str(uuid.UUID(digest[:32])))
            state.update({"keyId": resource_id,
                          "arn": f"arn:{partition}:kms:{region}:{account}:key/{resource_id}"})
        elif args.typ == "aws:kms/replicaKey:ReplicaKey":
            resource_id = str(args.inputs.get("primaryKeyArn", "")).rsplit("/", 1)[-1]
            replica_region = str(args.inputs.get("region") or region)
            state.update({"keyId": resource_id,
                          "arn": f"arn:{partition}:kms:{replica_region}:{account}:key/{resource_id}"})
        elif args.typ == "aws:kms/alias:Alias":
            resource_id = str(args.inputs.get("name"))
            state.update({"arn": f"arn:{partition}:kms:{region}:{account}:{resource_id}",
                          "targetKeyArn": f"arn:{partition}:kms:{region}:{account}:key/"
                                          f"{args.inputs.get('targetKeyId')}"})
        elif args.typ == "aws:cloudwatch/logGroup:LogGroup":
            resource_id = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")
            state.update({"name": resource_id,
                          "arn": f"arn:{partition}:logs:{region}:{account}:log-group:{resource_id}"})
        elif args.typ == "aws:iam/role:Role":
            # Pulumi auto-names: the logical name plus seven random hex characters.
            resource_id = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")
            path = str(args.inputs.get("path") or "/")  # IAM paths start and end with "/"
            state.update({"name": resource_id, "uniqueId": f"AROA{digest[:17].upper()}",
                          "arn": f"arn:{partition}:iam::{account}:role{path}{resource_id}"})
        elif module == "imagebuilder" and type_name in _IMAGEBUILDER:
            # Image Builder ARNs carry the lower-cased name, and the version where there is one:
            # component/<name>/<version>/<build>, image-recipe/<name>/<version>, image-pipeline/<name>.
            path = _IMAGEBUILDER[type_name]
            resource_name = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}").lower()
            version = args.inputs.get("version")
            versioned = f"/{version}" if version else ""
            versioned += "/1" if type_name == "Component" else ""
            resource_id = (f"arn:{partition}:imagebuilder:{region}:{account}:"
                           f"{path}/{resource_name}{versioned}")
            recipe = str(args.inputs.get("imageRecipeArn") or "")
            if type_name == "Image" and ":image-recipe/" in recipe:
                # An image is named after its recipe: image/<recipe>/<version>/<build>.
                resource_id = recipe.replace(":image-recipe/", ":image/", 1) + "/1"
            state["arn"] = resource_id
        elif args.typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            # IAM names an OIDC provider after its URL without the scheme.
            resource_id = (f"arn:{partition}:iam::{account}:oidc-provider/"
                           f"{str(args.inputs.get('url')).removeprefix('https://')}")
            state["arn"] = resource_id
        elif args.typ == "aws:iam/policy:Policy":
            # A managed policy: global (no Region in its ARN), named as given under its path; its
            # id is its ARN.
            name = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")
            path = str(args.inputs.get("path") or "/")
            resource_id = f"arn:{partition}:iam::{account}:policy{path}{name}"
            state.update({"name": name, "arn": resource_id, "policyId": f"ANPA{digest[:17].upper()}"})
        elif args.typ == "aws:iam/rolePolicy:RolePolicy":
            name = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")
            resource_id = f"{args.inputs.get('role')}:{name}"
            state["name"] = name
        elif args.typ == "aws:iam/instanceProfile:InstanceProfile":
            resource_id = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")
            state.update({"name": resource_id,
                          "arn": f"arn:{partition}:iam::{account}:instance-profile/{resource_id}"})
        elif args.typ == "aws:iam/serviceLinkedRole:ServiceLinkedRole":
            # AWSServiceRoleFor<Service>[_<suffix>] under /aws-service-role/<service principal>/.
            service = str(args.inputs.get("awsServiceName"))
            base = {"autoscaling.amazonaws.com": "AWSServiceRoleForAutoScaling"}.get(
                service, "AWSServiceRoleFor" + service.split(".")[0].capitalize())
            suffix = args.inputs.get("customSuffix")
            role_name = f"{base}_{suffix}" if suffix else base
            resource_id = f"arn:{partition}:iam::{account}:role/aws-service-role/{service}/{role_name}"
            state.update({"name": role_name, "arn": resource_id,
                          "path": f"/aws-service-role/{service}/"})
        elif args.typ == "aws:s3/bucket:Bucket":
            resource_id = str(args.inputs.get("bucket") or f"{args.name}-{digest[:7]}")
            state.update({"bucket": resource_id, "arn": f"arn:{partition}:s3:::{resource_id}"})
        elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
            name = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")[:32]
            kind = "net" if args.inputs.get("loadBalancerType") == "network" else "app"
            resource_id = (f"arn:{partition}:elasticloadbalancing:{region}:{account}:loadbalancer/"
                           f"{kind}/{name}/{digest[:16]}")
            scheme = "internal-" if args.inputs.get("internal") else ""
            state.update({"arn": resource_id, "name": name, "dnsName":
                          f"{scheme}{name}-{digest[16:26]}.elb.{region}.amazonaws.com"})
        elif args.typ == "aws:lb/targetGroup:TargetGroup":
            name = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")[:32]
            resource_id = (f"arn:{partition}:elasticloadbalancing:{region}:{account}:targetgroup/"
                           f"{name}/{digest[:16]}")
            state.update({"arn": resource_id, "name": name})
        elif args.typ == "aws:ssm/parameter:Parameter":
            # A parameter's id is its name; names with a leading / give parameter/<path>.
            resource_id = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")
            path = resource_id if resource_id.startswith("/") else f"/{resource_id}"
            state.update({"name": resource_id, "version": 1,
                          "arn": f"arn:{partition}:ssm:{region}:{account}:parameter{path}"})
        elif args.typ == "aws:cloudwatch/eventRule:EventRule":
            resource_id = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")
            state.update({"name": resource_id,
                          "arn": f"arn:{partition}:events:{region}:{account}:rule/{resource_id}"})
        elif args.typ == "aws:sns/topic:Topic":
            # A topic's id is its ARN, arn:<partition>:sns:<region>:<account>:<name>.
            name = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")
            resource_id = f"arn:{partition}:sns:{region}:{account}:{name}"
            state.update({"name": name, "arn": resource_id})
        elif args.typ == "aws:autoscaling/group:Group":
            resource_id = str(args.inputs.get("name") or f"{args.name}-{digest[:7]}")
            state.update({"name": resource_id, "arn": f"arn:{partition}:autoscaling:{region}:"
                          f"{account}:autoScalingGroup:{uuid.UUID(digest[:32])}:"
                          f"autoScalingGroupName/{resource_id}"})
        elif args.typ == "aws:s3/bucketObjectv2:BucketObjectv2":
            # A versioned bucket gives each new content a new version id (32 URL-safe characters).
            key = str(args.inputs.get("key"))
            content = _digest(str(args.inputs.get("content") or args.inputs.get("source")))
            resource_id = key
            state.update({"versionId": _version_id(content), "etag": content[:32],
                          "arn": f"arn:{partition}:s3:::{args.inputs.get('bucket')}/{key}"})
        elif args.typ == "aws:acm/certificate:Certificate":
            resource_id = f"arn:{partition}:acm:{region}:{account}:certificate/{uuid.UUID(digest[:32])}"
            domain = str(args.inputs.get("domainName"))
            # DNS validation: one CNAME per name, as ACM answers before the certificate is issued.
            state.update({"arn": resource_id, "status": "PENDING_VALIDATION", "domainValidationOptions": [
                {"domainName": name, "resourceRecordType": "CNAME",
                 "resourceRecordName": f"_{_digest(name)[:32]}.{name}.",
                 "resourceRecordValue": f"_{_digest(name, 'value')[:32]}.acm-validations.aws."}
                for name in [domain, *(args.inputs.get("subjectAlternativeNames") or [])]]})
        elif args.typ == "aws:acm/certificateValidation:CertificateValidation":
            resource_id = str(args.inputs.get("certificateArn"))
        elif args.typ == "aws:apigatewayv2/api:Api":
            resource_id = _api_id(digest)
            state.update({"arn": f"arn:{partition}:apigateway:{region}::/apis/{resource_id}",
                          "executionArn": f"arn:{partition}:execute-api:{region}:{account}:{resource_id}",
                          "apiEndpoint": f"https://{resource_id}.execute-api.{region}.amazonaws.com"})
        elif args.typ == "aws:apigatewayv2/domainName:DomainName":
            resource_id = str(args.inputs.get("domainName"))
            configuration = dict(args.inputs.get("domainNameConfiguration") or {})
            # The regional endpoint an alias record points at, and that endpoint's hosted zone.
            configuration.update({"targetDomainName": f"d-{_api_id(digest)}.execute-api.{region}."
                                                      "amazonaws.com",
                                  "hostedZoneId": f"Z{digest[:12].upper()}"})
            state.update({"arn": f"arn:{partition}:apigateway:{region}::/domainnames/{resource_id}",
                          "domainNameConfiguration": configuration,
                          "apiMappingSelectionExpression": "$request.basepath"})
        elif args.typ == "aws:cognito/userPool:UserPool":
            resource_id = f"{region}_{_api_id(digest)[:9].upper()}"
            state.update({"arn": f"arn:{partition}:cognito-idp:{region}:{account}:userpool/{resource_id}",
                          "endpoint": f"cognito-idp.{region}.amazonaws.com/{resource_id}"})
        elif args.typ == "aws:cognito/userPoolClient:UserPoolClient":
            resource_id = _api_id(digest + "client", 26)  # the secret is never invented here
        elif args.typ == "aws:cognito/resourceServer:ResourceServer":
            identifier = str(args.inputs.get("identifier"))
            resource_id = f"{args.inputs.get('userPoolId')}|{identifier}"
            state["scopeIdentifiers"] = [f"{identifier}/{scope['scopeName']}"
                                         for scope in args.inputs.get("scopes") or []]
        elif args.typ == "aws:cognito/userPoolDomain:UserPoolDomain":
            resource_id = str(args.inputs.get("domain"))
            state.update({"awsAccountId": account, "cloudfrontDistribution": "",
                          "version": "2"})
        else:
            resource_id = f"{args.name}-{digest[:8]}"
            state["arn"] = f"arn:{partition}:{module}:{region}:{account}:{type_name.lower()}/{resource_id}"
        state["id"] = resource_id
        return resource_id, state
