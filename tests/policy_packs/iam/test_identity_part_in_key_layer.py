"""identity-part-in-key-layer (control: two-layer deployment), called directly and through the
pack's analyzer: the shipped split passes (the workload reads the human and elevation roles by
name and declares none); a workload that declares the JIT, a human role, an elevation, the human
boundary or a role tagged as a person's again is caught; combined stacks and key layers are not
checked; the names are the components' (a test keeps them equal)."""

from __future__ import annotations

from typing import Any

import pytest

from components import identity, jit_catalogue
from tests.policy_packs.test_split_layers import Split, mandatory
from tests.support.stacks import record_stack
from ztpolicy.iam import HUMAN_ROLES
from ztpolicy.rule import Resource
from ztpolicy.rules.iam.identity_part_in_key_layer import (
    FUNCTION,
    POLICY,
    ROLE,
    RULE,
    TABLE,
    identity_part_in_key_layer,
)
from ztpolicy.stack import STACK_SETTINGS, StackSettings

WORKLOAD = {STACK_SETTINGS: StackSettings(layer="workload", environment="prod")}
STACK = "urn:pulumi:prod::zero-trust-ai::"


def resource(kind: str, name: str | None, tags: dict[str, str] | None = None) -> Resource:
    props: dict[str, Any] = {"tags": tags or {}}
    if name is not None:
        props["name"] = name
    return Resource(type=kind, name="r", urn=f"{STACK}{kind}::r", props=props)


@pytest.mark.parametrize(("kind", "name", "tags"), [
    (ROLE, "zero-trust-ai-prod-jit-api-role", None),
    (ROLE, "zero-trust-ai-prod-jit-key-admin", None),
    (ROLE, "zero-trust-ai-prod-data-curator", None),
    (ROLE, "zero-trust-ai-prod-break-glass", None),
    (ROLE, None, {"ztai:access": "Human "}),  # a person's role under another (generated) name
    (ROLE, "someone-elses-name", {"ztai:access": "jit-elevation"}),
    (FUNCTION, "zero-trust-ai-prod-jit-api", None),
    (TABLE, "zero-trust-ai-prod-jit", None),
    (POLICY, "zero-trust-ai-prod-human-boundary", None),
])
def test_a_workload_declaring_the_identity_part_is_caught(kind: str, name: str | None,
                                                          tags: dict[str, str] | None) -> None:
    [message] = identity_part_in_key_layer(resource(kind, name, tags), WORKLOAD)
    assert "identity the key policies name" in message and "key layer" in message


@pytest.mark.parametrize(("kind", "name"), [
    (ROLE, "zero-trust-ai-prod-enclave-parent-imagebuilder-execution"),
    (ROLE, "inference-fleet-instance-role-51d5dfe"),
    (FUNCTION, "zero-trust-ai-prod-key-rotation"),
    (TABLE, "zero-trust-ai-prod-token-vault"),
    (POLICY, "zero-trust-ai-prod-reporting"),
])
def test_the_workloads_own_resources_pass(kind: str, name: str) -> None:
    assert identity_part_in_key_layer(resource(kind, name, {"ztai:access": "ci"}), WORKLOAD) == []


@pytest.mark.parametrize("layer", ["combined", "keys"])
def test_combined_stacks_and_key_layers_are_not_checked(layer: str) -> None:
    config = {STACK_SETTINGS: StackSettings(layer=layer, environment="prod")}
    assert identity_part_in_key_layer(resource(ROLE, "zero-trust-ai-prod-jit-api-role"), config) == []
    assert identity_part_in_key_layer(resource(ROLE, "zero-trust-ai-prod-jit-api-role"), {}) == []


def test_the_rule_cannot_be_excluded() -> None:
    assert RULE.suppressible is False and RULE.control == "two-layer deployment"


def test_the_rule_knows_the_components_names() -> None:
    assert HUMAN_ROLES == identity.ROLES
    assert identity_part_in_key_layer(
        resource(ROLE, jit_catalogue.jit_function_role_name("prod", "expiry")), WORKLOAD)
    assert identity_part_in_key_layer(resource(ROLE, identity.role_name("prod", "auditor")), WORKLOAD)
    assert identity_part_in_key_layer(
        resource(TABLE, jit_catalogue.jit_table_name("prod")), WORKLOAD)


# -- through the analyzer, on the program as it composes ---------------------------------------------
@pytest.fixture(scope="module")
def split() -> Split:
    return Split()


def test_the_shipped_workload_passes_and_declares_none_of_it(split: Split) -> None:
    assert not {v for v in mandatory(split.workload, split.workload_config)
                if v[0] == RULE.name}
    assert not [r for r in split.workload.resources if r.type in (ROLE, FUNCTION, TABLE, POLICY)
                and identity_part_in_key_layer(Resource(r.type, r.name, r.urn, r.inputs), WORKLOAD)]


def test_a_workload_composed_as_a_combined_stack_is_caught(split: Split) -> None:
    # The program's combined composition checked with a workload's stack config: it declares the
    # human roles and the JIT itself, which in a split is the workload's deployer holding them.
    combined = record_stack("prod", {"zero-trust-ai:layer": "combined", "zero-trust-ai:keyLayerStack": "",
                                     "zero-trust-ai:keyAdministratorRoleArns":
                                         '["arn:aws:iam::111122223333:role/zero-trust-ai-prod-deploy-keys"]',
                                     "zero-trust-ai:alarmSubscriptions": '["critical:email:a@example.com"]'})
    found = {name for policy, name in mandatory(combined, split.workload_config) if policy == RULE.name}
    assert {"jit-api-role", "access-data-curator", "jit-table", "access-boundary",
            "jit-role-key-admin"} <= found
