"""Facts about AWS that decide what the stack configuration may ask for.

Plain data, no pulumi import, so the stack-config parser and the offline preview's mocks read the
same table. Extend it when you deploy to a region that is not listed: the parser refuses regions
it does not know rather than guessing how many Availability Zones they have.
"""

from __future__ import annotations

from dataclasses import dataclass

# Availability Zones an account can use in each commercial region (AWS Regions and Zones page,
# checked 2026-11). Where AWS has more zones than new accounts may use (us-west-1, ap-northeast-1),
# the usable number is given, because that is what `get_availability_zones` returns.
REGION_AZ_COUNT: dict[str, int] = {
    "us-east-1": 6,
    "us-east-2": 3,
    "us-west-1": 2,
    "us-west-2": 4,
    "ca-central-1": 3,
    "ca-west-1": 3,
    "sa-east-1": 3,
    "eu-west-1": 3,
    "eu-west-2": 3,
    "eu-west-3": 3,
    "eu-central-1": 3,
    "eu-central-2": 3,
    "eu-north-1": 3,
    "eu-south-1": 3,
    "eu-south-2": 3,
    "ap-south-1": 3,
    "ap-south-2": 3,
    "ap-northeast-1": 3,
    "ap-northeast-2": 4,
    "ap-northeast-3": 3,
    "ap-southeast-1": 3,
    "ap-southeast-2": 3,
    "ap-southeast-3": 3,
    "ap-southeast-4": 3,
    "ap-east-1": 3,
    "me-south-1": 3,
    "me-central-1": 3,
    "il-central-1": 3,
    "af-south-1": 3,
    "us-gov-west-1": 3,
    "us-gov-east-1": 3,
}

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy API reference).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)


def partition_for_region(region: str) -> str:
    """The ARN partition of a region: `aws`, `aws-cn` or `aws-us-gov`."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def availability_zone_names(region: str) -> list[str]:
    """The zone names `get_availability_zones` returns for a region in the table above."""
    return [f"{region}{letter}" for letter in "abcdef"[: REGION_AZ_COUNT[region]]]


# -- Nitro Enclaves parent instances -------------------------------------------------------------
# AWS Nitro Enclaves user guide ("Requirements", "Working with multiple enclaves"): a parent must be
# a virtualized Nitro instance, Intel/AMD with at least 4 vCPUs or Graviton with at least 2; burstable
# (T2/T3/T3a/T4g), A1, Mac and bare-metal instances are not parents. An enclave takes whole cores
# (both hyperthreads on SMT instances), and the parent keeps at least one core: 2 vCPUs with SMT,
# 1 without. The table lists the CPU families a CPU-inference enclave fits, with the sizes each
# family really has; extend it (from the EC2 instance-types page) rather than guess.
X86_64, ARM64 = "x86_64", "arm64"
MIN_ENCLAVE_PARENT_VCPUS = {X86_64: 4, ARM64: 2}
SIZE_VCPUS: dict[str, int] = {
    "medium": 1, "large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32,
    "9xlarge": 36, "12xlarge": 48, "16xlarge": 64, "18xlarge": 72, "24xlarge": 96,
    "32xlarge": 128, "48xlarge": 192,
}


@dataclass(frozen=True)
class InstanceFamily:
    """What enclave sizing needs to know about one EC2 instance family."""

    architecture: str
    threads_per_core: int  # 2: Intel/AMD with SMT; 1: Graviton, and AMD's 7th generation
    memory_gib_per_vcpu: int  # m: 4, c: 2, r: 8 in every family listed
    sizes: tuple[str, ...]


_SIZES_5 = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")
_SIZES_C5 = ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge")
_SIZES_6I = (*_SIZES_5, "32xlarge")
_SIZES_6A = (*_SIZES_6I, "48xlarge")
_SIZES_7I = (*_SIZES_5, "48xlarge")
_SIZES_7A = ("medium", *_SIZES_6A)
_SIZES_G = ("medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")
_SIZES_8G = (*_SIZES_G, "24xlarge", "48xlarge")


_MEMORY_GIB_PER_VCPU = {"m": 4, "c": 2, "r": 8}


def _families(generation: str, architecture: str, threads_per_core: int,
              sizes: tuple[str, ...]) -> dict[str, InstanceFamily]:
    """The general-purpose (m), compute (c) and memory (r) families of one generation."""
    return {f"{kind}{generation}": InstanceFamily(architecture, threads_per_core, per_vcpu, sizes)
            for kind, per_vcpu in _MEMORY_GIB_PER_VCPU.items()}


ENCLAVE_INSTANCE_FAMILIES: dict[str, InstanceFamily] = {
    **_families("5", X86_64, 2, _SIZES_5),
    "c5": InstanceFamily(X86_64, 2, 2, _SIZES_C5),  # c5 has 9xlarge and 18xlarge instead
    **_families("5a", X86_64, 2, _SIZES_5),
    **_families("6i", X86_64, 2, _SIZES_6I),
    **_families("6a", X86_64, 2, _SIZES_6A),
    **_families("7i", X86_64, 2, _SIZES_7I),
    **_families("7a", X86_64, 1, _SIZES_7A),  # 4th-generation EPYC without SMT: 1 vCPU = 1 core
    **_families("6g", ARM64, 1, _SIZES_G),
    **_families("7g", ARM64, 1, _SIZES_G),
    **_families("8g", ARM64, 1, _SIZES_8G),
}
# Families AWS names as unable to host enclaves, so the error can say so instead of "unknown".
NO_ENCLAVE_FAMILIES = ("t2", "t3", "t3a", "t4g", "a1", "mac1", "mac2")


@dataclass(frozen=True)
class EnclaveParentType:
    """An instance type that can be a Nitro Enclaves parent, with its vCPUs and memory."""

    name: str
    architecture: str
    vcpus: int
    memory_mib: int
    threads_per_core: int

    @property
    def max_enclave_vcpus(self) -> int:
        """vCPUs an enclave may take: all but the parent's core."""
        return self.vcpus - self.threads_per_core


def enclave_parent_type(instance_type: str) -> EnclaveParentType:
    """The enclave parent facts of `instance_type`; ValueError saying what is allowed otherwise."""
    family, _, size = instance_type.partition(".")
    allowed = (f"families {', '.join(sorted(ENCLAVE_INSTANCE_FAMILIES))} (components/aws_facts.py), "
               f"x86 sizes with at least {MIN_ENCLAVE_PARENT_VCPUS[X86_64]} vCPUs (xlarge and up), "
               f"Graviton sizes with at least {MIN_ENCLAVE_PARENT_VCPUS[ARM64]} (large and up)")
    if family in NO_ENCLAVE_FAMILIES or family.startswith("mac") or size.startswith("metal"):
        raise ValueError(f"{family} {'bare metal ' if size.startswith('metal') else ''}instances "
                         f"cannot be Nitro Enclaves parents; use {allowed}")
    spec = ENCLAVE_INSTANCE_FAMILIES.get(family)
    if spec is None or size not in spec.sizes:
        raise ValueError(f"not a known enclave parent instance type; use {allowed}")
    vcpus = SIZE_VCPUS[size]
    if vcpus < MIN_ENCLAVE_PARENT_VCPUS[spec.architecture]:
        raise ValueError(f"{vcpus} vCPU; Nitro Enclaves need at least "
                         f"{MIN_ENCLAVE_PARENT_VCPUS[spec.architecture]} on "
                         f"{'Graviton' if spec.architecture == ARM64 else 'Intel/AMD'}; use {allowed}")
    return EnclaveParentType(instance_type, spec.architecture, vcpus,
                             vcpus * spec.memory_gib_per_vcpu * 1024, spec.threads_per_core)

# Regions without Lambda function URLs (Lambda Developer Guide, "Lambda function URLs": "Function
# URLs are not supported in the following AWS Regions"), where the JIT API cannot be reached.
FUNCTION_URL_UNSUPPORTED_REGIONS: frozenset[str] = frozenset({
    "ap-south-2", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ap-east-2",
    "ca-west-1", "eu-south-2", "eu-central-2", "il-central-1", "me-central-1"})
