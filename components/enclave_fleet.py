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
  agent (`enclave_images/parent/agent.py`, a systemd unit the AMI pipeline bakes);
- an Auto Scaling group across the given private subnets, replaced by an instance refresh whenever
  the launch template changes (it follows the template's latest version; `$Latest` would not
  trigger one), ELB health checks, and its own Auto Scaling service-linked role (custom suffix),
  so the key policy can name the one role that launches these encrypted volumes;
- an internal Network Load Balancer in the same subnets with a listener on the agent port (TLS on
  443 when a certificate is given) and a target group that checks the agent's `/health`;
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
  encrypted any other way.

Grants the key owner must make (components never write key policies), all above `keys.seal()`:
`keys.grant_decrypt_with_attestation("model-weights", fleet.instance_role, measurements)`;
`keys.grant_use_through_service(<storage purpose>, fleet.autoscaling_role, "ec2")` (Auto Scaling
launches the encrypted volumes through EC2: use and CreateGrant, only via EC2, only for an AWS
resource); and, for the component's bucket, `keys.grant_decrypt_through_service(<storage purpose>,
fleet.instance_role, "s3")`. Type token `zero-trust-ai:inference:EnclaveInferenceFleet`.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_facts import ARM64, X86_64, enclave_parent_type, partition_for_region
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
# The parent image until the AMI pipeline supplies its own: Amazon Linux 2023 (it packages
# aws-nitro-enclaves-cli), resolved by EC2 at each launch from AWS's public SSM parameter.
PARENT_IMAGE_PARAMETERS = {
    X86_64: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    ARM64: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
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
    image_id: the parent AMI. Default None: `resolve:ssm:` of Amazon Linux 2023 for the instance
        type's architecture. That image has no EIF and no agent, so the enclave cannot start
        until the AMI pipeline's image is passed here; it also changes whenever AWS publishes a
        new AMI, without a template change. Pass the pipeline's AMI id (or a `resolve:ssm:` of a
        parameter the pipeline writes, with a version) in any real stack.
    model_bucket_name: bucket holding the encrypted weights. Default None: the component builds
        one (then grant `grant_decrypt_through_service(..., "s3")` on storage_key_arn's purpose).
    model_prefix: the prefix the instances may read; default "models/".
    model_object_key: the object the agent loads; default "models/digits.enc" (under the prefix).
    encryption_context: the context the weights were encrypted under; default {"model": "digits"}.
    client_cidrs: who may reach the load balancer. Default empty: the VPC's CIDR. Private CIDRs.
    agent_port: the agent's HTTP port on the instances; default 8080.
    certificate_arn: ACM certificate for a TLS listener on 443. Default None: a TCP listener on
        the agent port, so traffic inside the VPC is plain HTTP until the API gateway issue
        brings a certificate.
    eif_path: where the AMI keeps the EIF; default /opt/zero-trust-ai/enclave/digits.eif.
    agent_unit: the parent agent's systemd unit (the AMI pipeline installs it); default
        ztai-parent-agent.service. Its EnvironmentFile, /etc/zero-trust-ai/parent-agent.env, gets
        AWS_REGION and ZTAI_AGENT_ARGS (the agent's command-line arguments) from the user data.
    root_volume_size_gib, root_device_name: the encrypted root volume; 30 GiB on /dev/xvda (the
        Amazon Linux root device; a mapping for another name would add a volume and leave the
        root as the AMI has it).
    data_classification: tag; default confidential (the inference segment's).
    protect: `protect` and deletion protection on the bucket and load balancer; default False.
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
    image_id: pulumi.Input[str] | None = None
    model_bucket_name: pulumi.Input[str] | None = None
    model_prefix: str = "models/"
    model_object_key: str = "models/digits.enc"
    encryption_context: Mapping[str, str] = field(default_factory=lambda: {"model": "digits"})
    client_cidrs: Sequence[str] = field(default_factory=tuple)
    agent_port: int = AGENT_PORT
    certificate_arn: pulumi.Input[str] | None = None
    eif_path: str = DEFAULT_EIF_PATH
    agent_unit: str = DEFAULT_AGENT_UNIT
    root_volume_size_gib: int = 30
    root_device_name: str = "/dev/xvda"
    data_classification: str = "confidential"
    protect: bool = False


def parent_image_id(instance_type: str) -> str:
    """The default parent image: Amazon Linux 2023 for the type's architecture, via SSM."""
    return f"resolve:ssm:{PARENT_IMAGE_PARAMETERS[enclave_parent_type(instance_type).architecture]}"


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

    def __init__(self, name: str, args: EnclaveInferenceFleetArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)
        super().__init__("zero-trust-ai:inference:EnclaveInferenceFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        partition = partition_for_region(args.region)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        tags = {"environment": args.environment, "owner": args.owner,
                "data-classification": args.data_classification, "project": "zero-trust-ai",
                "ztai:segment": "inference", "ztai:workload": "enclave-inference"}

        # -- model objects -------------------------------------------------------------------
        if args.model_bucket_name is None:
            bucket_name: pulumi.Output[str] = self._model_bucket(name, args, tags)
        else:
            bucket_name = pulumi.Output.from_input(args.model_bucket_name)
        self.model_bucket_name = bucket_name

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
        clients: list[pulumi.Input[str]] = list(args.client_cidrs) or [args.vpc_cidr]
        listener_port = 443 if args.certificate_arn is not None else args.agent_port
        lb_group = aws.ec2.SecurityGroup(
            f"{name}-nlb-sg", vpc_id=args.vpc_id,
            description="Inference load balancer: clients in, agent port out",
            tags={**tags, "Name": f"{name}-nlb"}, opts=child)
        instance_group = aws.ec2.SecurityGroup(
            f"{name}-instance-sg", vpc_id=args.vpc_id,
            description="Inference parents: agent port from the load balancer, HTTPS out",
            tags={**tags, "Name": f"{name}-instance"}, opts=child)
        rules = pulumi.ResourceOptions(parent=lb_group)
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
            tags=tags, opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        target_group = aws.lb.TargetGroup(
            f"{name}-agents", vpc_id=args.vpc_id, target_type="instance", protocol="TCP",
            port=args.agent_port, deregistration_delay=30,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True, protocol="HTTP", path=HEALTH_PATH, port="traffic-port",
                matcher="200", interval=10, healthy_threshold=3, unhealthy_threshold=3),
            tags=tags, opts=pulumi.ResourceOptions(parent=self.load_balancer))
        tls = args.certificate_arn is not None
        aws.lb.Listener(
            f"{name}-listener", load_balancer_arn=self.load_balancer.arn, port=listener_port,
            protocol="TLS" if tls else "TCP", certificate_arn=args.certificate_arn,
            ssl_policy=_TLS_POLICY if tls else None,
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="forward", target_group_arn=target_group.arn)],
            tags=tags, opts=pulumi.ResourceOptions(parent=self.load_balancer))

        # -- instances -----------------------------------------------------------------------
        settings = args.settings
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-launch-template",
            description="zero-trust-ai enclave parent",
            image_id=args.image_id if args.image_id is not None else parent_image_id(
                settings.instance_type),
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
        self.group = aws.autoscaling.Group(
            f"{name}-asg",
            min_size=settings.min_size, max_size=settings.max_size,
            desired_capacity=settings.desired_capacity,
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
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=100, max_healthy_percentage=200,
                    instance_warmup="300", auto_rollback=True)),
            tags=[aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=False)
                  for key, value in tags.items()],
            opts=child)

        self.register_outputs({
            "launchTemplateId": self.launch_template.id,
            "launchTemplateLatestVersion": self.launch_template.latest_version,
            "autoScalingGroupName": self.group.name,
            "loadBalancerArn": self.load_balancer.arn,
            "loadBalancerDnsName": self.load_balancer.dns_name,
            "instanceRoleArn": self.instance_role.arn,
            "modelBucket": bucket_name,
        })

    def _model_bucket(self, name: str, args: EnclaveInferenceFleetArgs,
                      tags: Mapping[str, str]) -> pulumi.Output[str]:
        bucket = aws.s3.Bucket(f"{name}-models", force_destroy=False, tags=dict(tags),
                               opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        child = pulumi.ResourceOptions(parent=bucket)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-models-public-access", bucket=bucket.id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child)
        aws.s3.BucketOwnershipControls(
            f"{name}-models-ownership", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child)
        aws.s3.BucketVersioning(
            f"{name}-models-versioning", bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"),
            opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-models-encryption", bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms", kms_master_key_id=args.storage_key_arn),
                bucket_key_enabled=True)],
            opts=child)
        aws.s3.BucketPolicy(
            f"{name}-models-policy", bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, args.storage_key_arn).apply(
                lambda values: model_bucket_policy(values[0], values[1])),
            opts=child)
        return bucket.bucket


def _policy(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def instance_policy(partition: str, region: str, account_id: str, bucket: str, prefix: str) -> str:
    """The parent's IAM policy: the model objects, the SSM agent, nothing else. KMS is not in it:
    the model-weights key policy names the role, with attestation conditions."""
    return _policy([
        {"Sid": "ReadEncryptedModelObjects", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"},
        {"Sid": "RegisterWithSsm", "Effect": "Allow", "Action": "ssm:UpdateInstanceInformation",
         "Resource": f"arn:{partition}:ec2:{region}:{account_id}:instance/*"},
        {"Sid": "SsmSessionsAndCommands", "Effect": "Allow", "Action": list(SSM_AGENT_ACTIONS),
         "Resource": "*"},
    ])


def model_bucket_policy(bucket_arn: str, key_arn: str) -> str:
    """TLS only, and every object encrypted with the bucket's key (no SSE-S3, no other key)."""
    def deny(sid: str, action: str, resource: Any, condition: dict[str, Any]) -> dict[str, Any]:
        return {"Sid": sid, "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": action,
                "Resource": resource, "Condition": condition}

    return _policy([
        deny("DenyInsecureTransport", "s3:*", [bucket_arn, f"{bucket_arn}/*"],
             {"Bool": {"aws:SecureTransport": "false"}}),
        deny("DenyOtherEncryption", "s3:PutObject", f"{bucket_arn}/*",
             {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}}),
        deny("DenyOtherKey", "s3:PutObject", f"{bucket_arn}/*",
             {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn}}),
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
    if problems:
        raise ValueError("EnclaveInferenceFleet: " + "; ".join(problems))
