"""Review finding: the workload deployer escapes its permissions boundary and becomes the key
deployer.

The CI boundary (components/ci_identity.py boundary_policy) keeps deploy-workload from changing the
CI roles and from key-policy actions, but deploy-workload may create and fill any role
(`iam:CreateRole`, `iam:PutRolePolicy` on `role/*`, no `iam:PermissionsBoundary` condition), and
the SCPs let the deploy roles make roles of the exempt names (ExemptRolesByDeployers) - including
another name of the deploy pattern, `zero-trust-ai-*-deploy-workload`. So:

1. deploy-workload creates `zero-trust-ai-x-deploy-workload`, trusting itself, with an inline
   Allow-all and no boundary;
2. that role, SCP-exempt as a "deployer" and bound by nothing, re-trusts
   `zero-trust-ai-prod-deploy-keys` (iam:UpdateAssumeRolePolicy);
3. as deploy-keys it writes the policy of every key whose standing administrator deploy-keys is
   (all but the two-person model key), without the keys environment's approval.

Secure expectation (xfail strict today): step 1 or step 2 is refused.
"""

from __future__ import annotations

import json

from components.ci_identity import StateResources, boundary_policy, workload_deployer_policy
from tests.components.test_guardrails import ORG, RCPS, REGION, SCPS
from tests.support.key_policy import Request
from tests.support.org_policy import evaluate_in_organization

ACCOUNT = "111122223333"
STATE = StateResources("arn:aws:s3:::zero-trust-ai-prod-state",
                       f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111",
                       f"arn:aws:kms:{REGION}:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222", REGION)
DEPLOY_WORKLOAD = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-deploy-workload"
DEPLOY_KEYS = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-deploy-keys"
HELPER = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-x-deploy-workload"
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def _decide(principal: str, action: str, resource: str, *, identity: str,
            boundary: str | None) -> str:
    context = {"aws:PrincipalArn": principal, "aws:RequestedRegion": REGION,
               "aws:PrincipalOrgID": ORG, "aws:SecureTransport": "true",
               "aws:PrincipalIsAWSService": "false"}
    return evaluate_in_organization(Request(principal, action, resource, context), scps=SCPS,
                                    rcps=RCPS, identity_policies=[identity], boundary=boundary).effect


def test_the_boundary_itself_holds_for_the_ci_role() -> None:
    # Sound (passes): deploy-workload cannot re-trust deploy-keys directly.
    boundary = boundary_policy(STATE, partition="aws", account=ACCOUNT, environment="prod")
    assert _decide(DEPLOY_WORKLOAD, "iam:UpdateAssumeRolePolicy", DEPLOY_KEYS,
                   identity=workload_deployer_policy(
        STATE, partition="aws", account=ACCOUNT, environment="prod"),
                   boundary=boundary) != "allow"


def test_the_workload_deployer_cannot_mint_an_unbounded_deployer() -> None:
    boundary = boundary_policy(STATE, partition="aws", account=ACCOUNT, environment="prod")
    identity = workload_deployer_policy(
        STATE, partition="aws", account=ACCOUNT, environment="prod")
    steps = [
        _decide(DEPLOY_WORKLOAD, "iam:CreateRole", HELPER, identity=identity, boundary=boundary),
        _decide(DEPLOY_WORKLOAD, "iam:PutRolePolicy", HELPER, identity=identity, boundary=boundary),
        _decide(HELPER, "iam:UpdateAssumeRolePolicy", DEPLOY_KEYS, identity=ALLOW_ALL, boundary=None),
    ]
    assert steps != ["allow", "allow", "allow"], steps
