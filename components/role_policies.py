"""How an owner writes a role's permissions: an inline policy, or a managed policy it attaches.

Owners grant roles what they use of their resources (`bucket.grant_write_prefix(role, ...)`),
as an inline policy on the role by default. A just-in-time elevation's role is the exception: its
inline policies are the JIT's (the window policy that ends its sessions at expiry or revocation),
and in a split deployment only the key layer's deployer and the JIT may write them (the CI roles'
boundary and the guardrails). The workload grants an elevation its resources as a managed policy
named `zero-trust-ai-<env>-workload-...` (WORKLOAD_POLICY_PATTERN), which it may attach there and
nothing else: so no deployer but the key layer's can delete or overwrite the window, and with it
make a revoked session outlive its revocation.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

# The names the CI boundary and the guardrails let the workload's deployer attach to the key
# layer's roles (the human roles and the elevations).
WORKLOAD_POLICY_PATTERN = "zero-trust-ai-*-workload-*"


def workload_policy_name(environment: str, what: str) -> str:
    """`zero-trust-ai-<env>-workload-<what>` (IAM policy names: 128 characters at most)."""
    name = f"zero-trust-ai-{environment}-workload-{what}"
    if len(name) > 128:
        raise ValueError(f"policy name {name!r} is over IAM's 128 characters")
    return name


def grant(resource_name: str, role: aws.iam.Role, policy: pulumi.Input[str], *,
          managed_policy_name: str | None, parent: pulumi.Resource) -> pulumi.CustomResource:
    """`policy` on `role`: inline (`resource_name`), or, with `managed_policy_name`, as that managed
    policy attached to the role (`resource_name` and `<resource_name>-attachment`)."""
    options = pulumi.ResourceOptions(parent=parent)
    if managed_policy_name is None:
        return aws.iam.RolePolicy(resource_name, role=role.id, policy=policy, opts=options)
    managed = aws.iam.Policy(resource_name, name=managed_policy_name, policy=policy,
                             description="zero-trust-ai: what an elevation may do of the workload's "
                                         "resources (components/role_policies.py)", opts=options)
    return aws.iam.RolePolicyAttachment(f"{resource_name}-attachment", role=role.name,
                                        policy_arn=managed.arn, opts=options)
