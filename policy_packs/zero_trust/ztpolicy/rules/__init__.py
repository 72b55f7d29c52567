"""Every rule of the pack, one module each, named after its rule."""

from ztpolicy.rule import Rule
from ztpolicy.rules import (
    default_security_group_closed,
    dynamodb_deletion_protection,
    dynamodb_pitr_enabled,
    dynamodb_table_encrypted_with_cmk,
    egress_free_segment_no_internet_path,
    instance_no_public_ip,
    kms_key_deletion_window,
    kms_key_policy_least_privilege,
    kms_key_rotation_enabled,
    kms_monthly_rotation_scheduled,
    kms_no_lockout_bypass,
    log_group_encrypted,
    no_unrestricted_ingress,
    subnet_no_public_ip,
    vpc_endpoint_policy_present,
    vpc_endpoint_policy_restrictive,
    vpc_flow_logs_enabled,
)

ALL_RULES: list[Rule] = [
    subnet_no_public_ip.RULE,
    instance_no_public_ip.RULE,
    no_unrestricted_ingress.RULE,
    vpc_flow_logs_enabled.RULE,
    egress_free_segment_no_internet_path.RULE,
    vpc_endpoint_policy_present.RULE,
    vpc_endpoint_policy_restrictive.RULE,
    default_security_group_closed.RULE,
    log_group_encrypted.RULE,
    kms_key_rotation_enabled.RULE,
    kms_key_deletion_window.RULE,
    kms_key_policy_least_privilege.RULE,
    kms_no_lockout_bypass.RULE,
    kms_monthly_rotation_scheduled.RULE,
    dynamodb_table_encrypted_with_cmk.RULE,
    dynamodb_pitr_enabled.RULE,
    dynamodb_deletion_protection.RULE,
]
