"""kms-two-person-key-administration, and kms-no-lockout-bypass's one exception: the model key's
policy changes only in a key-admin elevation. The passing stack is the key hierarchy as the program
composes it; each failing one is an insider's edit of it. Checked directly, on inputs and on a
deployed export's outputs (through the analyzer)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pulumi_aws as aws
import pytest

from components.keys import EnclaveMeasurements, KeyHierarchy, KeyHierarchyArgs
from tests.conftest import PACK_DIR
from tests.policy_packs.test_rules import NO_CONFIG
from ztai.export import analyzed_resources
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
from ztai.preview.recorder import RecordedStack, record
from ztpolicy.rule import Resource
from ztpolicy.rules.kms.kms_no_lockout_bypass import kms_no_lockout_bypass
from ztpolicy.rules.kms.kms_two_person_key_administration import kms_two_person_key_administration

DEPLOYER = "arn:aws:iam::111122223333:role/deployer"
ELEVATION = "zero-trust-ai-dev-jit-key-admin"
# The JIT API function's role, which writes approved key policies (a function of the stack: below).
WRITER = "arn:aws:iam::111122223333:role/zero-trust-ai-dev-jit-api-role"
PCR = "cd" * 48
EMPTY = json.dumps({"Version": "2012-10-17", "Statement": []})


def recorded(two_person: tuple[str, ...] = ("model-weights",)) -> RecordedStack:
    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region="eu-west-1",
                                                     administrator_role_arns=(DEPLOYER,),
                                                     two_person_purposes=two_person))
        # The JIT API function and its role (Lambda alone assumes it): the policy writer.
        lambda_only = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "lambda.amazonaws.com"}}]})
        writer = aws.iam.Role("jit-api-role", name="zero-trust-ai-dev-jit-api-role",
                              assume_role_policy=lambda_only)
        aws.lambda_.Function("jit-api", name="zero-trust-ai-dev-jit-api", role=writer.arn,
                             handler="ztai_runtime.jit.handler.api")
        keys.grant_decrypt_with_attestation("model-weights", aws.iam.Role("fleet", assume_role_policy=EMPTY),
                                            EnclaveMeasurements(pcr0=PCR, pcr1=PCR, pcr2=PCR))
        keys.grant_key_administration("model-weights", aws.iam.Role(
            "key-admin", name=ELEVATION, assume_role_policy=EMPTY,
            tags={"ztai:access": "jit-elevation", "ztai:grant": "key-admin"}), policy_writer=writer)
        keys.seal()

    return record(program, project="zero-trust-ai", stack="dev", config={}, region="eu-west-1")


STACK = recorded()


def resources(stack: RecordedStack = STACK, edit: Callable[[dict[str, Any]], None] | None = None,
              roles: bool = True) -> list[Resource]:
    """The recorded stack as the rules see it (inputs); `edit` changes the weights policy document."""
    found = []
    for r in stack.resources:
        if not r.custom or (not roles and r.type == "aws:iam/role:Role"):
            continue
        props = dict(r.inputs)
        if r.name == "keys-model-weights-policy" and edit is not None:
            document = json.loads(props["policy"])
            edit(document)
            props["policy"] = json.dumps(document)
        dependencies = {k: tuple(v) for k, v in r.property_dependencies.items()}
        found.append(Resource(type=r.type, name=r.name, urn=r.urn, props=props,
                              property_dependencies=dependencies))
    return found


def weights_policy(found: list[Resource]) -> Resource:
    return next(r for r in found if r.name == "keys-model-weights-policy")


def deny(document: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in document["Statement"] if s["Sid"].startswith("TwoPersonChangesOnly"))


def exempt(document: dict[str, Any], arns: list[str]) -> None:
    deny(document)["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] = arns


def test_the_composed_hierarchy_passes() -> None:
    found = resources()
    assert kms_two_person_key_administration(found, NO_CONFIG) == []
    assert kms_no_lockout_bypass(weights_policy(found), NO_CONFIG) == []


def without_deny(document: dict[str, Any]) -> None:
    document["Statement"].remove(deny(document))


def narrowed(document: dict[str, Any]) -> None:
    deny(document)["Action"] = ["kms:PutKeyPolicy"]


def extra_condition(document: dict[str, Any]) -> None:
    deny(document)["Condition"]["Bool"] = {"aws:MultiFactorAuthPresent": "false"}


def for_one_principal(document: dict[str, Any]) -> None:
    deny(document)["Principal"] = {"AWS": "arn:aws:iam::111122223333:role/someone"}


@pytest.mark.parametrize(("edit", "fragment"), [
    (without_deny, "does not deny kms:PutKeyPolicy, kms:ScheduleKeyDeletion, kms:DisableKey, "
                   "kms:UpdateAlias, kms:DeleteAlias, kms:ReplicateKey, kms:UpdatePrimaryRegion "
                   "to every principal"),
    (narrowed, "does not deny kms:ScheduleKeyDeletion, kms:DisableKey, kms:UpdateAlias, kms:DeleteAlias, "
               "kms:ReplicateKey"),
    (extra_condition, "does not deny kms:PutKeyPolicy"),
    (for_one_principal, "does not deny kms:PutKeyPolicy"),
    (lambda d: exempt(d, [DEPLOYER]), f"exempts {DEPLOYER} from its two-person deny, which is neither "
                                      "the JIT API's role"),
    (lambda d: exempt(d, ["arn:aws:iam::111122223333:role/zero-trust-ai-dev-jit-*"]), "exempts the pattern"),
])
def test_an_insiders_edit_is_caught(edit: Callable[[dict[str, Any]], None], fragment: str) -> None:
    findings = kms_two_person_key_administration(resources(edit=edit), NO_CONFIG)
    assert findings and all(f.urn == weights_policy(resources()).urn for f in findings)
    assert any(fragment in f.message for f in findings), [f.message for f in findings]


def test_an_exempt_role_must_be_a_key_admin_elevation_of_the_stack() -> None:
    # Without the role in the stack, or with the role's tags changed, its ARN is just a name.
    messages = [f.message for f in kms_two_person_key_administration(resources(roles=False), NO_CONFIG)]
    assert any(f"role/{ELEVATION} from its two-person deny, which is neither" in m for m in messages)
    assert any(f"{WRITER} from its two-person deny, which is neither" in m for m in messages)
    retagged = [r if r.name != "key-admin" else Resource(
        type=r.type, name=r.name, urn=r.urn, props={**r.props, "tags": {"ztai:access": "human"}})
        for r in resources()]
    assert kms_two_person_key_administration(retagged, NO_CONFIG)


def test_the_relaxation_is_reported_and_needs_no_bypass() -> None:
    found = resources(recorded(two_person=()))
    [finding] = kms_two_person_key_administration(found, NO_CONFIG)
    assert "does not deny kms:PutKeyPolicy" in finding.message
    assert weights_policy(found).props.get("bypassPolicyLockoutSafetyCheck") is not True


def test_the_lockout_bypass_is_accepted_only_on_a_policy_someone_can_still_change() -> None:
    def no_admin_allow(document: dict[str, Any]) -> None:
        document["Statement"] = [s for s in document["Statement"]
                                 if not s["Sid"].startswith("WriteApprovedPolicy")]

    for edit in (without_deny, no_admin_allow, lambda d: exempt(d, ["*"]), lambda d: exempt(d, [])):
        [message] = kms_no_lockout_bypass(weights_policy(resources(edit=edit)), NO_CONFIG)
        assert "bypass_policy_lockout_safety_check" in message
    # On a key (not its KeyPolicy) the bypass is never accepted.
    key = next(r for r in resources() if r.name == "keys-model-weights")
    flagged = Resource(type=key.type, name=key.name, urn=key.urn,
                       props={**key.props, "bypassPolicyLockoutSafetyCheck": True})
    assert kms_no_lockout_bypass(flagged, NO_CONFIG)


# -- through the analyzer, on a deployed export's outputs ----------------------------------------------
@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "dev", {}, True)) as running:
        yield running


def exported(edit: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The recorded stack as `pulumi stack export` writes it: outputs only (what is deployed)."""
    entries = []
    for r in STACK.resources:
        if not r.custom:
            continue
        outputs = copy.deepcopy(dict(r.outputs))
        if r.name == "keys-model-weights-policy" and edit is not None:
            document = json.loads(outputs["policy"])
            edit(document)
            outputs["policy"] = json.dumps(document)
        entries.append({"urn": r.urn, "custom": True, "type": r.type, "id": outputs.get("id", r.name),
                        "outputs": outputs})
    return {"version": 3, "deployment": {"resources": entries}}


def two_person_findings(pack: PolicyPackProcess, document: dict[str, Any]) -> set[str]:
    _, _, analyzed = analyzed_resources(document)
    result = analyze(pack, analyzed, user_config=None, project="zero-trust-ai", stack="dev")
    return {v.urn.rsplit("::", 1)[-1] for v in result.mandatory_violations
            if v.policy in ("kms-two-person-key-administration", "kms-no-lockout-bypass")}


def test_deployed_outputs_pass_and_a_rewritten_policy_is_caught(pack: PolicyPackProcess) -> None:
    assert two_person_findings(pack, exported()) == set()
    assert two_person_findings(pack, exported(without_deny)) == {"keys-model-weights-policy"}
    deployer_exempt = exported(lambda d: exempt(d, [DEPLOYER]))
    assert two_person_findings(pack, deployer_exempt) == {"keys-model-weights-policy"}


# -- the exempt role must be the stack's own elevation, and closed (hostile review) -----------------
STACK_ACCOUNT, OTHER_ACCOUNT = "111122223333", "999988887777"


def with_known_role_arns(found: list[Resource]) -> list[Resource]:
    """Deployed outputs: every role's ARN is known, in the stack's account."""
    return [r if r.type != "aws:iam/role:Role" else Resource(
        type=r.type, name=r.name, urn=r.urn,
        props={**r.props, "arn": f"arn:aws:iam::{STACK_ACCOUNT}:role/{r.props.get('name', r.name)}"})
        for r in found]


def test_a_role_of_another_account_named_like_the_elevation_is_not_it() -> None:
    foreign = f"arn:aws:iam::{OTHER_ACCOUNT}:role/{ELEVATION}"

    def edit(document: dict[str, Any]) -> None:
        exempt(document, [foreign])
        admin = next(s for s in document["Statement"] if s["Sid"].startswith("AdministerInApprovedElevation"))
        admin["Principal"] = {"AWS": foreign}

    assert kms_two_person_key_administration(with_known_role_arns(resources()), NO_CONFIG) == []
    findings = kms_two_person_key_administration(with_known_role_arns(resources(edit=edit)), NO_CONFIG)
    assert any(foreign in f.message and "nor a just-in-time key-admin elevation" in f.message
               for f in findings)


def trusted(trust: dict[str, Any]) -> list[Resource]:
    return [r if r.name != "key-admin" else Resource(
        type=r.type, name=r.name, urn=r.urn, props={**r.props, "assumeRolePolicy": json.dumps(trust)})
        for r in with_known_role_arns(resources())]


def allow_until(principal: str, minutes: int, **extra: Any) -> dict[str, Any]:
    until = (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole",
        "Condition": {"DateLessThan": {"aws:CurrentTime": until}, **extra}}]}


def test_the_exempt_elevations_trust_admits_nobody_but_one_approved_person() -> None:
    closed = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{STACK_ACCOUNT}:root"},
        "Action": "sts:AssumeRole",
        "Condition": {"DateLessThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}}}]}
    assert kms_two_person_key_administration(trusted(closed), NO_CONFIG) == []
    # The deployer, for the next six hours: no approval at all.
    [finding] = kms_two_person_key_administration(trusted(allow_until(DEPLOYER, 360)), NO_CONFIG)
    assert "only the JIT runtime may open it" in finding.message
    assert finding.urn == next(r for r in resources() if r.name == "key-admin").urn


def test_an_open_trust_the_jit_runtime_wrote_passes_only_for_a_person_of_the_stack() -> None:
    person = f"arn:aws:iam::{STACK_ACCOUNT}:role/zero-trust-ai-dev-key-administrator"
    human = Resource(type="aws:iam/role:Role", name="person", urn="urn:person",
                     props={"name": "zero-trust-ai-dev-key-administrator", "arn": person,
                            "tags": {"ztai:access": "human"}})
    bound = {"StringEquals": {"sts:SourceIdentity": "alice", "sts:RoleSessionName": "alice"}}
    assert kms_two_person_key_administration([*trusted(allow_until(person, 30, **bound)), human],
                                             NO_CONFIG) == []
    for trust in (allow_until(person, 30),                      # not bound to the person
                  allow_until(person, 6 * 60, **bound),         # for hours
                  allow_until(DEPLOYER, 30, **bound)):          # not a person's role
        assert kms_two_person_key_administration([*trusted(trust), human], NO_CONFIG), trust



def test_the_policy_writer_must_be_the_jit_apis_role_and_lambdas_alone() -> None:
    # Its role admitting a person (or anyone but Lambda) would let them write unapproved policies.
    loose = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}},
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": DEPLOYER}}]})
    found = [r if r.name != "jit-api-role" else Resource(
        type=r.type, name=r.name, urn=r.urn, props={**r.props, "assumeRolePolicy": loose})
        for r in resources()]
    [finding] = kms_two_person_key_administration(found, NO_CONFIG)
    assert "not by Lambda alone" in finding.message
    # A function not named as the JIT API does not make its role a writer.
    renamed = [r if r.name != "jit-api" else Resource(
        type=r.type, name=r.name, urn=r.urn, props={**r.props, "name": "training-data-export"},
        property_dependencies=r.property_dependencies) for r in resources()]
    [finding] = kms_two_person_key_administration(renamed, NO_CONFIG)
    assert f"exempts {WRITER} from its two-person deny, which is neither" in finding.message


def test_the_pack_and_the_components_agree_on_their_shared_numbers() -> None:
    from components import jit, jit_catalogue, keys
    from ztpolicy.rules.kms import kms_two_person_key_administration as rule

    assert rule.MAX_TWO_PERSON_MINUTES == jit_catalogue.MAX_TWO_PERSON_MINUTES
    assert rule._CLOSED.strftime("%Y-%m-%dT%H:%M:%SZ") == jit.CLOSED_BEFORE
    assert jit_catalogue.jit_api_function_name("dev").endswith(rule.JIT_API_SUFFIX)
    assert rule.TWO_PERSON_ACTIONS == keys.TWO_PERSON_ACTIONS
