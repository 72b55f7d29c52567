"""Immutable AMI pipeline (immutable-infrastructure control): Image Builder bakes the parent image.

Instances of the inference fleet are never patched or logged into: a weekly Image Builder run
bakes a new AMI from the current Amazon Linux 2023 release, tests it, has Amazon Inspector scan it,
encrypts it with a customer managed key and writes its id into the fleet's image parameter (the
launch template resolves it at each launch); `ImageRollout` then starts an instance refresh that
replaces the running instances. Image Builder never writes the launch template: Pulumi is its only
writer, the pipeline the parameter's.

What the image contains comes from the component documents in `components/image_builder/`
(AWSTOE schema 1.0, each with build, validate and test phases; read them, they are the image):

- `base-hardening.yaml`: every update installed at build time and none after (no update timers),
  SSH disabled and masked with password logins off, EC2 Instance Connect removed, root locked,
  auditd with rules on the enclave configuration, the SSM agent as the only way in;
- `nitro-enclaves.yaml`: nitro-cli (aws-nitro-enclaves-cli and -devel), the allocator's reserve
  (memory and vCPUs from the stack configuration, passed as component parameters) and vsock-proxy
  allowing exactly `kms.<region>.amazonaws.com:443`;
- `parent-agent.yaml`: a dedicated non-root user and a hardened systemd unit for the parent-side
  agent at /opt/zero-trust-ai/parent-agent/bin/ztai-parent-agent;
- `enclave-artifacts.yaml`, when the stack pins the artifacts (`enclave_artifacts`): the EIF at
  /opt/zero-trust-ai/enclave/digits.eif and the agent package (enclave_images/package_agent.py)
  under /opt/zero-trust-ai/parent-agent/, downloaded from the model bucket's artifact prefix and
  refused unless their SHA-256 are the pinned ones. Without them the image has no EIF and no agent
  (the unit is skipped at boot) and the enclave cannot start from it.

What it builds, secure by default:

- components whose version is derived from the document's content (Image Builder versions are
  immutable: a changed document becomes a new version, never a conflicting one);
- a recipe on the parent image named by an SSM public parameter (`ssm:/aws/service/ami-amazon-
  linux-latest/al2023-ami-kernel-default-<arch>`, resolved by Image Builder at each build), with
  the root volume encrypted by the CMK given (`ami_key_arn`) and the SSM agent kept;
- an infrastructure configuration: one private subnet (the stack passes the management
  segment's), a security group with no ingress and HTTPS egress only to the VPC's CIDR (the
  interface endpoints) and to S3's prefix list (the gateway endpoint: AL2023 repositories and the
  AWSTOE download), IMDSv2 required with hop limit 1, no key pair, instances terminated on
  failure; build and test instances exist only while a build runs;
- an Image Builder interface endpoint in that subnet (`imagebuilder_endpoint`): AWSTOE on the
  build instance fetches its component documents from the Image Builder API, which the segment
  otherwise reaches only through NAT, and the security group does not allow that path;
- the build instance's role, trusted by EC2 without a source-account condition (EC2 sends
  none; `ec2_instance_trust_policy`): the SSM agent's managed policy (AmazonSSMManagedInstanceCore; see
  `INSTANCE_MANAGED_POLICIES` for why it is kept) plus, instead of EC2InstanceProfileForImageBuilder,
  an inline policy naming only this pipeline's components, the AWSTOE bucket of the region and the
  pipeline's own log group (the artifacts' owner grants their read: `grant_artifact_read`);
- an execution role that Image Builder assumes for the build and test workflows (AWS-managed
  `build-image` and `test-image`), trusted by imagebuilder.amazonaws.com for this account only;
- a distribution configuration: the AMI encrypted with the CMK (`ami_key_arn`), private (no launch
  permissions), named with the build date, its id written into the SSM parameter
  `ami_id_parameter_name` (the fleet's image parameter; no launch template is touched);
- the pipeline: weekly schedule, image tests on with a timeout, Inspector image scanning on,
  enhanced metadata (the package inventory) on, logs to two CloudWatch log groups encrypted with
  `logs_key_arn`.

Grants the owners must make, in `__main__.py`: on the keys (components never write key
policies), `keys.grant_use_through_service(<ami key purpose>, pipeline.execution_role, "ec2")` (EC2
uses the key as the caller when Image Builder launches encrypted volumes and creates or copies the
AMI), the same for `pipeline.service_linked_role_arn` (Image Builder's service-linked role copies
and encrypts the distributed AMI; AWS's encrypted-distribution examples admit it in the key
policy), `keys.grant_cloudwatch_logs(pipeline.log_group_prefix)` on the logs key and, with artifacts,
`keys.grant_decrypt_through_service(<bucket key purpose>, pipeline.instance_role, "s3")`; on the
fleet, `fleet.grant_image_publishing(pipeline.execution_role)` (ssm:PutParameter on the image
parameter) and, with artifacts, `fleet.grant_artifact_read(pipeline.instance_role)`.

Not verified against AWS (no account here): see the README section on the pipeline. Type token
`zero-trust-ai:images:ImmutableAmiPipeline`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws_facts import LOG_RETENTION_DAYS, partition_for_region
from components.functions import policy_document, service_trust_policy
from components.image_builder.documents import (
    ARTIFACTS_DOCUMENT,
    BASE_DOCUMENTS,
    COMPONENT_DOCUMENTS,
    DOCUMENTS_DIR,
    FORBIDDEN_FLAGS,
    PHASES,
    ComponentDocument,
    component_names,
    component_parameters,
    document_text,
    document_version,
    documents_for,
    kms_endpoint,
    load_documents,
    recipe_version,
    validate_document,
)
from components.network import interface_endpoint_policy
from components.tags import standard_tags

# The component documents' names stay importable from here, as before they had their own module.
__all__ = [
    "ARTIFACTS_DOCUMENT", "BASE_DOCUMENTS", "COMPONENT_DOCUMENTS", "DOCUMENTS_DIR", "FORBIDDEN_FLAGS",
    "PHASES", "ComponentDocument", "EnclaveArtifacts", "ImmutableAmiPipeline",
    "ImmutableAmiPipelineArgs", "component_names", "component_parameters",
    "deploy_build_timeout_minutes", "document_text", "document_version", "documents_for",
    "ec2_instance_trust_policy", "execution_role_policy", "imagebuilder_service_linked_role_arn",
    "instance_role_policy", "kms_endpoint", "managed_workflow_arn", "parent_image",
    "recipe_version", "validate_document",
]

ARCHITECTURES: tuple[str, ...] = ("x86_64", "arm64")
PARENT_IMAGE_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
# Build and test instances: small, current, of the parent image's architecture.
DEFAULT_BUILD_INSTANCE_TYPES: dict[str, tuple[str, ...]] = {"x86_64": ("m6i.large",),
                                                            "arm64": ("m7g.large",)}
ROOT_DEVICE = "/dev/xvda"  # Amazon Linux 2023's root device
MIN_ROOT_VOLUME_GIB = 8  # AL2023's snapshot size: a smaller root volume is refused
# Weekly, Sunday 04:00 UTC. Image Builder evaluates cron expressions only (six fields).
DEFAULT_SCHEDULE = "cron(0 4 ? * sun *)"
_CRON = re.compile(r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")
START_CONDITIONS: tuple[str, ...] = ("EXPRESSION_MATCH_ONLY",
                                     "EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE")
MIN_TEST_TIMEOUT, MAX_TEST_TIMEOUT = 60, 1440  # Image Builder's limits, in minutes
# The allocator reserves whole cores on Intel/AMD (two vCPUs each); Graviton has one vCPU per core.
MIN_ENCLAVE_MEMORY_MIB = 64
AGENT_USER = "ztai-agent"
AGENT_EXECUTABLE = "/opt/zero-trust-ai/parent-agent/bin/ztai-parent-agent"
VSOCK_PROXY_PORT = 8000

# The build instance's managed policy, kept on purpose: Image Builder drives every build and test
# step through SSM (Automation and Run Command), and Inspector's scan of the test instance reads
# the SSM inventory (ssm:PutInventory, ssm:GetParameter). Its actions either take no resource
# (ssmmessages, ec2messages) or must reach AWS-owned documents, so a hand-written copy would be
# just as wide and would break silently when the agent starts calling something new. The instance
# lives for one build, in a subnet without ingress, and holds no key, weights or data.
INSTANCE_MANAGED_POLICIES: tuple[str, ...] = ("AmazonSSMManagedInstanceCore",)
# What Image Builder itself needs to run the workflows in the account (launch and terminate
# instances tagged CreatedBy=EC2 Image Builder, create images, run SSM commands on them, write
# /aws/imagebuilder/ logs). AWS's documented baseline for a workflow execution role.
EXECUTION_MANAGED_POLICIES: tuple[str, ...] = ("EC2ImageBuilderExecutionPolicy",)
# Buckets the build instance reads: the AWSTOE application of the region (AWS-owned).
AWSTOE_BUCKET = "ec2imagebuilder-toe-{region}-prod"
# The deploy-time build's create timeout (`deploy_build_timeout_minutes`): time for the build
# phase and for Inspector's scan plus the distribution (copy, encrypt, parameter), in minutes.
BUILD_ALLOWANCE_MINUTES = 120
SCAN_ALLOWANCE_MINUTES = 60
# Image Builder's service-linked role. Image Builder creates it itself with the first Image
# Builder resource of the account (Image Builder user guide, "Using service-linked roles for
# Image Builder"); the caller needs iam:CreateServiceLinkedRole for it, which
# AWSImageBuilderFullAccess grants. It copies and encrypts the distributed AMI, so the AMI key
# must admit it (`service_linked_role_arn`).
IMAGEBUILDER_SERVICE_LINKED_ROLE = "AWSServiceRoleForImageBuilder"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_OBJECT_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


@dataclass(frozen=True)
class EnclaveArtifacts:
    """The EIF and the parent agent package the image carries, pinned by SHA-256 (the stack keys
    enclaveEifObjectKey/Sha256 and parentAgentObjectKey/Sha256).

    eif_key, agent_key: object keys in the artifacts bucket (letters, digits and ._-/).
    eif_sha256, agent_sha256: their SHA-256, 64 lowercase hex digits; the build refuses anything else.
    """

    eif_key: str
    eif_sha256: str
    agent_key: str
    agent_sha256: str

    def problems(self) -> list[str]:
        found = [f"{name} {value!r}: an S3 object key of letters, digits and ._-/"
                 for name, value in (("eif_key", self.eif_key), ("agent_key", self.agent_key))
                 if not _OBJECT_KEY.match(value)]
        found += [f"{name} {value!r}: 64 lowercase hex digits (SHA-256)"
                  for name, value in (("eif_sha256", self.eif_sha256),
                                      ("agent_sha256", self.agent_sha256))
                  if not _SHA256.match(value)]
        return found


@dataclass
class ImmutableAmiPipelineArgs:
    """Inputs of `ImmutableAmiPipeline`; every default is the secure one.

    environment, owner, region: names, tags, the KMS endpoint vsock-proxy allows, ARNs.
    vpc_id, vpc_cidr, subnet_id: where build and test instances run: a private subnet (the stack
        passes the management segment's first one). The security group allows HTTPS to vpc_cidr.
    ami_key_arn: CMK that encrypts the build's root volume and the distributed AMI. Use the key
        the fleet's launch template encrypts its volumes with: instances launched from the AMI
        then need no second key. Its owner grants the execution role use through EC2.
    logs_key_arn: CMK of the pipeline's log groups (the hierarchy's logs key, with
        `grant_cloudwatch_logs(log_group_prefix)`).
    ami_id_parameter_name: the SSM parameter each distribution overwrites with the new AMI's id
        (data type aws:ec2:image): the fleet's image parameter (`fleet.image_parameter.name`),
        whose owner grants the execution role ssm:PutParameter on it
        (`grant_image_publishing`). Default None: the AMI is only distributed. No launch template
        is ever written: that would make Image Builder a second writer of Pulumi's template.
    enclave_artifacts, artifacts_bucket_name: the pinned EIF and agent package and the bucket
        holding them (the fleet's model bucket; its owner grants the build role read on the
        artifact prefix, `grant_artifact_read`). Default None: the image is built without them
        and the enclave cannot start from it. Give both or neither.
    enclave_memory_mib, enclave_cpu_count: the allocator's reserve (allocator.yaml). Defaults 4096
        MiB and 2 vCPUs; memory at least 4x the EIF size, vCPUs whole cores, and the instance
        type must keep at least one core for the parent.
    enclave_threads_per_core: the parent type's threads per core (components/aws_facts.py);
        default None: 2 on x86_64, 1 on arm64. The vCPU count must be a multiple of it.
    architecture: "x86_64" (default) or "arm64"; picks the parent image parameter. The build
        instance types must match it.
    instance_types: types for build and test instances. Default None: m6i.large for x86_64,
        m7g.large for arm64. They need no enclave support: the enclave services are enabled in the
        image, not started during the build.
    schedule_expression: Image Builder cron expression (UTC); default DEFAULT_SCHEDULE (weekly).
    start_condition: default EXPRESSION_MATCH_ONLY: build on every tick, so the image picks up
        the updates published that week even when neither the parent AMI nor a component changed
        (EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE would skip those weeks).
    image_tests_timeout_minutes: 60-1440; default 60.
    root_volume_size_gib: default 16; at least 8 (the AL2023 snapshot).
    imagebuilder_endpoint: create an Image Builder interface endpoint (private DNS) in subnet_id.
        Default True. Set False only if the VPC has one already: without it the build instance
        cannot fetch its components through this security group.
    organization_id: pin that endpoint's policy to the organisation instead of the account.
    log_retention_days: CloudWatch retention of the pipeline's logs; default 365.
    protect: `protect` and deletion protection on the log groups; default False, True in prod.
    component_key_arn: CMK that encrypts the component documents Image Builder stores (the
        components' `kms_key_id`). Default None: an AWS owned key (the pack's
        image-builder-component-encrypted rule refuses it). Replaces the components when
        changed. The key must admit the deploying role for these components from its creation
        (`KeyHierarchyArgs.image_builder_components` with `component_names(environment)`) and the
        build instance's read (`keys.grant_component_decrypt(purpose, pipeline.instance_role)`).
    """

    environment: str
    owner: str
    region: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    ami_key_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    ami_id_parameter_name: pulumi.Input[str] | None = None
    enclave_artifacts: EnclaveArtifacts | None = None
    artifacts_bucket_name: pulumi.Input[str] | None = None
    enclave_memory_mib: int = 4096
    enclave_cpu_count: int = 2
    enclave_threads_per_core: int | None = None
    architecture: str = "x86_64"
    instance_types: Sequence[str] | None = None
    schedule_expression: str = DEFAULT_SCHEDULE
    start_condition: str = "EXPRESSION_MATCH_ONLY"
    image_tests_timeout_minutes: int = 60
    root_volume_size_gib: int = 16
    imagebuilder_endpoint: bool = True
    organization_id: str | None = None
    log_retention_days: int = 365
    protect: bool = False
    component_key_arn: pulumi.Input[str] | None = None


def parent_image(architecture: str) -> str:
    """The recipe's parent image: an SSM public parameter, resolved by Image Builder per build."""
    return "ssm:" + PARENT_IMAGE_PARAMETER.format(arch=architecture)


# -- IAM policies --------------------------------------------------------------------------------

def instance_role_policy(*, partition: str, region: str, account_id: str,
                         component_names: Sequence[str], image_log_group_arn: str) -> str:
    """What the build instance needs beyond the SSM agent, in place of the broad managed
    EC2InstanceProfileForImageBuilder (GetComponent on every component, GetObject on every
    ec2imagebuilder* bucket, logs on every /aws/imagebuilder/ group)."""
    component_arn = f"arn:{partition}:imagebuilder:{region}:{account_id}:component"
    return policy_document([
        {"Sid": "ReadThisPipelinesComponents", "Effect": "Allow", "Action": "imagebuilder:GetComponent",
         "Resource": [f"{component_arn}/{name}/*" for name in component_names]},
        {"Sid": "DownloadAwsToe", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:{partition}:s3:::{AWSTOE_BUCKET.format(region=region)}/*"},
        {"Sid": "WriteThisPipelinesImageLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [image_log_group_arn, f"{image_log_group_arn}:log-stream:*"]},
    ])


def execution_role_policy(*, instance_role_arn: str) -> str:
    """Passing the build instance's role to EC2, no other role. Writing the AMI id parameter is
    granted by the parameter's owner (`EnclaveInferenceFleet.grant_image_publishing`)."""
    return policy_document([
        {"Sid": "PassOnlyTheBuildInstanceRole", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": instance_role_arn,
         "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
    ])


def ec2_instance_trust_policy() -> str:
    """Trust for the build and test instances' role: EC2, without conditions.

    EC2 sends no aws:SourceAccount (nor aws:SourceArn) when it assumes an instance profile's
    role, so a SourceAccount condition, right for Image Builder and Lambda, would leave every
    build instance without credentials and the build would hang until its timeout. The
    confused-deputy guard for an instance role is iam:PassRole: only a principal of this account
    allowed to pass the role (here the execution role, `execution_role_policy`) can attach it.
    The fleet's instance role is trusted the same way (components/enclave_fleet/fleet.py)."""
    return policy_document([{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                             "Action": "sts:AssumeRole"}])


def deploy_build_timeout_minutes(image_tests_timeout_minutes: int) -> int:
    """How long `pulumi up` waits for the deploy-time image (`build_image`): the build (updates,
    a reboot, nitro-cli, the artifacts: BUILD_ALLOWANCE_MINUTES), the image tests (their own
    timeout) and the Inspector scan with the distribution (SCAN_ALLOWANCE_MINUTES). The
    provider's default create timeout for an Image Builder image is 60 minutes, shorter than a
    normal build-test-scan run: Pulumi would report a failure and leave the build running."""
    return BUILD_ALLOWANCE_MINUTES + image_tests_timeout_minutes + SCAN_ALLOWANCE_MINUTES


def imagebuilder_service_linked_role_arn(partition: str, account_id: str) -> str:
    """Image Builder's service-linked role in the account (fixed name and path)."""
    return (f"arn:{partition}:iam::{account_id}:role/aws-service-role/imagebuilder.amazonaws.com/"
            f"{IMAGEBUILDER_SERVICE_LINKED_ROLE}")


def managed_workflow_arn(partition: str, region: str, kind: str, workflow: str) -> str:
    """An AWS-managed Image Builder workflow, latest version (x.x.x)."""
    return f"arn:{partition}:imagebuilder:{region}:aws:workflow/{kind}/{workflow}/x.x.x"


class ImmutableAmiPipeline(pulumi.ComponentResource):
    """The Image Builder pipeline for the enclave parent AMI.
    Type token `zero-trust-ai:images:ImmutableAmiPipeline`."""

    pipeline: aws.imagebuilder.ImagePipeline
    recipe: aws.imagebuilder.ImageRecipe
    components: dict[str, aws.imagebuilder.Component]
    infrastructure_configuration: aws.imagebuilder.InfrastructureConfiguration
    distribution_configuration: aws.imagebuilder.DistributionConfiguration
    instance_role: aws.iam.Role
    execution_role: aws.iam.Role
    security_group: aws.ec2.SecurityGroup
    # Both log groups start with it: pass it to KeyHierarchy.grant_cloudwatch_logs.
    log_group_prefix: str
    # ARNs of the images this pipeline builds start with it (arn:...:image/<recipe>/): the
    # EventBridge pattern of ImageRollout.
    image_arn_prefix: pulumi.Output[str]
    # The image built at deploy (`build_image`), None until then: the fleet's group waits for it.
    image: aws.imagebuilder.Image | None
    # Image Builder's service-linked role (AWSServiceRoleForImageBuilder), known only once the
    # pipeline's Image Builder resources exist (Image Builder creates the role with the first
    # one): a key policy naming it is written after them. Grant it the AMI key's use through EC2.
    service_linked_role_arn: pulumi.Output[str]
    # `pulumi up`'s wait for the deploy-time image (`deploy_build_timeout_minutes`).
    build_timeout_minutes: int

    def __init__(self, name: str, args: ImmutableAmiPipelineArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        documents = _validate(args)  # before registering anything
        super().__init__("zero-trust-ai:images:ImmutableAmiPipeline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._name, self._args, self.image = name, args, None
        self.build_timeout_minutes = deploy_build_timeout_minutes(args.image_tests_timeout_minutes)
        partition = partition_for_region(args.region)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        base_name = f"zero-trust-ai-{args.environment}-enclave-parent"
        # The stack's transformation adds the standard tags (components/tags.py) to the resources;
        # the build instances and the AMI are Image Builder's, so they get them here.
        tags = {"data-classification": "internal", "ztai:image": "enclave-parent"}
        created_by_aws_tags = {**standard_tags(args.environment, args.owner), **tags}

        # -- logs ----------------------------------------------------------------------------
        # Image Builder (and AWSTOE on the instances) write under /aws/imagebuilder/; the groups
        # exist before the first build, encrypted and with retention, so none is created bare.
        self.log_group_prefix = f"/aws/imagebuilder/{base_name}"
        image_log_group = aws.cloudwatch.LogGroup(
            f"{name}-image-logs", name=self.log_group_prefix,
            retention_in_days=args.log_retention_days, kms_key_id=args.logs_key_arn,
            deletion_protection_enabled=args.protect, tags={**tags, "Name": f"{base_name}-image-logs"},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        pipeline_log_group = aws.cloudwatch.LogGroup(
            f"{name}-pipeline-logs", name=f"{self.log_group_prefix}-pipeline",
            retention_in_days=args.log_retention_days, kms_key_id=args.logs_key_arn,
            deletion_protection_enabled=args.protect,
            tags={**tags, "Name": f"{base_name}-pipeline-logs"},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))

        # -- components and recipe -----------------------------------------------------------
        self.image_arn_prefix = account_id.apply(
            lambda account: f"arn:{partition}:imagebuilder:{args.region}:{account}:image/{base_name}/")
        built_components = self._components_and_recipe(name, args, documents, base_name, tags)

        # -- network ---------------------------------------------------------------------------
        s3_prefix_list = aws.ec2.get_prefix_list_output(
            name=f"com.amazonaws.{args.region}.s3", opts=pulumi.InvokeOptions(parent=self))
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-build-sg", vpc_id=args.vpc_id,
            description="Image Builder build and test instances: HTTPS to VPC endpoints and S3 only",
            ingress=[],  # nothing connects to a build instance; SSM works outbound
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp", from_port=443, to_port=443, cidr_blocks=[args.vpc_cidr],
                    description="HTTPS to the interface endpoints (SSM, Image Builder, Logs)"),
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp", from_port=443, to_port=443, prefix_list_ids=[s3_prefix_list.id],
                    description="HTTPS to S3 through the gateway endpoint (AL2023 repos, AWSTOE)"),
            ],
            tags={**tags, "Name": f"{base_name}-build-sg"}, opts=child)
        if args.imagebuilder_endpoint:
            endpoint_security_group = aws.ec2.SecurityGroup(
                f"{name}-endpoint-sg", vpc_id=args.vpc_id,
                description="Image Builder interface endpoint: HTTPS from build instances only",
                ingress=[aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp", from_port=443, to_port=443,
                    security_groups=[self.security_group.id],
                    description="HTTPS from Image Builder build and test instances")],
                egress=[],  # an endpoint answers; it never opens connections
                tags={**tags, "Name": f"{base_name}-endpoint-sg"}, opts=child)
            aws.ec2.VpcEndpoint(
                f"{name}-imagebuilder-endpoint", vpc_id=args.vpc_id,
                service_name=f"com.amazonaws.{args.region}.imagebuilder",
                vpc_endpoint_type="Interface", private_dns_enabled=True,
                subnet_ids=[args.subnet_id], security_group_ids=[endpoint_security_group.id],
                policy=account_id.apply(lambda account: interface_endpoint_policy(
                    "imagebuilder", account, organization_id=args.organization_id,
                    region=args.region)),
                tags={**tags, "Name": f"{base_name}-imagebuilder-endpoint"}, opts=child)

        # -- roles -----------------------------------------------------------------------------
        self.instance_role = aws.iam.Role(
            f"{name}-instance-role", name=f"{base_name}-imagebuilder-instance",
            description="Image Builder build and test instances of the enclave parent AMI",
            max_session_duration=3600,
            assume_role_policy=ec2_instance_trust_policy(),
            tags={**tags, "Name": f"{base_name}-imagebuilder-instance"}, opts=child)
        for policy in INSTANCE_MANAGED_POLICIES:
            aws.iam.RolePolicyAttachment(
                f"{name}-instance-role-{policy}", role=self.instance_role.name,
                policy_arn=f"arn:{partition}:iam::aws:policy/{policy}",
                opts=pulumi.ResourceOptions(parent=self.instance_role))
        aws.iam.RolePolicy(
            f"{name}-instance-role-policy", role=self.instance_role.id,
            policy=pulumi.Output.all(account_id, image_log_group.arn).apply(
                lambda values: instance_role_policy(
                    partition=partition, region=args.region, account_id=values[0],
                    component_names=built_components, image_log_group_arn=values[1])),
            opts=pulumi.ResourceOptions(parent=self.instance_role))
        instance_profile = aws.iam.InstanceProfile(
            f"{name}-instance-profile", name=f"{base_name}-imagebuilder-instance",
            role=self.instance_role.name, tags={**tags, "Name": f"{base_name}-imagebuilder-instance"},
            opts=pulumi.ResourceOptions(parent=self.instance_role))

        self.execution_role = aws.iam.Role(
            f"{name}-execution-role", name=f"{base_name}-imagebuilder-execution",
            description="Image Builder runs the enclave parent pipeline's workflows as this role",
            max_session_duration=3600,
            assume_role_policy=account_id.apply(
                lambda account: service_trust_policy("imagebuilder.amazonaws.com", account)),
            tags={**tags, "Name": f"{base_name}-imagebuilder-execution"}, opts=child)
        execution_attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-execution-role-{policy}", role=self.execution_role.name,
                policy_arn=f"arn:{partition}:iam::aws:policy/{policy}",
                opts=pulumi.ResourceOptions(parent=self.execution_role))
            for policy in EXECUTION_MANAGED_POLICIES]
        execution_policy = aws.iam.RolePolicy(
            f"{name}-execution-role-policy", role=self.execution_role.id,
            policy=self.instance_role.arn.apply(
                lambda arn: execution_role_policy(instance_role_arn=arn)),
            opts=pulumi.ResourceOptions(parent=self.execution_role))

        # -- infrastructure and distribution ---------------------------------------------------
        self.infrastructure_configuration = aws.imagebuilder.InfrastructureConfiguration(
            f"{name}-infrastructure", name=base_name,
            description="Private subnet, HTTPS egress to endpoints only, IMDSv2, no key pair",
            instance_profile_name=instance_profile.name,
            instance_types=list(args.instance_types if args.instance_types is not None
                                else DEFAULT_BUILD_INSTANCE_TYPES[args.architecture]),
            subnet_id=args.subnet_id, security_group_ids=[self.security_group.id],
            instance_metadata_options=aws.imagebuilder.InfrastructureConfigurationInstanceMetadataOptionsArgs(
                http_tokens="required", http_put_response_hop_limit=1),
            # A failed build leaves nothing running; logs are in CloudWatch.
            terminate_instance_on_failure=True,
            resource_tags={**created_by_aws_tags, "Name": f"{base_name}-build"},
            tags={**tags, "Name": base_name}, opts=child)

        # No launch template configuration: the fleet's template resolves the parameter below at
        # each launch, and Pulumi stays the template's only writer.
        ssm_parameters = None
        if args.ami_id_parameter_name is not None:
            ssm_parameters = [
                aws.imagebuilder.DistributionConfigurationDistributionSsmParameterConfigurationArgs(
                    parameter_name=args.ami_id_parameter_name, data_type="aws:ec2:image")]
        self.distribution_configuration = aws.imagebuilder.DistributionConfiguration(
            f"{name}-distribution", name=base_name,
            description="Encrypted, private enclave parent AMI; its id into the fleet's image parameter",
            distributions=[aws.imagebuilder.DistributionConfigurationDistributionArgs(
                region=args.region,
                ami_distribution_configuration=(
                    aws.imagebuilder.DistributionConfigurationDistributionAmiDistributionConfigurationArgs(
                        name=f"{base_name}-{{{{ imagebuilder:buildDate }}}}",
                        description="zero-trust-ai enclave parent (hardened AL2023, Nitro Enclaves)",
                        kms_key_id=args.ami_key_arn,
                        ami_tags={**created_by_aws_tags, "Name": base_name})),
                ssm_parameter_configurations=ssm_parameters)],
            tags={**tags, "Name": base_name}, opts=child)

        # KMS refuses a key policy naming a principal that does not exist
        # (MalformedPolicyDocumentException). Image Builder creates its service-linked role with
        # the account's first Image Builder resource, so the ARN is released only once every one
        # of this pipeline's exists: a key policy built from it is written after them (Pulumi
        # follows the Output's dependencies). What IAM propagation remains is absorbed by the
        # provider, which retries PutKeyPolicy on MalformedPolicyDocumentException for two
        # minutes (terraform-provider-aws, internal/service/kms, updateKeyPolicy).
        self.service_linked_role_arn = pulumi.Output.all(
            account_id, *(component.arn for component in self.components.values()),
            self.recipe.arn, self.infrastructure_configuration.arn,
            self.distribution_configuration.arn).apply(
            lambda values: imagebuilder_service_linked_role_arn(partition, values[0]))

        # -- pipeline --------------------------------------------------------------------------
        self._workflows = [
            managed_workflow_arn(partition, args.region, "build", "build-image"),
            managed_workflow_arn(partition, args.region, "test", "test-image")]
        # What the image rollout checks every image record against (ImageRollout).
        self.workflow_arns: tuple[str, ...] = tuple(self._workflows)
        self.build_subnet_id: pulumi.Input[str] = args.subnet_id
        self._log_group_names = (image_log_group.name, pipeline_log_group.name)
        # Subscribed to the SIEM stream (components/siem_stream.py).
        self.log_groups: tuple[aws.cloudwatch.LogGroup, ...] = (image_log_group, pipeline_log_group)
        self._execution_grants: list[pulumi.Resource] = [*execution_attachments, execution_policy]
        self.pipeline = aws.imagebuilder.ImagePipeline(
            f"{name}-pipeline", name=base_name,
            description="Weekly: build, test, scan and distribute the enclave parent AMI",
            image_recipe_arn=self.recipe.arn,
            infrastructure_configuration_arn=self.infrastructure_configuration.arn,
            distribution_configuration_arn=self.distribution_configuration.arn,
            execution_role=self.execution_role.arn,
            workflows=[aws.imagebuilder.ImagePipelineWorkflowArgs(workflow_arn=arn, on_failure="ABORT")
                       for arn in self._workflows],
            image_tests_configuration=aws.imagebuilder.ImagePipelineImageTestsConfigurationArgs(
                image_tests_enabled=True, timeout_minutes=args.image_tests_timeout_minutes),
            image_scanning_configuration=aws.imagebuilder.ImagePipelineImageScanningConfigurationArgs(
                image_scanning_enabled=True),
            enhanced_image_metadata_enabled=True,
            schedule=aws.imagebuilder.ImagePipelineScheduleArgs(
                schedule_expression=args.schedule_expression, timezone="Etc/UTC",
                pipeline_execution_start_condition=args.start_condition),
            logging_configuration=aws.imagebuilder.ImagePipelineLoggingConfigurationArgs(
                image_log_group_name=image_log_group.name,
                pipeline_log_group_name=pipeline_log_group.name),
            status="ENABLED",
            tags={**tags, "Name": base_name},
            # The execution role can act before the first scheduled run can start.
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[*execution_attachments, execution_policy]))

        self.register_outputs({
            "pipelineArn": self.pipeline.arn,
            "recipeArn": self.recipe.arn,
            "instanceRoleArn": self.instance_role.arn,
            "executionRoleArn": self.execution_role.arn,
            "imageLogGroup": image_log_group.name,
            "imageArnPrefix": self.image_arn_prefix,
        })

    def _components_and_recipe(self, name: str, args: ImmutableAmiPipelineArgs,
                               documents: Mapping[str, ComponentDocument], base_name: str,
                               tags: Mapping[str, str]) -> list[str]:
        """One Image Builder component per checked document and the recipe applying them in
        order, with the parameters each document declares; returns the components' names."""
        child = pulumi.ResourceOptions(parent=self)
        self.components = {}
        for key, document in documents.items():
            self.components[key] = aws.imagebuilder.Component(
                f"{name}-{key}", name=f"zero-trust-ai-{args.environment}-{key}",
                description=document.description, platform="Linux", version=document.version,
                data=document.text, change_description=f"content {document.version}",
                kms_key_id=args.component_key_arn,
                tags={**tags, "Name": f"zero-trust-ai-{args.environment}-{key}"}, opts=child)
        names_of_components = [f"zero-trust-ai-{args.environment}-{key}" for key in documents]

        parent = parent_image(args.architecture)
        # The artifacts' URIs name the bucket, an output of the fleet: every value is resolved
        # with it (the names are known before).
        bucket = pulumi.Output.from_input(args.artifacts_bucket_name or "")
        parameters = bucket.apply(lambda name_: {key: component_parameters(key, args, name_)
                                                 for key in documents})
        names = {key: list(component_parameters(key, args, "bucket")) for key in documents}

        def parameter_value(key: str, parameter: str) -> pulumi.Output[str]:
            return parameters.apply(lambda values: values[key][parameter])

        recipe_parts = [parent, str(args.root_volume_size_gib),
                        *(document.version for document in documents.values())]
        self.recipe = aws.imagebuilder.ImageRecipe(
            f"{name}-recipe", name=base_name,
            description="Enclave parent: hardened AL2023, nitro-cli, vsock-proxy to KMS only, agent unit"
                        + (", pinned EIF and agent" if args.enclave_artifacts is not None else ""),
            parent_image=parent,
            version=pulumi.Output.all(args.ami_key_arn, parameters).apply(
                lambda values: recipe_version([*recipe_parts, json.dumps(values[1], sort_keys=True),
                                               values[0]])),
            components=[aws.imagebuilder.ImageRecipeComponentArgs(
                component_arn=self.components[key].arn,
                parameters=[aws.imagebuilder.ImageRecipeComponentParameterArgs(
                    name=parameter, value=parameter_value(key, parameter))
                    for parameter in names[key]] or None)
                for key in documents],
            block_device_mappings=[aws.imagebuilder.ImageRecipeBlockDeviceMappingArgs(
                device_name=ROOT_DEVICE,
                ebs=aws.imagebuilder.ImageRecipeBlockDeviceMappingEbsArgs(
                    # Strings in the provider: unset means "as in the parent image".
                    encrypted="true", kms_key_id=args.ami_key_arn, delete_on_termination="true",
                    volume_size=args.root_volume_size_gib, volume_type="gp3"))],
            # Operators reach instances through SSM only: the agent stays in the image.
            systems_manager_agent=aws.imagebuilder.ImageRecipeSystemsManagerAgentArgs(
                uninstall_after_build=False),
            tags={**tags, "Name": base_name}, opts=child)
        return names_of_components

    def build_image(self, after: Sequence[pulumi.Resource] = ()) -> aws.imagebuilder.Image:
        """Build one image now, while the stack deploys (tens of minutes of `pulumi up`): same
        recipe, infrastructure, distribution (so it writes the fleet's image parameter), workflows,
        tests and Inspector scan as the weekly pipeline. Give the fleet's group a `depends_on` on
        it (`EnclaveInferenceFleet.launch_after`) so no instance boots the parameter's first value.

        after: what the build needs from other owners and must wait for: the fleet's grants on the
        image parameter and the artifacts (`grant_image_publishing`, `grant_artifact_read`).
        Only with pinned enclave artifacts: an image without the EIF cannot start the enclave.
        Changing the recipe (a document, the artifacts) replaces it, i.e. builds again at deploy.
        """
        if self._args.enclave_artifacts is None:
            raise ValueError("build_image: the stack pins no enclave artifacts; an image without "
                             "the EIF and the parent agent cannot start the enclave")
        if self.image is not None:
            raise ValueError("build_image: the deploy-time image is already declared")
        self.image = aws.imagebuilder.Image(
            f"{self._name}-image",
            image_recipe_arn=self.recipe.arn,
            infrastructure_configuration_arn=self.infrastructure_configuration.arn,
            distribution_configuration_arn=self.distribution_configuration.arn,
            execution_role=self.execution_role.arn,
            workflows=[aws.imagebuilder.ImageWorkflowArgs(workflow_arn=arn, on_failure="ABORT")
                       for arn in self._workflows],
            image_tests_configuration=aws.imagebuilder.ImageImageTestsConfigurationArgs(
                image_tests_enabled=True, timeout_minutes=self._args.image_tests_timeout_minutes),
            image_scanning_configuration=aws.imagebuilder.ImageImageScanningConfigurationArgs(
                image_scanning_enabled=True),
            enhanced_image_metadata_enabled=True,
            logging_configuration=aws.imagebuilder.ImageLoggingConfigurationArgs(
                log_group_name=self._log_group_names[0]),
            tags={"ztai:image": "enclave-parent"},
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*self._execution_grants, *after],
                # Build, tests and the Inspector scan take hours, not the provider's 60 minutes.
                custom_timeouts=pulumi.CustomTimeouts(create=f"{self.build_timeout_minutes}m")))
        return self.image

def _validate(args: ImmutableAmiPipelineArgs) -> Mapping[str, ComponentDocument]:
    """Reject what Image Builder or the enclave allocator would reject; return the documents."""
    if args.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {args.architecture!r}: allowed values are "
                         f"{', '.join(ARCHITECTURES)}")
    if args.instance_types is not None and not args.instance_types:
        raise ValueError("instance_types is empty: name at least one build instance type, or "
                         "leave it None for the architecture's default")
    if args.enclave_memory_mib < MIN_ENCLAVE_MEMORY_MIB:
        raise ValueError(f"enclave_memory_mib must be at least {MIN_ENCLAVE_MEMORY_MIB}, got "
                         f"{args.enclave_memory_mib}")
    # The allocator reserves whole cores: a multiple of the parent's threads per core (2 on
    # Intel/AMD with SMT; 1 on Graviton and AMD's 7th generation), as the fleet's sizing checks.
    threads = args.enclave_threads_per_core or (2 if args.architecture == "x86_64" else 1)
    if args.enclave_cpu_count < 1 or args.enclave_cpu_count % threads:
        raise ValueError(f"enclave_cpu_count {args.enclave_cpu_count}: the allocator reserves whole "
                         f"cores, so a parent with {threads} thread(s) per core needs a positive "
                         f"multiple of {threads}")
    if not _CRON.match(args.schedule_expression):
        raise ValueError(f"schedule_expression {args.schedule_expression!r}: Image Builder takes a "
                         "six-field cron(...) expression, e.g. cron(0 4 ? * sun *)")
    if args.start_condition not in START_CONDITIONS:
        raise ValueError(f"start_condition {args.start_condition!r}: allowed values are "
                         f"{', '.join(START_CONDITIONS)}")
    if not MIN_TEST_TIMEOUT <= args.image_tests_timeout_minutes <= MAX_TEST_TIMEOUT:
        raise ValueError(f"image_tests_timeout_minutes must be {MIN_TEST_TIMEOUT} to "
                         f"{MAX_TEST_TIMEOUT}, got {args.image_tests_timeout_minutes}")
    if args.root_volume_size_gib < MIN_ROOT_VOLUME_GIB:
        raise ValueError(f"root_volume_size_gib must be at least {MIN_ROOT_VOLUME_GIB} (the AL2023 "
                         f"snapshot), got {args.root_volume_size_gib}")
    if args.log_retention_days not in LOG_RETENTION_DAYS:
        raise ValueError(f"log_retention_days {args.log_retention_days} is not a CloudWatch Logs "
                         f"retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
    if (args.enclave_artifacts is None) != (args.artifacts_bucket_name is None):
        raise ValueError("enclave_artifacts and artifacts_bucket_name go together: give both to "
                         "bake the EIF and the agent, or neither")
    if args.enclave_artifacts is not None and (problems := args.enclave_artifacts.problems()):
        raise ValueError("enclave_artifacts: " + "; ".join(problems))
    return load_documents(args)
