"""Key administration as a two-person elevation: the catalogue's key-admin entries, the stack keys
that make a key two-person (twoPersonKeys), and the program wiring them (docs/jit.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.jit_catalogue import parse_catalogue
from components.stack_config import parse_stack_config
from tests.components.test_stack_config import VALID, problems_of
from tests.support.key_policy import Request, evaluate
from tests.support.stacks import record_stack
from ztai.preview.recorder import RecordedStack

KEY_ADMIN = {"name": "key-admin", "description": "change the weights key's policy", "grant": "key-admin",
             "key": "model-weights", "maxMinutes": 30, "approvers": ["security-lead"],
             "approvalsNeeded": 2}
LABEL = "zero-trust-ai:jitCatalogueFile = x.yaml"


def test_a_key_admin_elevation_names_its_key() -> None:
    [elevation] = parse_catalogue(LABEL, {"elevations": [KEY_ADMIN]})
    assert (elevation.grant, elevation.key) == ("key-admin", "model-weights")


@pytest.mark.parametrize(("change", "message"), [
    ({"key": None}, "key: missing; key-admin needs the key it administers, one of training-data, "
                    "model-weights, logs, secrets, inference, audit, tokens"),
    ({"key": "weights"}, "key = 'weights'; key-admin needs the key it administers"),
    ({"key": ["model-weights"]}, 'key = ["model-weights"]; key-admin needs'),
    ({"grant": "model-prefix-write", "prefix": "x/", "approvalsNeeded": 1},
     "key: only key-admin takes one, not 'model-prefix-write'"),
])
def test_bad_key_admin_entries_are_named(change: dict[str, Any], message: str) -> None:
    entry = {key: value for key, value in {**KEY_ADMIN, **change}.items() if value is not None}
    with pytest.raises(ValueError, match="zero-trust-ai:jitCatalogueFile") as problem:
        parse_catalogue(LABEL, {"elevations": [entry]})
    assert message in str(problem.value)


def test_the_shipped_stacks_make_the_model_and_audit_keys_two_person() -> None:
    config = parse_stack_config(VALID)
    assert config.two_person_keys == ("model-weights", "audit")
    for key in config.two_person_keys:
        assert any(e.grant == "key-admin" and e.key == key for e in config.jit_elevations)


def test_a_two_person_key_needs_a_key_admin_elevation_for_it() -> None:
    model, audit = problems_of(**{"zero-trust-ai__jitCatalogueFile": None})
    assert model == (
        "zero-trust-ai:twoPersonKeys names model-weights, but zero-trust-ai:jitCatalogueFile has no "
        "key-admin elevation with `key: model-weights`: nobody could ever change that key's policy; "
        "add one (docs/jit.md), or take the key out of twoPersonKeys")
    assert "names audit, but" in audit
    [problem] = problems_of(**{"zero-trust-ai__twoPersonKeys": '["model-weights", "secrets"]'})
    assert "names secrets, but" in problem
    # The explicit relaxation parses (the policy pack then reports it).
    config = parse_stack_config({**VALID, "zero-trust-ai:twoPersonKeys": "[]"})
    assert config.two_person_keys == ()


@pytest.mark.parametrize(("value", "message"), [
    ('["weights"]', "zero-trust-ai:twoPersonKeys = '[\"weights\"]': distinct key purposes of training-data"),
    ('["model-weights", "model-weights"]', "'model-weights' listed twice; each item once"),
    ('"model-weights"', "zero-trust-ai:twoPersonKeys"),
])
def test_bad_two_person_keys_are_named(value: str, message: str) -> None:
    problems = problems_of(**{"zero-trust-ai__twoPersonKeys": value})
    assert any(message in problem for problem in problems), problems


@pytest.mark.parametrize("role", ["zero-trust-ai-dev-key-administrator", "zero-trust-ai-dev-jit-key-admin",
                                  "zero-trust-ai-dev-break-glass", "ops/zero-trust-ai-dev-data-curator"])
def test_people_are_never_standing_key_administrators(role: str) -> None:
    arns = json.dumps(["arn:aws:iam::111122223333:role/deployer", f"arn:aws:iam::111122223333:role/{role}"])
    [problem] = problems_of(**{"zero-trust-ai__keyAdministratorRoleArns": arns})
    assert problem == (f"zero-trust-ai:keyAdministratorRoleArns: arn:aws:iam::111122223333:role/{role} is "
                       "one of the stack's own human or elevation roles; name the deploying role: people "
                       "administer keys only through the key-admin elevation")
    # Another environment's roles, or a deployer whose name merely starts alike, are not refused.
    for other in ("zero-trust-ai-prod-key-administrator", "zero-trust-ai-dev-deployer"):
        parse_stack_config({**VALID, "zero-trust-ai:keyAdministratorRoleArns":
                            json.dumps([f"arn:aws:iam::111122223333:role/{other}"])})


@pytest.fixture(scope="module")
def dev_preview() -> RecordedStack:
    return record_stack("dev")


def test_the_program_lets_only_the_jit_api_write_the_model_keys_policy(dev_preview: RecordedStack) -> None:
    [weights] = [r for r in dev_preview.resources if r.name == "keys-model-weights-policy"]
    roles = {r.inputs.get("name"): r for r in dev_preview.resources if r.type == "aws:iam/role:Role"}
    elevation = roles["zero-trust-ai-dev-jit-key-admin"]
    assert elevation.inputs["tags"]["ztai:grant"] == "key-admin"
    [api] = [r for r in dev_preview.resources if r.type == "aws:lambda/function:Function"
             and r.inputs.get("name") == "zero-trust-ai-dev-jit-api"]
    policy = weights.inputs["policy"]
    deny = next(s for s in json.loads(policy)["Statement"] if s["Sid"].startswith("TwoPersonChangesOnly"))
    exempt = deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    assert sorted(exempt) == sorted([elevation.outputs["arn"], api.inputs["role"]])
    for principal, effect in ((api.inputs["role"], "allow"), (elevation.outputs["arn"], "implicit-deny"),
                              ("arn:aws:iam::111122223333:role/zero-trust-ai-key-admin", "explicit-deny")):
        request = Request(principal, "kms:PutKeyPolicy", "*", {"aws:PrincipalArn": principal})
        assert evaluate(policy, request).effect == effect, principal


# -- the break-glass elevation: two approvers, then what the break-glass role holds, watched ------
def test_a_break_glass_elevation_holds_administrator_access_and_is_watched() -> None:
    from ztpolicy.rule import Resource
    from ztpolicy.rules.iam.iam_no_wildcard_action import iam_no_wildcard_action

    stack = record_stack("dev", {"zero-trust-ai:jitCatalogueFile":
                                 "tests/components/fixtures/jit-with-break-glass.yaml"})
    [role] = [r for r in stack.resources if r.type == "aws:iam/role:Role"
              and r.inputs.get("name") == "zero-trust-ai-dev-jit-emergency"]
    assert role.inputs["tags"]["ztai:grant"] == "break-glass"
    [attached] = [r for r in stack.resources if r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
                  and r.inputs["role"] == "zero-trust-ai-dev-jit-emergency"]
    assert attached.inputs["policyArn"].endswith(":policy/AdministratorAccess")
    [watch] = [r for r in stack.resources if r.type == "aws:cloudwatch/eventRule:EventRule"
               and r.inputs["name"] == "zero-trust-ai-dev-jit-emergency-used"]
    pattern = json.loads(watch.inputs["eventPattern"])
    assert pattern["detail"]["requestParameters"]["roleArn"] == [role.outputs["arn"]]

    def as_rules_see(tags: dict[str, str] | None = None) -> list[Resource]:
        return [Resource(type=r.type, name=r.name, urn=r.urn,
                         props={**r.inputs, "tags": tags} if tags is not None and r is role else r.inputs,
                         property_dependencies={k: tuple(v) for k, v in r.property_dependencies.items()})
                for r in stack.resources if r.custom]

    # The pack's wildcard rule admits it as break-glass; the same role as any other elevation is caught.
    assert iam_no_wildcard_action(as_rules_see(), {}) == []
    for grant in ("key-admin", "training-data-prefix-write"):
        retagged = {**role.inputs["tags"], "ztai:grant": grant}
        assert iam_no_wildcard_action(as_rules_see(retagged), {}), grant


def test_the_longest_break_glass_elevation_name_gets_a_whole_watch_rule_name() -> None:
    # EventBridge names are 64 characters at most, and the CI boundary protects those ending in
    # -used: the longest elevation name (32) of the longest environment (staging) still fits.
    from components.identity import MAX_RULE_NAME
    from components.jit_catalogue import NAME

    longest = "a" * 32
    assert NAME.fullmatch(longest) and not NAME.fullmatch(longest + "a")
    assert len(f"zero-trust-ai-staging-jit-{longest}-used") <= MAX_RULE_NAME


def test_two_person_elevations_last_an_hour_at_most_and_issue_15_minute_sessions(
        dev_preview: RecordedStack) -> None:
    from components.jit import PRIVILEGED_SESSION_MINUTES
    from ztai_runtime.jit.grants import PRIVILEGED_SESSION_MINUTES as RUNTIME_SESSION_MINUTES

    assert PRIVILEGED_SESSION_MINUTES == RUNTIME_SESSION_MINUTES
    with pytest.raises(ValueError, match=r"maxMinutes = 61: a whole number of minutes from 15 .* to 60 "
                                         r"\(key-admin is a two-person elevation\)"):
        parse_catalogue(LABEL, {"elevations": [{**KEY_ADMIN, "maxMinutes": 61}]})
    [api] = [r for r in dev_preview.resources if r.type == "aws:lambda/function:Function"
             and r.inputs.get("name") == "zero-trust-ai-dev-jit-api"]
    catalogue = json.loads(api.inputs["environment"]["variables"]["JIT_CATALOGUE"])
    assert catalogue["key-admin"]["sessionMinutes"] == 15
    assert catalogue["training-data-write"]["sessionMinutes"] is None


# -- approvers are people the stack can tell apart ----------------------------------------------------
def test_approvers_must_be_the_stacks_human_roles() -> None:
    from components.identity import ROLES, role_name
    from components.jit_catalogue import parse_catalogue_file
    from tests.conftest import ROOT

    people = {role_name(environment, role) for environment in ("dev", "prod") for role in ROLES
              if role != "break-glass"}
    for environment in ("dev", "prod"):
        catalogue = parse_catalogue_file("jitCatalogueFile", f"stacks/jit/{environment}.yaml", ROOT)
        assert {a for elevation in catalogue for a in elevation.approvers} <= people
    # A role the stack does not make (so nothing binds its session names to a person), or the
    # break-glass users' role, is refused: one person could approve twice under two session names.
    from components.stack_config import _key_administration_problems

    entries = [{**KEY_ADMIN, "approvers": ["zero-trust-ai-dev-security-responder",
                                           "zero-trust-ai-dev-security-lead"]},
               {**KEY_ADMIN, "name": "glass", "grant": "break-glass", "key": None,
                "approvers": ["zero-trust-ai-dev-break-glass"]}]
    elevations = parse_catalogue(LABEL, {"elevations": [{k: v for k, v in e.items() if v is not None}
                                                        for e in entries]})
    problems = _key_administration_problems({"environment": "dev", "jitCatalogueFile": elevations,
                                             "twoPersonKeys": ["model-weights"]})
    assert len(problems) == 2, problems
    assert problems[0].startswith("zero-trust-ai:jitCatalogueFile: elevation key-admin names approver "
                                  "role(s) zero-trust-ai-dev-security-lead, which are not the stack's "
                                  "human roles")
    assert "elevation glass names approver role(s) zero-trust-ai-dev-break-glass" in problems[1]


def test_a_destroy_keeps_the_role_a_two_person_key_admits(dev_preview: RecordedStack) -> None:
    # A policy written with the lockout bypass is only dropped from the state on destroy (the
    # provider's KeyPolicy docs), so it stays on the key, admitting only the key-admin role: that
    # role must outlive the stack, in every environment.
    [policy] = [r for r in dev_preview.resources if r.name == "keys-model-weights-policy"]
    assert policy.inputs.get("bypassPolicyLockoutSafetyCheck") is True
    roles = {r.inputs.get("name"): r for r in dev_preview.resources if r.type == "aws:iam/role:Role"}
    assert roles["zero-trust-ai-dev-jit-key-admin"].retain_on_delete
    assert not roles["zero-trust-ai-dev-jit-training-data-write"].retain_on_delete


def test_a_region_without_function_urls_cannot_have_jit_elevations() -> None:
    from components.stack_config import _key_administration_problems

    entry = {**KEY_ADMIN, "approvers": ["zero-trust-ai-dev-auditor"]}
    elevations = parse_catalogue(LABEL, {"elevations": [entry]})
    values = {"environment": "dev", "jitCatalogueFile": elevations, "twoPersonKeys": ["model-weights"]}
    # Lambda Developer Guide, "Lambda function URLs": not offered in eu-central-2 (and others).
    [problem] = _key_administration_problems(values, "eu-central-2")
    assert problem.startswith("zero-trust-ai:jitCatalogueFile: the JIT API is a Lambda function URL, "
                              "which eu-central-2 does not offer")
    assert _key_administration_problems({**values, "jitCatalogueFile": [], "twoPersonKeys": []},
                                        "eu-central-2") == []
    assert _key_administration_problems(values, "eu-west-1") == []


# -- the requests table is written by the JIT functions alone ----------------------------------------
def test_only_the_jit_functions_write_the_requests_table(dev_preview: RecordedStack) -> None:
    from components.jit import TABLE_WRITES

    [policy] = [r for r in dev_preview.resources if r.type == "aws:dynamodb/resourcePolicy:ResourcePolicy"]
    [table] = [r for r in dev_preview.resources if r.type == "aws:dynamodb/table:Table"
               and r.inputs.get("name") == "zero-trust-ai-dev-jit"]
    assert policy.inputs["resourceArn"] == table.outputs["arn"]
    functions = {r.inputs["name"]: r.inputs["role"] for r in dev_preview.resources
                 if r.type == "aws:lambda/function:Function"
                 and r.inputs["name"].startswith("zero-trust-ai-dev-jit-")}
    assert set(functions) == {"zero-trust-ai-dev-jit-api", "zero-trust-ai-dev-jit-expiry"}
    deployer = "arn:aws:iam::111122223333:role/zero-trust-ai-key-admin"
    glass = "arn:aws:iam::111122223333:role/zero-trust-ai-dev-break-glass"
    for action in TABLE_WRITES:
        for principal, effect in [(deployer, "explicit-deny"), (glass, "explicit-deny"),
                                  *((role, "implicit-deny") for role in functions.values())]:
            request = Request(principal, action, table.outputs["arn"], {"aws:PrincipalArn": principal})
            assert evaluate(policy.inputs["policy"], request).effect == effect, (principal, action)


def test_the_human_boundary_keeps_people_off_the_jit_table(dev_preview: RecordedStack) -> None:
    from tests.support.key_policy import evaluate_session

    [boundary] = [r for r in dev_preview.resources if r.name == "access-boundary"]
    # The table's ARN as AWS makes it from its name (the mock monitor names it otherwise).
    table_arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/zero-trust-ai-dev-jit"
    glass = "arn:aws:iam::111122223333:role/zero-trust-ai-dev-break-glass"
    everything = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                                     "Resource": "*"}]})
    context = {"aws:PrincipalArn": glass, "aws:MultiFactorAuthPresent": "true",
               "aws:PrincipalTag/ztai:access": "break-glass", "aws:RequestedRegion": "eu-west-1"}
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem",
                   "dynamodb:PartiQLUpdate"):
        for resource in (table_arn, f"{table_arn}/index/x"):
            decision = evaluate_session(Request(glass, action, resource, context),
                                        identity_policies=[everything], boundary=boundary.inputs["policy"])
            assert decision.effect == "explicit-deny", (action, resource)
    # Control: the same session may still use another table (the boundary is not a blanket deny).
    other = "arn:aws:dynamodb:eu-west-1:111122223333:table/zero-trust-ai-dev-token-vault"
    control = evaluate_session(Request(glass, "dynamodb:GetItem", other, context),
                               identity_policies=[everything], boundary=boundary.inputs["policy"])
    assert control.effect == "allow"


def test_the_only_policy_writer_outlives_the_stack(dev_preview: RecordedStack) -> None:
    [api] = [r for r in dev_preview.resources if r.type == "aws:lambda/function:Function"
             and r.inputs.get("name") == "zero-trust-ai-dev-jit-api"]
    [role] = [r for r in dev_preview.resources if r.type == "aws:iam/role:Role"
              and r.outputs.get("arn") == api.inputs["role"]]
    assert role.retain_on_delete
