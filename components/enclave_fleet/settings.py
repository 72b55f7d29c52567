"""Sizing and fixed values of the enclave inference fleet, shared by the fleet, its boot script,
the image rollout and the stack configuration (which checks the `enclave*` keys with
`sizing_problems` before any component is declared)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from components.aws_facts import ARM64, X86_64, enclave_parent_type

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
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Where the parent agents write one event per inference request (docs/inference-events.md): a
# name known before the group exists, so the logs key can admit CloudWatch Logs for it and the
# endpoints' data perimeter can name it.
INFERENCE_EVENTS_LOG_GROUP = "/zero-trust-ai/{environment}/inference-events"


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


# The stack keys that pin the enclave artifacts (components.stack_config): without them no image
# is built at deploy, and the group stays empty.
ARTIFACT_STACK_KEYS: tuple[str, ...] = ("enclaveEifObjectKey", "enclaveEifSha256",
                                        "parentAgentObjectKey", "parentAgentSha256")
