"""kms-monthly-rotation-scheduled: every symmetric key is named by a monthly schedule that
invokes a Lambda function; anything less is caught, naming the key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from components.key_rotation import HANDLER
from components.keys import KEY_ROTATION_ACTIONS, KEY_SUCCESSOR_ACTIONS, _Grant, _policy_document
from tests.components.test_keys import USE
from tests.policy_packs.test_analyzer import pack, resource, run  # noqa: F401 - pack is a fixture
from tests.policy_packs.test_rules import NO_CONFIG, STACK, res, urns
from ztai.policy.analyzer import PolicyPackProcess
from ztpolicy.rule import Resource
from ztpolicy.rules.kms.kms_key_policy_least_privilege import kms_key_policy_least_privilege
from ztpolicy.rules.kms.kms_monthly_rotation_scheduled import (
    ALIAS,
    EXTERNAL_KEY,
    FUNCTION,
    KEY,
    ROTATION_HANDLER,
    RULE,
    SCHEDULE,
    kms_monthly_rotation_scheduled,
    runs_at_least_monthly,
    started_by,
)

SYMMETRIC = ("training-data", "model-weights", "logs", "secrets")


def alias(purpose: str, key: Resource, *, linked: bool = True) -> Resource:
    """The key's alias; `linked` as in a preview (property dependency), else by id as in an export."""
    logical = f"keys-{purpose}-alias"
    return Resource(type=ALIAS, name=logical, urn=f"{STACK}{ALIAS}::{logical}",
                    props={"name": f"alias/zero-trust-ai/dev/{purpose}", "targetKeyId": key.get("id")},
                    property_dependencies={"targetKeyId": (key.urn,)} if linked else {})


def hierarchy(*, linked: bool = True) -> list[Resource]:
    """Four symmetric keys and an HMAC key, each with its alias."""
    resources = []
    for purpose in (*SYMMETRIC, "tokens"):
        spec: dict[str, Any] = {"customerMasterKeySpec": "HMAC_256", "keyUsage": "GENERATE_VERIFY_MAC"} \
            if purpose == "tokens" else {"customerMasterKeySpec": "SYMMETRIC_DEFAULT"}
        key = res(KEY, f"keys-{purpose}", id=f"key-{purpose}", **spec)
        resources += [key, alias(purpose, key, linked=linked)]
    return resources


FUNCTION_RESOURCE = res(FUNCTION, "key-rotation-function", handler="ztai_runtime.rotation.handler",
                        arn="arn:aws:lambda:eu-west-1:111122223333:function:zero-trust-ai-dev-key-rotation")


def schedule(aliases: list[str] | None = None, *, name: str = "key-rotation-schedule",
             target_deps: list[str] | None = None, **props: Any) -> Resource:
    names = [f"alias/zero-trust-ai/dev/{p}" for p in SYMMETRIC] if aliases is None else aliases
    target = {"arn": FUNCTION_RESOURCE.get("arn"), "roleArn": "arn:aws:iam::111122223333:role/s",
              "input": json.dumps({"aliases": names}), **props.pop("target", {})}
    return res(SCHEDULE, name,
               deps={"target": [FUNCTION_RESOURCE.urn] if target_deps is None else target_deps},
               **{"scheduleExpression": "cron(0 3 1 * ? *)", "scheduleExpressionTimezone": "UTC",
                  "state": "ENABLED", "target": target, **props})


def check(*resources: Resource) -> set[str]:
    return urns(kms_monthly_rotation_scheduled([*hierarchy(), *resources], NO_CONFIG))


ALL_SYMMETRIC = {f"keys-{p}" for p in SYMMETRIC}


def test_the_stacks_wiring_passes_and_the_hmac_key_is_not_applicable() -> None:
    assert check(FUNCTION_RESOURCE, schedule()) == set()


def test_without_a_schedule_every_symmetric_key_is_caught() -> None:
    findings = kms_monthly_rotation_scheduled(hierarchy(), NO_CONFIG)
    assert urns(findings) == ALL_SYMMETRIC
    [secrets] = [f for f in findings if f.urn.endswith("::keys-secrets")]
    assert "alias/zero-trust-ai/dev/secrets" in secrets.message and "not rotated monthly" in secrets.message


def test_a_key_left_out_of_the_input_is_named() -> None:
    partial = [f"alias/zero-trust-ai/dev/{p}" for p in ("training-data", "model-weights", "logs")]
    assert check(FUNCTION_RESOURCE, schedule(partial)) == {"keys-secrets"}


def test_a_key_without_alias_is_caught() -> None:
    orphan = res(KEY, "orphan-key", id="key-orphan")
    findings = kms_monthly_rotation_scheduled([*hierarchy(), orphan, FUNCTION_RESOURCE, schedule()],
                                              NO_CONFIG)
    [finding] = findings
    assert finding.urn.endswith("::orphan-key") and "has no alias" in finding.message


@pytest.mark.parametrize("bad_schedule", [
    schedule(state="DISABLED"),
    schedule(endDate="2027-01-01T00:00:00Z"),
    schedule(scheduleExpression="rate(45 days)"),
    schedule(scheduleExpression="cron(0 3 31 * ? *)"),  # months without a 31st are skipped
    schedule(scheduleExpression="cron(0 3 1 1/3 ? *)"),  # quarterly
    schedule(scheduleExpression="at(2026-07-01T03:00:00)"),
    # Targets that are not a Lambda function: an SQS queue, then a literal non-Lambda ARN.
    schedule(target_deps=["urn:pulumi:test::zero-trust-ai::aws:sqs/queue:Queue::q"],
             target={"arn": "arn:aws:sqs:eu-west-1:111122223333:q"}),
    schedule(target_deps=[], target={"arn": "arn:aws:states:eu-west-1:111122223333:stateMachine:x"}),
    schedule(target={"input": "not json"}),
    # Starts later: nothing is rotated until then (a bypass once the date is far off).
    schedule(startDate="2999-01-01T00:00:00Z"),
    schedule(startDate="not a date"),
    # 29 days or more can skip a whole month (February has 28 days).
    schedule(scheduleExpression="rate(29 days)"),
    schedule(scheduleExpression="rate(31 days)"),
])
def test_schedules_that_do_not_rotate_monthly_do_not_count(bad_schedule: Resource) -> None:
    assert check(FUNCTION_RESOURCE, bad_schedule) == ALL_SYMMETRIC


def test_a_start_date_that_has_passed_counts() -> None:
    assert check(FUNCTION_RESOURCE, schedule(startDate="2020-01-01T00:00:00Z")) == set()
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert started_by(None, now) and started_by("2026-06-01T00:00:00Z", now)
    assert not started_by("2026-06-01T00:00:01Z", now) and not started_by(17, now)


def test_the_target_must_be_the_rotation_function() -> None:
    # A function that accepts the input and does nothing would pass on the input alone.
    no_op = res(FUNCTION, "key-rotation-function", handler="index.handler",
                arn=FUNCTION_RESOURCE.get("arn"))
    assert check(no_op, schedule()) == ALL_SYMMETRIC
    # Linked by dependency only (the ARN unknown, as in a real preview): the same check.
    previewed = schedule(target={"arn": None})
    assert check(no_op, previewed) == ALL_SYMMETRIC
    assert check(FUNCTION_RESOURCE, previewed) == set()
    assert ROTATION_HANDLER == HANDLER  # the pack cannot import the component


def test_a_lambda_of_another_stack_cannot_be_checked_and_export_style_links_count() -> None:
    # A function deployed elsewhere, named by ARN only: its handler is unknown, so it does not
    # count (an exclusion with a reason is the way to accept it).
    remote = schedule(target_deps=[], target={
        "arn": "arn:aws:lambda:eu-west-1:111122223333:function:central-key-rotation"})
    assert check(remote) == ALL_SYMMETRIC
    # No property dependencies (an export): ARNs and ids link, a qualified ARN too.
    exported = kms_monthly_rotation_scheduled([*hierarchy(linked=False), FUNCTION_RESOURCE, schedule()],
                                              NO_CONFIG)
    assert exported == []
    qualified = schedule(target_deps=[], target={"arn": f"{FUNCTION_RESOURCE.get('arn')}:live"})
    assert check(FUNCTION_RESOURCE, qualified) == set()


def test_two_schedules_may_share_the_keys() -> None:
    first = schedule(["alias/zero-trust-ai/dev/training-data", "alias/zero-trust-ai/dev/logs"])
    second = schedule(["alias/zero-trust-ai/dev/model-weights", "alias/zero-trust-ai/dev/secrets"],
                      name="second", scheduleExpression="rate(7 days)")
    assert check(FUNCTION_RESOURCE, first, second) == set()


def previewed_schedule(name: str, expression: str) -> Resource:
    """A schedule as a first real preview sends it: its input is not computed yet, and reading it
    raises as the analyzer's proxy does."""
    props = unknown_checking_proxy({"scheduleExpression": expression, "target": {
        "arn": UNKNOWN_STRING_VALUE, "input": UNKNOWN_STRING_VALUE}})
    return Resource(type=SCHEDULE, name=name, urn=f"{STACK}{SCHEDULE}::{name}", props=props,
                    property_dependencies={"target": (FUNCTION_RESOURCE.urn,)})


def test_an_unknown_input_in_a_preview_decides_nothing_but_known_ones_still_count() -> None:
    assert check(FUNCTION_RESOURCE, previewed_schedule("pending", "cron(0 3 1 * ? *)")) == set()
    # An unknown input of a schedule that would not qualify anyway changes nothing.
    quarterly = previewed_schedule("quarterly", "cron(0 3 1 1/3 ? *)")
    assert check(FUNCTION_RESOURCE, quarterly) == ALL_SYMMETRIC


def test_hmac_asymmetric_and_replica_keys_are_not_applicable() -> None:
    keys = [res(KEY, "signing", customerMasterKeySpec="ECC_NIST_P384", keyUsage="SIGN_VERIFY"),
            res(EXTERNAL_KEY, "imported-hmac", keySpec="HMAC_256", keyUsage="GENERATE_VERIFY_MAC"),
            res("aws:kms/replicaKey:ReplicaKey", "keys-secrets-eu-central-1")]
    assert kms_monthly_rotation_scheduled(keys, NO_CONFIG) == []


@pytest.mark.parametrize("key, fragment", [
    (res(EXTERNAL_KEY, "imported", id="key-imported"), "imported key material"),
    (res(EXTERNAL_KEY, "imported-explicit", id="key-ie", keySpec="SYMMETRIC_DEFAULT",
         keyUsage="ENCRYPT_DECRYPT"), "imported key material"),
    (res(KEY, "in-hsm", id="key-hsm", customKeyStoreId="cks-1234"), "custom key store"),
    (res(KEY, "in-xks", id="key-xks", customKeyStoreId="cks-5678", xksKeyId="ext-1"),
     "custom key store"),
])
def test_symmetric_keys_kms_cannot_rotate_on_demand_are_violations(key: Resource,
                                                                   fragment: str) -> None:
    # Even when a schedule names them: the function could only skip them.
    aliased = [key, Resource(type=ALIAS, name=f"{key.name}-alias", urn=f"{STACK}{ALIAS}::{key.name}-alias",
                             props={"name": "alias/zero-trust-ai/dev/secrets"},
                             property_dependencies={"targetKeyId": (key.urn,)})]
    findings = kms_monthly_rotation_scheduled([*aliased, FUNCTION_RESOURCE, schedule()], NO_CONFIG)
    [finding] = findings
    assert finding.urn == key.urn and fragment in finding.message
    assert "cannot rotate it on demand" in finding.message


@pytest.mark.parametrize("expression, monthly", [
    ("cron(0 3 1 * ? *)", True),
    ("cron(15 2 28 * ? *)", True),
    ("cron(0 3 L * ? *)", True),
    ("cron(0 3 15W * ? *)", True),
    ("cron(0 3 1,15 * ? *)", True),
    ("cron(0 3 29,1 * ? *)", True),  # the 1st is in every month
    ("cron(0 3 1-7 * ? *)", True),
    ("cron(0 */6 * * ? *)", True),
    ("cron(0 3 ? * MON *)", True),
    ("cron(0 3 ? * 2#1 *)", True),
    ("cron(0 3 ? * 6L *)", True),
    ("rate(1 day)", True),
    ("rate(28 days)", True),
    ("rate(40320 minutes)", True),  # 28 days
    ("rate(12 hours)", True),
    ("cron(0 3 29 * ? *)", False),
    ("cron(0 3 30-31 * ? *)", False),
    ("cron(0 3 ? * MON#5 *)", False),
    ("cron(0 3 1 1,7 ? *)", False),
    ("cron(0 3 1 * ? 2027)", False),
    ("cron(0 3 1 * *)", False),
    ("rate(29 days)", False),  # skips February when it starts on Jan 31
    ("rate(31 days)", False),
    ("rate(40321 minutes)", False),
    ("rate(0 days)", False),
    ("rate(1 week)", False),
    ("at(2026-07-01T03:00:00)", False),
    (None, False),
])
def test_runs_at_least_monthly(expression: Any, monthly: bool) -> None:
    assert runs_at_least_monthly(expression) is monthly


def test_the_rule_has_no_switch_but_exclusions() -> None:
    assert RULE.stack_check is kms_monthly_rotation_scheduled and RULE.config == {}
    assert RULE.suppressible and RULE.control == "monthly key rotation"


def test_through_the_analyzer_an_exclusion_is_the_only_waiver(pack: PolicyPackProcess) -> None:  # noqa: F811
    key = resource(KEY, "legacy-key", customerMasterKeySpec="SYMMETRIC_DEFAULT", policy="{}")
    result = run(pack, [key])
    assert ("kms-monthly-rotation-scheduled", key.urn) in {(v.policy, v.urn) for v in result.violations}
    reason = "legacy import key, retired in SEC-301 by 2026-09"
    result = run(pack, [key], {"kms-monthly-rotation-scheduled": {
        "exclusions": [{"resource": "legacy-*", "reason": reason}]}})
    assert not [v for v in result.violations if v.policy == "kms-monthly-rotation-scheduled"]
    [exclusion] = result.exclusions
    assert (exclusion.policy, exclusion.urn, exclusion.reason) == (
        "kms-monthly-rotation-scheduled", key.urn, reason)


# -- the rotation role's key-policy grant and kms-key-policy-least-privilege -------------------
ROLE_ARN = "arn:aws:iam::111122223333:role/key-rotation-role"
ROTATION_ROLE: dict[str, Any] = {"AWS": ROLE_ARN}


def policy_with(*grants: tuple[str, tuple[str, ...]] | tuple[str, tuple[str, ...], dict[str, Any]]
                ) -> Resource:
    """A hierarchy key policy with these grants, to the rotation role unless a principal is given."""
    rendered = [(_Grant(grant[0], ROTATION_ROLE, grant[1]), grant[2] if len(grant) > 2 else ROTATION_ROLE)
                for grant in grants]
    return res("aws:kms/keyPolicy:KeyPolicy", "keys-logs-policy", policy=_policy_document(
        "aws", "111122223333", "eu-west-1", [], "", rendered))


def raw_policy(*statements: dict[str, Any]) -> Resource:
    return res("aws:kms/keyPolicy:KeyPolicy", "p", policy=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Resource": "*", **statement} for statement in statements]}))


def test_the_default_rotation_grant_neither_uses_nor_administers() -> None:
    assert not any(action.startswith(USE) or "*" in action for action in KEY_ROTATION_ACTIONS)
    assert "kms:RotateKeyOnDemand" in KEY_ROTATION_ACTIONS
    assert "kms:PutKeyPolicy" not in KEY_ROTATION_ACTIONS  # secure by default
    resource = policy_with(("KeyRotationWithoutUse", KEY_ROTATION_ACTIONS),
                           ("Decrypt", ("kms:Decrypt", "kms:DescribeKey")))
    # Not an administrator, so even a use grant to the same role is no separation problem.
    assert kms_key_policy_least_privilege(resource, NO_CONFIG) == []


def test_the_successor_grant_administers_without_use_and_passes() -> None:
    actions = (*KEY_ROTATION_ACTIONS, *KEY_SUCCESSOR_ACTIONS)
    assert "kms:PutKeyPolicy" in KEY_SUCCESSOR_ACTIONS
    assert not any(action.startswith(USE) or "*" in action for action in actions)
    assert kms_key_policy_least_privilege(policy_with(("KeyRotationWithoutUse", actions)),
                                          NO_CONFIG) == []


def test_granting_the_administering_rotation_role_use_in_another_statement_is_caught() -> None:
    resource = policy_with(("KeyRotationWithoutUse", (*KEY_ROTATION_ACTIONS, *KEY_SUCCESSOR_ACTIONS)),
                           ("Decrypt", ("kms:Decrypt", "kms:DescribeKey")))
    [message] = kms_key_policy_least_privilege(resource, NO_CONFIG)
    assert (f"lets {ROLE_ARN} administer the key (statement KeyRotationWithoutUse0) "
            "and use it (statement Decrypt1)") in message


ADMIN = ("kms:PutKeyPolicy", "kms:DescribeKey")
USE_ONLY = ("kms:Decrypt",)


@pytest.mark.parametrize("user", [
    # The same role as an STS session: IAM evaluates the session as the role.
    {"AWS": "arn:aws:sts::111122223333:assumed-role/key-rotation-role/i-0abc"},
    # The same role with a path: role names are unique in an account.
    {"AWS": "arn:aws:iam::111122223333:role/ops/key-rotation-role"},
])
def test_the_same_role_spelt_differently_is_the_same_principal(user: dict[str, Any]) -> None:
    resource = policy_with(("Administer", ADMIN), ("Use", USE_ONLY, user))
    [message] = kms_key_policy_least_privilege(resource, NO_CONFIG)
    assert f"lets {ROLE_ARN} administer the key (statement Administer0)" in message
    assert "(statement Use1)" in message


@pytest.mark.parametrize("operator, value", [
    ("StringEquals", ROLE_ARN),
    ("ArnEquals", ROLE_ARN),
    ("ArnLike", "arn:aws:iam::111122223333:role/key-rotation-*"),
    ("ArnLike", "arn:aws:sts::111122223333:assumed-role/key-rotation-role/*"),
])
def test_any_principal_narrowed_by_principal_arn_is_that_principal(operator: str, value: str) -> None:
    resource = raw_policy(
        {"Sid": "Administer", "Principal": ROTATION_ROLE, "Action": list(ADMIN)},
        {"Sid": "UseThroughCondition", "Principal": {"AWS": "*"}, "Action": list(USE_ONLY),
         "Condition": {operator: {"aws:PrincipalArn": [value]}}})
    [message] = kms_key_policy_least_privilege(resource, NO_CONFIG)
    assert "administer the key (statement Administer)" in message
    assert "(statement UseThroughCondition)" in message


def test_principal_arn_of_someone_else_or_if_exists_is_not_that_principal() -> None:
    other = raw_policy(
        {"Sid": "Administer", "Principal": ROTATION_ROLE, "Action": list(ADMIN)},
        {"Sid": "Use", "Principal": "*", "Action": list(USE_ONLY),
         "Condition": {"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/reader"}}})
    assert kms_key_policy_least_privilege(other, NO_CONFIG) == []
    # A bare "*" narrowed otherwise (e.g. through a service) is not matched against names.
    via = raw_policy(
        {"Sid": "Administer", "Principal": ROTATION_ROLE, "Action": list(ADMIN)},
        {"Sid": "Use", "Principal": "*", "Action": list(USE_ONLY),
         "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}})
    assert kms_key_policy_least_privilege(via, NO_CONFIG) == []


@pytest.mark.parametrize("statement, element", [
    ({"Sid": "AllButPolicy", "Principal": ROTATION_ROLE, "NotAction": "kms:PutKeyPolicy"},
     "NotAction"),
    ({"Sid": "AllButMe", "NotPrincipal": {"AWS": ROLE_ARN}, "Action": "kms:Decrypt",
      "Condition": {"StringEquals": {"kms:CallerAccount": "111122223333"}}}, "NotPrincipal"),
])
def test_allow_with_not_action_or_not_principal_is_caught(statement: dict[str, Any],
                                                          element: str) -> None:
    messages = kms_key_policy_least_privilege(raw_policy(statement), NO_CONFIG)
    assert any(f"statement {statement['Sid']} allows with {element}" in m for m in messages), messages
