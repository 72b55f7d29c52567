"""zero-trust-ai stack program: composition only.

Load the stack configuration, build the components, wire grants, seal the key policies, export.
Validation lives in `components.stack_config`, resources in `components/`.
"""

import pulumi

from components.keys import KeyHierarchy, KeyHierarchyArgs
from components.network import SegmentedNetwork, SegmentedNetworkArgs
from components.stack_config import load_stack_config

config = load_stack_config()

keys = KeyHierarchy(
    "keys",
    KeyHierarchyArgs(
        environment=config.environment,
        owner=config.owner,
        region=config.region,
        administrator_role_arns=config.key_administrator_role_arns,
        break_glass_role_arn=config.break_glass_role_arn,
        replica_regions=config.key_replica_regions,
        protect=config.is_prod,
    ),
)

network = SegmentedNetwork(
    "network",
    SegmentedNetworkArgs(
        segments=config.segments,
        environment=config.environment,
        owner=config.owner,
        region=config.region,
        az_count=config.az_count,
        flow_log_retention_days=config.flow_log_retention_days,
        flow_log_key_arn=keys.key_arn("logs"),
        organization_id=config.organization_id,
        protect=config.is_prod,
    ),
)
keys.grant_cloudwatch_logs(network.log_group_prefix)

# Every grant is made above this line: sealing writes the key policies.
keys.seal()

pulumi.export("vpcIds", network.vpc_ids())
pulumi.export("privateSubnetIds", {
    name: [subnet.id for subnet in segment.private_subnets]
    for name, segment in network.segments.items()
})
pulumi.export("keyArns", {purpose: key.arn for purpose, key in keys.keys.items()})
pulumi.export("keyAliases", {purpose: alias.name for purpose, alias in keys.aliases.items()})
