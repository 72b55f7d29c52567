"""The stack configuration parser: good files parse, every kind of bad input is named clearly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from components.config_values import namespace_of
from components.stack_config import (
    ALL_LAYERS,
    KEYS,
    PLACEHOLDER_PCRS,
    OrganizationConfig,
    StackConfigError,
    aws_config_keys,
    parse_layer_config,
    parse_stack_config,
    placeholders,
)
from components.truststore import create_test_ca
from tests.conftest import ROOT
from ztai.stackfile import load_stack

VALID: dict[str, Any] = {
    "aws:region": "eu-west-1",
    "zero-trust-ai:environment": "dev",
    "zero-trust-ai:owner": "ml-platform",
    "zero-trust-ai:azCount": "2",
    "zero-trust-ai:dataCidr": "10.10.0.0/16",
    "zero-trust-ai:trainingCidr": "10.11.0.0/16",
    "zero-trust-ai:inferenceCidr": "10.12.0.0/16",
    "zero-trust-ai:managementCidr": "10.13.0.0/16",
    "zero-trust-ai:enclaveEifSizeMiB": "600",
    "zero-trust-ai:enclavePcr0": "a1" * 48,
    "zero-trust-ai:enclavePcr1": "b2" * 48,
    "zero-trust-ai:enclavePcr2": "c3" * 48,
    "zero-trust-ai:keyAdministratorRoleArns": '["arn:aws:iam::111122223333:role/kms-admin"]',
    "zero-trust-ai:apiDomainName": "api.dev.example.com",
    "zero-trust-ai:apiHostedZoneId": "Z0123456789ABCDEFGHIJ",
    "zero-trust-ai:apiClientCaFiles": '["stacks/truststore/placeholder-first-party-ca.pem"]',
    # The model-weights key is a two-person key by default: it needs a key-admin elevation.
    "zero-trust-ai:jitCatalogueFile": "stacks/jit/dev.yaml",
}


# A prod stack holding the alarm topics needs someone on the critical one.
PROD_ALARMS = ["critical:email:security-oncall@example.com"]


def problems_of(**changes: Any) -> list[str]:
    raw = {**VALID, **{key.replace("__", ":"): value for key, value in changes.items()}}
    raw = {key: value for key, value in raw.items() if value is not None}
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config(raw)
    return caught.value.problems


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_parse(stack: str) -> None:
    config = parse_stack_config(load_stack(ROOT, stack).config)
    assert config.environment == stack
    assert config.az_count == (3 if stack == "prod" else 2)
    assert [s.name for s in config.segments] == ["data", "training", "inference", "management"]
    assert {s.name for s in config.segments if s.egress} == {"management"}


def test_defaults_are_the_secure_ones() -> None:
    config = parse_stack_config(VALID)
    assert not any(segment.egress for segment in config.segments)
    assert config.flow_log_retention_days == 365
    assert config.organization_id is None
    assert {s.name: s.data_classification for s in config.segments}["data"] == "restricted"


def test_error_is_a_run_error_so_pulumi_prints_no_traceback() -> None:
    assert issubclass(StackConfigError, pulumi.RunError)


def test_prefix_33_is_refused_showing_the_value() -> None:
    [problem] = problems_of(**{"zero-trust-ai__dataCidr": "10.10.0.0/33"})
    assert "zero-trust-ai:dataCidr" in problem and "10.10.0.0/33" in problem
    assert "not an IPv4 CIDR" in problem


@pytest.mark.parametrize("value, expected", [
    ("10.10.0.1/16", "host bits are set; the network address is 10.10.0.0/16"),
    ("10.0.0.0/8", "prefix length must be /16 to /22"),
    ("10.10.0.0/24", "prefix length must be /16 to /22"),
    ("8.8.0.0/16", "use a private range"),
    ("127.0.0.0/16", "use a private range"),
    ("169.254.0.0/16", "use a private range"),
    ("banana", "not an IPv4 CIDR"),
])
def test_bad_cidrs(value: str, expected: str) -> None:
    [problem] = problems_of(**{"zero-trust-ai__trainingCidr": value})
    assert expected in problem and value in problem


def test_shared_address_space_is_allowed() -> None:
    config = parse_stack_config({**VALID, "zero-trust-ai:dataCidr": "100.64.0.0/16"})
    assert config.segments[0].cidr == "100.64.0.0/16"


def test_overlapping_segments_are_refused() -> None:
    [problem] = problems_of(**{"zero-trust-ai__inferenceCidr": "10.10.128.0/17"})
    assert "zero-trust-ai:inferenceCidr" in problem and "overlaps zero-trust-ai:dataCidr" in problem


@pytest.mark.parametrize("region, count, expected", [
    ("eu-west-1", "4", "allowed 2 to 3"),
    ("us-west-1", "3", "allowed 2 to 2"),
    ("eu-west-1", "1", "allowed 2 to 3"),
])
def test_az_count_outside_what_the_region_has(region: str, count: str, expected: str) -> None:
    [problem] = problems_of(**{"aws__region": region, "zero-trust-ai__azCount": count})
    assert expected in problem and f"= {count}" in problem


def test_prod_needs_three_zones() -> None:
    [problem] = problems_of(**{"zero-trust-ai__environment": "prod",
                               "zero-trust-ai__jitCatalogueFile": "stacks/jit/prod.yaml",
                               "zero-trust-ai__alarmSubscriptions": PROD_ALARMS})
    assert "allowed 3 to 3" in problem and "prod needs at least 3" in problem


def test_unknown_region() -> None:
    [problem] = problems_of(aws__region="mars-north-1")
    assert "'mars-north-1'" in problem and "known regions are" in problem


def test_unknown_key_suggests_the_close_one() -> None:
    [problem] = problems_of(**{"zero-trust-ai__azCuont": "2"})
    assert "zero-trust-ai:azCuont: unknown key (did you mean zero-trust-ai:azCount?)" in problem


def test_missing_required_keys_are_each_named() -> None:
    problems = problems_of(**{"zero-trust-ai__owner": None, "zero-trust-ai__dataCidr": None})
    assert any(p.startswith("zero-trust-ai:owner: missing") for p in problems)
    assert any(p.startswith("zero-trust-ai:dataCidr: missing") for p in problems)


@pytest.mark.parametrize("key, value, expected", [
    ("azCount", "two", "expected an integer"),
    ("azCount", "true", "expected an integer"),
    ("egressSegments", "management", "expected a list of strings"),
    ("egressSegments", '["management", "internet"]', "unknown segment(s) internet"),
    ("environment", "qa", "allowed values are dev, staging, prod"),
    ("flowLogRetentionDays", "100", "CloudWatch Logs accepts only"),
    ("organizationId", "my-org", "an AWS Organizations id looks like"),
    ("dataDataClassification", "secret", "allowed values are public, internal"),
    ("owner", "ml platform; drop table", "becomes a tag value"),
    ("breakGlassRoleArn", "arn:aws:iam::111122223333:user/alice", "is not an IAM role ARN"),
    ("keyAdministratorRoleArns", '["kms-admin"]', "is not an IAM role ARN"),
    ("keyReplicaRegions", '["mars-1"]', "expected distinct regions"),
    ("keyReplicaRegions", '["eu-west-1"]', "must not include the stack's own region"),
    ("reserveFunctionConcurrency", "yes", "expected true or false"),
    ("reserveFunctionConcurrency", "1", "expected true or false"),
    ("egressSegments", '["management", "management"]', "'management' listed twice; each item once"),
    ("enclaveClientCidrs", '["10.13.0.0/16", "10.13.0.0/16"]', "'10.13.0.0/16' listed twice"),
    ("apiJwtAudiences", '["a", "a"]', "'a' listed twice"),
])
def test_wrong_types_and_values(key: str, value: str, expected: str) -> None:
    [problem] = problems_of(**{f"zero-trust-ai__{key}": value})
    assert f"zero-trust-ai:{key}" in problem and expected in problem


def test_all_problems_come_in_one_message() -> None:
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config({**VALID, "zero-trust-ai:azCount": "x", "zero-trust-ai:dataCidr": "1/33"})
    message = str(caught.value)
    assert message.startswith("invalid stack configuration:")
    assert "zero-trust-ai:azCount" in message and "zero-trust-ai:dataCidr" in message


def test_key_roles_are_parsed() -> None:
    config = parse_stack_config({
        **VALID, "zero-trust-ai:breakGlassRoleArn": "arn:aws:iam::111122223333:role/break-glass",
        "zero-trust-ai:keyAdministratorRoleArns": '["arn:aws:iam::111122223333:role/ops/kms-admin"]'})
    assert config.break_glass_role_arn == "arn:aws:iam::111122223333:role/break-glass"
    assert config.key_administrator_role_arns == ("arn:aws:iam::111122223333:role/ops/kms-admin",)
    assert parse_stack_config(VALID).break_glass_role_arn is None


@pytest.mark.parametrize("environment", ["dev", "prod"])
@pytest.mark.parametrize("value", [None, "[]", []])
def test_key_administrators_are_required_in_every_environment(environment: str, value: Any) -> None:
    # Without named roles the account root administers the model-weights key (kms:PutKeyPolicy).
    changes = {"zero-trust-ai__environment": environment,
               "zero-trust-ai__keyAdministratorRoleArns": value}
    if environment == "prod":
        changes["zero-trust-ai__azCount"] = "3"
    [problem] = [p for p in problems_of(**changes) if "keyAdministratorRoleArns" in p]
    assert problem.startswith("zero-trust-ai:keyAdministratorRoleArns")
    assert "at least one" in problem or "name at least one IAM role" in problem
    assert "arn:aws:iam::111122223333:role/zero-trust-ai-key-admin" in problem
    assert "kms:PutKeyPolicy" in problem and "model-weights" in problem


@pytest.mark.parametrize("stack, administrators", [
    ("dev", ("arn:aws:iam::111122223333:role/zero-trust-ai-key-admin",)),
    # Split: the key layer's deployer administers the keys; the workload names no administrator.
    ("prod-keys", ("arn:aws:iam::111122223333:role/zero-trust-ai-prod-deploy-keys",)),
    ("prod", ())])
def test_shipped_stacks_name_key_administrator_roles(stack: str, administrators: tuple[str, ...]) -> None:
    config = parse_layer_config(load_stack(ROOT, stack).config)
    assert not isinstance(config, OrganizationConfig)
    assert config.key_administrator_role_arns == administrators


def test_values_given_as_yaml_types_are_accepted() -> None:
    config = parse_stack_config({**VALID, "zero-trust-ai:azCount": 3,
                                 "zero-trust-ai:egressSegments": ["management"]})
    assert config.az_count == 3
    assert [s.name for s in config.segments if s.egress] == ["management"]


def test_function_concurrency_is_reserved_unless_the_stack_says_false() -> None:
    assert parse_stack_config(VALID).reserve_function_concurrency is True
    for value in ("false", " False ", False):
        config = parse_stack_config({**VALID, "zero-trust-ai:reserveFunctionConcurrency": value})
        assert config.reserve_function_concurrency is False
    config = parse_stack_config({**VALID, "zero-trust-ai:reserveFunctionConcurrency": "true"})
    assert config.reserve_function_concurrency is True


def test_pulumi_yaml_declares_exactly_the_parsed_keys() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    declared = project["config"]
    assert set(declared) == set(KEYS)
    for key, spec in KEYS.items():
        assert declared[key]["description"] == spec.description
        # A key every stack must set has no default (Pulumi then demands it); one required only in
        # some layers has an empty default, which the parser reads as missing in those layers.
        assert declared[key].get("default") == spec.schema_default, key
        assert ("default" in declared[key]) == (not spec.required or spec.layers != ALL_LAYERS), key


# -- the enclave inference fleet -----------------------------------------------------------------
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_pin_non_zero_measurements_and_a_valid_fleet(stack: str) -> None:
    config = parse_stack_config(load_stack(ROOT, stack).config)
    pcrs = config.enclave_measurements.pcrs()
    assert set(pcrs) == {"PCR0", "PCR1", "PCR2"}  # unsigned until build.sh pins a PCR8
    assert all(len(value) == 96 and set(value) != {"0"} for value in pcrs.values())
    fleet = config.enclave_fleet
    assert fleet.enclave_memory_mib >= 4 * fleet.eif_size_mib
    assert fleet.min_size >= (2 if stack == "prod" else 1)


def test_fleet_defaults_and_measurements_are_parsed() -> None:
    config = parse_stack_config({**VALID, "zero-trust-ai:enclavePcr0": "A1" * 48,
                                 "zero-trust-ai:enclavePcr8": "d4" * 48})
    assert config.enclave_measurements.pcr0 == "a1" * 48  # KMS compares ignoring case; we store lower
    assert config.enclave_measurements.pcr8 == "d4" * 48
    assert parse_stack_config(VALID).enclave_measurements.pcr8 is None
    fleet = parse_stack_config(VALID).enclave_fleet
    assert (fleet.instance_type, fleet.enclave_cpu_count, fleet.enclave_memory_mib) == (
        "m6i.xlarge", 2, 4096)
    assert (fleet.min_size, fleet.desired_capacity, fleet.max_size) == (2, 2, 4)
    assert parse_stack_config(VALID).enclave_client_cidrs == ()


@pytest.mark.parametrize("key, value, expected", [
    ("enclavePcr0", "0" * 96, "all zeros: that is what an enclave started with --debug-mode reports"),
    ("enclavePcr1", "ab" * 47, "94 characters; a PCR is a SHA-384 digest, 96 hex digits"),
    ("enclavePcr2", "zz" * 48, "96 hex digits"),
    ("enclavePcr8", "0" * 96, "all zeros"),
])
def test_bad_measurements_are_refused(key: str, value: str, expected: str) -> None:
    [problem] = problems_of(**{f"zero-trust-ai__{key}": value})
    assert problem.startswith(f"zero-trust-ai:{key} = {value!r}: ") and expected in problem
    assert "enclave_images/build.sh" in problem


def test_missing_measurements_are_each_named() -> None:
    problems = problems_of(**{"zero-trust-ai__enclavePcr0": None, "zero-trust-ai__enclavePcr2": None})
    assert [p.split(":")[1] for p in problems] == ["enclavePcr0", "enclavePcr2"]


@pytest.mark.parametrize("instance_type, expected", [
    ("t3.xlarge", "t3 instances cannot be Nitro Enclaves parents"),
    ("t3a.2xlarge", "t3a instances cannot be Nitro Enclaves parents"),
    ("m6i.large", "2 vCPU; Nitro Enclaves need at least 4 on Intel/AMD"),
    ("m6g.medium", "1 vCPU; Nitro Enclaves need at least 2 on Graviton"),
    ("m6i.metal", "bare metal instances cannot be Nitro Enclaves parents"),
    ("p4d.24xlarge", "not a known enclave parent instance type"),
    ("m6i.huge", "not a known enclave parent instance type"),
])
def test_instance_types_without_enclave_support_are_refused(instance_type: str, expected: str) -> None:
    [problem] = problems_of(**{"zero-trust-ai__enclaveInstanceType": instance_type})
    assert problem.startswith(f"zero-trust-ai:enclaveInstanceType = {instance_type}: ")
    assert expected in problem and "families c5, c5a" in problem and "xlarge and up" in problem


def test_graviton_parents_need_two_vcpus_and_no_even_count() -> None:
    config = parse_stack_config({**VALID, "zero-trust-ai:enclaveInstanceType": "m6g.large",
                                 "zero-trust-ai:enclaveCpuCount": "1",
                                 "zero-trust-ai:enclaveMemoryMiB": "4096"})
    assert config.enclave_fleet.instance_type == "m6g.large"


@pytest.mark.parametrize("changes, key, expected", [
    ({"enclaveInstanceType": "m6i.2xlarge", "enclaveCpuCount": "3"}, "enclaveCpuCount = 3",
     "must be a multiple of 2: m6i.2xlarge runs 2 threads per core"),
    ({"enclaveCpuCount": "4"}, "enclaveCpuCount = 4", "at most 2 on m6i.xlarge (4 vCPUs"),
    ({"enclaveInstanceType": "m6g.large", "enclaveCpuCount": "2"}, "enclaveCpuCount = 2",
     "at most 1 on m6g.large"),
    ({"enclaveMemoryMiB": "2048"}, "enclaveMemoryMiB = 2048", "at least 2400 MiB: 4 x the EIF's 600"),
    ({"enclaveMemoryMiB": "15000"}, "enclaveMemoryMiB = 15000",
     "at most 14336 MiB on m6i.xlarge (16384 MiB; the parent keeps 2048)"),
    ({"enclaveFleetMinSize": "3"}, "enclaveFleetMinSize = 3, zero-trust-ai:enclaveFleetDesiredCapacity"
     " = 2, zero-trust-ai:enclaveFleetMaxSize = 4", "need 1 <= min (3) <= desired (2)"),
])
def test_enclave_sizing_is_checked_against_the_instance(changes: dict[str, str], key: str,
                                                       expected: str) -> None:
    [problem] = problems_of(**{f"zero-trust-ai__{k}": v for k, v in changes.items()})
    assert problem.startswith(f"zero-trust-ai:{key}: ") and expected in problem, problem


@pytest.mark.parametrize("key, value, expected", [
    ("enclaveCpuCount", "0", "expected a positive integer"),
    ("enclaveEifSizeMiB", "big", "expected an integer"),
    ("enclaveClientCidrs", '["0.0.0.0/0"]', "'0.0.0.0/0' is not a private IPv4 CIDR"),
    ("enclaveClientCidrs", '["10.12.0.1/16"]', "is not a private IPv4 CIDR without host bits"),
])
def test_bad_fleet_values(key: str, value: str, expected: str) -> None:
    [problem] = problems_of(**{f"zero-trust-ai__{key}": value})
    assert problem.startswith(f"zero-trust-ai:{key} = ") and expected in problem


def test_prod_fleet_needs_two_instances() -> None:
    problems = problems_of(**{"zero-trust-ai__environment": "prod", "zero-trust-ai__azCount": "3",
                              "zero-trust-ai__enclaveFleetMinSize": "1",
                              "zero-trust-ai__jitCatalogueFile": "stacks/jit/prod.yaml",
                              "zero-trust-ai__alarmSubscriptions": PROD_ALARMS})
    assert problems == ["zero-trust-ai:enclaveFleetMinSize = 1: prod needs at least 2 (one "
                        "instance is no redundancy)"]


def test_client_cidrs_are_parsed() -> None:
    config = parse_stack_config({**VALID, "zero-trust-ai:enclaveClientCidrs": '["10.13.0.0/16"]'})
    assert config.enclave_client_cidrs == ("10.13.0.0/16",)


# -- the artifacts the AMI pipeline bakes in ---------------------------------------------------------
ARTIFACTS = {
    "zero-trust-ai:enclaveEifObjectKey": "artifacts/digits-0123456789abcdef.eif",
    "zero-trust-ai:enclaveEifSha256": "AB" * 32,
    "zero-trust-ai:parentAgentObjectKey": "artifacts/parent-agent-fedcba9876543210.tar.gz",
    "zero-trust-ai:parentAgentSha256": "cd" * 32,
}


def test_pinned_artifacts_are_parsed_and_absent_ones_are_none() -> None:
    assert parse_stack_config(VALID).enclave_artifacts is None
    artifacts = parse_stack_config({**VALID, **ARTIFACTS}).enclave_artifacts
    assert artifacts is not None
    assert (artifacts.eif_key, artifacts.eif_sha256) == ("artifacts/digits-0123456789abcdef.eif", "ab" * 32)
    assert (artifacts.agent_key, artifacts.agent_sha256) == (
        "artifacts/parent-agent-fedcba9876543210.tar.gz", "cd" * 32)
    assert artifacts.problems() == []


def test_artifacts_come_all_four_or_not_at_all() -> None:
    for given in ({"zero-trust-ai:enclaveEifObjectKey", "zero-trust-ai:enclaveEifSha256"},
                  {"zero-trust-ai:parentAgentSha256"}):
        [problem] = problems_of(**{key.replace(":", "__"): value for key, value in ARTIFACTS.items()
                                   if key in given})
        missing = sorted(set(ARTIFACTS) - given)
        assert problem.startswith(", ".join(key for key in ARTIFACTS if key in missing) + ": missing")
    # An empty value is not a pin either.
    [problem] = problems_of(**({key.replace(":", "__"): value for key, value in ARTIFACTS.items()}
                               | {"zero-trust-ai__parentAgentSha256": ""}))
    assert problem.startswith("zero-trust-ai:parentAgentSha256: missing")


@pytest.mark.parametrize("key, value, expected", [
    ("enclaveEifObjectKey", "models/digits.eif", "under artifacts/ of the model bucket"),
    ("parentAgentObjectKey", "artifacts/agent.tar.gz; reboot", "letters, digits and ._-/"),
    ("enclaveEifSha256", "ab" * 31, "a SHA-256, 64 hex digits"),
    ("parentAgentSha256", "zz" * 32, "a SHA-256, 64 hex digits"),
])
def test_bad_artifact_pins_are_refused(key: str, value: str, expected: str) -> None:
    changes = {k.replace(":", "__"): v for k, v in ARTIFACTS.items()} | {f"zero-trust-ai__{key}": value}
    [problem] = problems_of(**changes)
    assert problem.startswith(f"zero-trust-ai:{key} = ") and expected in problem


# -- the inference API ---------------------------------------------------------------------------------
# caFile is relative to the partners file; an absolute path lets the file live in a temp dir.
PARTNER_CA = str(ROOT / "stacks" / "truststore" / "placeholder-partner-ca.pem")


@pytest.fixture
def partners_path(tmp_path: Path) -> Any:
    def make(text: str) -> str:
        path = tmp_path / "partners.yaml"
        path.write_text(text)
        return str(path)

    return make


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_configure_the_api(stack: str) -> None:
    api = parse_stack_config(load_stack(ROOT, stack).config).api
    assert api is not None
    assert api.domain_name.endswith("example.com") and api.hosted_zone_id and not api.certificate_arn
    assert api.jwt_issuer is None  # the stack's own Cognito pool
    [partner] = api.partners
    assert partner.name == "example-partner" and Path(str(partner.ca_file)).is_file()
    assert all(Path(path).is_absolute() and Path(path).is_file() for path in api.client_ca_files)
    assert api.auth_domain_prefix == api.domain_name.replace(".", "-")
    assert api.auth_domain_prefix_derived  # a unique suffix is appended at deploy


def test_a_prefix_set_by_hand_is_used_as_given_and_a_derived_one_leaves_room_for_the_suffix() -> None:
    api = parse_stack_config(VALID | {"zero-trust-ai:apiAuthDomainPrefix": "acme-ml-auth"}).api
    assert api is not None and (api.auth_domain_prefix, api.auth_domain_prefix_derived) == (
        "acme-ml-auth", False)
    long_domain = "a" * 40 + ".inference.example.com"
    api = parse_stack_config(VALID | {"zero-trust-ai:apiDomainName": long_domain}).api
    assert api is not None and len(api.auth_domain_prefix) <= 54


def test_api_defaults() -> None:
    api = parse_stack_config(VALID).api
    assert api is not None
    assert (api.rate_limit, api.burst_limit, api.access_log_retention_days) == (50.0, 100, 365)
    assert api.partners == () and api.jwt_audiences == ()


def test_partners_come_from_their_file(partners_path: Any) -> None:
    path = partners_path(f"partners:\n  - name: acme\n    caFile: {PARTNER_CA}\n    rateLimit: 2.5\n"
                         "    burstLimit: 5\n    paths: [\"GET /v1/models\"]\n")
    api = parse_stack_config({**VALID, "zero-trust-ai:apiPartnersFile": path}).api
    assert api is not None
    [acme] = api.partners
    assert (acme.name, acme.rate_limit, acme.burst_limit, acme.paths) == (
        "acme", 2.5, 5, ("GET /v1/models",))
    assert acme.ca_file == str((ROOT / "stacks" / "truststore" / "placeholder-partner-ca.pem").resolve())


@pytest.mark.parametrize("text, fragment", [
    ("partners: nope\n", "expected a mapping with a `partners:` list"),
    ("partners:\n  - name: acme\n", "missing burstLimit, caFile, rateLimit"),
    (f"partners:\n  - {{name: acme, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 1, tier: gold}}\n",
     "unknown field(s) tier"),
    (f"partners:\n  - {{name: acme, caFile: {PARTNER_CA}, rateLimit: 0, burstLimit: 1}}\n",
     "requests per second, > 0"),
    (f"partners:\n  - {{name: acme, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 9000}}\n",
     "0 to 5000 requests"),
    ("partners:\n  - {name: acme, caFile: missing.pem, rateLimit: 1, burstLimit: 1}\n",
     "caFile: CA file"),
    ("partners: [\n", "cannot read it as YAML"),
    # What the gateway and the Cognito pool would refuse, refused here with the file named.
    (f"partners:\n  - {{name: Example Partner, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 1}}\n",
     "partner 'Example Partner': lower-case letters, digits and -"),
    (f"partners:\n  - {{name: acme, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 1, paths: [GET]}}\n",
     "must be `METHOD /path`"),
    (f"partners:\n  - {{name: acme, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 1, paths: []}}\n",
     "at least one path"),
    (f"partners:\n  - {{name: acme, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 1,"
     f" paths: [FETCH /x]}}\n", "`METHOD /path` (GET, POST"),
    (f"partners:\n  - {{name: acme, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 1,"
     f" paths: [GET /x, GET /x]}}\n", "is listed twice"),
    (f"partners:\n  - {{name: acme, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 1, on: x}}\n",
     "unknown field(s) on"),  # YAML 1.2, as Pulumi reads its files: `on` is a string
])
def test_bad_partners_files_are_refused(partners_path: Any, text: str, fragment: str) -> None:
    path = partners_path(text)
    [problem] = problems_of(**{"zero-trust-ai__apiPartnersFile": path})
    assert problem.startswith("zero-trust-ai:apiPartnersFile = ") and fragment in problem, problem


def test_a_partner_listed_twice_is_refused(partners_path: Any) -> None:
    entry = f"  - {{name: acme, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 1}}\n"
    [problem] = problems_of(**{"zero-trust-ai__apiPartnersFile": partners_path(
        "partners:\n" + entry + entry)})
    assert "partners[1]: partner 'acme' is listed twice" in problem


@pytest.mark.parametrize("changes, fragment", [
    ({"zero-trust-ai__apiDomainName": "API.example.com"}, "a lower-case DNS name"),
    ({"zero-trust-ai__apiHostedZoneId": None}, "give exactly one"),
    ({"zero-trust-ai__apiCertificateArn": "arn:aws:acm:eu-west-1:111122223333:certificate/abc"},
     "give exactly one"),
    ({"zero-trust-ai__apiHostedZoneId": "zone"}, "a Route 53 hosted zone id"),
    ({"zero-trust-ai__apiHostedZoneId": None, "zero-trust-ai__apiCertificateArn": "arn:x"},
     "an ACM certificate ARN"),
    ({"zero-trust-ai__apiClientCaFiles": '["Pulumi.yaml"]'}, "no PEM CERTIFICATE block"),
    ({"zero-trust-ai__apiClientCaFiles": "[]"}, "an empty truststore admits no client"),
    ({"zero-trust-ai__apiJwtIssuer": "https://login.example.com/"}, "given exactly when"),
    ({"zero-trust-ai__apiJwtAudiences": '["a"]'}, "given exactly when"),
    ({"zero-trust-ai__apiJwtIssuer": "login.example.com", "zero-trust-ai__apiJwtAudiences": '["a"]'},
     "the issuer's https:// URL"),
    ({"zero-trust-ai__apiRateLimit": "fast"}, "requests per second"),
    ({"zero-trust-ai__apiAuthDomainPrefix": "aws-auth"}, "Cognito refuses prefixes containing aws"),
    ({"zero-trust-ai__apiDomainName": "api.amazon-ml.example.com"}, "the default derived from"),
    ({"zero-trust-ai__apiAccessLogRetentionDays": "10"}, "CloudWatch Logs accepts only"),
    ({"zero-trust-ai__apiOwnershipVerificationCertificateArn":
      "arn:aws:acm:eu-west-1:111122223333:certificate/abc"}, "only with zero-trust-ai:apiCertificateArn"),
    ({"zero-trust-ai__apiHostedZoneId": None,
      "zero-trust-ai__apiCertificateArn": "arn:aws:acm:eu-west-1:111122223333:certificate/abc",
      "zero-trust-ai__apiOwnershipVerificationCertificateArn": "cert"}, "an ACM certificate ARN"),
])
def test_bad_api_settings_are_refused(changes: dict[str, Any], fragment: str) -> None:
    problems = problems_of(**changes)
    assert any(fragment in problem for problem in problems), problems


def test_an_external_issuer_replaces_the_cognito_pool() -> None:
    api = parse_stack_config({**VALID, "zero-trust-ai:apiJwtIssuer": "https://login.example.com/",
                              "zero-trust-ai:apiJwtAudiences": '["inference-api"]'}).api
    assert api is not None
    assert (api.jwt_issuer, api.jwt_audiences) == ("https://login.example.com/", ("inference-api",))


def test_an_imported_certificate_takes_its_ownership_certificate() -> None:
    imported = "arn:aws:acm:eu-west-1:111122223333:certificate/imported"
    proof = "arn:aws:acm:eu-west-1:111122223333:certificate/ownership"
    raw = {k: v for k, v in VALID.items() if k != "zero-trust-ai:apiHostedZoneId"}
    api = parse_stack_config({**raw, "zero-trust-ai:apiCertificateArn": imported,
                              "zero-trust-ai:apiOwnershipVerificationCertificateArn": proof}).api
    assert api is not None
    assert (api.certificate_arn, api.ownership_verification_certificate_arn) == (imported, proof)


def test_replicas_stay_in_the_stacks_partition() -> None:
    problems = problems_of(**{"zero-trust-ai__keyReplicaRegions": '["us-gov-west-1"]'})
    assert any("us-gov-west-1 is in another partition than eu-west-1 (aws)" in p for p in problems), \
        problems


def test_a_region_that_is_not_a_name_is_named() -> None:
    assert "aws:region = 5: a region name such as eu-west-1" in problems_of(aws__region=5)


@pytest.mark.parametrize("stack, keys", [
    ("dev", ["zero-trust-ai:keyAdministratorRoleArns", "zero-trust-ai:apiDomainName",
             "zero-trust-ai:apiHostedZoneId", "zero-trust-ai:enclavePcr0,", "CA", "CA"]),
    ("prod", ["zero-trust-ai:apiDomainName", "zero-trust-ai:apiHostedZoneId",
              "zero-trust-ai:enclavePcr0,", "CA", "CA", "zero-trust-ai:siem:", "zero-trust-ai:siem:"]),
    ("prod-keys", ["zero-trust-ai:keyAdministratorRoleArns", "zero-trust-ai:workloadDeployerRoleArns",
                   "zero-trust-ai:alarmSubscriptions", "zero-trust-ai:enclavePcr0,", "zero-trust-ai:siem:",
                   "zero-trust-ai:siem:"])])
def test_the_shipped_placeholders_are_named(stack: str, keys: list[str]) -> None:
    found = placeholders(parse_layer_config(load_stack(ROOT, stack).config))
    assert [f.split(" ")[0] for f in found] == keys
    [pcrs] = [f for f in found if "enclavePcr" in f]
    assert pcrs.startswith("zero-trust-ai:enclavePcr0, zero-trust-ai:enclavePcr1, zero-trust-ai:enclavePcr2: "
                           "the shipped placeholder measurements")


def test_the_placeholder_measurements_are_those_the_stacks_ship() -> None:
    # A shipped placeholder changed in a stack file but not here would no longer be warned about.
    shipped = set()
    for stack in ("dev", "prod"):
        pcrs = parse_stack_config(load_stack(ROOT, stack).config).enclave_measurements.pcrs()
        shipped |= set(pcrs.values())
    assert shipped == PLACEHOLDER_PCRS


@pytest.mark.parametrize("changes, expected", [
    ({"zero-trust-ai:breakGlassRoleArn": "arn:aws:iam::123456789012:role/break-glass"},
     "zero-trust-ai:breakGlassRoleArn names the documentation account 123456789012"),
    ({"zero-trust-ai:apiHostedZoneId": "", "zero-trust-ai:apiCertificateArn":
      "arn:aws:acm:eu-west-1:111122223333:certificate/abc"},
     "zero-trust-ai:apiCertificateArn names the documentation account 111122223333"),
    ({"zero-trust-ai:apiJwtIssuer": "https://login.example.org/", "zero-trust-ai:apiJwtAudiences": '["api"]'},
     "zero-trust-ai:apiJwtIssuer = https://login.example.org/ (example domains are reserved)"),
    ({"zero-trust-ai:alarmSubscriptions": '["critical:https:https://hooks.example.net/sns", '
                                           '"high:email:oncall@corp.internal"]'},
     "zero-trust-ai:alarmSubscriptions names example endpoints "
     "(critical:https:https://hooks.example.net/sns): the alarms would reach nobody"),
    ({"zero-trust-ai:enclavePcr1": sorted(PLACEHOLDER_PCRS)[0]},
     "zero-trust-ai:enclavePcr1: the shipped placeholder measurements"),
    ({"zero-trust-ai:siem": '["destination=splunk", "url=https://hec.example.net:443", '
                            '"secretArn=arn:aws:secretsmanager:eu-west-1:444455556666:secret:hec-AbCdEf"]'},
     "zero-trust-ai:siem: url=https://hec.example.net:443 (example domains are reserved)"),
    ({"zero-trust-ai:siem": '["destination=http", "url=https://siem.acme.io", '
                            '"secretArn=arn:aws:secretsmanager:eu-west-1:111122223333:secret:k-AbCdEf"]'},
     "zero-trust-ai:siem: secretArn names the documentation account 111122223333"),
])
def test_other_placeholders_are_named(changes: dict[str, str], expected: str) -> None:
    real = {**VALID, "zero-trust-ai:keyAdministratorRoleArns": '["arn:aws:iam::444455556666:role/a"]',
            "zero-trust-ai:apiDomainName": "api.models.acme.io"}
    assert any(p.startswith(expected) for p in placeholders(parse_stack_config({**real, **changes})))


def test_a_real_configuration_has_no_placeholders() -> None:
    real = {**VALID, "zero-trust-ai:keyAdministratorRoleArns": '["arn:aws:iam::444455556666:role/a"]',
            "zero-trust-ai:apiDomainName": "api.models.acme.io",
            "zero-trust-ai:apiClientCaFiles": f'["{PARTNER_CA}"]',
            "zero-trust-ai:alarmSubscriptions": '["critical:email:oncall@acme.io", '
                                                '"high:https:https://pager.acme.io/sns"]'}
    assert [p for p in placeholders(parse_stack_config(real)) if not p.startswith("CA file")] == []


def test_a_placeholder_ca_is_told_by_its_content_not_its_file_name(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from components.truststore import create_test_ca
    renamed = tmp_path / "our-ca.pem"
    renamed.write_bytes(Path(PARTNER_CA).read_bytes())
    ours, _ = create_test_ca("acme clients CA")
    real_ca = tmp_path / "placeholder-looking-name.pem"
    real_ca.write_bytes(ours.public_bytes(serialization.Encoding.PEM))
    real = {**VALID, "zero-trust-ai:keyAdministratorRoleArns": '["arn:aws:iam::444455556666:role/a"]',
            "zero-trust-ai:apiDomainName": "api.models.acme.io",
            "zero-trust-ai:apiClientCaFiles": json.dumps([str(renamed), str(real_ca)])}
    assert placeholders(parse_stack_config(real)) == [
        "CA file our-ca.pem holds a shipped placeholder CA (its key was discarded: that certificate "
        "admits no one)"]


# -- key names: namespaces and provider settings ---------------------------------------------------
@pytest.mark.parametrize("key, expected", [
    ("zero-trust-aii:azCount", "zero-trust-aii:azCount: unknown namespace 'zero-trust-aii' "
                               "(did you mean zero-trust-ai:azCount?)"),
    ("zerotrust-ai:owner", "(did you mean zero-trust-ai:owner?)"),
    ("asw:region", "asw:region: unknown namespace 'asw' (did you mean aws:region?)"),
    ("aws:regoin", "aws:regoin: not a setting of the aws provider (did you mean aws:region?)"),
    ("aws:skipCredentialValidaton", "(did you mean aws:skipCredentialsValidation?)"),
    ("aws:frobnicate", "aws:frobnicate: not a setting of the aws provider; its settings are listed at"),
])
def test_misspelled_namespaces_and_unknown_aws_settings_are_refused(key: str, expected: str) -> None:
    # Pulumi would pass such a key to nobody: the value the user meant to set is silently ignored.
    [problem] = problems_of(**{key.replace(":", "__"): "eu-west-1"})
    assert problem.startswith(expected) or expected in problem, problem


@pytest.mark.parametrize("key", ["kubernetes:context", "awsx:anything", "random:seed", "pulumi:tags",
                                 "tls:x", "gcp:project", "aws:profile", "aws:allowedAccountIds",
                                 "aws:defaultTags", "aws:skipCredentialsValidation"])
def test_other_providers_and_real_aws_settings_are_left_alone(key: str) -> None:
    parse_stack_config({**VALID, key: "x"})


def test_aws_settings_come_from_the_pinned_provider() -> None:
    keys = aws_config_keys()
    assert {"region", "profile", "allowedAccountIds", "forbiddenAccountIds", "defaultTags",
            "assumeRoles", "skipCredentialsValidation"} <= keys
    assert "regoin" not in keys and len(keys) > 30


# -- callers' CAs, reserved names, partitions, shown values, the project's name -----------------
FIRST_PARTY_CA = str(ROOT / "stacks" / "truststore" / "placeholder-first-party-ca.pem")


def _partner(name: str, ca: str) -> str:
    return f"  - {{name: {name}, caFile: {ca}, rateLimit: 1, burstLimit: 1}}\n"


def _same_name_ca(tmp_path: Path, common_name: str) -> str:
    """Another CA (other key) with the subject name `CN=<common_name>`."""
    certificate, _ = create_test_ca(common_name)
    path = tmp_path / "same-name-ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(path)


@pytest.mark.parametrize("case", ["first-party's file", "two partners, one file",
                                  "another CA of the same name"])
def test_callers_sharing_a_ca_subject_name_are_refused(partners_path: Any, tmp_path: Path,
                                                       case: str) -> None:
    # The enclave binds each caller to its CAs by subject name: a shared name lets one caller use
    # another's token. Refused here, before any resource, rather than by a traceback at preview.
    if case == "first-party's file":
        text, expected = _partner("acme", FIRST_PARTY_CA), "first-party and acme share"
    elif case == "two partners, one file":
        text, expected = _partner("acme", PARTNER_CA) + _partner("globex", PARTNER_CA), \
            "acme and globex share"
    else:
        first_party_name = x509.load_pem_x509_certificate(
            Path(FIRST_PARTY_CA).read_bytes()).subject.get_attributes_for_oid(
                x509.NameOID.COMMON_NAME)[0].value
        text = _partner("acme", _same_name_ca(tmp_path, str(first_party_name)))
        expected = "first-party and acme share"
    problems = problems_of(**{"zero-trust-ai__apiPartnersFile": partners_path("partners:\n" + text)})
    [problem] = [p for p in problems if "share the CA subject name" in p]
    assert expected in problem and "give each caller (first-party, every partner) its own CA" in problem


def test_callers_with_their_own_cas_are_accepted(partners_path: Any, tmp_path: Path) -> None:
    other = _same_name_ca(tmp_path, "globex test CA")
    api = parse_stack_config({**VALID, "zero-trust-ai:apiPartnersFile": partners_path(
        "partners:\n" + _partner("acme", PARTNER_CA) + _partner("globex", other))}).api
    assert api is not None and [p.name for p in api.partners] == ["acme", "globex"]


def test_a_partner_may_not_take_the_first_party_name(partners_path: Any) -> None:
    [problem] = problems_of(**{"zero-trust-ai__apiPartnersFile": partners_path(
        "partners:\n" + _partner("first-party", PARTNER_CA))})
    assert "partner 'first-party': the name is reserved for the program's own clients" in problem


@pytest.mark.parametrize("key, value", [
    ("keyAdministratorRoleArns", '["arn:aws-cn:iam::111122223333:role/kms-admin"]'),
    ("breakGlassRoleArn", "arn:aws-us-gov:iam::111122223333:role/break-glass"),
    ("apiOwnershipVerificationCertificateArn", "arn:aws-cn:acm:cn-north-1:111122223333:certificate/x"),
])
def test_arns_of_another_partition_are_refused(key: str, value: str) -> None:
    changes: dict[str, str | None] = {f"zero-trust-ai__{key}": value}
    if key == "apiOwnershipVerificationCertificateArn":
        changes |= {"zero-trust-ai__apiHostedZoneId": None, "zero-trust-ai__apiCertificateArn":
                    "arn:aws-cn:acm:cn-north-1:111122223333:certificate/imported"}
    problems = problems_of(**changes)
    assert any(p.startswith(f"zero-trust-ai:{key}: ") and "is not in the partition of eu-west-1 (aws)"
               in p and "arn:aws:" in p for p in problems), problems


def test_arns_of_the_stacks_partition_are_accepted() -> None:
    config = parse_stack_config({**VALID, "aws:region": "us-gov-west-1",
                                 "zero-trust-ai:keyAdministratorRoleArns":
                                     '["arn:aws-us-gov:iam::111122223333:role/kms-admin"]'})
    assert config.key_administrator_role_arns == ("arn:aws-us-gov:iam::111122223333:role/kms-admin",)


@pytest.mark.parametrize("key, value, expected", [
    ("apiRateLimit", "0.0", "zero-trust-ai:apiRateLimit = 0.0: requests per second, > 0"),
    ("apiRateLimit", "0", "zero-trust-ai:apiRateLimit = 0: requests per second, > 0"),
    ("flowLogRetentionDays", "91", "zero-trust-ai:flowLogRetentionDays = 91: CloudWatch Logs"),
    ("enclaveCpuCount", "0", "zero-trust-ai:enclaveCpuCount = 0: expected a positive integer"),
    ("azCount", "three", "zero-trust-ai:azCount = 'three': expected an integer"),
])
def test_numbers_are_shown_as_given(key: str, value: str, expected: str) -> None:
    # Pulumi hands every value over as text: a number is shown as the number written.
    problems = problems_of(**{f"zero-trust-ai__{key}": value})
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize("namespace", ["Zero-Trust-AI", "zeroTrustAi", "ZERO_TRUST_AI", "zero_trust_ai"])
def test_the_project_name_in_another_spelling_is_refused(namespace: str) -> None:
    [problem] = problems_of(**{f"{namespace}__azCount": "3"})
    assert problem.startswith(f"{namespace}:azCount: unknown namespace {namespace!r} "
                              "(did you mean zero-trust-ai:azCount?)"), problem


def test_a_key_without_namespace_is_refused() -> None:
    # Pulumi qualifies a stack file's bare keys with the project name; a caller that hands the
    # parser a bare key would otherwise see it ignored.
    [problem] = problems_of(azCount="3")
    assert problem.startswith("azCount: no namespace (did you mean zero-trust-ai:azCount?)"), problem


@pytest.fixture
def renamed_project() -> Iterator[None]:
    with namespace_of("my-fork"):
        yield


def test_a_renamed_project_names_its_keys_by_its_name(renamed_project: None) -> None:
    raw = {key.replace("zero-trust-ai:", "my-fork:"): value for key, value in VALID.items()}
    assert parse_stack_config({**raw, "my-fork:azCount": "3"}).az_count == 3
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config({**raw, "zero-trust-ai:azCount": "3"})
    [problem] = caught.value.problems
    assert problem.startswith("zero-trust-ai:azCount: unknown namespace 'zero-trust-ai' (did you mean "
                              "my-fork:azCount?); the project is named my-fork in Pulumi.yaml"), problem


def test_the_program_reads_a_renamed_projects_keys_under_its_name() -> None:
    # Under `pulumi up` the namespace is the running project's name (a fork may rename it).
    from components.stack_config import load_stack_config
    from ztai.preview.recorder import record
    loaded: list[Any] = []
    config = {key.replace("zero-trust-ai:", "my-fork:"): value for key, value in VALID.items()}
    with namespace_of("zero-trust-ai"):  # restored for the tests that follow
        record(lambda: loaded.append(load_stack_config()), project="my-fork", stack="dev",
               config={**config, "my-fork:azCount": "3"}, region="eu-west-1")
    assert loaded[0].az_count == 3
