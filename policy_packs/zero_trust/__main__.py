"""Entry point of the zero-trust-ai policy pack: assembles the pack, holds no rule logic.

The Pulumi engine starts this as `python -u -m pulumi.policy <engine> <pack dir>`; `PolicyPack`
then serves the Analyzer gRPC protocol and prints its port.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from ztpolicy.pack import PACK_NAME, initial_config, policies

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
    initial_config=initial_config(),
    description="Zero-trust guard rails for AI training data and model weights on AWS.",
)
