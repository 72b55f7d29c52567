"""A split deployment checked one stack at a time, as a CI runs the pack (`pulumi preview
--policy-pack` on the key layer alone, then on the workload alone): the shipped prod stacks pass
in each state of a first deployment (the key layer before the workload's grants, the workload,
the key layer sealed with them), each with only its own resources and its own stack config; and
each insecure variant a split opens is still caught by the rule that knows the stack's layer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from components import jit_catalogue
from components.keys import SYMMETRIC_PURPOSES, alias_name
from components.stack_config import ENVIRONMENTS as STACK_ENVIRONMENTS
from tests.conftest import PACK_DIR, ROOT
from tests.support.stacks import record_split
from ztai.export import stack_for_analysis
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
from ztai.preview.recorder import RecordedStack
from ztai.stackfile import load_stack
from ztpolicy.rule import Resource
from ztpolicy.rules.kms import kms_two_person_key_administration as two_person_module
from ztpolicy.rules.kms.kms_monthly_rotation_scheduled import (
    ROTATED_PURPOSES,
    kms_monthly_rotation_scheduled,
)
from ztpolicy.rules.kms.kms_two_person_key_administration import kms_two_person_key_administration
from ztpolicy.rules.kms.model_key_attestation_required import model_key_attestation_required
from ztpolicy.rules.s3.s3_bucket_encrypted_with_cmk import s3_bucket_encrypted_with_cmk
from ztpolicy.stack import (
    ENVIRONMENTS,
    STACK_SETTINGS,
    StackSettings,
    alias_for,
    from_values,
    stack_settings,
)

KEY_LAYER = "organization/zero-trust-ai/prod-keys"
GRANTS_KEY = "zero-trust-ai:workloadGrantsFile"
ACCOUNT = "111122223333"
PCRS = {f"PCR{n}": load_stack(ROOT, "prod-keys").config[f"zero-trust-ai:enclavePcr{n}"] for n in range(3)}
PCR = PCRS["PCR0"]


class Split:
    """The three states of a first split deployment (tests/support/stacks.py), with the config
    each stack is checked with."""

    def __init__(self) -> None:
        environment = record_split("prod")
        self.keys_first, self.workload = environment.first_keys, environment.workload
        self.keys_sealed = environment.sealed_keys
        self.keys_config = {**load_stack(ROOT, "prod-keys").config, GRANTS_KEY: ""}
        self.workload_config = dict(load_stack(ROOT, "prod").config)
        # The grants file's path is the recording's (a scratch file): any non-empty value says
        # the key layer is sealed.
        self.sealed_config = {**self.keys_config, GRANTS_KEY: "stacks/grants/prod.json"}


@pytest.fixture(scope="module")
def split() -> Split:
    return Split()


def settings(config: Mapping[str, str]) -> StackSettings:
    return from_values(config)


def rule_config(config: Mapping[str, str], **more: Any) -> dict[str, Any]:
    return {STACK_SETTINGS: settings(config), **more}


def as_rules_see(stack: RecordedStack, edit: Callable[[str, dict[str, Any]], None] | None = None
                 ) -> list[Resource]:
    """The stack as AnalyzeStack gives it: the state (outputs), the reads, the root's exports."""
    found = []
    for r in [*stack.resources, *stack.reads]:
        if not r.custom and r.type != "pulumi:pulumi:Stack":
            continue
        props = copy.deepcopy(dict(r.outputs))
        if edit is not None:
            edit(r.name, props)
        dependencies = {k: tuple(v) for k, v in r.property_dependencies.items()}
        found.append(Resource(type=r.type, name=r.name, urn=r.urn, props=props,
                              parent=r.parent or None, property_dependencies=dependencies))
    return found


# -- each stack alone through the analyzer, with its own stack config -------------------------------
def mandatory(stack: RecordedStack, config: Mapping[str, str]) -> set[tuple[str, str]]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment(stack.project, stack.stack, dict(config),
                                                          True)) as pack:
        result = analyze(pack, stack_for_analysis(stack),
                         user_config=None, project=stack.project, stack=stack.stack,
                         stack_config=dict(config))
    return {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.mandatory_violations}


def test_the_key_layer_alone_passes_before_the_grants(split: Split) -> None:
    assert mandatory(split.keys_first, split.keys_config) == set()


def test_the_workload_alone_passes(split: Split) -> None:
    assert mandatory(split.workload, split.workload_config) == set()


def test_the_sealed_key_layer_alone_passes(split: Split) -> None:
    assert mandatory(split.keys_sealed, split.sealed_config) == set()


def test_the_pack_reads_the_layer_from_the_stack_config(split: Split) -> None:
    # The same key layer read as a combined stack (no config) fails where the other half is
    # missing: rotation, attestation and the two-person deny (a first deployment), on the model
    # key and on the audit trail's key.
    policies = {policy for policy, _ in mandatory(split.keys_first, {})}
    assert policies == {"kms-monthly-rotation-scheduled", "model-key-attestation-required",
                        "kms-two-person-key-administration", "cloudtrail-trail-secure"}
    # A policy configuration cannot say which layer a stack is (the stack config decides).
    # The workload read as a combined stack: its buckets' and its SIEM stream's keys, the human
    # roles it reads (whose boundary is the key layer's) and the alarm topics its alarms notify
    # (the key layer's, by name) are missing their other half.
    assert {policy for policy, _ in mandatory(split.workload, {})} == {
        "s3-bucket-encrypted-with-cmk", "iam-human-role-conditions", "cloudwatch-alarm-has-action",
        "firehose-encrypted-with-cmk"}


# -- the settings ------------------------------------------------------------------------------------
def test_settings_come_from_the_stack_config_and_default_to_the_strictest() -> None:
    parsed = from_values({"zero-trust-ai:layer": "keys", "zero-trust-ai:environment": "prod",
                          GRANTS_KEY: "", "zero-trust-ai:enclavePcr0": PCR.upper(),
                          "zero-trust-ai:enclavePcr1": "not a digest"})
    assert parsed.keys_before_grants and parsed.environment == "prod"
    assert parsed.measurements == {"PCR0": PCR.lower()}
    assert from_values({}) == StackSettings() and not StackSettings().is_keys
    # Unknown values read as a combined stack / no environment; an absent grants file is no
    # first deployment.
    odd = from_values({"zero-trust-ai:layer": "bootstrap", "zero-trust-ai:environment": "qa"})
    assert (odd.layer, odd.environment) == ("combined", None)
    assert not from_values({"zero-trust-ai:layer": "keys"}).keys_before_grants
    assert stack_settings({STACK_SETTINGS: "keys"}) == StackSettings()


def test_the_pack_names_what_the_components_name() -> None:
    assert ROTATED_PURPOSES == SYMMETRIC_PURPOSES
    assert ENVIRONMENTS == STACK_ENVIRONMENTS
    assert all(alias_for("prod", p) == alias_name("prod", p) for p in SYMMETRIC_PURPOSES)
    writer, prefix = two_person_module.jit_role_names("prod")
    assert writer == jit_catalogue.jit_api_role_name("prod")
    assert prefix + "key-admin" == jit_catalogue.elevation_role_name("prod", "key-admin")
    assert two_person_module.ELEVATION_NAME.pattern == jit_catalogue.NAME.pattern


def test_the_jit_roles_have_their_known_names_in_the_key_layer(split: Split) -> None:
    names = {r.name: r.inputs.get("name") for r in split.keys_sealed.resources
             if r.type == "aws:iam/role:Role"}
    assert names["jit-api-role"] == "zero-trust-ai-prod-jit-api-role"
    assert names["jit-expiry-role"] == "zero-trust-ai-prod-jit-expiry-role"
    assert names["jit-scheduler-role"] == "zero-trust-ai-prod-jit-scheduler-role"
    assert not [r for r in split.workload.resources if r.name.startswith("jit-")]


@pytest.mark.parametrize("name", ["api-role", "expiry-role", "scheduler-role", "anything-role"])
def test_an_elevation_may_not_take_a_jit_roles_name(name: str) -> None:
    entry = {"name": name, "description": "d", "grant": "key-admin", "key": "model-weights",
             "maxMinutes": 30, "approvers": ["a", "b"], "approvalsNeeded": 2}
    with pytest.raises(ValueError, match=rf"name = '{name}': a name ending in -role is reserved"):
        jit_catalogue.parse_catalogue("stacks/jit/prod.yaml", {"elevations": [entry]})


def test_the_preview_records_the_stack_reference_it_reads(split: Split) -> None:
    [reference] = [r for r in split.workload.reads if r.type == "pulumi:pulumi:StackReference"]
    assert reference.type == "pulumi:pulumi:StackReference"
    assert reference.outputs["name"] == KEY_LAYER
    assert reference.outputs["outputs"]["keyArns"] == split.keys_first.stack_outputs["keyArns"]
    assert reference not in split.workload.resources  # read, not created: not in the report


# -- monthly rotation ---------------------------------------------------------------------------------
def rotation(stack: RecordedStack, config: Mapping[str, str],
             edit: Callable[[str, dict[str, Any]], None] | None = None) -> list[str]:
    return [f.message for f in kms_monthly_rotation_scheduled(as_rules_see(stack, edit),
                                                              rule_config(config))]


def test_rotation_passes_in_each_layer(split: Split) -> None:
    assert rotation(split.keys_first, split.keys_config) == []
    assert rotation(split.keys_sealed, split.sealed_config) == []
    assert rotation(split.workload, split.workload_config) == []


def test_a_key_layers_key_outside_the_rotated_aliases_is_caught(split: Split) -> None:
    def renamed(name: str, props: dict[str, Any]) -> None:
        if name == "keys-logs-alias":
            props["name"] = "alias/zero-trust-ai/prod/logs-old"

    def other_environment(name: str, props: dict[str, Any]) -> None:
        if name == "keys-secrets-alias":
            props["name"] = "alias/zero-trust-ai/dev/secrets"

    def custom_store(name: str, props: dict[str, Any]) -> None:
        if name == "keys-inference":
            props["customKeyStoreId"] = "cks-1234567890abcdef0"

    [message] = rotation(split.keys_first, split.keys_config, renamed)
    assert "keys-logs (alias/zero-trust-ai/prod/logs-old) is in a key layer" in message
    [message] = rotation(split.keys_first, split.keys_config, other_environment)
    assert "alias/zero-trust-ai/dev/secrets" in message
    [message] = rotation(split.keys_first, split.keys_config, custom_store)
    assert "is in a custom key store" in message
    no_environment = {k: v for k, v in split.keys_config.items() if k != "zero-trust-ai:environment"}
    messages = rotation(split.keys_first, no_environment)
    assert len(messages) == len(SYMMETRIC_PURPOSES) and all("gives no environment" in m for m in messages)


def test_a_workload_whose_schedule_misses_a_key_layer_alias_is_caught(split: Split) -> None:
    def drop_model_key(name: str, props: dict[str, Any]) -> None:
        if name == "key-rotation-schedule":
            document = json.loads(props["target"]["input"])
            document["aliases"].remove("alias/zero-trust-ai/prod/model-weights")
            props["target"]["input"] = json.dumps(document)

    def disabled(name: str, props: dict[str, Any]) -> None:
        if name == "key-rotation-schedule":
            props["state"] = "DISABLED"

    def other_handler(name: str, props: dict[str, Any]) -> None:
        if props.get("handler") == "ztai_runtime.rotation.handler":
            props["handler"] = "evil.handler"

    assert any(r.name == "key-rotation-schedule" for r in split.workload.resources)
    [message] = rotation(split.workload, split.workload_config, drop_model_key)
    assert "names alias/zero-trust-ai/prod/model-weights in its input" in message
    for edit in (disabled, other_handler):
        [message] = rotation(split.workload, split.workload_config, edit)
        assert all(alias_name("prod", p) in message for p in SYMMETRIC_PURPOSES)
    no_environment = {k: v for k, v in split.workload_config.items() if k != "zero-trust-ai:environment"}
    [message] = rotation(split.workload, no_environment)
    assert "gives no environment" in message


# -- enclave-only decryption before the grants ---------------------------------------------------------
def weights_statements(edit: Callable[[list[dict[str, Any]]], None]) -> Callable[[str, dict[str, Any]], None]:
    def apply(name: str, props: dict[str, Any]) -> None:
        if name == "keys-model-weights":
            document = json.loads(props["policy"])
            edit(document["Statement"])
            props["policy"] = json.dumps(document)
    return apply


def attestation(stack: RecordedStack, config: Mapping[str, str],
                edit: Callable[[str, dict[str, Any]], None] | None = None, **more: Any) -> list[str]:
    return [f.message for f in model_key_attestation_required(as_rules_see(stack, edit),
                                                              rule_config(config, **more))]


BREAK_GLASS = {"Sid": "BreakGlass", "Effect": "Allow", "Action": "kms:*", "Resource": "*",
               "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/break-glass"},
               "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}


def pinned_denies(values: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"Sid": f"DenyPlaintextUnless{pcr}Pinned", "Effect": "Deny", "Principal": {"AWS": "*"},
             "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*",
             "Condition": {"StringNotEqualsIgnoreCase": {f"kms:RecipientAttestation:{pcr}": value}}}
            for pcr, value in values.items()]


def test_a_model_key_before_the_grants_passes_only_while_it_gives_no_plaintext(split: Split) -> None:
    assert attestation(split.keys_first, split.keys_config) == []

    def allow_decrypt(statements: list[dict[str, Any]]) -> None:
        statements.append({"Sid": "Sneaky", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
                           "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/someone"}})

    def root_rewrites(statements: list[dict[str, Any]]) -> None:
        statements[0]["Principal"] = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}

    messages = attestation(split.keys_first, split.keys_config, weights_statements(allow_decrypt))
    assert any("allows Sneaky (arn:aws:iam::111122223333:role/someone) a use that yields plaintext"
               in m for m in messages)
    [message] = attestation(split.keys_first, split.keys_config, weights_statements(root_rewrites))
    assert "allows kms:PutKeyPolicy to arn:aws:iam::111122223333:root" in message
    # Break-glass's kms:* only under the denies pinned to the stack's own measurements.
    messages = attestation(split.keys_first, split.keys_config,
                           weights_statements(lambda s: s.append(BREAK_GLASS)))
    assert any("allows BreakGlass" in m for m in messages)
    assert attestation(split.keys_first, split.keys_config, weights_statements(
        lambda s: s.extend([BREAK_GLASS, *pinned_denies(PCRS)]))) == []
    messages = attestation(split.keys_first, split.keys_config, weights_statements(
        lambda s: s.extend([BREAK_GLASS, *pinned_denies({**PCRS, "PCR1": "ab" * 48})])))
    assert any("but the attested Allows pin" in m for m in messages)


def test_the_creation_policy_gets_the_full_check_outside_a_key_layers_first_deployment(
        split: Split) -> None:
    for config in ({**split.keys_config, GRANTS_KEY: "stacks/grants/prod.json"},
                   {k: v for k, v in split.keys_config.items() if k != GRANTS_KEY},
                   {**split.keys_config, "zero-trust-ai:layer": "combined"}):
        messages = attestation(split.keys_first, config)
        assert any("allows no principal kms:Decrypt under enclave attestation" in m for m in messages)


# -- two-person key administration ----------------------------------------------------------------------
def two_person(stack: RecordedStack, config: Mapping[str, str],
               edit: Callable[[str, dict[str, Any]], None] | None = None) -> list[str]:
    return [f.message for f in kms_two_person_key_administration(as_rules_see(stack, edit),
                                                                 rule_config(config))]


def sealed_exempting(arns: list[str]) -> Callable[[str, dict[str, Any]], None]:
    def apply(name: str, props: dict[str, Any]) -> None:
        if name == "keys-model-weights-policy":
            document = json.loads(props["policy"])
            for statement in document["Statement"]:
                if statement["Sid"].startswith("TwoPersonChangesOnly"):
                    statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] = arns
            props["policy"] = json.dumps(document)
    return apply


WRITER = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-jit-api-role"
ELEVATION = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-jit-key-admin"


def test_two_person_passes_in_each_layer(split: Split) -> None:
    assert two_person(split.keys_first, split.keys_config) == []
    assert two_person(split.keys_sealed, split.sealed_config) == []
    assert two_person(split.workload, split.workload_config) == []
    policy = next(r for r in split.keys_sealed.resources if r.name == "keys-model-weights-policy")
    deny = next(s for s in json.loads(policy.outputs["policy"])["Statement"]
                if s["Sid"].startswith("TwoPersonChangesOnly"))
    assert sorted(deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]) == [WRITER, ELEVATION]


@pytest.mark.parametrize(("arn", "fragment"), [
    (f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-deploy-keys", "named neither as the JIT API's role"),
    (f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-jit-key-admin", "named neither as the JIT API's role"),
    (f"arn:aws:iam::{ACCOUNT}:role/ops/zero-trust-ai-prod-jit-key-admin", "no path"),
    ("arn:aws:iam::999999999999:role/zero-trust-ai-prod-jit-key-admin", "a role of account 999999999999"),
    (f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-jit-*", "exempts the pattern"),
])
def test_a_key_layer_exempting_a_role_not_named_as_a_jit_role_is_caught(
        split: Split, arn: str, fragment: str) -> None:
    [message] = two_person(split.keys_sealed, split.sealed_config, sealed_exempting([WRITER, arn]))
    assert fragment in message and arn in message


def test_a_key_layers_elevation_may_not_write_the_policy(split: Split) -> None:
    def elevation_writes(name: str, props: dict[str, Any]) -> None:
        if name == "keys-model-weights-policy":
            document = json.loads(props["policy"])
            document["Statement"].append({"Sid": "X", "Effect": "Allow", "Action": "kms:PutKeyPolicy",
                                          "Resource": "*", "Principal": {"AWS": ELEVATION}})
            props["policy"] = json.dumps(document)

    [message] = two_person(split.keys_sealed, split.sealed_config, elevation_writes)
    assert "an elevation role, make calls that carry a key policy" in message


def test_a_missing_deny_is_accepted_only_before_the_grants(split: Split) -> None:
    def no_deny(name: str, props: dict[str, Any]) -> None:
        if name == "keys-model-weights-policy":
            document = json.loads(props["policy"])
            document["Statement"] = [s for s in document["Statement"]
                                     if not s["Sid"].startswith("TwoPersonChangesOnly")]
            props["policy"] = json.dumps(document)

    [message] = two_person(split.keys_sealed, split.sealed_config, no_deny)
    assert "does not deny kms:PutKeyPolicy" in message
    for config in ({**split.keys_config, GRANTS_KEY: "stacks/grants/prod.json"},
                   {k: v for k, v in split.keys_config.items() if k != GRANTS_KEY}):
        [message] = two_person(split.keys_first, config)
        assert "does not deny kms:PutKeyPolicy" in message
    no_environment = {k: v for k, v in split.sealed_config.items() if k != "zero-trust-ai:environment"}
    messages = two_person(split.keys_sealed, no_environment)
    assert len(messages) == 2 and all("gives no environment" in m for m in messages)


def test_a_workload_handing_over_key_administration_is_caught(split: Split) -> None:
    # Who may change a key's policy is the key layer's own choice: a workload that exports a
    # key-administration grant (its JIT declared in the workload again) is caught by its half.
    def hands_over(name: str, props: dict[str, Any]) -> None:
        if name == "zero-trust-ai-prod":
            props["keyGrants"]["grants"].append({
                "grant": "grant_key_administration", "purpose": "model-weights", "role": ELEVATION,
                "policy_writer": WRITER})

    [message] = two_person(split.workload, split.workload_config, hands_over)
    assert "a key-administration grant for the model-weights key" in message
    assert "never the workload's" in message


def test_the_key_layers_jit_roles_are_checked_as_in_a_combined_stack(split: Split) -> None:
    def opened(name: str, props: dict[str, Any]) -> None:
        if name == "jit-role-key-admin":
            props["assumeRolePolicy"] = json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]})

    def writer_trusts_people(name: str, props: dict[str, Any]) -> None:
        if name == "jit-api-role":
            props["assumeRolePolicy"] = json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]})

    assert {r.name for r in split.keys_sealed.resources} >= {"jit-role-key-admin", "jit-api-role"}
    [message] = two_person(split.keys_sealed, split.sealed_config, opened)
    assert "its trust admits someone other than one approved person" in message
    [message] = two_person(split.keys_sealed, split.sealed_config, writer_trusts_people)
    assert "not by Lambda alone" in message


# -- workload buckets under the key layer's keys -----------------------------------------------------------
def buckets(stack: RecordedStack, config: Mapping[str, str],
            edit: Callable[[str, dict[str, Any]], None] | None = None) -> list[str]:
    return [f.message for f in s3_bucket_encrypted_with_cmk(as_rules_see(stack, edit),
                                                            rule_config(config, trustedBucketKeyArns=[]))]


def test_workload_buckets_under_the_key_layers_keys_pass(split: Split) -> None:
    assert buckets(split.workload, split.workload_config) == []


def test_a_workload_bucket_under_a_key_neither_the_references_nor_the_stacks_is_caught(
        split: Split) -> None:
    stranger = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

    def other_key(name: str, props: dict[str, Any]) -> None:
        if name == "training-data-bucket-encryption":
            props["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] = stranger

    def other_reference(name: str, props: dict[str, Any]) -> None:
        if name == "keys-layer":
            props["name"] = "organization/zero-trust-ai/dev"

    [message] = buckets(split.workload, split.workload_config, other_key)
    assert f"names {stranger}, which is no KMS key of this stack" in message
    # A reference to a stack other than the configured key layer vouches for nothing: each of the
    # five buckets under a key layer's key (models, training data, truststore, the SIEM stream's, the
    # detection function's state) is caught.
    assert len(buckets(split.workload, split.workload_config, other_reference)) == 5
    other_layer = {**split.workload_config, "zero-trust-ai:keyLayerStack": "organization/zero-trust-ai/x"}
    assert len(buckets(split.workload, other_layer)) == 5
    # Nor in a stack whose config does not say it is a workload.
    assert len(buckets(split.workload, {**split.workload_config, "zero-trust-ai:layer": "combined"})) == 5

