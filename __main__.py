"""zero-trust-ai stack program: composition only.

Load the stack configuration, build the components, wire them together, export what operators
and later stacks need. Validation lives in `components.stack_config`, resources in `components/`.
"""

import pulumi

from components.network import SegmentedNetwork, SegmentedNetworkArgs
from components.stack_config import load_stack_config

config = load_stack_config()

network = SegmentedNetwork(
    "network",
    SegmentedNetworkArgs(
        segments=config.segments,
        environment=config.environment,
        owner=config.owner,
        region=config.region,
        az_count=config.az_count,
        flow_log_retention_days=config.flow_log_retention_days,
        organization_id=config.organization_id,
        protect=config.is_prod,
    ),
)

pulumi.export("vpcIds", network.vpc_ids())
pulumi.export("privateSubnetIds", {
    name: [subnet.id for subnet in segment.private_subnets]
    for name, segment in network.segments.items()
})
pulumi.export("flowLogKeyArn", network.flow_log_key_arn)
