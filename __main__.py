"""zero-trust-ai stack program: composition only.

Load the stack configuration, build the components, wire grants, seal the key policies, export.
Validation lives in `components.stack_config`, resources in `components/`.
"""

import pulumi

from components.key_rotation import MonthlyKeyRotation, MonthlyKeyRotationArgs
from components.keys import SYMMETRIC_PURPOSES, KeyHierarchy, KeyHierarchyArgs
from components.network import SegmentedNetwork, SegmentedNetworkArgs
from components.stack_config import load_stack_config
from components.token_vault import TokenVault, TokenVaultArgs

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

# Monthly on-demand rotation of the symmetric keys (the HMAC key cannot be rotated on demand),
# from the management segment's private subnets through its KMS endpoint. Successors are left to
# the pipeline (create_successors stays False: True would give the function's role
# kms:PutKeyPolicy on every symmetric key, model-weights included).
management = network.segments["management"]
rotation = MonthlyKeyRotation(
    "key-rotation",
    MonthlyKeyRotationArgs(
        environment=config.environment,
        owner=config.owner,
        region=config.region,
        key_aliases=[keys.aliases[purpose].name for purpose in SYMMETRIC_PURPOSES],
        key_arns=[keys.key_arn(purpose) for purpose in SYMMETRIC_PURPOSES],
        logs_key_arn=keys.key_arn("logs"),
        dead_letter_key_arn=keys.key_arn("logs"),
        subnet_ids=[subnet.id for subnet in management.private_subnets],
        vpc_id=management.vpc.id,
        vpc_cidr=management.vpc.cidr_block,
        protect=config.is_prod,
    ),
)
keys.grant_key_rotation(rotation.role, create_successors=rotation.create_successors)
keys.grant_cloudwatch_logs(rotation.log_group_prefix)
# SQS needs GenerateDataKey and Decrypt from whoever sends to an encrypted queue: the scheduler
# role gets the logs key's use through SQS only.
keys.grant_use_through_service("logs", rotation.scheduler_role, "sqs")

# The token vault (§4.1), encrypted with the secrets key. No role is granted tokenize/detokenize
# yet (roles come with §3.2): grant with token_vault.grant_tokenize(role, keys=keys) and
# token_vault.grant_detokenize(role, keys=keys) here, above the seal.
token_vault = TokenVault(
    "token-vault",
    TokenVaultArgs(
        environment=config.environment,
        owner=config.owner,
        kms_key_arn=keys.key_arn("secrets"),
        deletion_protection=config.is_prod,
        protect=config.is_prod,
    ),
)
# Creating the table makes DynamoDB create a grant on the secrets key for the deploying role.
keys.allow_service_resource_creation("secrets", "dynamodb")

# Every grant is made above this line: sealing writes the key policies.
keys.seal()

pulumi.export("vpcIds", network.vpc_ids())
pulumi.export("privateSubnetIds", {
    name: [subnet.id for subnet in segment.private_subnets]
    for name, segment in network.segments.items()
})
pulumi.export("keyArns", {purpose: key.arn for purpose, key in keys.keys.items()})
pulumi.export("keyAliases", {purpose: alias.name for purpose, alias in keys.aliases.items()})
pulumi.export("tokenVaultTable", token_vault.table_name)
