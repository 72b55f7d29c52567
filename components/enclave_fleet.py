"""Enclave inference fleet (control map §2.2, §4.2; issue 4 part 2).

Parent instances in the inference segment's private subnets run one Nitro Enclave each. The parent
fetches the *encrypted* weights from S3 and streams them into the enclave; only the enclave can have
them decrypted, because the model-weights key releases plaintext to the instance role only with an
attestation document whose measurements are pinned (`KeyHierarchy.grant_decrypt_with_attestation`,
granted by `__main__.py`, never by this component). What it builds, secure by default:

- a launch template: enclaves enabled; IMDSv2 required with hop limit 1; no key pair (operators use
  SSM Session Manager); one network interface without a public address; the root volume encrypted
  with the given CMK; user data that sizes the enclave allocator, refuses an EIF whose measurements
  are not the pinned ones, starts the enclave with `nitro-cli run-enclave` (CPU count and memory
  from the stack configuration, never in debug mode and never with a console), then the parent
  agent (`enclave_images/parent/agent.py`, a systemd unit the AMI pipeline bakes). Its image is
  `resolve:ssm:` of the fleet's image parameter, so EC2 reads the AMI id at each launch and the
  template never changes when an image is built;
- the image parameter (`/zero-trust-ai/<env>/enclave-parent/ami-id`, data type aws:ec2:image):
  created with the current Amazon Linux 2023 AMI and then written only by the AMI pipeline's
  distribution (Pulumi ignores its value), which `grant_image_publishing` allows. One writer for
  the image: Pulumi writes the template, the pipeline the parameter;
- an Auto Scaling group across the given private subnets, replaced by an instance refresh whenever
  the launch template changes (it follows the template's latest version; `$Latest` would not
  trigger one), ELB health checks, and its own Auto Scaling service-linked role (custom suffix),
  so the key policy can name the one role that launches these encrypted volumes. A new image does
  not change the template: `ImageRollout` (below) starts the refresh then;
- an internal Network Load Balancer in the same subnets with a TLS listener on 443 (TLS 1.2/1.3
  policy; the certificate given, or a DNS-validated public ACM certificate for
  `certificate_domain_name` requested in `hosted_zone_id`) and a TLS target group whose HTTPS
  health check reads the agent's `/health`: the caller's bearer token and prompt are encrypted
  from the API gateway to the load balancer (which the gateway verifies by name) and from the load
  balancer to the parent (the agent serves TLS with a key it makes at start; an NLB does not
  verify target certificates). A plain TCP listener needs `allow_plaintext_listener`, by name;
- security groups: the load balancer admits only the client CIDRs (default: the VPC) on its
  listener port and sends only to the instances' agent port; the instances admit only the load
  balancer on the agent port and send only HTTPS, to the VPC (interface endpoints: KMS through the
  enclave's vsock-proxy, SSM, STS, logs) and to the segment's S3 gateway endpoint;
- the instance role: trusted by ec2.amazonaws.com; read (GetObject) on the model objects' prefix
  only; what the SSM agent needs for Session Manager and Run Command, listed action by action
  instead of AmazonSSMManagedInstanceCore (which also reads every SSM parameter and document,
  writes inventory and compliance, and fetches patch snapshots); nothing else;
- unless a bucket is given, a model-object bucket: private (all public access blocked, ACLs off),
  versioned, encrypted with the given CMK (S3 Bucket Key on), TLS only, and refusing uploads
  encrypted any other way. Its `artifacts/` prefix holds the EIF and the parent agent package the
  AMI pipeline bakes in; `grant_artifact_read` lets the pipeline's build role read that prefix.

`ImageRollout` (type token `zero-trust-ai:inference:ImageRollout`) closes the loop from a new image
to running instances: an EventBridge rule on Image Builder's "Image State Change" events (state
AVAILABLE, images of the pipeline's recipe) invokes a small function (`ztai_runtime.instance_refresh`)
that starts an instance refresh of the group unless one that began after the image is running,
and only for an AMI the pipeline produced (`verify_pipeline_ami`: owner, Image Builder record of
the declared recipe version, snapshots under the AMI key). Because the launch template resolves
the parameter at every launch, a second rule runs the same function on every change of the
parameter, which puts back the pipeline's last AMI when the new value is not one of its own.

Grants the key owner must make (components never write key policies), all above `keys.seal()`:
`keys.grant_decrypt_with_attestation("model-weights", fleet.instance_role, measurements)`;
`keys.grant_use_through_service(<storage purpose>, fleet.autoscaling_role, "ec2")` (Auto Scaling
launches the encrypted volumes through EC2: use and CreateGrant, only via EC2, only for an AWS
resource); and, for the component's bucket, `keys.grant_decrypt_through_service(<storage purpose>,
fleet.instance_role, "s3")` (and for the pipeline's build role when it reads the artifacts). Type
token `zero-trust-ai:inference:EnclaveInferenceFleet`.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.alarms import occurrence_alarm
from components.aws_facts import (
    ARM64,
    LOG_RETENTION_DAYS,
    X86_64,
    enclave_parent_type,
    partition_for_region,
)
from components.buckets import ELB_LOG_PREFIX, AccessLogBucket, access_log_bucket, log_to, private_bucket
from components.certificates import dns_validated_certificate
from components.functions import log_group_name, logged_function, policy_document
from components.keys import EnclaveMeasurements

# Every size must hold the EIF 4 times over (Nitro Enclaves user guide: the enclave's memory
# holds the unpacked image); the parent keeps enough for its OS, the SSM agent and the agent.
EIF_MEMORY_FACTOR = 4
PARENT_RESERVED_MIB = 2048
MAX_FLEET_SIZE = 100
# The parent agent's defaults (enclave_images/parent/agent.py, enclave_images/protocol.py).
AGENT_PORT = 8080
ENCLAVE_CID = 16
ENCLAVE_PORT = 5005
HEALTH_PATH = "/health"
DEFAULT_EIF_PATH = "/opt/zero-trust-ai/enclave/digits.eif"
DEFAULT_AGENT_UNIT = "ztai-parent-agent.service"  # components/image_builder/parent-agent.yaml
AGENT_ENVIRONMENT_FILE = "/etc/zero-trust-ai/parent-agent.env"
# The first value of the image parameter, until the AMI pipeline writes its own: the Amazon Linux
# 2023 AMI that AWS's public SSM parameter names when the parameter is created (no EIF, no agent).
PARENT_IMAGE_PARAMETERS = {
    X86_64: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    ARM64: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
# The fleet's image parameter: the launch template resolves it at each launch, the AMI pipeline's
# distribution overwrites it with each new AMI.
IMAGE_PARAMETER = "/zero-trust-ai/{environment}/enclave-parent/ami-id"
_PARAMETER_NAME = re.compile(r"^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
# Where the AMI pipeline reads the EIF and the parent agent package in the model bucket; the
# instances read only model_prefix.
ARTIFACT_PREFIX = "artifacts/"
# Instance refresh (Pulumi's on a template change, ImageRollout's on a new image): every instance
# keeps serving (new ones first, up to twice the group), each new one warms up before the next.
MIN_HEALTHY_PERCENTAGE = 100
MAX_HEALTHY_PERCENTAGE = 200
INSTANCE_WARMUP_SECONDS = 300
# What SSM Agent needs for Session Manager (ssmmessages) and Run Command (ec2messages), and to
# register the instance. Everything else of AmazonSSMManagedInstanceCore (State Manager
# associations, inventory, compliance, patch snapshots, GetParameter(s), GetDocument) is left out.
SSM_AGENT_ACTIONS = (
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
    "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
)
PRIVATE_IPV4_RANGES = tuple(ipaddress.IPv4Network(block) for block in
                            ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))
_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
_SAFE_WORD = re.compile(r"^[A-Za-z0-9._/-]+$")
_EIF_PATH = re.compile(r"^/[A-Za-z0-9._/-]+\.eif$")
_UNIT = re.compile(r"^[A-Za-z0-9@._-]+\.service$")


@dataclass(frozen=True)
class EnclaveFleetSettings:
    """Sizing of the fleet; the stack configuration's `enclave*` keys.

    instance_type: the parent instance type; default m6i.xlarge (4 vCPUs, 16 GiB). Must be an
        enclave parent of components/aws_facts.py: Intel/AMD with at least 4 vCPUs, Graviton with
        at least 2, no burstable or bare-metal types.
    enclave_cpu_count: vCPUs given to the enclave; default 2. Whole cores (even with SMT), and the
        parent keeps one core.
    enclave_memory_mib: enclave memory; default 4096. At least 4 x the EIF size, and the parent
        keeps 2 GiB.
    eif_size_mib: size of the EIF the AMI carries (from the build); default 512.
    min_size, max_size, desired_capacity: the Auto Scaling group; defaults 2, 4, 2.
    """

    instance_type: str = "m6i.xlarge"
    enclave_cpu_count: int = 2
    enclave_memory_mib: int = 4096
    eif_size_mib: int = 512
    min_size: int = 2
    max_size: int = 4
    desired_capacity: int = 2


def sizing_problems(settings: EnclaveFleetSettings) -> list[tuple[str, str]]:
    """What is wrong with `settings`, as (field, reason) pairs; empty when it can run.

    The stack configuration turns each into a message naming its key and value; the component
    raises them as a ValueError.
    """
    problems: list[tuple[str, str]] = []
    try:
        parent = enclave_parent_type(settings.instance_type)
    except ValueError as error:
        problems.append(("instance_type", str(error)))
        parent = None
    cpus, memory = settings.enclave_cpu_count, settings.enclave_memory_mib
    if cpus < 1:
        problems.append(("enclave_cpu_count", "an enclave needs at least one vCPU"))
    elif parent is not None:
        if cpus % parent.threads_per_core:
            problems.append(("enclave_cpu_count", f"must be a multiple of {parent.threads_per_core}: "
                             f"{parent.name} runs {parent.threads_per_core} threads per core and an "
                             "enclave takes whole cores"))
        if cpus > parent.max_enclave_vcpus:
            problems.append(("enclave_cpu_count", f"at most {parent.max_enclave_vcpus} on "
                             f"{parent.name} ({parent.vcpus} vCPUs; the parent keeps one core)"))
    if settings.eif_size_mib < 1:
        problems.append(("eif_size_mib", "must be a positive number of MiB"))
    elif memory < EIF_MEMORY_FACTOR * settings.eif_size_mib:
        problems.append(("enclave_memory_mib", f"at least {EIF_MEMORY_FACTOR * settings.eif_size_mib} "
                         f"MiB: {EIF_MEMORY_FACTOR} x the EIF's {settings.eif_size_mib} MiB"))
    if parent is not None and memory > parent.memory_mib - PARENT_RESERVED_MIB:
        problems.append(("enclave_memory_mib", f"at most {parent.memory_mib - PARENT_RESERVED_MIB} "
                         f"MiB on {parent.name} ({parent.memory_mib} MiB; the parent keeps "
                         f"{PARENT_RESERVED_MIB})"))
    low, desired, high = settings.min_size, settings.desired_capacity, settings.max_size
    if not 1 <= low <= desired <= high <= MAX_FLEET_SIZE:
        problems.append(("capacity", f"need 1 <= min ({low}) <= desired ({desired}) <= max ({high}) "
                         f"<= {MAX_FLEET_SIZE}"))
    return problems


@dataclass
class EnclaveInferenceFleetArgs:
    """Inputs of `EnclaveInferenceFleet`; every default is the secure one.

    environment, owner, region: tags, names and the region of the service endpoints.
    vpc_id, vpc_cidr, subnet_ids: the inference segment: its VPC, CIDR and private subnets.
    s3_prefix_list_id: the prefix list of S3's gateway endpoints in the region (the instances'
        only way to S3). Default None: looked up by name, com.amazonaws.<region>.s3.
    storage_key_arn: CMK for the EBS volumes and the component's bucket (the hierarchy's
        `inference` key).
    model_key_arn: the model-weights key, handed to the parent agent so the enclave names it.
    measurements: the pinned enclave measurements. The user data refuses to start an EIF that
        measures differently, so a wrong image fails at boot rather than at KMS.
    settings: instance type, enclave CPUs and memory, EIF size, group sizes.
    image_parameter_name: the SSM parameter the launch template takes its image from
        (`resolve:ssm:<name>`). Default None: IMAGE_PARAMETER for the environment. The component
        creates it with the current Amazon Linux 2023 AMI of the instance type's architecture
        (no EIF, no agent: the enclave cannot start until the AMI pipeline writes its first image)
        and never writes it again. Changing the name (or anything that replaces the parameter)
        starts again from Amazon Linux 2023 until the pipeline's next image.
    model_bucket_name: bucket holding the encrypted weights. Default None: the component builds
        one (then grant `grant_decrypt_through_service(..., "s3")` on storage_key_arn's purpose).
    model_prefix: the prefix the instances may read; default "models/".
    model_object_key: the object the agent loads; default "models/digits.enc" (under the prefix).
    artifact_prefix: where the AMI pipeline reads the EIF and the agent package in the bucket;
        default "artifacts/". Must not overlap model_prefix: the instances never read it.
    encryption_context: the context the weights were encrypted under; default {"model": "digits"}.
    client_cidrs: who may reach the load balancer. Default empty: the VPC's CIDR. Private CIDRs.
    clients_by_security_group_only: with no client_cidrs, admit no CIDR at all: only the security
        groups given to `admit_clients_from` (the API gateway's VPC link). Default False.
    agent_port: the agent's HTTP port on the instances; default 8080.
    certificate_domain_name: the name on the TLS listener's certificate (the API gateway's
        integration verifies it: `tls_server_name`), e.g. `inference.<API domain>`. Required
        unless `allow_plaintext_listener`.
    hosted_zone_id: the public Route 53 zone of `certificate_domain_name`: a public ACM
        certificate is requested and DNS-validated there. Exactly one of this and
        `certificate_arn` (an existing, publicly trusted ACM certificate for that name: API
        Gateway is expected to verify the backend's certificate against public CAs only; not
        confirmed by a doc search).
    certificate_arn: see hosted_zone_id.
    allow_plaintext_listener: a TCP listener on the agent port and a TCP target group: bearer
        tokens and prompts in clear inside the VPC. Default False.
    eif_path: where the AMI keeps the EIF; default /opt/zero-trust-ai/enclave/digits.eif.
    agent_unit: the parent agent's systemd unit (the AMI pipeline installs it); default
        ztai-parent-agent.service. Its EnvironmentFile, /etc/zero-trust-ai/parent-agent.env, gets
        AWS_REGION and ZTAI_AGENT_ARGS (the agent's command-line arguments) from the user data.
    root_volume_size_gib, root_device_name: the encrypted root volume; 30 GiB on /dev/xvda (the
        Amazon Linux root device; a mapping for another name would add a volume and leave the
        root as the AMI has it).
    data_classification: tag; default confidential (the inference segment's).
    protect: `protect` and deletion protection on the bucket and load balancer; default False.
    image_built_at_deploy: whether the stack builds a hardened image while it deploys (the AMI
        pipeline's `build_image`, with pinned enclave artifacts) and hands it to `launch_after`.
        Default False: the image parameter then holds stock Amazon Linux 2023 (no nitro-cli, no
        EIF, no agent, sshd present) until a pipeline image, so the group is created with
        min = desired = 0 (max as configured) and a warning says why: instances booting it would
        fail their health checks and be replaced in a loop. True: the group has the configured
        sizes and waits (`depends_on`) for the image given to `launch_after`, which the stack
        must call, or the deployment waits for it forever.
    """

    environment: str
    owner: str
    region: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    storage_key_arn: pulumi.Input[str]
    model_key_arn: pulumi.Input[str]
    measurements: EnclaveMeasurements
    settings: EnclaveFleetSettings = field(default_factory=EnclaveFleetSettings)
    s3_prefix_list_id: pulumi.Input[str] | None = None
    image_parameter_name: str | None = None
    model_bucket_name: pulumi.Input[str] | None = None
    model_prefix: str = "models/"
    model_object_key: str = "models/digits.enc"
    artifact_prefix: str = ARTIFACT_PREFIX
    encryption_context: Mapping[str, str] = field(default_factory=lambda: {"model": "digits"})
    client_cidrs: Sequence[str] = field(default_factory=tuple)
    clients_by_security_group_only: bool = False
    agent_port: int = AGENT_PORT
    certificate_domain_name: str | None = None
    hosted_zone_id: str | None = None
    certificate_arn: pulumi.Input[str] | None = None
    allow_plaintext_listener: bool = False
    eif_path: str = DEFAULT_EIF_PATH
    agent_unit: str = DEFAULT_AGENT_UNIT
    root_volume_size_gib: int = 30
    root_device_name: str = "/dev/xvda"
    data_classification: str = "confidential"
    protect: bool = False
    image_built_at_deploy: bool = False


# The stack keys that pin the enclave artifacts (components.stack_config): without them no image
# is built at deploy, and the group stays empty.
ARTIFACT_STACK_KEYS: tuple[str, ...] = ("enclaveEifObjectKey", "enclaveEifSha256",
                                        "parentAgentObjectKey", "parentAgentSha256")


def image_parameter_name(args: EnclaveInferenceFleetArgs) -> str:
    """The fleet's image parameter: the given name, or IMAGE_PARAMETER for the environment."""
    return args.image_parameter_name or IMAGE_PARAMETER.format(environment=args.environment)


def user_data(args: EnclaveInferenceFleetArgs, bucket: str, model_key_arn: str) -> str:
    """The parent's boot script. Every value in it is validated or quoted; it has no debug flag
    and no console, and the policy pack's enclave-user-data-no-debug rule checks that it stays so."""
    settings = args.settings
    expected = {name: value.lower() for name, value in args.measurements.pcrs().items()}
    agent_args = [
        "--bucket", bucket, "--key", args.model_object_key, "--key-arn", model_key_arn,
        *[part for key, value in sorted(args.encryption_context.items())
          for part in ("--context", f"{key}={value}")],
        "--enclave", f"vsock:{ENCLAVE_CID}:{ENCLAVE_PORT}", "--listen", f"0.0.0.0:{args.agent_port}",
        # The load balancer's TLS target group speaks TLS to the agent.
        *([] if args.allow_plaintext_listener else ["--tls"]),
    ]
    return f"""#!/bin/bash
# zero-trust-ai inference parent (components/enclave_fleet.py): size the enclave allocator, check
# the EIF against the pinned measurements, start the enclave in production mode, start the agent.
set -euo pipefail
umask 077
mkdir -p /etc/nitro_enclaves /etc/zero-trust-ai
cat > /etc/nitro_enclaves/allocator.yaml <<'EOF'
---
memory_mib: {settings.enclave_memory_mib}
cpu_count: {settings.enclave_cpu_count}
EOF
chmod 0644 /etc/nitro_enclaves/allocator.yaml
systemctl enable nitro-enclaves-allocator.service nitro-enclaves-vsock-proxy.service
systemctl restart nitro-enclaves-allocator.service
systemctl start nitro-enclaves-vsock-proxy.service
eif={shlex.quote(args.eif_path)}
nitro-cli describe-eif --eif-path "$eif" > /run/zero-trust-ai-eif.json
python3 - /run/zero-trust-ai-eif.json <<'EOF'
import json, sys
expected = {json.dumps(expected, sort_keys=True)}
measured = json.load(open(sys.argv[1]))["Measurements"]
wrong = sorted(pcr for pcr, value in expected.items() if str(measured.get(pcr, "")).lower() != value)
if wrong:
    sys.exit("EIF measurements differ from the pinned ones: " + ", ".join(wrong))
EOF
nitro-cli run-enclave --eif-path "$eif" --cpu-count {settings.enclave_cpu_count} \\
    --memory {settings.enclave_memory_mib} --enclave-cid {ENCLAVE_CID}
cat > {AGENT_ENVIRONMENT_FILE} <<'EOF'
AWS_REGION={args.region}
AWS_DEFAULT_REGION={args.region}
ZTAI_AGENT_ARGS={" ".join(agent_args)}
EOF
systemctl enable --now {args.agent_unit}
"""


class EnclaveInferenceFleet(pulumi.ComponentResource):
    """Type token `zero-trust-ai:inference:EnclaveInferenceFleet`."""

    instance_role: aws.iam.Role
    autoscaling_role: aws.iam.ServiceLinkedRole
    launch_template: aws.ec2.LaunchTemplate
    group: aws.autoscaling.Group
    load_balancer: aws.lb.LoadBalancer
    # The launch template's image: created here, then written only by the AMI pipeline.
    image_parameter: aws.ssm.Parameter
    model_bucket_name: pulumi.Output[str]
    # Load balancer access logs and the model bucket's server access logs.
    access_logs: AccessLogBucket
    # Where the AMI pipeline reads the EIF and the agent package (grant_artifact_read).
    artifact_prefix: str

    def __init__(self, name: str, args: EnclaveInferenceFleetArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)
        super().__init__("zero-trust-ai:inference:EnclaveInferenceFleet", name, None, opts)
        self._name = name
        self._grants: dict[str, int] = {}
        child = pulumi.ResourceOptions(parent=self)
        partition = partition_for_region(args.region)
        self._partition = partition
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        tags = {"environment": args.environment, "owner": args.owner,
                "data-classification": args.data_classification, "project": "zero-trust-ai",
                "ztai:segment": "inference", "ztai:workload": "enclave-inference"}

        # -- model objects -------------------------------------------------------------------
        models: aws.s3.Bucket | None = None
        if args.model_bucket_name is None:
            models = self._model_bucket(name, args, tags)
            bucket_name: pulumi.Output[str] = models.bucket
        else:
            bucket_name = pulumi.Output.from_input(args.model_bucket_name)
        self.model_bucket_name = bucket_name
        # -- access logs ---------------------------------------------------------------------
        # The load balancer's access logs and the model bucket's S3 server access logs (who read
        # which object, beside CloudTrail's data events), in one SSE-S3 bucket (components/buckets.py
        # says why not the CMK).
        self.access_logs = access_log_bucket(
            f"{name}-access-logs", partition=partition, region=args.region, account_id=account_id,
            source_bucket_arns=[models.arn] if models is not None else [], tags=tags,
            protect=args.protect, parent=self)
        if models is not None:
            log_to(f"{name}-models-logging", bucket=models, log_bucket=self.access_logs.bucket,
                   after=self.access_logs.policy)

        # -- identities ----------------------------------------------------------------------
        # EC2 sends no aws:SourceAccount when it assumes an instance profile's role, so a
        # condition on it would leave the instances without credentials; a role can only be
        # passed to EC2 in its own account (iam:PassRole), which is the confused-deputy guard.
        self.instance_role = aws.iam.Role(
            f"{name}-instance-role",
            description="zero-trust-ai inference parent: read encrypted model objects, SSM agent",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}),
            max_session_duration=3600,
            tags=tags, opts=child)
        aws.iam.RolePolicy(
            f"{name}-instance-policy", role=self.instance_role.id,
            policy=pulumi.Output.all(bucket_name, account_id).apply(
                lambda values: instance_policy(partition, args.region, values[1], values[0],
                                               args.model_prefix)),
            opts=pulumi.ResourceOptions(parent=self.instance_role))
        profile = aws.iam.InstanceProfile(f"{name}-instance-profile", role=self.instance_role.name,
                                          tags=tags, opts=pulumi.ResourceOptions(parent=self.instance_role))
        self.autoscaling_role = aws.iam.ServiceLinkedRole(
            f"{name}-autoscaling-role", aws_service_name="autoscaling.amazonaws.com",
            custom_suffix=f"ztai-{args.environment}-{name}"[:35],
            description="Launches the zero-trust-ai enclave fleet (uses the volume key via EC2)",
            tags=tags, opts=child)

        # -- network -------------------------------------------------------------------------
        clients: list[pulumi.Input[str]] = list(args.client_cidrs) or (
            [] if args.clients_by_security_group_only else [args.vpc_cidr])
        tls = not args.allow_plaintext_listener
        listener_port = 443 if tls else args.agent_port
        lb_group = aws.ec2.SecurityGroup(
            f"{name}-nlb-sg", vpc_id=args.vpc_id,
            description="Inference load balancer: clients in, agent port out",
            tags={**tags, "Name": f"{name}-nlb"}, opts=child)
        instance_group = aws.ec2.SecurityGroup(
            f"{name}-instance-sg", vpc_id=args.vpc_id,
            description="Inference parents: agent port from the load balancer, HTTPS out",
            tags={**tags, "Name": f"{name}-instance"}, opts=child)
        rules = pulumi.ResourceOptions(parent=lb_group)
        self._lb_group, self._tags = lb_group, tags
        for index, cidr in enumerate(clients):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-nlb-in-{index}", security_group_id=lb_group.id, ip_protocol="tcp",
                from_port=listener_port, to_port=listener_port, cidr_ipv4=cidr,
                description="clients of the inference API", tags=tags, opts=rules)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-nlb-out", security_group_id=lb_group.id, ip_protocol="tcp",
            from_port=args.agent_port, to_port=args.agent_port,
            referenced_security_group_id=instance_group.id,
            description="requests and health checks to the agents", tags=tags, opts=rules)
        rules = pulumi.ResourceOptions(parent=instance_group)
        s3_prefix_list = (args.s3_prefix_list_id if args.s3_prefix_list_id is not None
                          else aws.ec2.get_prefix_list_output(
                              name=f"com.amazonaws.{args.region}.s3",
                              opts=pulumi.InvokeOptions(parent=self)).id)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-instance-in", security_group_id=instance_group.id, ip_protocol="tcp",
            from_port=args.agent_port, to_port=args.agent_port,
            referenced_security_group_id=lb_group.id,
            description="the load balancer only", tags=tags, opts=rules)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-instance-out-vpc", security_group_id=instance_group.id, ip_protocol="tcp",
            from_port=443, to_port=443, cidr_ipv4=args.vpc_cidr,
            description="interface endpoints (KMS, SSM, STS, logs)", tags=tags, opts=rules)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-instance-out-s3", security_group_id=instance_group.id, ip_protocol="tcp",
            from_port=443, to_port=443, prefix_list_id=s3_prefix_list,
            description="S3 through the gateway endpoint", tags=tags, opts=rules)

        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-nlb", internal=True, load_balancer_type="network",
            subnets=list(args.subnet_ids), security_groups=[lb_group.id], ip_address_type="ipv4",
            enable_cross_zone_load_balancing=True, enable_deletion_protection=args.protect,
            enforce_security_group_inbound_rules_on_private_link_traffic="on",
            # ELB writes access logs only for TLS listeners, and only their TLS connections
            # ("Access logs for your Network Load Balancer"): with a plaintext listener (allowed
            # only by name) the bucket stays empty.
            access_logs=aws.lb.LoadBalancerAccessLogsArgs(
                bucket=self.access_logs.bucket.bucket, prefix=ELB_LOG_PREFIX, enabled=True),
            tags=tags, opts=pulumi.ResourceOptions(parent=self, protect=args.protect,
                                                   depends_on=[self.access_logs.policy]))
        # A TLS target group: the load balancer re-encrypts to the agent, which serves TLS with a
        # key it makes at start (the load balancer does not validate target certificates:
        # https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-target-groups.html).
        target_group = aws.lb.TargetGroup(
            f"{name}-agents", vpc_id=args.vpc_id, target_type="instance",
            protocol="TLS" if tls else "TCP", port=args.agent_port, deregistration_delay=30,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True, protocol="HTTPS" if tls else "HTTP", path=HEALTH_PATH,
                port="traffic-port",
                matcher="200", interval=10, healthy_threshold=3, unhealthy_threshold=3),
            tags=tags, opts=pulumi.ResourceOptions(parent=self.load_balancer))
        certificate_arn: pulumi.Input[str] | None = None
        if tls:
            certificate_arn = (args.certificate_arn if args.hosted_zone_id is None else
                               dns_validated_certificate(
                                   f"{name}-listener", str(args.certificate_domain_name),
                                   args.hosted_zone_id, tags, self.load_balancer))
        # The API gateway's VPC link integrates with this listener, and verifies this name on it.
        self.tls_server_name: str | None = args.certificate_domain_name if tls else None
        self.listener_port = listener_port
        self.listener = aws.lb.Listener(
            f"{name}-listener", load_balancer_arn=self.load_balancer.arn, port=listener_port,
            protocol="TLS" if tls else "TCP", certificate_arn=certificate_arn,
            ssl_policy=_TLS_POLICY if tls else None,
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="forward", target_group_arn=target_group.arn)],
            tags=tags, opts=pulumi.ResourceOptions(parent=self.load_balancer))

        # -- image ---------------------------------------------------------------------------
        # One writer for the image: Pulumi creates the parameter with today's Amazon Linux 2023
        # AMI and then ignores its value; the AMI pipeline's distribution overwrites it with each
        # new AMI. The template names the parameter, never an AMI, so Pulumi's template does not
        # change when an image is built and Image Builder never writes a template version.
        settings = args.settings
        self.artifact_prefix = args.artifact_prefix
        architecture = enclave_parent_type(settings.instance_type).architecture
        first_image = aws.ssm.get_parameter_output(
            name=PARENT_IMAGE_PARAMETERS[architecture], opts=pulumi.InvokeOptions(parent=self))
        self.image_parameter = aws.ssm.Parameter(
            f"{name}-image-parameter", name=image_parameter_name(args), type="String",
            data_type="aws:ec2:image", insecure_value=first_image.insecure_value,
            description="zero-trust-ai enclave parent AMI: resolved by the launch template at each "
                        "launch, written by the AMI pipeline",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["insecure_value"]))

        # -- instances -----------------------------------------------------------------------
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-launch-template",
            description="zero-trust-ai enclave parent",
            image_id=self.image_parameter.name.apply(lambda parameter: f"resolve:ssm:{parameter}"),
            instance_type=settings.instance_type,
            enclave_options=aws.ec2.LaunchTemplateEnclaveOptionsArgs(enabled=True),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1,
                http_protocol_ipv6="disabled", instance_metadata_tags="disabled"),
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0, associate_public_ip_address="false",
                delete_on_termination="true", security_groups=[instance_group.id])],
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=args.root_device_name,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    encrypted="true", kms_key_id=args.storage_key_arn, volume_type="gp3",
                    volume_size=args.root_volume_size_gib, delete_on_termination="true"))],
            user_data=pulumi.Output.all(bucket_name, args.model_key_arn).apply(
                lambda values: base64.b64encode(
                    user_data(args, values[0], values[1]).encode()).decode()),
            update_default_version=True,
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type=kind, tags={**tags, "Name": f"{name}-parent"})
                for kind in ("instance", "volume", "network-interface")],
            tags=tags, opts=child)
        # The parameter's first value is stock AL2023: no instance may boot it. Either the group
        # waits for the image built at deploy (launch_after), or it starts empty.
        self._image_gate: asyncio.Future[list[pulumi.Resource]] | None = None
        group_opts = child
        if args.image_built_at_deploy:
            self._image_gate = asyncio.get_event_loop().create_future()
            group_opts = pulumi.ResourceOptions(
                parent=self, depends_on=pulumi.Output.from_input(self._image_gate))
            min_size, desired_capacity = settings.min_size, settings.desired_capacity
        else:
            min_size = desired_capacity = 0
            pulumi.log.warn(
                f"{name}: the enclave artifacts are not pinned ({', '.join(ARTIFACT_STACK_KEYS)} "
                "in the stack configuration), so no hardened image is built at deploy and the "
                "image parameter holds stock Amazon Linux 2023 (no nitro-cli, EIF or agent): the "
                f"Auto Scaling group is created with min = desired = 0 (max {settings.max_size}). "
                "Pin the four keys and deploy again to build the image and start the instances.",
                resource=self)
        self.group = aws.autoscaling.Group(
            f"{name}-asg",
            min_size=min_size, max_size=settings.max_size,
            desired_capacity=desired_capacity,
            vpc_zone_identifiers=list(args.subnet_ids),
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=self.launch_template.id,
                version=self.launch_template.latest_version.apply(str)),
            service_linked_role_arn=self.autoscaling_role.arn,
            target_group_arns=[target_group.arn],
            health_check_type="ELB",
            # Boot, allocator, enclave start and the weights' download and decryption.
            health_check_grace_period=300,
            default_instance_warmup=300,
            # No auto rollback: Auto Scaling supports none for a template whose image is an SSM
            # parameter. Keeping 100 % healthy means a bad image fails the refresh while the old
            # instances still serve.
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=MIN_HEALTHY_PERCENTAGE,
                    max_healthy_percentage=MAX_HEALTHY_PERCENTAGE,
                    instance_warmup=str(INSTANCE_WARMUP_SECONDS), auto_rollback=False)),
            tags=[aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=False)
                  for key, value in tags.items()],
            opts=group_opts)

        self.register_outputs({
            "launchTemplateId": self.launch_template.id,
            "launchTemplateLatestVersion": self.launch_template.latest_version,
            "autoScalingGroupName": self.group.name,
            "loadBalancerArn": self.load_balancer.arn,
            "loadBalancerDnsName": self.load_balancer.dns_name,
            "instanceRoleArn": self.instance_role.arn,
            "modelBucket": bucket_name,
            "imageParameter": self.image_parameter.name,
        })

    def admit_clients_from(self, security_group_id: pulumi.Input[str], label: str) -> None:
        """Let members of one security group (the API gateway's VPC link) reach the listener:
        with `clients_by_security_group_only`, the only way in."""
        aws.vpc.SecurityGroupIngressRule(
            f"{self._name}-nlb-in-{label}", security_group_id=self._lb_group.id, ip_protocol="tcp",
            from_port=self.listener_port, to_port=self.listener_port,
            referenced_security_group_id=security_group_id, description=f"clients: {label}",
            tags=self._tags, opts=pulumi.ResourceOptions(parent=self._lb_group))

    def launch_after(self, image: pulumi.Resource) -> None:
        """Let the group launch only once `image` (the AMI pipeline's deploy-time build, which
        writes the image parameter) exists. Only with `image_built_at_deploy`, exactly once."""
        if self._image_gate is None:
            raise ValueError("launch_after: the fleet was declared without image_built_at_deploy; "
                             "its group is empty and waits for nothing")
        if self._image_gate.done():
            raise ValueError("launch_after: the group already waits for an image")
        self._image_gate.set_result([image])

    # -- grants: the fleet owns the image parameter and the bucket, so it writes these ---------------
    def grant_image_publishing(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """Let `role` (the AMI pipeline's execution role) overwrite the image parameter with a new
        AMI id: ssm:PutParameter on that parameter only. Each new value reaches the instances
        that launch after it."""
        return self._grant(role, "publish-image", self.image_parameter.arn.apply(lambda arn: policy_document([
                {"Sid": "PublishTheFleetsImage", "Effect": "Allow", "Action": "ssm:PutParameter",
                 "Resource": arn}])))

    def grant_artifact_read(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """Let `role` (the AMI pipeline's build instances) read the objects under artifact_prefix
        of the model bucket: s3:GetObject there only. Their SSE-KMS layer also needs
        `keys.grant_decrypt_through_service(<storage purpose>, role, "s3")`."""
        partition = self._partition
        prefix = self.artifact_prefix
        return self._grant(role, "read-artifacts", self.model_bucket_name.apply(
            lambda bucket: policy_document([
                {"Sid": "ReadEnclaveArtifacts", "Effect": "Allow", "Action": "s3:GetObject",
                 "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"}])))

    def _grant(self, role: aws.iam.Role, what: str, policy: pulumi.Output[str]) -> aws.iam.RolePolicy:
        # <fleet>-<what> for the first role granted, <fleet>-<what>-2 ... for more.
        self._grants[what] = self._grants.get(what, 0) + 1
        suffix = f"-{self._grants[what]}" if self._grants[what] > 1 else ""
        return aws.iam.RolePolicy(f"{self._name}-{what}{suffix}", role=role.id, policy=policy,
                                  opts=pulumi.ResourceOptions(parent=self))

    def _model_bucket(self, name: str, args: EnclaveInferenceFleetArgs,
                      tags: Mapping[str, str]) -> aws.s3.Bucket:
        return private_bucket(f"{name}-models", key_arn=args.storage_key_arn, tags=tags,
                              protect=args.protect, parent=self).bucket


# -- image rollout ---------------------------------------------------------------------------------
ROLLOUT_HANDLER = "ztai_runtime.instance_refresh.handler"
# The function's code: the runtime modules it imports and nothing else (a test checks the imports).
ROLLOUT_MODULES: tuple[str, ...] = ("__init__.py", "jsonlog.py", "retries.py", "instance_refresh.py")
IMAGE_STATE_CHANGE = "EC2 Image Builder Image State Change"
PARAMETER_STORE_CHANGE = "Parameter Store Change"
# The function's decisions that mean someone other than the pipeline chose the fleet's image
# (ztai_runtime.instance_refresh.UNTRUSTED_ACTIONS; a test holds the two lists equal).
UNTRUSTED_IMAGE_ACTIONS: tuple[str, ...] = ("parameter-mismatch", "untrusted-image",
                                            "parameter-reverted", "parameter-untrusted")
ROLLOUT_METRIC_NAMESPACE = "zero-trust-ai/ImageRollout"
# Lambda's asynchronous retries (a rerun is idempotent) and how long an event may wait for them.
ROLLOUT_RETRY_ATTEMPTS = 2
ROLLOUT_MAX_EVENT_AGE = 3600


def image_available_pattern(image_arn_prefix: str) -> str:
    """The EventBridge pattern: Image Builder says an image of the recipe is AVAILABLE (built,
    tested, distributed: the image parameter already holds its AMI)."""
    return json.dumps({
        "source": ["aws.imagebuilder"], "detail-type": [IMAGE_STATE_CHANGE],
        "resources": [{"prefix": image_arn_prefix}],
        "detail": {"state": {"status": ["AVAILABLE"]}},
    }, sort_keys=True)


def parameter_changed_pattern(ami_parameter_arn: str) -> str:
    """The EventBridge pattern of the parameter watch: SSM reports a change of the fleet's image
    parameter (any operation; the function reads the current value)."""
    return json.dumps({
        "source": ["aws.ssm"], "detail-type": [PARAMETER_STORE_CHANGE],
        "resources": [ami_parameter_arn],
    }, sort_keys=True)


def untrusted_image_filter_pattern() -> str:
    """The metric filter on the function's JSON lines that counts untrusted-image decisions."""
    return "{ " + " || ".join(f'($.action = "{action}")' for action in UNTRUSTED_IMAGE_ACTIONS) + " }"


def rollout_policy(*, group_arn: str, log_group_arn: str, ami_parameter_arn: str,
                   image_arn_prefix: str) -> str:
    """The rollout function's role: start a refresh of this group, see its refreshes, write its
    own log group. DescribeInstanceRefreshes takes no resource (Auto Scaling's Describe actions
    have no resource-level permissions); StartInstanceRefresh names the group. Before a refresh,
    and on every change of the fleet's AMI-id parameter, it reads that parameter and its history
    (that one only), the pipeline's images (the recipe's image ARNs only) and the AMI and its
    snapshots (EC2's Describe actions take no resource) to check the AMI is one the pipeline
    produced; it may write that parameter, only to put back the last such value
    (`guard_parameter`): the SCP that keeps the parameter to the pipeline must let this role too."""
    return policy_document([
        {"Sid": "ReadAmiIdParameter", "Effect": "Allow",
         "Action": ["ssm:GetParameter", "ssm:GetParameterHistory"], "Resource": ami_parameter_arn},
        {"Sid": "RestoreAmiIdParameter", "Effect": "Allow", "Action": "ssm:PutParameter",
         "Resource": ami_parameter_arn},
        {"Sid": "DescribeAmis", "Effect": "Allow",
         "Action": ["ec2:DescribeImages", "ec2:DescribeSnapshots"], "Resource": "*"},
        {"Sid": "ReadPipelineImages", "Effect": "Allow", "Action": "imagebuilder:GetImage",
         "Resource": f"{image_arn_prefix}*"},
        {"Sid": "RefreshThisGroup", "Effect": "Allow", "Action": "autoscaling:StartInstanceRefresh",
         "Resource": group_arn},
        {"Sid": "SeeRefreshes", "Effect": "Allow", "Action": "autoscaling:DescribeInstanceRefreshes",
         "Resource": "*"},
        {"Sid": "WriteOwnLogGroup", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"]},
    ])


@dataclass
class ImageRolloutArgs:
    """Inputs of `ImageRollout`; every default is the secure one.

    environment, owner, region: names, tags and ARNs.
    group_name, group_arn: the fleet's Auto Scaling group (`fleet.group.name`, `fleet.group.arn`).
    image_arn_prefix: images whose AVAILABLE state starts a refresh: the AMI pipeline's
        (`ImmutableAmiPipeline.image_arn_prefix`, `arn:...:image/<recipe>/`).
    logs_key_arn: CMK of the function's log group (the hierarchy's logs key, with
        `grant_cloudwatch_logs(log_group_prefix)`).
    ami_parameter_name, ami_parameter_arn: the fleet's AMI-id parameter (`fleet.image_parameter`);
        the function refuses to refresh unless it names the new image's AMI, and watches it.
    recipe_arn: the pipeline's recipe (`ImmutableAmiPipeline.recipe.arn`, name and version): an
        AMI is the pipeline's only if its Image Builder record was built from it.
    ami_key_arn: the key the pipeline encrypts the AMI with (its `ami_key_arn`): an AMI whose
        snapshots use another key is not the pipeline's.
    pipeline_arn, infrastructure_configuration_arn, distribution_configuration_arn,
    build_subnet_id, build_security_group_ids, execution_role_arn, workflow_arns: how the
        pipeline builds, as declared (`ImmutableAmiPipeline`: `pipeline.arn`,
        `infrastructure_configuration.arn`, `distribution_configuration.arn`, `build_subnet_id`,
        `security_group.id`, `execution_role.arn`, `workflow_arns`): an AMI is the pipeline's only
        if its Image Builder record shows that pipeline (or the stack's deploy-time build, run as
        that execution role), tests and scanning on, that distribution, that infrastructure with
        no key pair, that subnet and those security groups, and no other workflow
        (`ztai_runtime.instance_refresh.build_problems`).
    min_healthy_percentage, max_healthy_percentage, instance_warmup_seconds: the refresh's
        preferences; defaults are the fleet's own (100, 200, 300 s).
    log_retention_days: CloudWatch retention of the function's logs; default 365.
    alarm_actions: ARNs notified when a rollout fails. Default none: the alarms still change state,
        which EventBridge sees.
    protect: `protect` and deletion protection on the log group; default False, True in prod.
    reserve_concurrency: reserve concurrency 1 for the function; default True. False (accounts
        whose Lambda concurrency quota cannot spare it) lets two events run at once: the second
        StartInstanceRefresh then meets InstanceRefreshInProgress (`already-refreshing`), harmless.
    """

    environment: str
    owner: str
    region: str
    group_name: pulumi.Input[str]
    group_arn: pulumi.Input[str]
    image_arn_prefix: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    ami_parameter_name: pulumi.Input[str]
    ami_parameter_arn: pulumi.Input[str]
    recipe_arn: pulumi.Input[str]
    ami_key_arn: pulumi.Input[str]
    pipeline_arn: pulumi.Input[str]
    infrastructure_configuration_arn: pulumi.Input[str]
    distribution_configuration_arn: pulumi.Input[str]
    build_subnet_id: pulumi.Input[str]
    build_security_group_ids: Sequence[pulumi.Input[str]]
    execution_role_arn: pulumi.Input[str]
    workflow_arns: Sequence[str]
    min_healthy_percentage: int = MIN_HEALTHY_PERCENTAGE
    max_healthy_percentage: int = MAX_HEALTHY_PERCENTAGE
    instance_warmup_seconds: int = INSTANCE_WARMUP_SECONDS
    log_retention_days: int = 365
    alarm_actions: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    protect: bool = False
    reserve_concurrency: bool = True


class ImageRollout(pulumi.ComponentResource):
    """A new image of the AMI pipeline → an instance refresh of the fleet.

    What it builds: an EventBridge rule on the default bus matching `image_available_pattern`; the
    function (`ztai_runtime.instance_refresh`, only the modules it imports, reserved concurrency 1
    so two events never race, asynchronous retries) with its own log group, encrypted with the
    given CMK, created before it; its role, trusted by lambda.amazonaws.com of this account only,
    holding `rollout_policy`; the permission for EventBridge to invoke it from that rule only; and
    two alarms, function errors (a failed or overtaken rollout: the log line says which) and
    failed rule invocations. A second rule sends every change of the AMI-id parameter to the
    same function (`guard_parameter`: a value the pipeline did not produce is replaced with its
    last one), and a metric filter on the function's JSON lines raises an untrusted-image alarm
    (UNTRUSTED_IMAGE_ACTIONS) whenever the parameter or a new image names an AMI the pipeline did
    not produce. The function runs outside any VPC: it calls the Auto Scaling API, which no
    segment has an interface endpoint for, Image Builder GetImage on the pipeline's images, SSM
    on the AMI-id parameter only and EC2's image and snapshot descriptions; it touches no data.
    An event that fails every retry goes to the function's failure queue (`logged_function`),
    encrypted with logs_key_arn: its owner grants the role that key's use through SQS
    (`grant_use_through_service("logs", rollout.role, "sqs")`).

    Type token `zero-trust-ai:inference:ImageRollout`.
    """

    role: aws.iam.Role
    function: aws.lambda_.Function
    rule: aws.cloudwatch.EventRule
    parameter_rule: aws.cloudwatch.EventRule
    log_group_prefix: str

    def __init__(self, name: str, args: ImageRolloutArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _validate_rollout(args)
        super().__init__("zero-trust-ai:inference:ImageRollout", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        tags = {"environment": args.environment, "owner": args.owner,
                "data-classification": "internal", "project": "zero-trust-ai",
                "ztai:segment": "inference"}
        function_name = f"zero-trust-ai-{args.environment}-inference-image-rollout"
        self.log_group_prefix = log_group_name(function_name)

        def role_policy(log_group_arn: pulumi.Output[str]) -> pulumi.Output[str]:
            return pulumi.Output.all(args.group_arn, log_group_arn, args.ami_parameter_arn,
                                     args.image_arn_prefix).apply(
                lambda arns: rollout_policy(group_arn=arns[0], log_group_arn=arns[1],
                                            ami_parameter_arn=arns[2], image_arn_prefix=arns[3]))

        # Reserved concurrency 1 (logged_function): two events (or a retry) never race on the group.
        rollout = logged_function(
            name, parent=self, account_id=account_id, function_name=function_name,
            description="Instance refresh of the inference fleet when a new enclave parent image "
                        "is available",
            role_description="Starts an instance refresh of the inference fleet when a new enclave "
                             "parent image is available",
            handler=ROLLOUT_HANDLER, modules=ROLLOUT_MODULES, role_policy=role_policy,
            logs_key_arn=args.logs_key_arn, log_retention_days=args.log_retention_days,
            memory_size=128, timeout=60,
            retry_attempts=ROLLOUT_RETRY_ATTEMPTS, max_event_age=ROLLOUT_MAX_EVENT_AGE,
            errors_alarm_description="A new enclave parent image did not reach the fleet: see the "
                                     "instance-refresh log lines (README, image rollout runbook)",
            errors_alarm_period=300, alarm_actions=args.alarm_actions, tags=tags, protect=args.protect,
            environment={
                "ZTAI_AUTO_SCALING_GROUP": args.group_name,
                "ZTAI_IMAGE_ARN_PREFIX": args.image_arn_prefix,
                "ZTAI_AMI_ID_PARAMETER": args.ami_parameter_name,
                "ZTAI_IMAGE_RECIPE_ARN": args.recipe_arn,
                "ZTAI_AMI_KEY_ARN": args.ami_key_arn,
                "ZTAI_IMAGE_PIPELINE_ARN": args.pipeline_arn,
                "ZTAI_INFRASTRUCTURE_CONFIGURATION_ARN": args.infrastructure_configuration_arn,
                "ZTAI_DISTRIBUTION_CONFIGURATION_ARN": args.distribution_configuration_arn,
                "ZTAI_BUILD_SUBNET_ID": args.build_subnet_id,
                "ZTAI_BUILD_SECURITY_GROUP_IDS": pulumi.Output.all(
                    *args.build_security_group_ids).apply(lambda ids: ",".join(ids)),
                "ZTAI_IMAGE_EXECUTION_ROLE_ARN": args.execution_role_arn,
                "ZTAI_IMAGE_WORKFLOW_ARNS": ",".join(args.workflow_arns),
                "ZTAI_MIN_HEALTHY_PERCENTAGE": str(args.min_healthy_percentage),
                "ZTAI_MAX_HEALTHY_PERCENTAGE": str(args.max_healthy_percentage),
                "ZTAI_INSTANCE_WARMUP_SECONDS": str(args.instance_warmup_seconds),
            }, reserve_concurrency=args.reserve_concurrency)
        log_group, self.role, self.function = rollout.log_group, rollout.role, rollout.function

        self.rule = aws.cloudwatch.EventRule(
            f"{name}-image-available",
            name=f"zero-trust-ai-{args.environment}-enclave-parent-image-available",
            description="A new enclave parent image is available: refresh the inference fleet",
            event_pattern=pulumi.Output.from_input(args.image_arn_prefix).apply(image_available_pattern),
            state="ENABLED", tags=tags, opts=child)
        permission = aws.lambda_.Permission(
            f"{name}-invoke", action="lambda:InvokeFunction", function=self.function.name,
            principal="events.amazonaws.com", source_arn=self.rule.arn,
            opts=pulumi.ResourceOptions(parent=self.function))
        aws.cloudwatch.EventTarget(
            f"{name}-target", rule=self.rule.name, arn=self.function.arn,
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=ROLLOUT_MAX_EVENT_AGE, maximum_retry_attempts=10),
            opts=pulumi.ResourceOptions(parent=self.rule, depends_on=[permission]))

        # The launch template resolves the parameter at every launch, so a refused rollout is not
        # enough: every change of the parameter runs the function's watch (`guard_parameter`),
        # which puts back the pipeline's last AMI when the new value is not one of its own.
        self.parameter_rule = aws.cloudwatch.EventRule(
            f"{name}-parameter-changed",
            name=f"zero-trust-ai-{args.environment}-enclave-parent-parameter-changed",
            description="The enclave parent image parameter changed: check it is the pipeline's AMI",
            event_pattern=pulumi.Output.from_input(args.ami_parameter_arn).apply(
                parameter_changed_pattern),
            state="ENABLED", tags=tags, opts=child)
        parameter_permission = aws.lambda_.Permission(
            f"{name}-invoke-on-parameter", action="lambda:InvokeFunction",
            function=self.function.name, principal="events.amazonaws.com",
            source_arn=self.parameter_rule.arn, opts=pulumi.ResourceOptions(parent=self.function))
        aws.cloudwatch.EventTarget(
            f"{name}-parameter-target", rule=self.parameter_rule.name, arn=self.function.arn,
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=ROLLOUT_MAX_EVENT_AGE, maximum_retry_attempts=10),
            opts=pulumi.ResourceOptions(parent=self.parameter_rule, depends_on=[parameter_permission]))
        untrusted_metric = f"UntrustedImage-{args.environment}"
        aws.cloudwatch.LogMetricFilter(
            f"{name}-untrusted-image", name=f"{function_name}-untrusted-image",
            log_group_name=log_group.name, pattern=untrusted_image_filter_pattern(),
            metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                name=untrusted_metric, namespace=ROLLOUT_METRIC_NAMESPACE, value="1", unit="Count"),
            opts=pulumi.ResourceOptions(parent=log_group))
        occurrence_alarm(
            f"{name}-untrusted-image-alarm", alarm_name=f"{function_name}-untrusted-image",
            description="The fleet's image parameter or a new image names an AMI the pipeline did "
                        "not produce (README, image rollout runbook: untrusted image)",
            namespace=ROLLOUT_METRIC_NAMESPACE, metric_name=untrusted_metric, dimensions=None,
            statistic="Sum", period=60, alarm_actions=args.alarm_actions, tags=tags,
            parent=self.function)
        occurrence_alarm(
            f"{name}-parameter-failed-invocations-alarm",
            alarm_name=f"{function_name}-parameter-failed-invocations",
            description="EventBridge could not invoke the image parameter watch",
            namespace="AWS/Events", metric_name="FailedInvocations",
            dimensions={"RuleName": self.parameter_rule.name}, statistic="Sum", period=300,
            alarm_actions=args.alarm_actions, tags=tags, parent=self.parameter_rule)
        occurrence_alarm(
            f"{name}-failed-invocations-alarm", alarm_name=f"{function_name}-failed-invocations",
            description="EventBridge could not invoke the image rollout function",
            namespace="AWS/Events", metric_name="FailedInvocations", dimensions={"RuleName": self.rule.name},
            statistic="Sum", period=300, alarm_actions=args.alarm_actions, tags=tags, parent=self.rule)

        self.register_outputs({
            "functionArn": self.function.arn,
            "roleArn": self.role.arn,
            "ruleArn": self.rule.arn,
            "parameterRuleArn": self.parameter_rule.arn,
            "logGroup": log_group.name,
        })


def _validate_rollout(args: ImageRolloutArgs) -> None:
    """What Auto Scaling or CloudWatch would refuse, before anything is declared."""
    problems = []
    if not 0 <= args.min_healthy_percentage <= 100:
        problems.append(f"min_healthy_percentage {args.min_healthy_percentage}: 0-100")
    if not 100 <= args.max_healthy_percentage <= 200:
        problems.append(f"max_healthy_percentage {args.max_healthy_percentage}: 100-200")
    elif args.max_healthy_percentage - args.min_healthy_percentage > 100:
        problems.append("max_healthy_percentage - min_healthy_percentage: at most 100")
    if args.instance_warmup_seconds < 0:
        problems.append(f"instance_warmup_seconds {args.instance_warmup_seconds}: not negative")
    if args.log_retention_days not in LOG_RETENTION_DAYS:
        problems.append(f"log_retention_days {args.log_retention_days}: a CloudWatch Logs retention "
                        f"({', '.join(map(str, LOG_RETENTION_DAYS))})")
    if not args.build_security_group_ids:
        problems.append("build_security_group_ids is empty: name the pipeline's build security group")
    if not args.workflow_arns:
        problems.append("workflow_arns is empty: name the pipeline's workflows")
    if problems:
        raise ValueError("ImageRollout: " + "; ".join(problems))



def instance_policy(partition: str, region: str, account_id: str, bucket: str, prefix: str) -> str:
    """The parent's IAM policy: the model objects, the SSM agent, nothing else. KMS is not in it:
    the model-weights key policy names the role, with attestation conditions."""
    return policy_document([
        {"Sid": "ReadEncryptedModelObjects", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"},
        {"Sid": "RegisterWithSsm", "Effect": "Allow", "Action": "ssm:UpdateInstanceInformation",
         "Resource": f"arn:{partition}:ec2:{region}:{account_id}:instance/*"},
        {"Sid": "SsmSessionsAndCommands", "Effect": "Allow", "Action": list(SSM_AGENT_ACTIONS),
         "Resource": "*"},
    ])


def _private_cidr(value: str) -> bool:
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError:
        return False
    return any(network.subnet_of(block) for block in PRIVATE_IPV4_RANGES)


def _validate(args: EnclaveInferenceFleetArgs) -> None:
    """Reject what EC2, nitro-cli or the agent would reject, and anything that could put a flag
    into the user data, before anything is declared."""
    problems = [f"settings.{field_name}: {reason}" for field_name, reason in sizing_problems(args.settings)]
    if not args.subnet_ids:
        problems.append("subnet_ids: the fleet needs the segment's private subnets")
    if not _EIF_PATH.match(args.eif_path):
        problems.append(f"eif_path {args.eif_path!r}: an absolute path of letters, digits and ._-/ "
                        "ending in .eif")
    if not _UNIT.match(args.agent_unit):
        problems.append(f"agent_unit {args.agent_unit!r}: a systemd service name")
    if not args.model_prefix.endswith("/") or not _SAFE_WORD.match(args.model_prefix):
        problems.append(f"model_prefix {args.model_prefix!r}: letters, digits and ._-/ ending in /")
    if not _SAFE_WORD.match(args.model_object_key) or not args.model_object_key.startswith(
            args.model_prefix):
        problems.append(f"model_object_key {args.model_object_key!r}: letters, digits and ._-/ "
                        f"under model_prefix {args.model_prefix!r}")
    if not args.artifact_prefix.endswith("/") or not _SAFE_WORD.match(args.artifact_prefix):
        problems.append(f"artifact_prefix {args.artifact_prefix!r}: letters, digits and ._-/ ending in /")
    elif (args.artifact_prefix.startswith(args.model_prefix)
          or args.model_prefix.startswith(args.artifact_prefix)):
        problems.append(f"artifact_prefix {args.artifact_prefix!r} overlaps model_prefix "
                        f"{args.model_prefix!r}: the instances must not read the artifacts")
    parameter = image_parameter_name(args)
    if (not _PARAMETER_NAME.match(parameter) or len(parameter) > 1011
            or parameter.lower().startswith(("/aws", "/ssm"))):
        problems.append(f"image_parameter_name {parameter!r}: a /-separated SSM parameter name of "
                        "letters, digits and _.-, not under /aws or /ssm")
    for key, value in args.encryption_context.items():
        if not _SAFE_WORD.match(key) or not _SAFE_WORD.match(value):
            problems.append(f"encryption_context {key!r}={value!r}: letters, digits and ._-/ only")
    if not 1024 <= args.agent_port <= 65535:
        problems.append(f"agent_port {args.agent_port}: 1024-65535 (the agent runs unprivileged)")
    for cidr in args.client_cidrs:
        if not _private_cidr(cidr):
            problems.append(f"client_cidrs {cidr!r}: a private IPv4 CIDR (RFC 1918 or 100.64/10) "
                            "without host bits")
    if not 8 <= args.root_volume_size_gib <= 16384:
        problems.append(f"root_volume_size_gib {args.root_volume_size_gib}: 8-16384 (gp3)")
    problems += _listener_problems(args)
    if problems:
        raise ValueError("EnclaveInferenceFleet: " + "; ".join(problems))


_DNS_NAME = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_HOSTED_ZONE = re.compile(r"Z[A-Z0-9]{1,31}")


def _listener_problems(args: EnclaveInferenceFleetArgs) -> list[str]:
    """TLS unless plain text is asked for by name; one source of the certificate."""
    given = [label for label, value in (("certificate_domain_name", args.certificate_domain_name),
                                        ("hosted_zone_id", args.hosted_zone_id),
                                        ("certificate_arn", args.certificate_arn)) if value is not None]
    if args.allow_plaintext_listener:
        return [f"{label}: not with allow_plaintext_listener (a TCP listener has no certificate)"
                for label in given]
    problems = []
    if args.certificate_domain_name is None:
        problems.append("certificate_domain_name: the TLS listener's certificate name is required "
                        "(tokens and prompts must not cross the VPC in clear); "
                        "allow_plaintext_listener=True accepts a TCP listener explicitly")
    elif not _DNS_NAME.fullmatch(args.certificate_domain_name):
        problems.append(f"certificate_domain_name {args.certificate_domain_name!r}: a lower-case "
                        "DNS name such as inference.api.example.com")
    if (args.hosted_zone_id is None) == (args.certificate_arn is None):
        problems.append("listener certificate: give exactly one of hosted_zone_id (a DNS-validated "
                        "ACM certificate is requested) and certificate_arn (an existing one)")
    if args.hosted_zone_id is not None and not _HOSTED_ZONE.fullmatch(args.hosted_zone_id):
        problems.append(f"hosted_zone_id {args.hosted_zone_id!r}: a Route 53 zone id such as "
                        "Z0123456789ABCDEFGHIJ")
    return problems
