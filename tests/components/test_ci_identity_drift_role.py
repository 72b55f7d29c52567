"""Review finding: the scheduled drift job cannot read what it checks.

docs/ci/drift.yml runs `pulumi refresh --preview-only` and `ztai verify` with the role
`zero-trust-ai-<env>-ci-preview`, which the bootstrap layer creates with state reads and two EC2
lookups only (components/ci_identity.py preview_policy). `ztai verify` needs the read-only calls
docs/drift.md lists (kms:ListAliases, ec2:DescribeVpcs, cloudtrail:DescribeTrails, ...), none of
which that role's policy allows: every scheduled run ends in AccessDenied (exit 2), the drift of
an insider's console change is never reported, and a check that always fails is soon ignored.
Secure expectation (xfail strict today): the drift job's role may make verify's read-only calls.
"""

from __future__ import annotations

import pytest

from components.ci_identity import StateResources, boundary_policy, preview_policy
from components.state_backend import ci_role_arns
from tests.support.key_policy import Request, evaluate_session

ACCOUNT, REGION = "111122223333", "eu-west-1"
STATE = StateResources("arn:aws:s3:::zero-trust-ai-prod-state",
                       f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111",
                       f"arn:aws:kms:{REGION}:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222", REGION)
PREVIEW = ci_role_arns("aws", ACCOUNT, "prod").preview
# The calls ztai_runtime/deployed.py makes that no key policy can allow (not on a key resource).
VERIFY_READS = ("kms:ListAliases", "ec2:DescribeVpcs", "ec2:DescribeVpcEndpoints",
                "ec2:DescribeFlowLogs", "cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus",
                "sns:ListTopics", "sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes")


def _as_preview(action: str) -> str:
    return evaluate_session(Request(PREVIEW, action, "*", {"aws:PrincipalArn": PREVIEW}),
                            identity_policies=[preview_policy(STATE)],
                            boundary=boundary_policy(STATE, partition="aws", account=ACCOUNT,
                                                     environment="prod")).effect


def test_the_drift_recipe_uses_the_preview_role() -> None:
    from tests.conftest import ROOT
    recipe = (ROOT / "docs" / "ci" / "drift.yml").read_text(encoding="utf-8")
    assert "ci-preview" in recipe and "ztai verify" in recipe


@pytest.mark.parametrize("action", VERIFY_READS)
def test_the_drift_jobs_role_reads_what_verify_reads(action: str) -> None:
    assert _as_preview(action) == "allow"
