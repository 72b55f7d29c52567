"""Review finding: the workload deployer writes the key layer's Pulumi state.

Both layers of an environment keep their state in the account's one state bucket, and the CI
roles' policies name `<bucket>/*` as a whole (components/ci_identity.py _deployer_state; the bucket
policy's StateWrittenOnlyByTheDeployers lets both deployers write any object). So deploy-workload
may overwrite `.pulumi/stacks/zero-trust-ai/prod-keys.json`: the key layer's recorded outputs
(`keyArns`, which the workload's StackReference and the pack's s3 rule trust), the inputs the next
key-layer `pulumi up` diffs against (it then skips or performs updates the approvers never saw in
the preview they approved), and the state `pulumi refresh --preview-only` and `ztai verify
--state` compare the deployment with (an edited policy written into the state no longer drifts).
The secure expectation (xfail strict today): each deployer writes only its own layer's stack files.
"""

from __future__ import annotations

from components.ci_identity import (
    StateResources,
    boundary_policy,
    keys_deployer_policy,
    workload_deployer_policy,
)
from components.state_backend import ci_role_arns, state_bucket_policy
from tests.support.key_policy import Request, evaluate_session

ACCOUNT = "111122223333"
REGION = "eu-west-1"
ENV = "prod"
BUCKET = "arn:aws:s3:::zero-trust-ai-prod-state"
STATE_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111"
STATE = StateResources(BUCKET, STATE_KEY,
                       f"arn:aws:kms:{REGION}:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222", REGION)
ROLES = ci_role_arns("aws", ACCOUNT, ENV)
BUCKET_POLICY = state_bucket_policy(bucket_arn=BUCKET, key_arn=STATE_KEY, roles=ROLES,
                                    administrators=[f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-key-admin"])
BOUNDARY = boundary_policy(STATE, partition="aws", account=ACCOUNT, environment=ENV)
PUT = {"aws:SecureTransport": "true", "s3:x-amz-server-side-encryption": "aws:kms",
       "s3:x-amz-server-side-encryption-aws-kms-key-id": STATE_KEY}
KEY_LAYER_STATE = f"{BUCKET}/.pulumi/stacks/zero-trust-ai/prod-keys.json"
WORKLOAD_STATE = f"{BUCKET}/.pulumi/stacks/zero-trust-ai/prod.json"


def _put(principal: str, identity: str, resource: str) -> str:
    return evaluate_session(Request(principal, "s3:PutObject", resource,
                                    {"aws:PrincipalArn": principal, **PUT}),
                            identity_policies=[identity], boundary=BOUNDARY,
                            resource_policy=BUCKET_POLICY).effect


def test_each_deployer_writes_its_own_state() -> None:
    # The legitimate paths (pass today).
    assert _put(ROLES.workload, workload_deployer_policy(
        STATE, partition="aws", account=ACCOUNT, environment="prod"),
                WORKLOAD_STATE) == "allow"
    assert _put(ROLES.keys, keys_deployer_policy(
        STATE, partition="aws", account=ACCOUNT, environment="prod"),
                KEY_LAYER_STATE) == "allow"


def test_the_workload_deployer_cannot_write_the_key_layers_state() -> None:
    assert _put(ROLES.workload, workload_deployer_policy(
        STATE, partition="aws", account=ACCOUNT, environment="prod"),
                KEY_LAYER_STATE) != "allow"
