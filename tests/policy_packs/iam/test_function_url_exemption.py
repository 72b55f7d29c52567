"""iam-human-role-conditions: the network Deny may leave out a Lambda function named exactly (the
JIT API's function URL, reached over the public internet only), and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from tests.policy_packs.iam.test_iam_rules import (
    DENY_OUTSIDE_NETWORK,
    DENY_WITHOUT_MFA,
    PLAIN_TRUST,
    allow,
    managed,
    messages,
    role,
)
from tests.policy_packs.test_rules import NO_CONFIG
from ztpolicy.rules.iam.iam_human_role_conditions import iam_human_role_conditions

JIT_API = "arn:aws:lambda:eu-west-1:111122223333:function:zero-trust-ai-dev-jit-api"


def findings(network_deny: dict[str, Any], mfa_deny: dict[str, Any] = DENY_WITHOUT_MFA) -> str:
    boundary = managed("ztai-boundary", allow("s3:GetObject"), mfa_deny, network_deny)
    curator = role(trust_policy=PLAIN_TRUST, permissionsBoundary=boundary.get("arn"))
    return messages(iam_human_role_conditions([curator, boundary], NO_CONFIG))


def sparing(*resources: str) -> dict[str, Any]:
    deny = {key: value for key, value in DENY_OUTSIDE_NETWORK.items() if key != "Resource"}
    return {**deny, "NotResource": list(resources)}


def test_a_network_deny_that_spares_the_jit_api_passes() -> None:
    assert findings(sparing(JIT_API)) == ""


@pytest.mark.parametrize("spared", [
    ["arn:aws:lambda:eu-west-1:111122223333:function:*"],
    ["arn:aws:lambda:eu-west-1:111122223333:function:zero-trust-ai-dev-jit-*"],
    ["arn:aws:s3:::training-data/*"],
    ["*"],
    [],
])
def test_a_network_deny_that_spares_more_is_caught(spared: list[str]) -> None:
    assert "a network location" in findings(sparing(*spared))


def test_the_mfa_deny_may_spare_nothing() -> None:
    mfa = {key: value for key, value in DENY_WITHOUT_MFA.items() if key != "Resource"}
    assert "does not require MFA" in findings(DENY_OUTSIDE_NETWORK, {**mfa, "NotResource": [JIT_API]})


def test_only_the_jit_api_may_be_spared() -> None:
    # Any other function, even named exactly, would be reachable from anywhere, every Lambda
    # action on it included.
    exporter = "arn:aws:lambda:eu-west-1:111122223333:function:training-data-export"
    assert "a network location" in findings(sparing(JIT_API, exporter))
    assert "a network location" in findings(sparing(exporter))
