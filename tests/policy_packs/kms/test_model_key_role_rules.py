"""Model keys by role, not by name (control: encryption and key management): the insider's second
weights key is found however it is labelled (purpose tag, alias, the stack's keyArns export,
attestation in its policy, the enclave role allowed to decrypt under it); model-key-alias-pinned
catches an attested key's alias that ignores targetKeyId. Both through the pack's gRPC analyzer too
(ignoreChanges, stack outputs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from components.keys import _Grant, _policy_document
from tests.conftest import PACK_DIR
from tests.policy_packs.ec2.test_enclave_rules import KEY_ADMIN, ROLE, attested_policy, stack
from tests.policy_packs.test_rules import NO_CONFIG, res
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Finding, Resource
from ztpolicy.rules.kms.model_key_alias_pinned import model_key_alias_pinned
from ztpolicy.rules.kms.model_key_attestation_required import (
    ALIAS,
    STACK,
    attested_keys,
    model_key_attestation_required,
)

KEY, KEY_POLICY = "aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy"
SECOND_ARN = "arn:aws:kms:eu-west-1:111122223333:key/second"


def plain_decrypt_policy(principal: str = ROLE, condition: dict[str, Any] | None = None) -> str:
    """A key policy with the administrators and one plain kms:Decrypt for `principal`."""
    role: dict[str, Any] = {"AWS": principal}
    grant = _Grant("Decrypt", role, ("kms:Decrypt", "kms:DescribeKey"),
                   (lambda a, r: condition) if condition else None)
    return _policy_document("aws", "111122223333", "eu-west-1", [KEY_ADMIN], "", [(grant, role)])


def second_key(tags: dict[str, str] | None = None, policy: str | None = None) -> Resource:
    return res(KEY, "weights-v2", id="second", arn=SECOND_ARN, tags=tags or {"ztai:key-purpose": "archive"},
               policy=policy or plain_decrypt_policy("arn:aws:iam::111122223333:role/publisher"))


def alias(name: str, target: Resource, ignore: tuple[str, ...] = ()) -> Resource:
    return Resource(type=ALIAS, name=name.rsplit("/", 1)[-1] + "-alias", urn=f"{target.urn}-{name}",
                    props={"name": name}, property_dependencies={"targetKeyId": (target.urn,)},
                    ignore_changes=ignore)


def exports(**key_arns: str) -> Resource:
    return Resource(type=STACK, name="zero-trust-ai-prod", urn="urn:pulumi:prod::zero-trust-ai::"
                    f"{STACK}::zero-trust-ai-prod", props={"keyArns": key_arns})


def flagged(resources: list[Resource], config: dict[str, Any] | None = None) -> dict[str, str]:
    """Key name -> why the rule holds it to attestation."""
    return {key.name: why for key, why in attested_keys(resources, config or NO_CONFIG).values()}


def findings_on(findings: list[Finding], name: str) -> list[str]:
    return [f.message for f in findings if f.urn.rsplit("::", 1)[-1] == name]


def test_the_hierarchy_alone_has_one_model_key() -> None:
    resources = stack(attested_policy(), alias=True)
    assert flagged([*resources, second_key()]) == {
        "keys-model-weights": "tagged ztai:key-purpose=model-weights"}
    assert model_key_attestation_required([*resources, second_key()], NO_CONFIG) == []


@pytest.mark.parametrize("label, extra, config, why", [
    ("a variant purpose tag", lambda k: [], {}, "tagged ztai:key-purpose=Model_Weights-v2"),
    ("an alias claiming the role", lambda k: [alias("alias/zero-trust-ai/prod/model-weights-v2", k)], {},
     "named by alias alias/zero-trust-ai/prod/model-weights-v2"),
    ("an alias the configuration names", lambda k: [alias("alias/acme/llm", k)],
     {"attestedAliases": ["alias/acme/*"]}, "named by alias alias/acme/llm"),
    ("the key the stack exports for publishers", lambda k: [exports(**{"model-weights": SECOND_ARN})], {},
     "exported as keyArns.model-weights"),
])
def test_a_second_weights_key_is_found_by_its_role(label: str, extra: Any, config: dict[str, Any],
                                                   why: str) -> None:
    tags = {"ztai:key-purpose": "Model_Weights-v2"} if label == "a variant purpose tag" else None
    key = second_key(tags)
    resources = [*stack(attested_policy(), alias=True), key, *extra(key)]
    assert flagged(resources, config)["weights-v2"].startswith(why)
    messages = findings_on(model_key_attestation_required(resources, config), "weights-v2")
    assert any("allows kms:Decrypt to arn:aws:iam::111122223333:role/publisher without attestation"
               in m for m in messages), messages


def test_the_same_key_is_not_a_model_key_without_that_role() -> None:
    key = second_key()
    assert "weights-v2" not in flagged([*stack(attested_policy()), key, alias("alias/acme/llm", key),
                                        exports(secrets=SECOND_ARN)])


def test_a_key_whose_policy_claims_attestation_must_hold_it() -> None:
    # A half-attested key: Decrypt allowed only if PCR0 matches, "IfExists" (holds without attestation).
    weak = plain_decrypt_policy(condition={"StringEqualsIgnoreCaseIfExists": {
        "kms:RecipientAttestation:PCR0": "a1" * 48}})
    resources = [*stack(attested_policy()), second_key(policy=weak)]
    assert flagged(resources)["weights-v2"] == "its policy uses enclave attestation conditions"
    messages = findings_on(model_key_attestation_required(resources, NO_CONFIG), "weights-v2")
    assert messages and all("(its policy uses enclave attestation conditions)" in m for m in messages)


def test_a_key_the_enclave_role_decrypts_without_attestation_is_a_model_key() -> None:
    resources = [*stack(attested_policy()), second_key(policy=plain_decrypt_policy(ROLE))]
    assert flagged(resources)["weights-v2"].startswith(f"the enclave role {ROLE} may decrypt under it")
    messages = findings_on(model_key_attestation_required(resources, NO_CONFIG), "weights-v2")
    assert any(f"allows kms:Decrypt to {ROLE} without attestation" in m for m in messages), messages
    # Through a service (S3 objects of the model bucket) is not plaintext to the parent by KMS.
    via_s3 = plain_decrypt_policy(ROLE, {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}})
    assert "weights-v2" not in flagged([*stack(attested_policy()), second_key(policy=via_s3)])
    # Nor are Session Manager data keys (the SSM agent on the parent opens encrypted sessions)...
    session = {"kms:EncryptionContext:aws:ssm:SessionId": "*",
               "kms:EncryptionContext:aws:ssm:TargetId": "i-*"}
    sessions_only = plain_decrypt_policy(ROLE, {"StringLike": session})
    assert "weights-v2" not in flagged([*stack(attested_policy()), second_key(policy=sessions_only)])
    # ...but only with both of the session's keys required, never "IfExists".
    for loose in ({"StringLike": {"kms:EncryptionContext:aws:ssm:SessionId": "*"}},
                  {"StringLikeIfExists": session}):
        key = second_key(policy=plain_decrypt_policy(ROLE, loose))
        assert "weights-v2" in flagged([*stack(attested_policy()), key]), loose


# -- model-key-alias-pinned --------------------------------------------------------------------------
def model_key(resources: list[Resource]) -> Resource:
    [key] = [r for r in resources if r.name == "keys-model-weights"]
    return key


@pytest.mark.parametrize("ignore", [("targetKeyId",), ("description", "targetKeyId"), ("*",)])
def test_an_attested_keys_alias_that_ignores_its_target_is_caught(ignore: tuple[str, ...]) -> None:
    resources = stack(attested_policy())
    moved = alias("alias/zero-trust-ai/prod/model-weights", model_key(resources), ignore)
    [finding] = model_key_alias_pinned([*resources, moved], NO_CONFIG)
    assert finding.urn == moved.urn and "names model key keys-model-weights" in finding.message


def test_pinned_aliases_and_other_keys_aliases_pass() -> None:
    resources = stack(attested_policy())
    pinned = alias("alias/zero-trust-ai/prod/model-weights", model_key(resources))
    [secrets] = [r for r in resources if r.name == "keys-secrets"]
    successor_ready = alias("alias/zero-trust-ai/prod/secrets", secrets, ("targetKeyId",))
    assert model_key_alias_pinned([*resources, pinned, successor_ready], NO_CONFIG) == []


def test_an_alias_claiming_the_role_is_caught_whatever_it_names_now() -> None:
    # After an out-of-band move the alias names a key the stack does not declare.
    stray = Resource(type=ALIAS, name="weights-alias", urn="urn:pulumi:prod::zero-trust-ai::alias::w",
                     props={"name": "alias/zero-trust-ai/prod/model-weights",
                            "targetKeyId": "1234abcd-0000-0000-0000-000000000000"},
                     ignore_changes=("targetKeyId",))
    [finding] = model_key_alias_pinned([stray], NO_CONFIG)
    assert "a model key (by its name)" in finding.message
    configured = Resource(type=ALIAS, name="llm", urn="urn:pulumi:prod::zero-trust-ai::alias::llm",
                          props={"name": "alias/acme/llm"}, ignore_changes=("targetKeyId",))
    assert model_key_alias_pinned([configured], NO_CONFIG) == []
    assert model_key_alias_pinned([configured], {"attestedAliases": ["alias/acme/*"]})


# -- through the analyzer -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "prod", {}, True)) as running:
        yield running


def analyzed(resource: Resource) -> AnalyzedResource:
    return AnalyzedResource(urn=resource.urn, type=resource.type, name=resource.name,
                            properties=json.loads(json.dumps(dict(resource.props))),
                            property_dependencies={k: list(v) for k, v
                                                   in resource.property_dependencies.items()},
                            ignore_changes=resource.ignore_changes, custom=resource.type != STACK)


def test_ignore_changes_and_stack_outputs_reach_the_rules_through_the_analyzer(
        pack: PolicyPackProcess) -> None:
    resources = stack(attested_policy())
    moved = alias("alias/zero-trust-ai/prod/model-weights", model_key(resources), ("targetKeyId",))
    second = second_key()
    everything = [*resources, moved, second, exports(**{"model-weights": SECOND_ARN})]
    result = analyze(pack, [analyzed(r) for r in everything], user_config=None,
                     project="zero-trust-ai", stack="prod")
    found = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.mandatory_violations}
    assert ("model-key-alias-pinned", moved.urn.rsplit("::", 1)[-1]) in found
    assert ("model-key-attestation-required", "weights-v2") in found


def test_an_export_carries_ignore_changes_to_the_rule(pack: PolicyPackProcess) -> None:
    # Deployed state: `pulumi stack export` keeps each resource's ignoreChanges (pulumi/pulumi#16146).
    from ztai.export import analyzed_resources

    prefix = "urn:pulumi:prod::zero-trust-ai::"
    key_urn = f"{prefix}aws:kms/key:Key::keys-model-weights"
    policy = attested_policy()
    alias_entry: dict[str, Any] = {
        "urn": f"{prefix}aws:kms/alias:Alias::keys-model-weights-alias", "custom": True, "type": ALIAS,
        "id": "alias/zero-trust-ai/prod/model-weights", "ignoreChanges": ["targetKeyId"],
        "outputs": {"id": "alias/zero-trust-ai/prod/model-weights", "targetKeyId": "key-1",
                    "name": "alias/zero-trust-ai/prod/model-weights"}}
    document = {"version": 3, "deployment": {"resources": [
        {"urn": key_urn, "custom": True, "type": KEY, "id": "key-1",
         "outputs": {"id": "key-1", "keyId": "key-1", "arn": "arn:aws:kms:eu-west-1:111122223333:key/key-1",
                     "policy": policy, "tags": {"ztai:key-purpose": "model-weights"}}},
        {"urn": f"{prefix}aws:kms/keyPolicy:KeyPolicy::keys-model-weights-policy", "custom": True,
         "type": KEY_POLICY, "id": "key-1", "outputs": {"id": "key-1", "keyId": "key-1", "policy": policy}},
        alias_entry,
    ]}}
    _, _, resources = analyzed_resources(document)
    assert [r.ignore_changes for r in resources if r.type == ALIAS] == [["targetKeyId"]]

    def model_key_findings() -> set[tuple[str, str]]:
        result = analyze(pack, resources, user_config=None, project="zero-trust-ai", stack="prod")
        # (This minimal stack has no rotation schedule: the rotation rules' findings are not ours.)
        return {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.mandatory_violations
                if v.policy.startswith("model-key-")}

    assert model_key_findings() == {("model-key-alias-pinned", "keys-model-weights-alias")}
    alias_entry.pop("ignoreChanges")
    _, _, resources = analyzed_resources(document)
    assert model_key_findings() == set()
