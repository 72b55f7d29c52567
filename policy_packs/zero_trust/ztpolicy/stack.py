"""What the pack knows of the stack it checks: its layer and environment, from the stack's config.

A split deployment checks each stack alone (`pulumi preview --policy-pack` on the key layer, then
on the workload), so a rule sometimes needs to know which layer it is looking at: the workload's
rotation schedule names keys the key layer's stack holds, the key layer's two-person deny names
roles of the workload's stack. The engine hands a policy pack the stack's configuration as it
hands it to the program: it starts the pack with `PULUMI_CONFIG` (JSON, `<project>:<key>` ->
value), which the Python policy SDK loads into the Pulumi runtime before each Analyze and
AnalyzeStack call, so a pack reads it with `pulumi.Config` (pulumi/pulumi pull request 3612,
"Support Config/getProject/getStack/isDryRun" from Policy Packs; pulumi_policy
`PolicyPack._configure_runtime_settings`).

`ztpolicy.pack` reads it once per validation and hands it to every rule in the rule's
configuration under `STACK_SETTINGS`, overriding anything a policy configuration may say there: the
layer is the stack's, never a setting of the pack's user. A rule that reads no settings, or is
called without them (a test, `ztai analyze` of an export, which carries no config), sees
`StackSettings()`: a combined stack, the strictest reading, where every key and every role must be
in the stack checked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The reserved entry of a rule's configuration that carries the settings (see the docstring).
STACK_SETTINGS = "ztai:stack"
DEFAULT_PROJECT = "zero-trust-ai"
LAYERS = ("combined", "keys", "workload")
# The stacks that set an account or the organisation up (components/config_values.py LAYERS): no
# workload and no keys of an environment, so nothing a rule about those must find there.
ACCOUNT_SETUP_LAYERS = ("bootstrap", "organization")
# components/stack_config.py ENVIRONMENTS (a test keeps them equal).
ENVIRONMENTS = ("dev", "staging", "prod")
_PCR_KEYS = {"PCR0": "enclavePcr0", "PCR1": "enclavePcr1", "PCR2": "enclavePcr2"}
_MEASUREMENT = re.compile(r"^[0-9a-fA-F]{96}$")


@dataclass(frozen=True)
class StackSettings:
    """The stack keys rules read (components/stack_config.py declares them).

    layer: `combined` (also for any value the pack does not know), `keys` or `workload`.
    environment: `dev`, `staging` or `prod`; None when absent or another value.
    key_layer_stack: a workload's `keyLayerStack`, the stack its keys come from; "" when not set.
    workload_grants_file: a key layer's `workloadGrantsFile`; None when the config does not say
        (then no rule assumes a first deployment: only an explicit "" says there are no grants).
    measurements: the `enclavePcr0..2` the stack pins, PCR name -> lower-case digest (only the
        well-formed ones).
    account_setup: the stack is a `bootstrap` or `organization` one (its `layer` then reads as
        `combined` for every other rule).
    """

    layer: str = "combined"
    environment: str | None = None
    key_layer_stack: str = ""
    workload_grants_file: str | None = None
    measurements: Mapping[str, str] = field(default_factory=dict)
    account_setup: bool = False

    @property
    def is_keys(self) -> bool:
        return self.layer == "keys"

    @property
    def is_workload(self) -> bool:
        return self.layer == "workload"

    @property
    def keys_before_grants(self) -> bool:
        """A key layer deployed before the workload's grants exist (its first deployment): the keys
        keep their creation policies, which admit no role of the workload."""
        return self.is_keys and self.workload_grants_file == ""


def from_values(values: Mapping[str, Any], project: str = DEFAULT_PROJECT) -> StackSettings:
    """Settings from a stack configuration (`<project>:<key>` -> value, as the engine passes it)."""
    def value(key: str) -> str | None:
        raw = values.get(f"{project}:{key}")
        return raw if isinstance(raw, str) else None

    layer = value("layer") or "combined"
    environment = value("environment")
    measurements = {pcr: text.lower() for pcr, key in _PCR_KEYS.items()
                    if (text := value(key)) is not None and _MEASUREMENT.match(text)}
    return StackSettings(layer=layer if layer in LAYERS else "combined",
                         environment=environment if environment in ENVIRONMENTS else None,
                         key_layer_stack=value("keyLayerStack") or "",
                         workload_grants_file=value("workloadGrantsFile"),
                         measurements=measurements, account_setup=layer in ACCOUNT_SETUP_LAYERS)


def from_engine() -> StackSettings:
    """The settings of the stack the engine is checking, through `pulumi.Config`."""
    import pulumi

    project = os.environ.get("PULUMI_PROJECT") or DEFAULT_PROJECT
    config = pulumi.Config(project)
    keys = ("layer", "environment", "keyLayerStack", "workloadGrantsFile", *_PCR_KEYS.values())
    return from_values({f"{project}:{key}": value for key in keys
                        if (value := config.get(key)) is not None}, project)


def stack_settings(config: Mapping[str, Any]) -> StackSettings:
    """The settings a rule was handed in its configuration; a combined stack's when none."""
    settings = config.get(STACK_SETTINGS)
    return settings if isinstance(settings, StackSettings) else StackSettings()


def alias_for(environment: str, purpose: str) -> str:
    """components/keys.py alias_name: every key of the hierarchy has this alias (a test keeps the
    two equal)."""
    return f"alias/zero-trust-ai/{environment}/{purpose}"
