"""Review finding: a PowerUser still chooses the fleet's image, around the parameter guardrail.

OnlyThePipelineOverwritesZtaiParameters exempts the image publishers, among them the parameter
watch's role `inference-image-rollout-role-*`. But the function that runs as that role,
`zero-trust-ai-<env>-inference-image-rollout`, is not protected like the JIT functions
(JitFunctionsByDeployers covers `zero-trust-ai-*-jit-*` only): a PowerUser (lambda:* with no IAM)
replaces its code, and the new code overwrites `/zero-trust-ai/<env>/enclave-parent/ami-id` with
any AMI, as the exempt role. Nor is the parameter's consumer protected: a new launch template
version with a literal ImageId, made the group's default, launches any AMI without touching
the parameter. Both reopen "a PowerUser can overwrite the parent AMI parameter".
Secure expectation (xfail strict today): each is an explicit deny for a PowerUser.
"""

from __future__ import annotations

import pytest

from tests.components.test_guardrails import ACCOUNT, PARAMETER, POWER_USER, REGION, decide, role

ROLLOUT_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-prod-inference-image-rollout"
ROLLOUT_ROLE = role("inference-image-rollout-role-1a2b3c4")
LAUNCH_TEMPLATE = f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/lt-0123456789abcdef0"
GROUP = (f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:11111111-2222-3333-4444-"
         "555555555555:autoScalingGroupName/ztai-prod-inference-fleet")
PROJECT = {"aws:ResourceTag/project": "zero-trust-ai"}


def test_the_rollout_role_overwrites_the_parameter() -> None:
    # Sound, and the reason the function matters: its role is exempt.
    assert decide(ROLLOUT_ROLE, "ssm:PutParameter", PARAMETER, {"ssm:Overwrite": "true"}) == "allow"


@pytest.mark.parametrize("action", ["lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration"])
def test_a_power_user_cannot_rewrite_the_rollout_function(action: str) -> None:
    assert decide(POWER_USER, action, ROLLOUT_FUNCTION) == "explicit-deny"


@pytest.mark.parametrize("action, resource", [
    ("ec2:CreateLaunchTemplateVersion", LAUNCH_TEMPLATE), ("ec2:ModifyLaunchTemplate", LAUNCH_TEMPLATE),
    ("autoscaling:UpdateAutoScalingGroup", GROUP)])
def test_a_power_user_cannot_point_the_fleet_at_another_image(action: str, resource: str) -> None:
    assert decide(POWER_USER, action, resource, PROJECT) == "explicit-deny"
