"""kms-monthly-rotation-scheduled: every symmetric key is named by a monthly schedule that
invokes a Lambda function; anything less is caught, naming the key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from components.keys import KEY_ROTATION_ACTIONS, _Grant, _policy_document
from tests.components.test_keys import USE
from tests.policy_packs.test_analyzer import pack, resource, run  # noqa: F401 - pack is a fixture
from tests.policy_packs.test_rules import NO_CONFIG, STACK, res, urns
from ztai.policy.analyzer import PolicyPackProcess
from ztpolicy.rule import Resource
from ztpolicy.rules.kms_key_policy_least_privilege import kms_key_policy_least_privilege
from ztpolicy.rules.kms_monthly_rotation_scheduled import (
    ALIAS,
    FUNCTION,
    KEY,
    RULE,
    SCHEDULE,
    kms_monthly_rotation_scheduled,
    runs_at_least_monthly,
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


FUNCTION_RESOURCE = res(FUNCTION, "key-rotation-function",
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
])
def test_schedules_that_do_not_rotate_monthly_do_not_count(bad_schedule: Resource) -> None:
    assert check(FUNCTION_RESOURCE, bad_schedule) == ALL_SYMMETRIC


def test_a_lambda_of_another_stack_and_export_style_links_count() -> None:
    # No property dependencies (an export, or a function deployed elsewhere): ARNs and ids link.
    remote = schedule(target_deps=[], target={
        "arn": "arn:aws:lambda:eu-west-1:111122223333:function:central-key-rotation"})
    assert check(remote) == set()
    exported = kms_monthly_rotation_scheduled([*hierarchy(linked=False), FUNCTION_RESOURCE, schedule()],
                                              NO_CONFIG)
    assert exported == []


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


def test_keys_kms_cannot_rotate_on_demand_are_not_applicable() -> None:
    keys = [res(KEY, "signing", customerMasterKeySpec="ECC_NIST_P384", keyUsage="SIGN_VERIFY"),
            res(KEY, "in-hsm", customKeyStoreId="cks-1234"),
            res("aws:kms/replicaKey:ReplicaKey", "keys-secrets-eu-central-1")]
    assert kms_monthly_rotation_scheduled(keys, NO_CONFIG) == []


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
    ("rate(31 days)", True),
    ("rate(12 hours)", True),
    ("cron(0 3 29 * ? *)", False),
    ("cron(0 3 30-31 * ? *)", False),
    ("cron(0 3 ? * MON#5 *)", False),
    ("cron(0 3 1 1,7 ? *)", False),
    ("cron(0 3 1 * ? 2027)", False),
    ("cron(0 3 1 * *)", False),
    ("rate(32 days)", False),
    ("rate(0 days)", False),
    ("rate(1 week)", False),
    ("at(2026-07-01T03:00:00)", False),
    (None, False),
])
def test_runs_at_least_monthly(expression: Any, monthly: bool) -> None:
    assert runs_at_least_monthly(expression) is monthly


def test_the_rule_has_no_switch_but_exclusions() -> None:
    assert RULE.stack_check is kms_monthly_rotation_scheduled and RULE.config == {}
    assert RULE.suppressible and RULE.section == "4.2"


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
ROTATION_ROLE: dict[str, Any] = {"AWS": "arn:aws:iam::111122223333:role/key-rotation-role"}


def policy_with(*grants: tuple[str, tuple[str, ...]]) -> Resource:
    return res("aws:kms/keyPolicy:KeyPolicy", "keys-logs-policy", policy=_policy_document(
        "aws", "111122223333", "eu-west-1", [], "",
        [(_Grant(sid, ROTATION_ROLE, actions), ROTATION_ROLE) for sid, actions in grants]))


def test_the_rotation_grant_administers_without_use_and_passes() -> None:
    assert not any(action.startswith(USE) or "*" in action for action in KEY_ROTATION_ACTIONS)
    assert {"kms:PutKeyPolicy", "kms:RotateKeyOnDemand"} <= set(KEY_ROTATION_ACTIONS)
    resource = policy_with(("KeyRotationWithoutUse", KEY_ROTATION_ACTIONS))
    assert kms_key_policy_least_privilege(resource, NO_CONFIG) == []


def test_granting_the_rotation_role_use_in_another_statement_is_caught() -> None:
    resource = policy_with(("KeyRotationWithoutUse", KEY_ROTATION_ACTIONS),
                           ("Decrypt", ("kms:Decrypt", "kms:DescribeKey")))
    [message] = kms_key_policy_least_privilege(resource, NO_CONFIG)
    assert (f"lets {ROTATION_ROLE['AWS']} administer the key (statement KeyRotationWithoutUse0) "
            "and use it (statement Decrypt1)") in message
