"""log-group-deletion-protected (control: audit logging): a production log group needs deletion
protection and the Pulumi protect option; dev is not concerned; the flags are read from inputs,
outputs and options."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, unknown_checking_proxy

from ztpolicy.rule import Resource
from ztpolicy.rules.logs.log_group_deletion_protected import LOG_GROUP, log_group_deletion_protected

# What the components register in prod, as inputs (a preview) and as outputs (an export).
INPUTS: dict[str, Any] = {"name": "/aws/apigateway/zt-prod", "retentionInDays": 365,
                          "kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/abc",
                          "deletionProtectionEnabled": True, "tags": {"environment": "prod"}}
OUTPUTS: dict[str, Any] = {**INPUTS, "id": "/aws/apigateway/zt-prod", "logGroupClass": "STANDARD",
                           "arn": "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/apigateway/zt-prod",
                           "tagsAll": {"environment": "prod"}}


def group(stack: str = "prod", protect: bool = True, props: dict[str, Any] | None = None,
          **changes: Any) -> Resource:
    values = {k: v for k, v in {**(props or INPUTS), **changes}.items() if v is not None}
    return Resource(type=LOG_GROUP, name="access-logs",
                    urn=f"urn:pulumi:{stack}::zero-trust-ai::{LOG_GROUP}::access-logs",
                    props=unknown_checking_proxy(values), protect=protect)


@pytest.mark.parametrize("props", [INPUTS, OUTPUTS])
def test_a_protected_production_log_group_passes(props: dict[str, Any]) -> None:
    assert log_group_deletion_protected(group(props=props), {}) == []


@pytest.mark.parametrize("props", [INPUTS, OUTPUTS])
def test_production_log_groups_without_protection_are_caught(props: dict[str, Any]) -> None:
    [message] = log_group_deletion_protected(group(props=props, deletionProtectionEnabled=False), {})
    assert "single DeleteLogGroup" in message and "stack prod" in message
    [message] = log_group_deletion_protected(group(props=props, deletionProtectionEnabled=None), {})
    assert "single DeleteLogGroup" in message
    [message] = log_group_deletion_protected(group(props=props, protect=False), {})
    assert "not protected in Pulumi" in message


def test_production_is_the_stack_or_the_environment_tag() -> None:
    dev = group(stack="dev", protect=False, deletionProtectionEnabled=False, tags={"environment": "dev"})
    assert log_group_deletion_protected(dev, {}) == []
    # A prod tag in a stack named otherwise is production too: renaming the stack relaxes nothing.
    tagged = group(stack="sandbox", protect=False, tags={"environment": "prod"})
    assert "environment tag prod" in log_group_deletion_protected(tagged, {})[0]
    assert log_group_deletion_protected(dev, {"protectedStacks": ["dev"]})


def test_a_flag_not_known_yet_is_checked_later() -> None:
    assert log_group_deletion_protected(group(deletionProtectionEnabled=UNKNOWN_BOOLEAN_VALUE), {}) == []
