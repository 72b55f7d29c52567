"""kms-two-person-key-administration: the policy writer is the stack's JIT API and nothing else,
and no elevation may make calls that carry a key policy (found by a hostile review)."""

from __future__ import annotations

import json
from typing import Any

import pulumi_aws as aws

from components.keys import EnclaveMeasurements, KeyHierarchy, KeyHierarchyArgs
from tests.policy_packs.test_rules import NO_CONFIG
from ztai.preview.recorder import RecordedStack, record
from ztpolicy.rule import Resource
from ztpolicy.rules.kms.kms_two_person_key_administration import kms_two_person_key_administration

DEPLOYER = "arn:aws:iam::111122223333:role/deployer"
PCR = "cd" * 48
EMPTY = json.dumps({"Version": "2012-10-17", "Statement": []})
LAMBDA_ONLY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}]})


def _stack(writer_function: str, extra: bool, handler: str = "ztai_runtime.jit.handler.api") -> RecordedStack:
    """The model-weights key whose policy writer is the role of `writer_function`; with `extra`,
    a second function (not the JIT API, code of the insider's choosing) runs with that role too."""

    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region="eu-west-1",
                                                     administrator_role_arns=(DEPLOYER,)))
        writer = aws.iam.Role("writer-role", name=f"{writer_function}-role", assume_role_policy=LAMBDA_ONLY)
        aws.lambda_.Function("writer", name=writer_function, role=writer.arn,
                             handler=handler, runtime="python3.12")
        if extra:
            aws.lambda_.Function("helper", name="zero-trust-ai-dev-nightly-report", role=writer.arn,
                                 handler="index.handler", runtime="python3.12")
        keys.grant_decrypt_with_attestation("model-weights", aws.iam.Role("fleet", assume_role_policy=EMPTY),
                                            EnclaveMeasurements(pcr0=PCR, pcr1=PCR, pcr2=PCR))
        keys.grant_key_administration("model-weights", aws.iam.Role(
            "key-admin", name="zero-trust-ai-dev-jit-key-admin", assume_role_policy=EMPTY,
            tags={"ztai:access": "jit-elevation", "ztai:grant": "key-admin"}), policy_writer=writer)
        keys.seal()

    return record(program, project="zero-trust-ai", stack="dev", config={}, region="eu-west-1")


def _resources(stack: RecordedStack) -> list[Resource]:
    found = []
    for r in stack.resources:
        if not r.custom:
            continue
        dependencies: dict[str, Any] = {k: tuple(v) for k, v in r.property_dependencies.items()}
        found.append(Resource(type=r.type, name=r.name, urn=r.urn, props=dict(r.inputs),
                              property_dependencies=dependencies))
    return found


def test_the_genuine_writer_passes() -> None:
    # The control: the stack's own JIT API function (jit_api_function_name) with a Lambda-only role.
    assert kms_two_person_key_administration(_resources(_stack("zero-trust-ai-dev-jit-api", False)),
                                             NO_CONFIG) == []


def test_any_function_named_like_the_jit_api_is_not_the_policy_writer() -> None:
    # Attack: a function of the insider's own, named `...-jit-api` but not the stack's JIT API
    # (zero-trust-ai-dev-jit-api), runs code that calls kms:PutKeyPolicy with anything.
    found = kms_two_person_key_administration(
        _resources(_stack("zero-trust-ai-dev-export-jit-api", False)), NO_CONFIG)
    assert found, "a function merely named *-jit-api was accepted as the approved-policy writer"


def test_a_writer_role_shared_with_another_function_is_a_finding() -> None:
    # Attack: the JIT API's role is also the role of another function (any code, any trigger):
    # that function writes the key policy with the exempt role, no approval involved.
    found = kms_two_person_key_administration(
        _resources(_stack("zero-trust-ai-dev-jit-api", True)), NO_CONFIG)
    assert found, "the exempt writer role also runs a function that is not the JIT API"


def test_an_elevation_allowed_to_write_the_policy_is_a_finding() -> None:
    # Attack (reverting the approved-document fix in keys.py): give the key-admin elevation
    # kms:PutKeyPolicy (and ReplicateKey, whose request carries a policy) again. Its session
    # writes any document once two people approved a reason, which is what the fix closed; the
    # rule checks who is exempt and their trust, not that only the JIT API's role may write.
    from tests.policy_packs.kms.test_two_person_rule import resources, weights_policy

    def give_the_elevation_the_pen(document: dict[str, Any]) -> None:
        for statement in document["Statement"]:
            if str(statement.get("Sid", "")).startswith("AdministerInApprovedElevation"):
                statement["Action"] = [*statement["Action"], "kms:PutKeyPolicy", "kms:ReplicateKey"]
                return
        raise AssertionError("the elevation's statement is gone: update this test")

    found = resources(edit=give_the_elevation_the_pen)
    findings = kms_two_person_key_administration(found, NO_CONFIG)
    assert any(f.urn == weights_policy(found).urn for f in findings), (
        "a key-admin elevation allowed kms:PutKeyPolicy passes: a reason, not a document, is approved")


def test_a_function_with_the_jit_apis_name_but_other_code_is_not_the_writer() -> None:
    found = kms_two_person_key_administration(
        _resources(_stack("zero-trust-ai-dev-jit-api", False, handler="index.handler")), NO_CONFIG)
    assert found, "a function named like the JIT API but running other code was accepted as the writer"


def test_the_pack_knows_the_environments_the_stack_allows() -> None:
    from components.stack_config import ENVIRONMENTS
    from ztpolicy.rules.kms import kms_two_person_key_administration as rule

    assert tuple(ENVIRONMENTS) == rule.ENVIRONMENTS
