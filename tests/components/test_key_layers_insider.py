"""Review finding: the workload deployer reaches kms:PutKeyPolicy on the two-person model key.

In a split deployment the JIT API's role (`zero-trust-ai-<env>-jit-api-role`) is the one principal
the model key's policy lets write that policy (statement WriteApprovedPolicy, replayed by the key
layer from the grants file), and the key-admin elevation role may disable the key or schedule its
deletion. Both roles, and the JIT API function, are declared by the WORKLOAD stack, so the
workload deployer (CI role deploy-workload, i.e. whatever code a merged pull request runs with it)
can rewrite the role's trust policy or the function's code:

- its identity policy allows iam:UpdateAssumeRolePolicy / iam:PutRolePolicy on `role/*` and
  `lambda:*` (components/ci_identity.py workload_deployer_policy);
- its boundary only protects the CI roles themselves;
- the SCPs exempt the deploy roles from ExemptRolesByDeployers and JitFunctionsByDeployers, and
  exempt `zero-trust-ai-*-jit-*` (the JIT API role) from KeysByKeyAdmins.

So the chain deploy-workload -> (trust or code of jit-api-role) -> kms:PutKeyPolicy passes every
layer: "The workload deployer has no kms:PutKeyPolicy" does not hold. The tests marked xfail(strict)
assert the secure behaviour; they fail today (run with --runxfail to see the assertion).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.ci_identity import StateResources, boundary_policy, workload_deployer_policy
from tests.components.test_guardrails import ORG, RCPS, REGION, SCPS, TAGGED
from tests.support.key_policy import Request, evaluate
from tests.support.org_policy import evaluate_in_organization
from tests.support.stacks import SplitEnvironment, record_split

ACCOUNT = "111122223333"
ENV = "prod"
BUCKET = "arn:aws:s3:::zero-trust-ai-prod-state"
STATE = StateResources(BUCKET, f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111",
                       f"arn:aws:kms:{REGION}:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222", REGION)
DEPLOY_WORKLOAD = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-deploy-workload"
JIT_API_ROLE = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-jit-api-role"
KEY_ADMIN_ELEVATION = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-jit-key-admin"
JIT_API_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-{ENV}-jit-api"
MODEL_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/33333333-3333-3333-3333-333333333333"
IDENTITY = workload_deployer_policy(STATE, partition="aws", account=ACCOUNT)
BOUNDARY = boundary_policy(STATE, partition="aws", account=ACCOUNT, environment=ENV)


def _context(principal: str, extra: dict[str, str] | None = None) -> dict[str, str | tuple[str, ...]]:
    return {"aws:PrincipalArn": principal, "aws:RequestedRegion": REGION, "aws:PrincipalOrgID": ORG,
            "aws:SecureTransport": "true", "aws:PrincipalIsAWSService": "false", **(extra or {})}


def as_workload_deployer(action: str, resource: str) -> str:
    """The organisation's and the account's decision for a deploy-workload session: its own
    policy and boundary, under the shipped SCPs and RCPs."""
    return evaluate_in_organization(
        Request(DEPLOY_WORKLOAD, action, resource, _context(DEPLOY_WORKLOAD)), scps=SCPS, rcps=RCPS,
        identity_policies=[IDENTITY], boundary=BOUNDARY).effect


@pytest.fixture(scope="module")
def split() -> SplitEnvironment:
    return record_split(ENV)


def _model_key_policy(split: SplitEnvironment) -> str:
    policies: dict[str, Any] = {r.name: r.inputs["policy"] for r in split.sealed_keys.resources
                                if r.type == "aws:kms/keyPolicy:KeyPolicy"}
    return str(policies["keys-model-weights-policy"])


def test_the_chain_end_is_real_the_jit_api_role_may_write_the_model_key_policy(
        split: SplitEnvironment) -> None:
    # Not a finding on its own (it is the design): the sealed key policy and the SCPs let the JIT
    # API's role PutKeyPolicy on the model key. What follows shows who controls that role.
    policy = _model_key_policy(split)
    put = Request(JIT_API_ROLE, "kms:PutKeyPolicy", MODEL_KEY, _context(JIT_API_ROLE))
    assert evaluate(policy, put).effect == "allow"
    assert evaluate_in_organization(
        Request(JIT_API_ROLE, "kms:PutKeyPolicy", MODEL_KEY, _context(JIT_API_ROLE, TAGGED)),
        scps=SCPS, rcps=RCPS, resource_policy=policy).effect == "allow"
    # ... and the ledger the key layer replays names that workload-owned role as the writer.
    writers = {entry.get("policy_writer") for entry in split.workload.stack_outputs["keyGrants"]["grants"]}
    assert JIT_API_ROLE in writers
    roles = {r.inputs.get("name") for r in split.workload.resources if r.type == "aws:iam/role:Role"}
    assert {"zero-trust-ai-prod-jit-api-role", "zero-trust-ai-prod-jit-key-admin"} <= roles


@pytest.mark.xfail(strict=True, reason="review finding: deploy-workload can re-trust the JIT API role")
@pytest.mark.parametrize("action", ["iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy",
                                    "iam:AttachRolePolicy"])
def test_the_workload_deployer_cannot_take_over_the_jit_api_role(action: str) -> None:
    assert as_workload_deployer(action, JIT_API_ROLE) != "allow"


@pytest.mark.xfail(strict=True, reason="review finding: deploy-workload can re-trust the key-admin elevation")
def test_the_workload_deployer_cannot_take_over_the_key_admin_elevation() -> None:
    # The elevation may kms:DisableKey / ScheduleKeyDeletion / UpdateAlias on the model key.
    assert as_workload_deployer("iam:UpdateAssumeRolePolicy", KEY_ADMIN_ELEVATION) != "allow"


@pytest.mark.xfail(strict=True, reason="review finding: deploy-workload can rewrite the JIT API's code")
@pytest.mark.parametrize("action", ["lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration"])
def test_the_workload_deployer_cannot_change_the_code_that_writes_key_policies(action: str) -> None:
    # The function runs as the JIT API role: new code writes any policy, with no approval.
    assert as_workload_deployer(action, JIT_API_FUNCTION) != "allow"


def test_the_workload_deployer_is_denied_put_key_policy_directly() -> None:
    # What the design does guarantee (passes): the direct call is refused.
    assert as_workload_deployer("kms:PutKeyPolicy", MODEL_KEY) != "allow"
    assert json.loads(IDENTITY)  # the policy under test is the shipped one


@pytest.mark.xfail(strict=True, reason="review finding: every grantee of the grants file is a role "
                   "the workload deployer can re-trust")
def test_the_workload_deployer_cannot_take_over_a_grantee_of_the_keys(split: SplitEnvironment) -> None:
    # The data curator's role holds training-data use through S3 and token-vault data keys
    # (ledger); whoever may rewrite its trust holds them too.
    curator = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-data-curator"
    assert curator in {e.get("role") for e in split.workload.stack_outputs["keyGrants"]["grants"]}
    assert as_workload_deployer("iam:UpdateAssumeRolePolicy", curator) != "allow"
