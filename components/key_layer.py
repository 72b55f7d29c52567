"""The workload layer's view of the keys: `KeyLayerReference`.

In a split deployment (docs/deploying.md) the keys, their aliases and their policies belong to
the key layer's stack, deployed by its own role in an approved elevation; the workload's deployer
holds no kms:PutKeyPolicy. The workload composes exactly as a combined stack does, with this
object in place of `KeyHierarchy`:

- `key_arn(purpose)` reads the key layer's `keyArns` output through a stack reference, so the
  workload depends on the key layer and never the other way round;
- every `grant_*` method records the call in `ledger` (components/key_grants.py) instead of
  writing a statement; the program exports it as `keyGrants`, which the key layer reads from its
  reviewed grants file and replays on the real keys;
- `seal()` writes nothing and returns no policy to wait for.

Type token `zero-trust-ai:keys:KeyLayerReference`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.identity import ROLES as HUMAN_ROLES
from components.identity import role_name as human_role_name
from components.jit_catalogue import JitElevation, elevation_role_name
from components.key_grants import recorded
from components.keys import PURPOSES, EnclaveMeasurements, Grantee, alias_name


@dataclass(frozen=True)
class KeyLayerReferenceArgs:
    """environment: the stacks' environment (alias names).
    key_layer_stack: the key layer's stack, `<organization>/<project>/<stack>` (stack key
        `keyLayerStack`), whose `keyArns` output names the keys."""

    environment: str
    key_layer_stack: str


class KeyLayerReference(pulumi.ComponentResource):
    """The key layer's keys, seen from the workload: ARNs in, grants out."""

    def __init__(self, name: str, args: KeyLayerReferenceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zero-trust-ai:keys:KeyLayerReference", name, None, opts)
        self._args = args
        self.stack = pulumi.StackReference(f"{name}-layer", stack_name=args.key_layer_stack,
                                           opts=pulumi.ResourceOptions(parent=self))
        self._key_arns: Any = self.stack.get_output("keyArns")
        self.ledger: list[dict[str, Any]] = []
        self.register_outputs({})

    # -- what the workload reads -----------------------------------------------------------------
    def key_arn(self, purpose: str) -> pulumi.Output[str]:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown key purpose {purpose!r}; purposes are {', '.join(PURPOSES)}")
        stack = self._args.key_layer_stack

        def pick(arns: Any) -> str:
            if not isinstance(arns, Mapping) or not isinstance(arns.get(purpose), str):
                # A RunError: Pulumi reports it as the user's error, without a traceback.
                raise pulumi.RunError(f"the key layer stack {stack} exports no keyArns[{purpose!r}]: "
                                      "deploy the key layer first (docs/deploying.md)")
            return str(arns[purpose])

        return pulumi.Output.from_input(self._key_arns).apply(pick)

    def key_arns(self) -> dict[str, pulumi.Output[str]]:
        return {purpose: self.key_arn(purpose) for purpose in PURPOSES}

    def alias_name(self, purpose: str) -> str:
        return alias_name(self._args.environment, purpose)

    def seal(self) -> list[aws.kms.KeyPolicy]:
        """Nothing to write here: the key layer writes the policies from the ledger."""
        return []

    # -- grants, recorded (same signatures as KeyHierarchy's; a test holds them equal) -----------
    @recorded
    def grant_encrypt(self, purpose: str, role: aws.iam.Role) -> None: ...

    @recorded
    def grant_decrypt(self, purpose: str, role: aws.iam.Role, *,
                      encryption_context: Mapping[str, Sequence[str]] | None = None) -> None: ...

    @recorded
    def grant_generate_data_key(self, purpose: str, role: aws.iam.Role, *,
                                encryption_context: Mapping[str, Sequence[str]] | None = None) -> None: ...

    @recorded
    def grant_session_decrypt(self, purpose: str, role: Grantee) -> None: ...

    @recorded
    def grant_generate_mac(self, role: aws.iam.Role) -> None: ...

    @recorded
    def grant_verify_mac(self, role: aws.iam.Role) -> None: ...

    @recorded
    def grant_cloudwatch_logs(self, log_group_prefix: str) -> None: ...

    @recorded
    def grant_trail_read(self, role: Grantee) -> None: ...

    @recorded
    def grant_use_through_service(self, purpose: str, role: Grantee, service: str) -> None: ...

    @recorded
    def grant_decrypt_through_service(self, purpose: str, role: Grantee, service: str) -> None: ...

    @recorded
    def grant_decrypt_with_attestation(self, purpose: str, role: Grantee,
                                       measurements: EnclaveMeasurements) -> None: ...

    @recorded
    def grant_schedule_decrypt(self, purpose: str, role: aws.iam.Role, schedule_name: str) -> None: ...

    @recorded
    def grant_component_decrypt(self, purpose: str, role: Grantee) -> None: ...

    @recorded
    def allow_administrators_through_s3(self, purpose: str, bucket_arn: pulumi.Input[str],
                                        sid: str = "AdministratorsPublishThroughS3") -> None: ...

    @recorded
    def grant_key_rotation(self, role: aws.iam.Role, *, create_successors: bool = False) -> None: ...

    @recorded
    def grant_key_administration(self, purpose: str, role: Grantee, *, policy_writer: Grantee) -> None: ...


@dataclass(frozen=True)
class IdentityReferenceArgs:
    """environment: the stacks' environment (the roles' known names).
    elevations: the just-in-time catalogue (jitCatalogueFile), the same file the key layer reads.
    key_layer: the workload's reference to its key layer's stack (`KeyLayerReference.stack`),
        whose `humanRoleArns` and `elevationRoleArns` outputs say which roles it declares.
    key_layer_stack: that stack's name, for messages."""

    environment: str
    elevations: Sequence[JitElevation]
    key_layer: pulumi.StackReference
    key_layer_stack: str


class IdentityReference(pulumi.ComponentResource):
    """The key layer's identity part, seen from the workload: the human roles and the elevation
    roles, read by their known names (`aws.iam.Role.get`), so that the workload's owners grant
    them what they use of the workload's resources (a bucket prefix, sessions) as in a combined
    stack. The workload declares none of them: their trust, boundary and tags, the JIT functions
    and table are the key layer's, which the workload's deployer may not change (its boundary and
    the guardrails). Reading a role that does not exist fails the deployment: deploy the key layer
    first (docs/deploying.md). Type token `zero-trust-ai:identity:IdentityReference`."""

    def __init__(self, name: str, args: IdentityReferenceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zero-trust-ai:identity:IdentityReference", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack = args.key_layer

        def declared(output: str, key: str, name: str) -> pulumi.Output[str]:
            """`name`, once the key layer's `output` says it declares that role; else the user's
            error, said before any read (a key layer deployed before it had the identity part, or
            with another jitCatalogueFile than this stack's)."""
            def check(arns: Any) -> str:
                if not isinstance(arns, Mapping) or not str(arns.get(key, "")).endswith(f"/{name}"):
                    raise pulumi.RunError(
                        f"the key layer stack {args.key_layer_stack} declares no role {name} "
                        f"({output}[{key!r}]): deploy the key layer first, with the same "
                        "jitCatalogueFile as this stack (docs/deploying.md)")
                return name
            return pulumi.Output.from_input(stack.get_output(output)).apply(check)

        self.roles: dict[str, aws.iam.Role] = {
            role: aws.iam.Role.get(f"{name}-{role}", declared(
                "humanRoleArns", role, human_role_name(args.environment, role)), opts=child)
            for role in HUMAN_ROLES}
        self.elevation_roles: dict[str, aws.iam.Role] = {
            elevation.name: aws.iam.Role.get(f"{name}-jit-{elevation.name}", declared(
                "elevationRoleArns", elevation.name, elevation_role_name(args.environment, elevation.name)),
                opts=child)
            for elevation in args.elevations}
        self.register_outputs({})

    def __getitem__(self, role: str) -> aws.iam.Role:
        if role not in self.roles:
            raise KeyError(f"no role {role!r}; roles are {', '.join(HUMAN_ROLES)}")
        return self.roles[role]
