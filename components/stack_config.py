"""The stack configuration, parsed once into typed, validated objects.

Every key of the project's namespace (its name in Pulumi.yaml: `zero-trust-ai` as shipped) is
declared once, in KEYS below: its description,
whether it is required, its parser, its default, its schema type and its allowed values.
Pulumi.yaml's `config:` block and docs/configuration.md are generated from KEYS
(`./run ztai config docs`; a test fails when they differ). Adding a key is one StackKey in KEYS,
its use in `parse_stack_config`, and that command.

A bad value stops the program before any resource is declared, with one message that lists every
problem: the key, the value given and what is allowed; so do an unknown key, an unknown `aws:`
setting and a namespace that is a typo of either. `StackConfigError` is a `pulumi.RunError`, so
`pulumi up` prints that message without a Python traceback.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pulumi
from cryptography import x509

from components.alarm_topics import ALARM_KEYS, AlarmSubscription, subscription_problems
from components.ami_pipeline import EnclaveArtifacts
from components.api_gateway import FIRST_PARTY, ApiPartner, ca_subject_names, domain_problem
from components.api_identity import UNIQUE_SUFFIX_LENGTH, domain_prefix_problem
from components.audit import MAX_RETENTION_DAYS, MIN_PROD_RETENTION_DAYS
from components.aws_facts import (
    FUNCTION_URL_UNSUPPORTED_REGIONS,
    LOG_RETENTION_DAYS,
    REGION_AZ_COUNT,
    partition_for_region,
)
from components.ci_identity import CI_KEYS, CiSettings, ci_settings
from components.config_values import ALL_LAYERS as ALL_LAYERS  # the layers (stack key `layer`)
from components.config_values import (
    DEFAULT_PROJECT,
    ENVIRONMENT_LAYERS,
    KEY_LAYERS,
    LAYERS,
    PROJECT_DIR,
    WORKLOAD_LAYERS,
    distinct_choices,
    parse_regions,
    use_namespace,
)
from components.config_values import SCHEMA_TYPES as SCHEMA_TYPES  # re-exported (declared there
from components.config_values import StackKey as StackKey  # for components/ci_identity.py too)
from components.config_values import as_bool as _as_bool
from components.config_values import as_int as _as_int
from components.config_values import as_string as _as_string
from components.config_values import as_string_list as _as_string_list
from components.config_values import ca_file as _ca_file
from components.config_values import full as _full
from components.config_values import namespace as _project_namespace
from components.config_values import parse_burst as _parse_burst
from components.config_values import parse_rate as _parse_rate
from components.config_values import show as _show
from components.enclave_fleet import ARTIFACT_PREFIX, EnclaveFleetSettings, sizing_problems
from components.guardrails import GUARDRAIL_KEYS, GuardrailSettings, GuardrailSettingsError
from components.guardrails import parse_settings as parse_guardrail_settings
from components.jit_catalogue import JitElevation, parse_catalogue_file
from components.key_grants import GrantsFile, ledger_problems, load_grants_file
from components.keys import PURPOSES as KEY_PURPOSES
from components.keys import EnclaveMeasurements, measurement_problem
from components.network import MAX_SEGMENT_PREFIX, MIN_SEGMENT_PREFIX, SEGMENT_NAMES, Segment
from components.partners_file import parse_partners_file
from components.siem_stream import SIEM_KEYS, SiemSettings
from components.truststore import is_placeholder

ENVIRONMENTS = ("dev", "staging", "prod")
STACK_REFERENCE = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
DATA_CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
DEFAULT_DATA_CLASSIFICATION = {
    "data": "restricted",
    "training": "restricted",
    "inference": "confidential",
    "management": "internal",
}
MIN_AZ_COUNT = 2
MIN_PROD_AZ_COUNT = 3
MIN_PROD_FLEET_SIZE = 2
_DEFAULT_FLEET = EnclaveFleetSettings()
_DEFAULT_SIEM = SiemSettings()
# EnclaveFleetSettings fields (as sizing_problems names them) and the keys that set them.
_FLEET_KEYS = {"instance_type": ("enclaveInstanceType",), "enclave_cpu_count": ("enclaveCpuCount",),
               "enclave_memory_mib": ("enclaveMemoryMiB",), "eif_size_mib": ("enclaveEifSizeMiB",),
               "capacity": ("enclaveFleetMinSize", "enclaveFleetDesiredCapacity",
                            "enclaveFleetMaxSize")}
# Private ranges a VPC may use (RFC 1918 and RFC 6598 shared space). Python's `is_private` is not
# this test: it also accepts loopback and link-local, which AWS refuses for VPCs.
_VPC_RANGES = tuple(ipaddress.IPv4Network(block) for block in
                    ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))
_ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
# Why keyAdministratorRoleArns is required: without roles the account root administers the keys.
_KEY_ADMINISTRATORS_NEEDED = (
    "name at least one IAM role, e.g. [\"arn:aws:iam::111122223333:role/zero-trust-ai-key-admin\"] "
    "(one of them must be the role that runs `pulumi up`); without roles the account root "
    "administers the keys, and any IAM principal allowed kms:PutKeyPolicy could rewrite the "
    "model-weights key's policy, drop its enclave attestation and decrypt the weights")
_ORG_ID = re.compile(r"^o-[a-z0-9]{10,32}$")
# Tag values: letters, digits, spaces and + - = . _ : / @ (EC2 tag restrictions), at most 256.
_TAG_VALUE = re.compile(r"^[\w .:/=+\-@]{1,256}$")
_ARTIFACT_KEY = re.compile(rf"^{re.escape(ARTIFACT_PREFIX)}[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# The pinned artifacts the AMI pipeline bakes in: all four keys, or none.
_ARTIFACT_KEYS = ("enclaveEifObjectKey", "enclaveEifSha256", "parentAgentObjectKey",
                  "parentAgentSha256")


_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")


@dataclass(frozen=True)
class ApiSettings:
    """The API gateway's configuration: its domain and certificate, who is trusted at
    the TLS handshake and by which issuer, and the stage's rate limits.

    client_ca_files, partners' ca_file: absolute paths. jwt_issuer None: the stack's own Cognito
    user pool issues the tokens; otherwise an external OIDC issuer with `jwt_audiences`.
    partners: scopes are left empty here; the program gives each partner its own scope.
    """

    domain_name: str
    hosted_zone_id: str | None
    certificate_arn: str | None
    ownership_verification_certificate_arn: str | None
    client_ca_files: tuple[str, ...]
    partners: tuple[ApiPartner, ...]
    jwt_issuer: str | None
    jwt_audiences: tuple[str, ...]
    rate_limit: float
    burst_limit: int
    auth_domain_prefix: str
    access_log_retention_days: int
    # True when the prefix was derived (a unique suffix is appended at deploy), False when set.
    auth_domain_prefix_derived: bool = True


# How people reach the human roles (components/identity.py): the federation the roles trust and
# the session context every one of them requires.
IDENTITY_PROVIDERS = ("identity-center", "saml", "oidc")


@dataclass(frozen=True)
class HumanAccessSettings:
    """Federation and context of the human roles (docs/identity.md).

    provider: identity-center (default: AWS's recommendation for workforce access, one place for
        users, groups, MFA and the session tags), saml or oidc (an IAM identity provider).
    provider_arn: the IAM SAML or OIDC provider's ARN (saml, oidc); None with identity-center.
    audience: the OIDC client id the tokens carry as `aud` (oidc only).
    mfa_tag, device_tag: session tags the IdP sets to "true" after MFA and on a compliant device.
    user_tag: the Identity Center session tag carrying the person's user name, to which the
        chained session's name and source identity are bound (identity-center only).
    source_cidrs: corporate ranges people come from; empty: the management segment's VPC endpoints.
    published_models: model names the publisher may generate weights data keys for.
    """

    provider: str = "identity-center"
    provider_arn: str | None = None
    audience: str | None = None
    mfa_tag: str = "mfa-authenticated"
    device_tag: str = "device-compliant"
    user_tag: str = "ztai-user"
    source_cidrs: tuple[str, ...] = ()
    published_models: tuple[str, ...] = ()


class StackConfigError(pulumi.RunError):
    """The stack configuration is invalid; the message lists every problem found."""

    def __init__(self, stack_hint: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid stack configuration{stack_hint}:\n{lines}")


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs from one stack's configuration."""

    environment: str
    owner: str
    region: str
    az_count: int
    segments: tuple[Segment, ...]
    flow_log_retention_days: int
    organization_id: str | None
    enclave_measurements: EnclaveMeasurements
    api: ApiSettings
    key_administrator_role_arns: tuple[str, ...] = ()
    break_glass_role_arn: str | None = None
    key_replica_regions: tuple[str, ...] = ()
    key_inspector_role_arns: tuple[str, ...] = ()
    enclave_fleet: EnclaveFleetSettings = _DEFAULT_FLEET
    enclave_client_cidrs: tuple[str, ...] = ()  # empty: the inference VPC's CIDR
    enclave_artifacts: EnclaveArtifacts | None = None  # None: the image has no EIF and no agent
    # Reserved concurrency 1 on the rotation and rollout functions; False: unreserved (low quota).
    reserve_function_concurrency: bool = True
    human_access: HumanAccessSettings = HumanAccessSettings()
    # Just-in-time elevations (jitCatalogueFile); empty: no elevation role.
    jit_elevations: tuple[JitElevation, ...] = ()
    # Keys only a key-admin elevation may change the policy of (twoPersonKeys).
    two_person_keys: tuple[str, ...] = ("model-weights", "audit")
    # Object Lock retention of the audit trail's log files (auditRetentionDays), combined stacks.
    audit_retention_days: int = 365
    # combined: this stack holds the keys too; workload: they are the key layer's (key_layer_stack).
    layer: str = "combined"
    key_layer_stack: str | None = None
    # Who the alarm topics notify (alarmSubscriptions); a workload's topics are its key layer's.
    alarm_subscriptions: tuple[AlarmSubscription, ...] = ()
    # Where the stack's SIEM stream delivers (siem); default its own bucket.
    siem: SiemSettings = _DEFAULT_SIEM

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


@dataclass(frozen=True)
class KeyLayerConfig:
    """A key layer's stack (`layer: keys`): the keys, their aliases and their policies, with the
    workload's grants from its reviewed grants file (components/key_grants.py)."""

    environment: str
    owner: str
    region: str
    key_administrator_role_arns: tuple[str, ...]
    break_glass_role_arn: str | None
    key_replica_regions: tuple[str, ...]
    enclave_measurements: EnclaveMeasurements
    two_person_keys: tuple[str, ...]
    workload_deployer_role_arns: tuple[str, ...]
    key_inspector_role_arns: tuple[str, ...] = ()
    # Empty until the workload's first deploy: the keys keep their creation policies.
    workload_grants: tuple[dict[str, Any], ...] = ()
    # The identity part the key layer deploys (the roles its key policies name, and the JIT).
    human_access: HumanAccessSettings = HumanAccessSettings()
    jit_elevations: tuple[JitElevation, ...] = ()
    reserve_function_concurrency: bool = True
    # What the workload's grants file says of the management segment's VPC endpoints (the human
    # roles' network); empty until then, and the human roles are usable from nowhere.
    human_source_vpce_ids: tuple[str, ...] = ()
    audit_retention_days: int = 365
    # Who the alarm topics notify (alarmSubscriptions): the topics are this layer's.
    alarm_subscriptions: tuple[AlarmSubscription, ...] = ()
    layer: str = "keys"
    siem: SiemSettings = _DEFAULT_SIEM

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


@dataclass(frozen=True)
class BootstrapConfig:
    """A bootstrap stack (`layer: bootstrap`), one per account: the CI system's identity and the
    Pulumi state backend (docs/ci-identity.md)."""

    environment: str
    owner: str
    region: str
    ci: CiSettings
    key_administrator_role_arns: tuple[str, ...]
    layer: str = "bootstrap"


@dataclass(frozen=True)
class OrganizationConfig:
    """An organization stack (`layer: organization`): the guardrail SCPs and RCPs, deployed from
    the management account or a delegated policy administrator (docs/guardrails.md)."""

    environment: str
    owner: str
    region: str
    guardrails: GuardrailSettings
    layer: str = "organization"


# What one stack's configuration parses into, by its layer.
LayerConfig = StackConfig | KeyLayerConfig | BootstrapConfig | OrganizationConfig


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    text = _as_string(key, value)
    if text not in allowed:
        raise ValueError(f"{_full(key)} = {_show(value)}: allowed values are {', '.join(allowed)}")
    return text


def _parse_environment(key: str, value: Any) -> str:
    return _one_of(key, value, ENVIRONMENTS)


def _parse_tag_value(key: str, value: Any) -> str:
    text = _as_string(key, value)
    if not _TAG_VALUE.match(text):
        raise ValueError(
            f"{_full(key)} = {_show(value)}: must be 1-256 characters of letters, digits, "
            "spaces and + - = . _ : / @ (it becomes a tag value)"
        )
    return text


def _parse_cidr(key: str, value: Any) -> ipaddress.IPv4Network:
    text = _as_string(key, value)
    try:
        network = ipaddress.IPv4Network(text, strict=False)
    except ValueError as error:
        raise ValueError(f"{_full(key)} = {_show(value)}: not an IPv4 CIDR block ({error})") from None
    if str(network) != text:
        raise ValueError(
            f"{_full(key)} = {_show(value)}: host bits are set; the network address is {network}"
        )
    if not MIN_SEGMENT_PREFIX <= network.prefixlen <= MAX_SEGMENT_PREFIX:
        raise ValueError(
            f"{_full(key)} = {_show(value)}: prefix length must be /{MIN_SEGMENT_PREFIX} to "
            f"/{MAX_SEGMENT_PREFIX} (AWS VPCs are /16 at most; each segment is carved into 16 "
            "subnets that must hold the endpoint interfaces and the workloads)"
        )
    if not any(network.subnet_of(block) for block in _VPC_RANGES):
        raise ValueError(
            f"{_full(key)} = {_show(value)}: use a private range "
            f"({', '.join(map(str, _VPC_RANGES))})"
        )
    return network


def _parse_az_count(key: str, value: Any) -> int:
    return _as_int(key, value)


def _parse_retention(key: str, value: Any) -> int:
    days = _as_int(key, value)
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"{_full(key)} = {days}: CloudWatch Logs accepts only "
            f"{', '.join(map(str, LOG_RETENTION_DAYS))} days"
        )
    return days


def _parse_segment_list(key: str, value: Any) -> list[str]:
    names = _as_string_list(key, value)
    unknown = [name for name in names if name not in SEGMENT_NAMES]
    if unknown:
        raise ValueError(
            f"{_full(key)} = {_show(value)}: unknown segment(s) {', '.join(unknown)}; "
            f"segments are {', '.join(SEGMENT_NAMES)}"
        )
    return names


def _parse_org_id(key: str, value: Any) -> str | None:
    # Pulumi.yaml declares the key with default "" (a declared key without default is required).
    if value == "":
        return None
    text = _as_string(key, value)
    if not _ORG_ID.match(text):
        raise ValueError(
            f"{_full(key)} = {_show(value)}: an AWS Organizations id looks like o-a1b2c3d4e5 "
            "(o- then 10 to 32 lowercase letters or digits)"
        )
    return text


def _check_role_arn(key: str, arn: str) -> str:
    if not _ROLE_ARN.match(arn):
        raise ValueError(f"{_full(key)}: {arn!r} is not an IAM role ARN such as "
                         "arn:aws:iam::111122223333:role/kms-admin")
    return arn


def _parse_role_arn(key: str, value: Any) -> str | None:
    # Declared with default "" in Pulumi.yaml: empty means no role.
    return None if value == "" else _check_role_arn(key, _as_string(key, value))


def _parse_role_arns(key: str, value: Any) -> list[str]:
    return [_check_role_arn(key, arn) for arn in _as_string_list(key, value)]


def _parse_key_administrators(key: str, value: Any) -> list[str]:
    arns = _parse_role_arns(key, value)
    if not arns:
        raise ValueError(f"{_full(key)} = {_show(value)}: {_KEY_ADMINISTRATORS_NEEDED}")
    return arns


def _parse_stack_reference(key: str, value: Any) -> str:
    text = _as_string(key, value)
    if not STACK_REFERENCE.match(text):
        raise ValueError(f"{_full(key)} = {_show(value)}: a fully qualified stack name, "
                         "<organization>/<project>/<stack>, e.g. organization/zero-trust-ai/prod-keys")
    return text


def _parse_grants_file(key: str, value: Any) -> GrantsFile | None:
    if value == "":
        return None
    text = _as_string(key, value)
    path = (PROJECT_DIR / text).resolve()
    return load_grants_file(path, f"{_full(key)} = {text!r}")


def _parse_audit_retention(key: str, value: Any) -> int:
    days = _as_int(key, value)
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValueError(f"{_full(key)} = {days}: a whole number of days from 1 to {MAX_RETENTION_DAYS} "
                         "(S3 Object Lock default retention)")
    return days


def _parse_two_person_keys(key: str, value: Any) -> list[str]:
    return distinct_choices(key, value, KEY_PURPOSES, f"distinct key purposes of {', '.join(KEY_PURPOSES)}")




def _parse_classification(key: str, value: Any) -> str:
    return _one_of(key, value, DATA_CLASSIFICATIONS)


def _parse_positive_int(key: str, value: Any) -> int:
    number = _as_int(key, value)
    if number < 1:
        raise ValueError(f"{_full(key)} = {number}: expected a positive integer")
    return number


def _parse_measurement(key: str, value: Any) -> str:
    text = _as_string(key, value)
    if (problem := measurement_problem(text)) is not None:
        raise ValueError(f"{_full(key)} = {_show(value)}: {problem} (enclave_images/build.sh "
                         "prints the values to pin)")
    return text.lower()


def _parse_optional_measurement(key: str, value: Any) -> str | None:
    # Declared with default "": an unsigned EIF has no PCR8.
    return None if value == "" else _parse_measurement(key, value)


def _parse_artifact_key(key: str, value: Any) -> str | None:
    # Declared with default "": no artifact pinned.
    if value == "":
        return None
    text = _as_string(key, value)
    if not _ARTIFACT_KEY.match(text):
        raise ValueError(f"{_full(key)} = {_show(value)}: an S3 object key under {ARTIFACT_PREFIX} of "
                         "the model bucket, letters, digits and ._-/ (enclave_images/package_agent.py "
                         "prints it)")
    return text


def _parse_sha256(key: str, value: Any) -> str | None:
    if value == "":
        return None
    text = _as_string(key, value).lower()
    if not _SHA256.match(text):
        raise ValueError(f"{_full(key)} = {_show(value)}: a SHA-256, 64 hex digits (sha256sum prints it)")
    return text


def _parse_client_cidrs(key: str, value: Any) -> list[str]:
    cidrs = _as_string_list(key, value)
    for cidr in cidrs:
        try:
            network = ipaddress.IPv4Network(cidr)
        except ValueError:
            network = None
        if network is None or not any(network.subnet_of(block) for block in _VPC_RANGES):
            raise ValueError(f"{_full(key)} = {_show(value)}: {cidr!r} is not a private IPv4 CIDR "
                             f"without host bits ({', '.join(map(str, _VPC_RANGES))})")
    return cidrs


def _parse_domain(key: str, value: Any) -> str:
    text = _as_string(key, value)
    if (problem := domain_problem(text)) is not None:
        raise ValueError(f"{_full(key)} = {_show(value)}: {problem}")
    return text


def _parse_optional_domain_prefix(key: str, value: Any) -> str | None:
    if value == "":
        return None
    text = _as_string(key, value)
    if (problem := domain_prefix_problem(text)) is not None:
        raise ValueError(f"{_full(key)} = {_show(value)}: {problem}")
    return text


def _parse_hosted_zone(key: str, value: Any) -> str | None:
    if value == "":
        return None
    text = _as_string(key, value)
    if not _HOSTED_ZONE_ID.match(text):
        raise ValueError(f"{_full(key)} = {_show(value)}: a Route 53 hosted zone id such as "
                         "Z0123456789ABCDEFGHIJ")
    return text


def _parse_certificate_arn(key: str, value: Any) -> str | None:
    if value == "":
        return None
    text = _as_string(key, value)
    if not re.match(r"^arn:aws(-cn|-us-gov)?:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$", text):
        raise ValueError(f"{_full(key)} = {_show(value)}: an ACM certificate ARN such as "
                         "arn:aws:acm:eu-west-1:111122223333:certificate/<id>")
    return text


def _parse_ca_files(key: str, value: Any) -> list[str]:
    return [_ca_file(f"{_full(key)} = {_show(value)}", path, PROJECT_DIR)
            for path in _as_string_list(key, value)]


def _parse_issuer(key: str, value: Any) -> str | None:
    if value == "":
        return None
    text = _as_string(key, value)
    if not re.match(r"^https://[^\s/]+(/\S*)?$", text):
        raise ValueError(f"{_full(key)} = {_show(value)}: the issuer's https:// URL, exactly as its "
                         "tokens' iss claim")
    return text


_IDENTITY_PROVIDER_ARN = re.compile(
    r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:(saml-provider/[\w.-]{1,128}|oidc-provider/[A-Za-z0-9.-]+(/\S*)?)$")
_SESSION_TAG = re.compile(r"^[\w.:/=+@-]{1,128}$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def _parse_identity_provider(key: str, value: Any) -> str:
    return _one_of(key, value, IDENTITY_PROVIDERS)


def _parse_identity_provider_arn(key: str, value: Any) -> str | None:
    if value == "":
        return None
    text = _as_string(key, value)
    if not _IDENTITY_PROVIDER_ARN.match(text):
        raise ValueError(f"{_full(key)} = {_show(value)}: an IAM identity provider ARN such as "
                         "arn:aws:iam::111122223333:saml-provider/corp or "
                         "arn:aws:iam::111122223333:oidc-provider/login.example.com")
    return text


def _parse_optional_text(key: str, value: Any) -> str | None:
    return None if value == "" else _as_string(key, value)


def _parse_session_tag(key: str, value: Any) -> str:
    text = _as_string(key, value)
    if not _SESSION_TAG.match(text) or text.lower().startswith("aws:"):
        raise ValueError(f"{_full(key)} = {_show(value)}: a session tag key of 1-128 letters, digits "
                         "and _.:/=+-@, not starting with aws:")
    return text


def _parse_source_cidrs(key: str, value: Any) -> list[str]:
    cidrs = _as_string_list(key, value)
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            raise ValueError(f"{_full(key)} = {_show(value)}: {cidr!r} is not a CIDR without host "
                             "bits, e.g. 203.0.113.0/24") from None
    return cidrs


def _parse_model_names(key: str, value: Any) -> list[str]:
    names = _as_string_list(key, value)
    bad = [name for name in names if not _MODEL_NAME.match(name)]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"{_full(key)} = {_show(value)}: distinct model names of 1-128 letters, "
                         "digits and ._- (the `model` value of the weights' encryption context)")
    return names


# The one declaration of every project key (see the module's docstring).
KEYS: dict[str, StackKey] = {
    "layer": StackKey("What this stack deploys: combined (the keys and the workload, one deployer), "
                      "or one layer of a split deployment: keys (the keys and their policies, "
                      "deployed by the key administrators) or workload (everything else, deployed "
                      "by a role without kms:PutKeyPolicy), docs/deploying.md; or organization "
                      "(the guardrail SCPs and RCPs, from the management account, "
                      "docs/guardrails.md).", False,
                      lambda key, value: _one_of(key, value, LAYERS), "combined", allowed=LAYERS,
                      layers=ALL_LAYERS),
    "environment": StackKey("Deployment environment: dev, staging or prod.", True, _parse_environment,
                            allowed=ENVIRONMENTS, layers=ALL_LAYERS),
    "owner": StackKey("Team accountable for the stack; written to every resource's owner tag.", True,
                  _parse_tag_value, layers=ALL_LAYERS),
    "azCount": StackKey("Availability Zones per segment (>= 2, >= 3 in prod, <= what the region has).",
                    False, _parse_az_count, MIN_AZ_COUNT, type="integer"),
    **{
        f"{segment}Cidr": StackKey(f"IPv4 CIDR of the {segment} segment VPC (/16 to /22, private).",
                               True, _parse_cidr)
        for segment in SEGMENT_NAMES
    },
    **{
        f"{segment}DataClassification": StackKey(
            f"data-classification tag of the {segment} segment "
            f"(default {DEFAULT_DATA_CLASSIFICATION[segment]}).",
            False, _parse_classification, DEFAULT_DATA_CLASSIFICATION[segment],
            allowed=DATA_CLASSIFICATIONS)
        for segment in SEGMENT_NAMES
    },
    "egressSegments": StackKey("Segments given internet egress through NAT; every other segment has no "
                           "internet gateway and no default route.", False, _parse_segment_list, [],
                                type="array", allowed=SEGMENT_NAMES),
    "flowLogRetentionDays": StackKey("Retention of VPC flow logs in CloudWatch Logs, in days.", False,
                                 _parse_retention, 365, type="integer",
                                      allowed=tuple(map(str, LOG_RETENTION_DAYS))),
    "keyAdministratorRoleArns": StackKey("Roles that administer (never use) the KMS keys, at least one "
                                     "(e.g. [\"arn:aws:iam::111122223333:role/zero-trust-ai-key-admin"
                                     "\"]); the account root may not: it would let any IAM principal "
                                     "allowed kms:PutKeyPolicy rewrite the model-weights key's policy.",
                                     True, _parse_key_administrators, type="array",
                                     layers=(*KEY_LAYERS, "bootstrap")),
    "breakGlassRoleArn": StackKey("The only role allowed kms:* on the keys (with MFA); default: none.",
                              False, _parse_role_arn, "", layers=KEY_LAYERS),
    "keyInspectorRoleArns": StackKey(
        "Roles that may read every key's state, policy, rotation and tags, and nothing else: the "
        "drift check's (`ztai verify`, docs/drift.md); default: none, and only the key "
        "administrators can read a key's policy.", False, _parse_role_arns, [], type="array",
        layers=KEY_LAYERS),
    "keyReplicaRegions": StackKey("Regions that get a replica of every KMS key (multi-Region keys); "
                              "default: none.", False, parse_regions, [], type="array",
                                   allowed=tuple(sorted(REGION_AZ_COUNT)), layers=ENVIRONMENT_LAYERS),
    "organizationId": StackKey("AWS Organizations id; endpoint policies then admit the organisation "
                           "instead of only this account (required in an organization stack: the "
                           "resource control policies admit its principals).", False, _parse_org_id, "",
                           layers=(*WORKLOAD_LAYERS, "organization")),
    "enclaveInstanceType": StackKey("Inference parent instance type: an enclave parent of "
                                "components/aws_facts.py (Intel/AMD >= 4 vCPUs, Graviton >= 2).",
                                False, _as_string, _DEFAULT_FLEET.instance_type),
    "enclaveCpuCount": StackKey("vCPUs of each enclave: whole cores, leaving the parent one core.",
                            False, _parse_positive_int, _DEFAULT_FLEET.enclave_cpu_count, type="integer"),
    "enclaveMemoryMiB": StackKey("Memory of each enclave in MiB: at least 4 x the EIF size, leaving the "
                             "parent 2 GiB.", False, _parse_positive_int,
                             _DEFAULT_FLEET.enclave_memory_mib, type="integer"),
    "enclaveEifSizeMiB": StackKey("Size of the enclave image file (EIF) in MiB, from its build.", True,
                                   _parse_positive_int, type="integer"),
    "enclaveFleetMinSize": StackKey("Fewest inference parents (>= 2 in prod).", False,
                                _parse_positive_int, _DEFAULT_FLEET.min_size, type="integer"),
    "enclaveFleetMaxSize": StackKey("Most inference parents.", False, _parse_positive_int,
                                _DEFAULT_FLEET.max_size, type="integer"),
    "enclaveFleetDesiredCapacity": StackKey("Inference parents to run (min to max).", False,
                                        _parse_positive_int, _DEFAULT_FLEET.desired_capacity,
                                             type="integer"),
    "enclaveClientCidrs": StackKey("Private CIDRs admitted to the inference load balancer; default: the "
                               "inference VPC.", False, _parse_client_cidrs, [], type="array"),
    **{
        f"enclavePcr{index}": StackKey(f"PCR{index} of the production EIF ({what}): 96 hex digits, "
                                   "never all zero; enclave_images/build.sh prints it.", True,
                                   _parse_measurement, layers=ENVIRONMENT_LAYERS)
        for index, what in ((0, "image"), (1, "kernel and boot ramdisk"), (2, "application"))
    },
    "enclavePcr8": StackKey("PCR8 of a signed EIF (its signing certificate); default: unsigned.", False,
                        _parse_optional_measurement, "", layers=ENVIRONMENT_LAYERS),
    "enclaveEifObjectKey": StackKey("S3 key of the EIF the AMI pipeline bakes in, under artifacts/ of the "
                                "fleet's model bucket; default: none, and then the image has no EIF "
                                "or agent and the enclave cannot start from it.", False,
                                _parse_artifact_key, ""),
    "enclaveEifSha256": StackKey("SHA-256 of that EIF; the image build refuses any other bytes.", False,
                             _parse_sha256, ""),
    "parentAgentObjectKey": StackKey("S3 key of the parent agent package (enclave_images/package_agent.py), "
                                 "under artifacts/ of the fleet's model bucket; default: none.", False,
                                 _parse_artifact_key, ""),
    "parentAgentSha256": StackKey("SHA-256 of that package; the image build refuses any other bytes.", False,
                              _parse_sha256, ""),
    "apiDomainName": StackKey("The inference API's custom domain (lower case), the only way in: mutual "
                          "TLS, JWT on every route.", True, _parse_domain),
    "apiHostedZoneId": StackKey("Public Route 53 zone of apiDomainName: a DNS-validated ACM certificate "
                            "and the alias record are created there. Exactly one of this and "
                            "apiCertificateArn.", False, _parse_hosted_zone, ""),
    "apiCertificateArn": StackKey("An existing ACM certificate for apiDomainName, in the stack's region "
                              "(the DNS record is then yours to write).", False,
                              _parse_certificate_arn, ""),
    "apiOwnershipVerificationCertificateArn": StackKey(
        "With an imported or Private CA apiCertificateArn: a public ACM certificate for the domain, "
        "which API Gateway requires for mutual TLS; default: none.", False, _parse_certificate_arn, ""),
    "apiClientCaFiles": StackKey("PEM files (relative to the project) of the CAs that issue first-party "
                             "client certificates; they go into the truststore.", False,
                             _parse_ca_files, [], type="array"),
    "apiPartnersFile": StackKey("YAML file (relative to the project) listing the partners: name, caFile, "
                            "rateLimit, burstLimit, paths; default: no partners.", False,
                            parse_partners_file, ""),
    "apiJwtIssuer": StackKey("An external OIDC issuer's URL; default: the stack's own Cognito user pool "
                         "issues the tokens.", False, _parse_issuer, ""),
    "apiJwtAudiences": StackKey("Audiences (aud or client_id) accepted from apiJwtIssuer; required with it.",
                            False, _as_string_list, [], type="array"),
    "apiRateLimit": StackKey("Default requests per second of every route of the API.", False,
                         _parse_rate, 50, type="integer"),
    "apiBurstLimit": StackKey("Default burst of every route of the API.", False, _parse_burst, 100,
                              type="integer"),
    "apiAuthDomainPrefix": StackKey("Prefix of the Cognito token endpoint's domain "
                                "(<prefix>.auth.<region>.amazoncognito.com), unique in the region "
                                "across every AWS account, used as given; default: apiDomainName "
                                "with dots as dashes plus a suffix unique to the account, region "
                                "and stack.", False,
                                _parse_optional_domain_prefix, ""),
    "apiAccessLogRetentionDays": StackKey("Retention of the API's access logs in CloudWatch Logs, in days.",
                                      False, _parse_retention, 365, type="integer",
                                           allowed=tuple(map(str, LOG_RETENTION_DAYS))),
    "reserveFunctionConcurrency": StackKey(
        "Reserve concurrency 1 for the key rotation and image rollout functions, so two runs never "
        "race. Lambda reserves only what leaves 100 unreserved: in an account with a lower "
        "concurrency quota (new accounts: 10) set false until the quota is raised.",
        False, _as_bool, True, type="boolean", layers=ENVIRONMENT_LAYERS),
    "identityProvider": StackKey(
        "Where the human roles' people sign in: identity-center (default: AWS recommends IAM "
        "Identity Center for workforce access, with users, MFA and session tags in one place), "
        "saml or oidc (an IAM identity provider, identityProviderArn).",
        False, _parse_identity_provider, "identity-center", allowed=IDENTITY_PROVIDERS, layers=KEY_LAYERS),
    "identityProviderArn": StackKey("The IAM SAML or OIDC identity provider the human roles trust "
                                    "(saml, oidc); empty with identity-center.",
                                    False, _parse_identity_provider_arn, "", layers=KEY_LAYERS),
    "identityProviderAudience": StackKey("The OIDC client id the IdP's tokens carry as aud (oidc "
                                         "only).", False, _parse_optional_text, "", layers=KEY_LAYERS),
    "mfaSessionTag": StackKey("Session tag the IdP sets to \"true\" when the person signed in with "
                              "MFA; every human role requires it (or aws:MultiFactorAuthPresent).",
                              False, _parse_session_tag, "mfa-authenticated", layers=KEY_LAYERS),
    "deviceComplianceTag": StackKey("Session tag the IdP sets to \"true\" for a managed, compliant "
                                    "device; every human role except break-glass requires it.",
                                    False, _parse_session_tag, "device-compliant", layers=KEY_LAYERS),
    "userNameSessionTag": StackKey(
        "Session tag Identity Center sets to the person's user name (an attribute for access "
        "control); with identity-center, a human role's session name and source identity must "
        "equal it, so a person is told apart by what the IdP asserts, not by a name they choose.",
        False, _parse_session_tag, "ztai-user", layers=KEY_LAYERS),
    "humanSourceCidrs": StackKey("Corporate ranges the human roles may be used from (aws:SourceIp, "
                                 "AWS services acting for them excepted); default: only through "
                                 "the management segment's VPC endpoints.",
                                 False, _parse_source_cidrs, [], type="array", layers=KEY_LAYERS),
    "publishedModels": StackKey("Model names the model publisher may encrypt weights for (the "
                                "`model` encryption context value); default: none.",
                                False, _parse_model_names, [], type="array", layers=KEY_LAYERS),
    "jitCatalogueFile": StackKey(
        "YAML file (relative to the project) listing the just-in-time elevations: name, "
        "description, grant, prefix, key, maxMinutes, approvers, approvalsNeeded (docs/jit.md); "
        "default: none, no elevation can be requested. The key layer creates the elevations' roles "
        "and the JIT API; the workload grants what they touch of its resources: both stacks name "
        "the same file.", False, parse_catalogue_file, "", layers=ENVIRONMENT_LAYERS),
    "auditRetentionDays": StackKey(
        "Days every audit-trail log file is kept under S3 Object Lock in compliance mode: nobody, the "
        "account root included, can delete it or shorten that (docs/audit-trail.md). At least 365 in "
        "prod; a dev stack may keep 1, or its archive outlives it for a year.", False,
        _parse_audit_retention, 365, type="integer", layers=KEY_LAYERS),
    "twoPersonKeys": StackKey(
        "Keys whose policy, alias, disabling and deletion only an approved key-admin elevation "
        "(two approvers, jitCatalogueFile) may change; the deployer and break-glass are denied "
        "them. Each needs a key-admin elevation for it. [] is a relaxation the policy pack "
        "reports.", False, _parse_two_person_keys, ["model-weights", "audit"], type="array",
        allowed=KEY_PURPOSES, layers=ENVIRONMENT_LAYERS),
    "keyLayerStack": StackKey(
        "The key layer's stack, <organization>/<project>/<stack> (e.g. "
        "organization/zero-trust-ai/prod-keys): a workload stack reads its key ARNs from it.",
        True, _parse_stack_reference, layers=("workload",)),
    "workloadDeployerRoleArns": StackKey(
        "Roles that deploy this environment's workload stack: the keys admit them to create the "
        "tables, schedules, Image Builder components and truststore object encrypted under them, "
        "and nothing else.", True, _parse_role_arns, type="array", layers=("keys",)),
    "workloadGrantsFile": StackKey(
        "JSON file (relative to the project) of the workload's key grants, its `keyGrants` "
        "output, reviewed into git; default: none, and the keys keep their creation policies "
        "(a first deployment, docs/deploying.md).", False, _parse_grants_file, "", layers=("keys",)),
    # The bootstrap layer's keys (CI identity and Pulumi state backend), declared with their parsers
    # in components/ci_identity.py.
    **{key: replace(spec, layers=("bootstrap",)) for key, spec in CI_KEYS.items()},
}
# The organisation layer's keys, declared by their component (components/guardrails.py).
KEYS.update({key: StackKey(spec.description, False, spec.parse, spec.default, spec.type,
                            layers=("organization",))
             for key, spec in GUARDRAIL_KEYS.items()})
# Who the alarms notify, declared by their component (components/alarm_topics.py).
KEYS.update(ALARM_KEYS)
# The SIEM stream's destination, declared by its component (components/siem_stream.py).
KEYS.update(SIEM_KEYS)


# Other providers' namespaces one edit away from a namespace checked here; left alone.
_OTHER_NAMESPACES = frozenset({"awsx"})
_AWS_CONFIG_GET = re.compile(r"__config__\.get(?:_[a-z]+)?\(['\"]([A-Za-z0-9]+)['\"]")


@functools.cache
def aws_config_keys() -> frozenset[str]:
    """The settings of the aws provider (`aws:<key>`), as pulumi_aws's generated config module
    reads them (`__config__.get('<key>')`), so the list follows the pinned provider version."""
    spec = importlib.util.find_spec("pulumi_aws")
    if spec is None or spec.origin is None:
        raise RuntimeError("pulumi_aws is not installed (requirements.txt pins it)")
    source = Path(spec.origin).parent / "config" / "vars.py"
    return frozenset(_AWS_CONFIG_GET.findall(source.read_text(encoding="utf-8")))


def _edit_distance(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of two neighbours that turn a into b."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]


def _bare(name: str) -> str:
    """A name without case and punctuation."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _namespace_problem(full_key: str) -> str | None:
    """What is wrong with a key's name: an unknown key of this project or of the aws provider,
    or a namespace that is a typo of one of them (its value would be ignored). Keys of other
    namespaces belong to other providers and are left alone."""
    namespace, colon, key = full_key.partition(":")
    if not colon:  # Pulumi qualifies a bare key with the project name; a caller that did not
        hint = f" (did you mean {_full(full_key)}?)" if full_key in KEYS else ""
        return f"{full_key}: no namespace{hint}; write {_full('<key>')} or aws:<key>"
    project = _project_namespace()
    if namespace == project and key not in KEYS:
        close = difflib.get_close_matches(key, list(KEYS), n=1)
        hint = f" (did you mean {_full(close[0])}?)" if close else ""
        return f"{full_key}: unknown key{hint}; known keys are {', '.join(_full(k) for k in KEYS)}"
    if namespace == "aws" and key not in aws_config_keys():
        close = difflib.get_close_matches(key, sorted(aws_config_keys()), n=1)
        hint = f" (did you mean aws:{close[0]}?)" if close else ""
        return (f"{full_key}: not a setting of the aws provider{hint}; its settings are listed at "
                "https://www.pulumi.com/registry/packages/aws/installation-configuration/")
    if namespace in (project, "aws") or namespace in _OTHER_NAMESPACES:
        return None
    if _bare(namespace) == _bare(DEFAULT_PROJECT):  # a renamed fork's stack file not yet renamed
        return (f"{full_key}: unknown namespace {namespace!r} (did you mean {project}:{key}?); the "
                f"project is named {project} in Pulumi.yaml, and its keys are {project}:<key>")
    for known, allowed_edits in ((project, 2), ("aws", 1)):
        # `Zero-Trust-AI`, `zeroTrustAi`: the name up to case and punctuation, more than a typo
        # away, still meant as it.
        if _edit_distance(namespace, known) <= allowed_edits or _bare(namespace) == _bare(known):
            return (f"{full_key}: unknown namespace {namespace!r} (did you mean {known}:{key}?); "
                    f"the value would be ignored")
    return None


def parse_stack_config(raw: Mapping[str, Any], stack_hint: str = "") -> StackConfig:
    """Parse a combined or workload stack's raw config into a `StackConfig` (see
    `parse_layer_config` for every layer)."""
    config = parse_layer_config(raw, stack_hint)
    if not isinstance(config, StackConfig):
        raise StackConfigError(stack_hint, [f"{_full('layer')} = {config.layer!r}: this command "
                                            "needs a combined or workload stack"])
    return config


def _is_schema_default(spec: StackKey, value: Any) -> bool:
    """Whether `value` is Pulumi.yaml's default for the key (the engine passes a list as JSON)."""
    if spec.schema_default is None:
        return False
    if value == spec.schema_default:
        return True
    if spec.type == "array" and isinstance(value, str):
        try:
            return bool(json.loads(value) == spec.schema_default)
        except ValueError:
            return False
    if spec.type in ("integer", "boolean") and isinstance(value, str):  # the engine passes text
        return value.strip().lower() == json.dumps(spec.schema_default)
    return False


def parse_layer_config(raw: Mapping[str, Any],
                       stack_hint: str = "") -> LayerConfig:
    """Parse raw Pulumi config (`namespace:key` → value) into the configuration of the stack's
    layer: a `StackConfig` (combined, workload) or a `KeyLayerConfig` (keys).

    Raises `StackConfigError` listing every problem; nothing else escapes for bad input.
    """
    problems = _Problems()
    values: dict[str, Any] = {}

    for full_key in sorted(raw):
        if (problem := _namespace_problem(full_key)) is not None:
            problems.add(problem)

    try:
        layer = KEYS["layer"].parse("layer", raw.get(_full("layer"), KEYS["layer"].default))
    except ValueError as error:
        raise StackConfigError(stack_hint, [*problems.items, str(error)]) from None
    for key, spec in KEYS.items():
        # Pulumi gives a stack Pulumi.yaml's default for a key it does not set: that is not a value.
        given = _full(key) in raw and not _is_schema_default(spec, raw[_full(key)])
        if layer not in spec.layers:
            if given:
                article = "an" if layer[0] in "aeiou" else "a"
                problems.add(f"{_full(key)}: not read by {article} {layer} stack (it belongs to "
                             f"{' and '.join(spec.layers)} stacks); remove it")
            values[key] = None
            continue
        if not given:
            if spec.required:
                problems.add(f"{_full(key)}: missing; required{spec.required_in()} ({spec.description})")
            values[key] = spec.parse(key, spec.default) if spec.default is not None else None
            continue
        try:
            values[key] = spec.parse(key, raw[_full(key)])
        except ValueError as error:
            problems.add(str(error))
            values[key] = None

    region = raw.get("aws:region")
    if "aws:region" in raw and not isinstance(region, str):
        problems.add(f"aws:region = {_show(region)}: a region name such as eu-west-1")
    elif not isinstance(region, str) or not region:
        problems.add("aws:region: missing; set it with `pulumi config set aws:region us-east-1`")
    elif region not in REGION_AZ_COUNT:
        problems.add(f"aws:region = {_show(region)}: not in the Availability Zone table of "
                     f"components/aws_facts.py; known regions are {', '.join(sorted(REGION_AZ_COUNT))}")

    az_count = values.get("azCount")
    if isinstance(az_count, int) and isinstance(region, str) and region in REGION_AZ_COUNT:
        floor = MIN_PROD_AZ_COUNT if values.get("environment") == "prod" else MIN_AZ_COUNT
        ceiling = REGION_AZ_COUNT[region]
        if not floor <= az_count <= ceiling:
            why = "prod needs at least 3" if values.get("environment") == "prod" else "at least 2"
            problems.add(f"{_full('azCount')} = {az_count}: allowed {floor} to {ceiling} "
                         f"({why}; {region} has {ceiling} usable zones)")

    replicas = values.get("keyReplicaRegions") or []
    if isinstance(region, str) and region in replicas:
        problems.add(f"{_full('keyReplicaRegions')} = {json.dumps(replicas)}: must not include "
                     f"the stack's own region {region}")
    if isinstance(region, str) and region in REGION_AZ_COUNT:
        # KMS replicates a multi-Region key only within its partition.
        foreign = [r for r in replicas if partition_for_region(r) != partition_for_region(region)]
        if foreign:
            problems.add(f"{_full('keyReplicaRegions')} = {json.dumps(replicas)}: "
                         f"{', '.join(foreign)} is in another partition than {region} "
                         f"({partition_for_region(region)}); KMS replicates keys only within one")

    if isinstance(region, str) and region in REGION_AZ_COUNT:
        problems.items += _partition_problems(values, partition_for_region(region), region)

    reference, environment = values.get("keyLayerStack"), values.get("environment")
    if isinstance(reference, str) and isinstance(environment, str):
        # A workload reads its keys from its own environment's key layer of this project: another
        # environment's keys, another project's or its own outputs would vouch for any key.
        _, project, stack = reference.split("/")
        if (project, stack) != (_project_namespace(), f"{environment}-keys"):
            problems.add(f"{_full('keyLayerStack')} = {reference!r}: a {environment} workload reads its "
                         f"keys from <organization>/{_project_namespace()}/{environment}-keys, its own "
                         "environment's key layer of this project")
    # None: refused by its parser already (or not read by this layer).
    if values.get("alarmSubscriptions") is not None:
        problems.items += subscription_problems(values.get("environment"), values["alarmSubscriptions"])
    if layer == "keys":
        return _key_layer_config(values, str(region), problems, stack_hint)
    if layer == "bootstrap":
        ci, found = ci_settings(values, str(values.get("environment")),
                                given={key for key in CI_KEYS if _full(key) in raw})
        problems.items += found
        if problems.items or ci is None:
            raise StackConfigError(stack_hint, problems.items)
        return BootstrapConfig(environment=values["environment"], owner=values["owner"],
                               region=str(region), ci=ci,
                               key_administrator_role_arns=tuple(values["keyAdministratorRoleArns"]))
    if layer == "organization":
        try:
            guardrails = parse_guardrail_settings(raw)
        except GuardrailSettingsError as error:
            problems.items += error.problems
        if problems.items:
            raise StackConfigError(stack_hint, problems.items)
        return OrganizationConfig(environment=values["environment"], owner=values["owner"],
                                  region=str(region), guardrails=guardrails)

    cidrs = {segment: values.get(f"{segment}Cidr") for segment in SEGMENT_NAMES}
    checked: list[tuple[str, ipaddress.IPv4Network]] = []
    for segment, cidr in cidrs.items():
        if not isinstance(cidr, ipaddress.IPv4Network):
            continue
        for other, other_cidr in checked:
            if cidr.overlaps(other_cidr):
                problems.add(f"{_full(segment + 'Cidr')} = {str(cidr)!r} overlaps "
                             f"{_full(other + 'Cidr')} = {str(other_cidr)!r}; segment CIDRs must "
                             "not overlap (they will be routed to each other through inspection)")
        checked.append((segment, cidr))

    fleet = _fleet_settings(values, problems)

    artifacts = [values.get(key) for key in _ARTIFACT_KEYS]
    if any(artifacts) and not all(artifacts):
        missing = [_full(key) for key, value in zip(_ARTIFACT_KEYS, artifacts, strict=True)
                   if not value and raw.get(_full(key), "") == ""]
        if missing:  # a key given with a bad value is reported by its parser already
            problems.add(f"{', '.join(missing)}: missing; the AMI pipeline bakes the EIF and the "
                         f"parent agent only with all of {', '.join(map(_full, _ARTIFACT_KEYS))}")

    api = _api_settings(values, problems)
    # A workload stack's human roles are its key layer's (compose_identity in __main__.py).
    human_access = (HumanAccessSettings() if layer == "workload"
                    else _human_access_settings(values, problems))
    problems.items += _key_administration_problems(values, region)

    if problems.items or fleet is None or api is None or human_access is None:
        raise StackConfigError(stack_hint, problems.items)

    egress = set(values["egressSegments"])
    segments = tuple(
        Segment(
            name=segment,
            cidr=str(cidrs[segment]),
            egress=segment in egress,
            data_classification=values[f"{segment}DataClassification"],
        )
        for segment in SEGMENT_NAMES
    )
    return StackConfig(
        environment=values["environment"],
        owner=values["owner"],
        region=str(region),
        az_count=values["azCount"],
        segments=segments,
        flow_log_retention_days=values["flowLogRetentionDays"],
        organization_id=values["organizationId"],
        key_administrator_role_arns=tuple(values["keyAdministratorRoleArns"] or ()),
        break_glass_role_arn=values["breakGlassRoleArn"],
        key_replica_regions=tuple(values["keyReplicaRegions"]),
        key_inspector_role_arns=tuple(values["keyInspectorRoleArns"] or ()),
        enclave_measurements=EnclaveMeasurements(
            pcr0=values["enclavePcr0"], pcr1=values["enclavePcr1"], pcr2=values["enclavePcr2"],
            pcr8=values["enclavePcr8"]),
        enclave_fleet=fleet,
        enclave_client_cidrs=tuple(values["enclaveClientCidrs"]),
        enclave_artifacts=EnclaveArtifacts(
            eif_key=values["enclaveEifObjectKey"], eif_sha256=values["enclaveEifSha256"],
            agent_key=values["parentAgentObjectKey"], agent_sha256=values["parentAgentSha256"],
        ) if all(artifacts) else None,
        api=api,
        reserve_function_concurrency=values["reserveFunctionConcurrency"],
        human_access=human_access,
        jit_elevations=tuple(values["jitCatalogueFile"]),
        two_person_keys=tuple(values["twoPersonKeys"]),
        audit_retention_days=values["auditRetentionDays"],
        layer=layer,
        key_layer_stack=values["keyLayerStack"],
        alarm_subscriptions=tuple(values["alarmSubscriptions"] or ()),
        siem=values["siem"],
    )


def _key_layer_config(values: Mapping[str, Any], region: str, problems: _Problems,
                      stack_hint: str) -> KeyLayerConfig:
    """A key layer's configuration, once each key parsed: its grants file checked against it."""
    measurements = None
    if all(values.get(f"enclavePcr{i}") for i in (0, 1, 2)):
        measurements = EnclaveMeasurements(pcr0=values["enclavePcr0"], pcr1=values["enclavePcr1"],
                                           pcr2=values["enclavePcr2"], pcr8=values["enclavePcr8"])
    grants = values.get("workloadGrantsFile")
    administrators = values.get("keyAdministratorRoleArns") or []
    deployers = values.get("workloadDeployerRoleArns") or []
    if grants is not None and measurements is not None and isinstance(values.get("environment"), str):
        accounts = {arn.split(":")[4] for arn in administrators}
        problems.items += [f"{_full('workloadGrantsFile')}: {problem}" for problem in ledger_problems(
            grants.grants, environment=values["environment"], ledger_environment=grants.environment,
            accounts=accounts, measurements=measurements.pcrs())]
    problems.items += _key_administration_problems(values, region)
    overlap = sorted(set(administrators) & set(deployers))
    if overlap:
        problems.add(f"{_full('workloadDeployerRoleArns')} names {', '.join(overlap)}, a key "
                     f"administrator (keyAdministratorRoleArns): the workload's deployer must not "
                     "administer the keys, or one role would hold both layers")
    human_access = _human_access_settings(values, problems)
    if problems.items or measurements is None or human_access is None:
        raise StackConfigError(stack_hint, problems.items)
    return KeyLayerConfig(
        environment=values["environment"], owner=values["owner"], region=region,
        key_administrator_role_arns=tuple(administrators),
        break_glass_role_arn=values["breakGlassRoleArn"],
        key_replica_regions=tuple(values["keyReplicaRegions"]),
        enclave_measurements=measurements,
        two_person_keys=tuple(values["twoPersonKeys"]),
        audit_retention_days=values["auditRetentionDays"],
        workload_deployer_role_arns=tuple(deployers),
        key_inspector_role_arns=tuple(values["keyInspectorRoleArns"] or ()),
        workload_grants=grants.grants if grants is not None else (),
        human_access=human_access,
        jit_elevations=tuple(values["jitCatalogueFile"]),
        reserve_function_concurrency=values["reserveFunctionConcurrency"],
        human_source_vpce_ids=grants.source_vpce_ids if grants is not None else (),
        alarm_subscriptions=tuple(values["alarmSubscriptions"] or ()),
        siem=values["siem"],
    )


def _key_administration_problems(values: Mapping[str, Any], region: Any = None) -> list[str]:
    """A two-person key needs a key-admin elevation for it (else nobody could ever change its
    policy), and no standing key administrator may be one of the stack's own human or elevation
    roles (the deployer administers; people do it through an elevation)."""
    # Imported here: components.identity reads this module's HumanAccessSettings.
    from components.identity import ROLES as HUMAN_ROLES

    problems: list[str] = []
    retention = values.get("auditRetentionDays")
    if (values.get("environment") == "prod" and isinstance(retention, int)
            and retention < MIN_PROD_RETENTION_DAYS):
        problems.append(f"{_full('auditRetentionDays')} = {retention}: prod keeps its audit trail at "
                        f"least {MIN_PROD_RETENTION_DAYS} days under Object Lock")
    elevations = values.get("jitCatalogueFile")
    two_person = values.get("twoPersonKeys")
    if isinstance(elevations, list) and isinstance(two_person, list):
        administered = {e.key for e in elevations if e.grant == "key-admin"}
        for purpose in two_person:
            if purpose not in administered:
                problems.append(
                    f"{_full('twoPersonKeys')} names {purpose}, but {_full('jitCatalogueFile')} has no "
                    f"key-admin elevation with `key: {purpose}`: nobody could ever change that key's "
                    "policy; add one (docs/jit.md), or take the key out of twoPersonKeys")
    if isinstance(elevations, list) and elevations and region in FUNCTION_URL_UNSUPPORTED_REGIONS:
        problems.append(f"{_full('jitCatalogueFile')}: the JIT API is a Lambda function URL, which "
                        f"{region} does not offer; deploy in another Region, or leave the catalogue "
                        "empty (no elevation can then be requested)")
    environment = values.get("environment")
    if isinstance(elevations, list) and isinstance(environment, str):
        # Approvals are counted per person, and only the stack's human roles bind a session's name
        # to the person the identity provider asserts (components/identity.py trust_policy): in
        # any other role one person could approve twice under two session names.
        people = [f"zero-trust-ai-{environment}-{role}" for role in HUMAN_ROLES if role != "break-glass"]
        for elevation in elevations:
            strangers = [a for a in elevation.approvers if a not in people]
            if strangers:
                problems.append(
                    f"{_full('jitCatalogueFile')}: elevation {elevation.name} names approver role(s) "
                    f"{', '.join(strangers)}, which are not the stack's human roles; only those bind a "
                    "session to the person the identity provider asserts, so one person could count "
                    f"twice elsewhere. Allowed: {', '.join(people)}")
    administrators = values.get("keyAdministratorRoleArns")
    if isinstance(environment, str) and isinstance(administrators, list):
        ours = re.compile(rf":role/(?:.*/)?zero-trust-ai-{re.escape(environment)}-"
                          rf"(?:jit-.+|{'|'.join(map(re.escape, HUMAN_ROLES))})$")
        for arn in administrators:
            if ours.search(arn):
                problems.append(f"{_full('keyAdministratorRoleArns')}: {arn} is one of the stack's own "
                                "human or elevation roles; name the deploying role: people administer "
                                "keys only through the key-admin elevation")
    return problems


def _human_access_settings(values: Mapping[str, Any], problems: _Problems) -> HumanAccessSettings | None:
    provider, arn = values.get("identityProvider"), values.get("identityProviderArn")
    audience = values.get("identityProviderAudience")
    if provider is None:
        return None  # its parser reported it
    found: list[str] = []
    kind = {"saml": "saml-provider/", "oidc": "oidc-provider/"}.get(provider)
    if kind is None:
        found += [f"{_full(name)}: only with identityProvider saml or oidc; identity-center "
                  "needs none (remove it)" for name, given in
                  (("identityProviderArn", arn), ("identityProviderAudience", audience)) if given]
    else:
        if arn is None:
            found.append(f"{_full('identityProviderArn')}: missing; identityProvider {provider} "
                         f"needs the IAM {kind.rstrip('/')} ARN the human roles trust")
        elif f":{kind}" not in arn:
            found.append(f"{_full('identityProviderArn')} = {arn!r}: identityProvider {provider} "
                         f"needs an IAM {kind.rstrip('/')} ARN")
        if provider == "oidc" and audience is None:
            found.append(f"{_full('identityProviderAudience')}: missing; identityProvider oidc "
                         "needs the client id its tokens carry as aud")
        if provider == "saml" and audience is not None:
            found.append(f"{_full('identityProviderAudience')}: only with identityProvider oidc "
                         "(SAML's audience is AWS's sign-in URL)")
    for message in found:
        problems.add(message)
    parts = [values.get(k) for k in ("mfaSessionTag", "deviceComplianceTag", "userNameSessionTag",
                                     "humanSourceCidrs", "publishedModels")]
    if found or any(part is None for part in parts):
        return None
    tag_keys = ("mfaSessionTag", "deviceComplianceTag", "userNameSessionTag")
    for position, first in enumerate(tag_keys):
        for second in tag_keys[position + 1:]:
            if values[first] == values[second]:
                problems.add(f"{_full(first)} and {_full(second)} are both {values[first]!r}: "
                             "two different session tags")
                return None
    return HumanAccessSettings(
        provider=provider, provider_arn=arn, audience=audience, mfa_tag=values["mfaSessionTag"],
        device_tag=values["deviceComplianceTag"], user_tag=values["userNameSessionTag"],
        source_cidrs=tuple(values["humanSourceCidrs"]),
        published_models=tuple(values["publishedModels"]))


# Keys holding ARNs (one or a list), which must be in the stack region's partition: IAM and ACM
# refuse a principal or certificate of another partition, at deploy time.
_ARN_KEYS = ("keyAdministratorRoleArns", "keyInspectorRoleArns", "workloadDeployerRoleArns",
             "breakGlassRoleArn", "apiCertificateArn",
             "apiOwnershipVerificationCertificateArn", "identityProviderArn")


def _partition_problems(values: Mapping[str, Any], partition: str, region: str) -> list[str]:
    problems = []
    for key in _ARN_KEYS:
        value = values.get(key)
        arns = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        foreign = [arn for arn in arns if arn.split(":")[1] != partition]
        if foreign:
            problems.append(f"{_full(key)}: {', '.join(map(repr, foreign))} is not in the partition "
                            f"of {region} ({partition}); use an ARN starting arn:{partition}:")
    return problems


def _api_settings(values: Mapping[str, Any], problems: _Problems) -> ApiSettings | None:
    """The API's settings, checked as a whole (once each key parsed)."""
    keys = ("apiDomainName", "apiClientCaFiles", "apiPartnersFile", "apiJwtAudiences",
            "apiRateLimit", "apiBurstLimit", "apiAccessLogRetentionDays")
    if any(values.get(key) is None for key in keys):
        return None  # a parser reported it
    zone, certificate = values.get("apiHostedZoneId"), values.get("apiCertificateArn")
    ok = True
    if (zone is None) == (certificate is None):
        ok = False
        problems.add(f"{_full('apiHostedZoneId')}, {_full('apiCertificateArn')}: give exactly one "
                     "(a hosted zone: a DNS-validated certificate is requested there; a certificate "
                     "ARN: an existing certificate)")
    ownership = values.get("apiOwnershipVerificationCertificateArn")
    if ownership is not None and certificate is None:
        ok = False
        problems.add(f"{_full('apiOwnershipVerificationCertificateArn')}: only with "
                     f"{_full('apiCertificateArn')} (the certificate requested in the hosted zone is "
                     "ACM-issued and needs none)")
    issuer, audiences = values.get("apiJwtIssuer"), values["apiJwtAudiences"]
    if (issuer is None) != (not audiences) or any(not a for a in audiences):
        ok = False
        problems.add(f"{_full('apiJwtAudiences')} = {json.dumps(audiences)}: given exactly when "
                     f"{_full('apiJwtIssuer')} is (the external issuer's audiences, none empty); "
                     "the stack's own Cognito pool takes its app clients' ids")
    if not values["apiClientCaFiles"] and not values["apiPartnersFile"]:
        ok = False
        problems.add(f"{_full('apiClientCaFiles')}, {_full('apiPartnersFile')}: at least one CA, "
                     "first-party or a partner's; an empty truststore admits no client")
    if (shared := _shared_ca_names(values["apiClientCaFiles"], values["apiPartnersFile"])):
        ok = False
        problems.add(shared)
    domain = values["apiDomainName"]
    derived = values.get("apiAuthDomainPrefix") is None
    prefix = values.get("apiAuthDomainPrefix") or _default_prefix(domain)
    if derived and issuer is None and (
            problem := domain_prefix_problem(prefix, suffixed=True)) is not None:
        ok = False
        problems.add(f"{_full('apiAuthDomainPrefix')}: the default derived from "
                     f"{_full('apiDomainName')}, {prefix!r}, is refused ({problem}); set one")
    if not ok:
        return None
    return ApiSettings(
        domain_name=domain, hosted_zone_id=zone, certificate_arn=certificate,
        ownership_verification_certificate_arn=ownership,
        client_ca_files=tuple(values["apiClientCaFiles"]), partners=tuple(values["apiPartnersFile"]),
        jwt_issuer=issuer, jwt_audiences=tuple(audiences), rate_limit=values["apiRateLimit"],
        burst_limit=values["apiBurstLimit"], auth_domain_prefix=prefix,
        auth_domain_prefix_derived=derived,
        access_log_retention_days=values["apiAccessLogRetentionDays"])


def _shared_ca_names(client_ca_files: list[str], partners: list[ApiPartner]) -> str | None:
    """Subject names that the CAs of two callers (first-party, each partner) share, or None.
    The enclave tells callers apart by the subject name of the CA that issued their certificate
    (a client certificate's issuer name), so a shared name would let either present the
    other's token."""
    files = [(FIRST_PARTY, path) for path in client_ca_files] + [
        (partner.name, partner.ca_file) for partner in partners if partner.ca_file]
    owners: dict[str, str] = {}
    shared: list[str] = []
    for caller, path in files:
        try:
            names = ca_subject_names(path)
        except ValueError:
            continue  # the file's parser reported it
        for name in names:
            owner = owners.setdefault(name, caller)
            if owner != caller:
                shared.append(f"{owner} and {caller} share the CA subject name {name!r}")
    if not shared:
        return None
    return (f"{_full('apiClientCaFiles')}, {_full('apiPartnersFile')}: {'; '.join(shared)}; "
            "the enclave binds each caller to its CA by subject name, so either could use the "
            "other's token: give each caller (first-party, every partner) its own CA")


def _default_prefix(domain: str) -> str:
    """The domain with dots as dashes, cut so that the unique suffix still fits in 63."""
    return domain.replace(".", "-")[:63 - UNIQUE_SUFFIX_LENGTH].strip("-")


def _fleet_settings(values: Mapping[str, Any], problems: _Problems) -> EnclaveFleetSettings | None:
    """The fleet's sizing, checked against the instance type as a whole (once each key parsed)."""
    keys = [key for names in _FLEET_KEYS.values() for key in names]
    if any(not isinstance(values.get(key), int | str) for key in keys):
        return None
    settings = EnclaveFleetSettings(
        instance_type=values["enclaveInstanceType"], enclave_cpu_count=values["enclaveCpuCount"],
        enclave_memory_mib=values["enclaveMemoryMiB"], eif_size_mib=values["enclaveEifSizeMiB"],
        min_size=values["enclaveFleetMinSize"], max_size=values["enclaveFleetMaxSize"],
        desired_capacity=values["enclaveFleetDesiredCapacity"])
    for field_name, reason in sizing_problems(settings):
        shown = ", ".join(f"{_full(key)} = {values[key]}" for key in _FLEET_KEYS[field_name])
        problems.add(f"{shown}: {reason}")
    if values.get("environment") == "prod" and settings.min_size < MIN_PROD_FLEET_SIZE:
        problems.add(f"{_full('enclaveFleetMinSize')} = {settings.min_size}: prod needs at least "
                     f"{MIN_PROD_FLEET_SIZE} (one instance is no redundancy)")
    return settings


def load_stack_config() -> LayerConfig:
    """Read the running stack's configuration from the Pulumi runtime and parse it."""
    # The keys' namespace is the running project's name (a fork may rename it in Pulumi.yaml).
    use_namespace(pulumi.get_project())
    merged: dict[str, Any] = dict(pulumi.runtime.get_config_env())
    # The language host loads config into this context variable; the public `pulumi.Config`
    # API reads one key at a time and cannot list keys, which unknown-key detection needs.
    merged.update(pulumi.runtime.config.CONFIG.get())
    # Older engines spell keys `namespace:config:key`; the program's own form is `namespace:key`.
    raw = {key.replace(":config:", ":", 1): value for key, value in merged.items()}
    config = parse_layer_config(raw, f" for stack {pulumi.get_stack()!r}")
    for placeholder in placeholders(config):
        pulumi.log.warn(f"placeholder still in the stack configuration: {placeholder}")
    if isinstance(config, StackConfig) and not config.reserve_function_concurrency:
        pulumi.log.warn(f"{_full('reserveFunctionConcurrency')} is false: the key rotation and image "
                        "rollout functions run without reserved concurrency, so two runs may overlap "
                        "(see docs/deploying.md); set it back to true once the account's Lambda "
                        "concurrency quota allows it")
    return config


# The shipped stacks' placeholders: a preview passes with them, a deployment would not work.
PLACEHOLDER_ACCOUNT = "111122223333"  # AWS's documentation account
# Account ids the AWS documentation uses in examples: never a real deployment's.
DOCUMENTATION_ACCOUNTS = (PLACEHOLDER_ACCOUNT, "123456789012")
# The labelled placeholder measurements of the shipped stacks (stacks/Pulumi.dev.yaml,
# stacks/Pulumi.prod.yaml): no image measures so; enclave_images/build.sh prints the real ones.
PLACEHOLDER_PCRS = frozenset({
    "34ddc011c9ed6092b3dbf4e4db3ded7f7605c7477c306bde711c05f01d5fada3c293bdaee9a4d27c8112acdfb3552dc9",
    "50f191f12181c74b87866e365fe4a0ef5704253781c015f1e39ca3a4925ec8eea439f4efe29afb531aa743b076c0cac8",
    "f3ca3fb862ce50a848045e15d67e3c54541198472b09159203005d0a6db424533afd661988c641f84d4831c4f5b80588",
    "628d0989f8107e4c1d85386ec093beadfeab25508fbac4b4ca78e3bfeea08c0bc552110473ed1d8d33bfc623bfb135e2",
    "fda3b3a1871480c32e885933385783ec4ee841a162ab134745e84a350ad38d3d949f966e0b82bdf625ed5648bcaa8f8a",
    "3244efa14d2ddf121875a6f33fbf67a36f2285ca6b41870c3412c406c7fc4a8e267c432f16b507684a7319778862a1d5",
})
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")  # reserved for documentation


def _documentation_account(arn: str | None) -> str | None:
    return next((account for account in DOCUMENTATION_ACCOUNTS if f":{account}:" in (arn or "")), None)


def _example_host(host: str) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in _EXAMPLE_DOMAINS)


def _placeholder_subscriptions(subscriptions: tuple[AlarmSubscription, ...]) -> list[str]:
    """Alarm subscriptions at a reserved example domain: they would reach nobody."""
    hosts = [(subscription, subscription.endpoint.rsplit("@", 1)[-1] if subscription.protocol == "email"
              else urlsplit(subscription.endpoint).hostname or "") for subscription in subscriptions]
    examples = [str(subscription) for subscription, host in hosts if _example_host(host.lower())]
    if not examples:
        return []
    return [f"{_full('alarmSubscriptions')} names example endpoints ({', '.join(examples)}): the "
            "alarms would reach nobody"]


def _placeholder_pcrs(measurements: EnclaveMeasurements) -> list[str]:
    pcrs = [f"enclavePcr{index}" for index, value in enumerate(
        (measurements.pcr0, measurements.pcr1, measurements.pcr2)) if value in PLACEHOLDER_PCRS]
    if not pcrs:
        return []
    return [f"{', '.join(map(_full, pcrs))}: the shipped placeholder measurements, not your "
            "EIF's (enclave_images/build.sh prints them); no enclave could decrypt the weights"]


def _siem_placeholders(siem: SiemSettings) -> list[str]:
    """The SIEM stream's destination still the shipped example (docs/siem-stream.md)."""
    found = []
    if siem.url and _example_host(siem.url.split("/")[2].split(":")[0]):
        found.append(f"{_full('siem')}: url={siem.url} (example domains are reserved)")
    if (account := _documentation_account(siem.secret_arn)) is not None:
        found.append(f"{_full('siem')}: secretArn names the documentation account {account}")
    return found


def placeholders(config: LayerConfig) -> list[str]:
    """What in `config` is still one of the shipped placeholders (to be replaced before
    deploying), each saying which key; empty when none is."""
    if isinstance(config, OrganizationConfig):
        found = []
        if config.guardrails.organization_id == "o-exampleorgid":
            found.append(f"{_full('organizationId')} = o-exampleorgid (the shipped placeholder)")
        if any("placeholder" in target for target in config.guardrails.target_ids):
            found.append(f"{_full('guardrailTargetIds')} names placeholder OUs")
        return found
    found = [f"{_full('keyAdministratorRoleArns')} names the documentation account {account}"
             for account in [_documentation_account(arn) for arn in config.key_administrator_role_arns]
             if account][:1]
    if isinstance(config, BootstrapConfig):
        if config.ci.repository.startswith("example-org/"):
            found.append(f"{_full('ciRepository')} = {config.ci.repository} (the shipped placeholder)")
        return found
    if (account := _documentation_account(config.break_glass_role_arn)) is not None:
        found.append(f"{_full('breakGlassRoleArn')} names the documentation account {account}")
    if isinstance(config, KeyLayerConfig):
        found += [f"{_full('workloadDeployerRoleArns')} names the documentation account {account}"
                  for account in [_documentation_account(arn) for arn in config.workload_deployer_role_arns]
                  if account][:1]
        return found + _placeholder_subscriptions(config.alarm_subscriptions) + \
            _placeholder_pcrs(config.enclave_measurements) + \
            _siem_placeholders(config.siem)
    found += _placeholder_subscriptions(config.alarm_subscriptions)
    api = config.api
    if _example_host(api.domain_name):
        found.append(f"{_full('apiDomainName')} = {api.domain_name} (example.com is reserved)")
    if api.hosted_zone_id is not None and "PLACEHOLDER" in api.hosted_zone_id:
        found.append(f"{_full('apiHostedZoneId')} = {api.hosted_zone_id}")
    for key, arn in (("apiCertificateArn", api.certificate_arn),
                     ("apiOwnershipVerificationCertificateArn", api.ownership_verification_certificate_arn)):
        if (account := _documentation_account(arn)) is not None:
            found.append(f"{_full(key)} names the documentation account {account}")
    if api.jwt_issuer is not None and _example_host(api.jwt_issuer.split("/")[2]):
        found.append(f"{_full('apiJwtIssuer')} = {api.jwt_issuer} (example domains are reserved)")
    found += _placeholder_pcrs(config.enclave_measurements)
    files = [*api.client_ca_files, *(p.ca_file for p in api.partners if p.ca_file)]
    # Told by content, as the truststore checks tell them, so a renamed copy is still named.
    found += [f"CA file {Path(f).name} holds a shipped placeholder CA (its key was discarded: that "
              "certificate admits no one)" for f in files if _holds_placeholder_ca(f)]
    return found + _siem_placeholders(config.siem)


def _holds_placeholder_ca(path: str) -> bool:
    """A CA file holding one of the shipped placeholder CAs (their keys were discarded)."""
    try:
        certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError):
        return False  # parsing reported the file already; an unreadable file is not a placeholder
    return any(is_placeholder(certificate) for certificate in certificates)
