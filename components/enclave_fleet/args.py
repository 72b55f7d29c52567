"""The fleet's inputs and their validation: everything EC2, nitro-cli or the agent would refuse,
and anything that could put a flag into the boot script, is refused before a resource is declared."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.aws_facts import LOG_RETENTION_DAYS
from components.enclave_fleet.settings import (
    AGENT_PORT,
    ARTIFACT_PREFIX,
    DEFAULT_AGENT_UNIT,
    DEFAULT_EIF_PATH,
    IMAGE_PARAMETER,
    INFERENCE_EVENTS_LOG_GROUP,
    PRIVATE_IPV4_RANGES,
    EnclaveFleetSettings,
    sizing_problems,
)
from components.keys import EnclaveMeasurements

_PARAMETER_NAME = re.compile(r"^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_SAFE_WORD = re.compile(r"^[A-Za-z0-9._/-]+$")
_EIF_PATH = re.compile(r"^/[A-Za-z0-9._/-]+\.eif$")
_UNIT = re.compile(r"^[A-Za-z0-9@._-]+\.service$")
_LOG_GROUP_NAME = re.compile(r"[A-Za-z0-9._/#-]{1,512}")


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
    logs_key_arn: CMK of the inference events' log group (the hierarchy's logs key; its owner
        admits CloudWatch Logs for the group's name: `keys.grant_cloudwatch_logs(
        fleet.inference_log_group_name)`). Default None: no log group, and the agents write their
        inference events to their journal only (docs/inference-events.md).
    log_retention_days: CloudWatch retention of the inference events; default 365.
    protect: `protect` and deletion protection on the bucket, the load balancer and the
        inference events' log group; default False.
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
    logs_key_arn: pulumi.Input[str] | None = None
    log_retention_days: int = 365
    protect: bool = False
    image_built_at_deploy: bool = False


def image_parameter_name(args: EnclaveInferenceFleetArgs) -> str:
    """The fleet's image parameter: the given name, or IMAGE_PARAMETER for the environment."""
    return args.image_parameter_name or IMAGE_PARAMETER.format(environment=args.environment)


def inference_log_group_name(args: EnclaveInferenceFleetArgs) -> str:
    """The inference events' log group: INFERENCE_EVENTS_LOG_GROUP for the environment."""
    return INFERENCE_EVENTS_LOG_GROUP.format(environment=args.environment)


def _private_cidr(value: str) -> bool:
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError:
        return False
    return any(network.subnet_of(block) for block in PRIVATE_IPV4_RANGES)


def validate_fleet_args(args: EnclaveInferenceFleetArgs) -> None:
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
    if args.logs_key_arn is not None and not _LOG_GROUP_NAME.fullmatch(inference_log_group_name(args)):
        problems.append(f"environment {args.environment!r}: the inference events' log group "
                        f"{inference_log_group_name(args)!r} must be 1-512 letters, digits and ._/#-")
    if args.log_retention_days not in LOG_RETENTION_DAYS:
        problems.append(f"log_retention_days {args.log_retention_days}: a CloudWatch Logs retention "
                        f"({', '.join(map(str, LOG_RETENTION_DAYS))})")
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
