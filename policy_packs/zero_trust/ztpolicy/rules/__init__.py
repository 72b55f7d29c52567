"""Every rule of the pack, one module each, named after its rule, in one folder per AWS service
(the folder `lambda_` has its underscore because `lambda` is a Python keyword). ALL_RULES is the
pack's order."""

from ztpolicy.rule import Rule
from ztpolicy.rules.apigateway import (
    api_default_endpoint_disabled,
    api_mtls_required,
    api_partner_route_scoped,
    api_rest_stage_waf,
    api_route_authorized,
    api_stage_access_logs,
    api_stage_throttled,
    api_tls_12,
    inference_path_tls_bound,
)
from ztpolicy.rules.cloudtrail import (
    cloudtrail_bucket_object_lock,
    cloudtrail_data_events_cover,
    cloudtrail_trail_secure,
)
from ztpolicy.rules.cloudwatch import (
    cloudwatch_alarm_has_action,
    events_target_has_dlq,
)
from ztpolicy.rules.dynamodb import (
    dynamodb_deletion_protection,
    dynamodb_pitr_enabled,
    dynamodb_table_encrypted_with_cmk,
)
from ztpolicy.rules.ec2 import (
    enclave_user_data_no_debug,
    launch_template_hardened,
)
from ztpolicy.rules.elb import (
    load_balancer_access_logs,
)
from ztpolicy.rules.firehose import (
    firehose_encrypted_with_cmk,
    siem_stream_leaves_the_account,
)
from ztpolicy.rules.iam import (
    ci_oidc_trust_pinned,
    guardrail_role_names,
    iam_human_role_conditions,
    iam_no_wildcard_action,
    iam_role_permissions_boundary,
    iam_role_session_duration,
    iam_role_trust_restricted,
    identity_part_in_key_layer,
    jit_grant_expiry,
)
from ztpolicy.rules.imagebuilder import (
    image_builder_component_encrypted,
    image_builder_infrastructure_hardened,
    image_pipeline_scans_images,
)
from ztpolicy.rules.kms import (
    guardrail_key_tagged,
    kms_key_deletion_window,
    kms_key_policy_least_privilege,
    kms_key_rotation_enabled,
    kms_monthly_rotation_scheduled,
    kms_no_lockout_bypass,
    kms_two_person_key_administration,
    model_key_alias_pinned,
    model_key_attestation_required,
)
from ztpolicy.rules.lambda_ import (
    detection_function_single_runner,
    lambda_failure_destination,
)
from ztpolicy.rules.logs import (
    log_group_deletion_protected,
    log_group_encrypted,
    log_group_subscribed_to_detection,
    log_group_subscribed_to_siem,
)
from ztpolicy.rules.network import (
    default_security_group_closed,
    egress_free_segment_dns_firewall,
    egress_free_segment_no_internet_path,
    eip_only_on_nat_gateways,
    guardrail_vpc_egress_tagged,
    instance_no_public_ip,
    no_unrestricted_ingress,
    subnet_no_public_ip,
    vpc_endpoint_policy_present,
    vpc_endpoint_policy_restrictive,
    vpc_flow_logs_enabled,
)
from ztpolicy.rules.organizations import (
    guardrail_policies_attached,
)
from ztpolicy.rules.s3 import (
    s3_bucket_access_logging,
    s3_bucket_encrypted_with_cmk,
    s3_bucket_owner_enforced,
    s3_bucket_policy_tls_and_key_pinned,
    s3_bucket_public_access_blocked,
    s3_bucket_versioning_enabled,
)
from ztpolicy.rules.scheduler import (
    scheduler_schedule_encrypted,
)
from ztpolicy.rules.ssm import (
    guardrail_image_parameter_path,
    session_manager_logging_encrypted,
)

ALL_RULES: list[Rule] = [
    subnet_no_public_ip.RULE,
    instance_no_public_ip.RULE,
    eip_only_on_nat_gateways.RULE,
    no_unrestricted_ingress.RULE,
    vpc_flow_logs_enabled.RULE,
    egress_free_segment_no_internet_path.RULE,
    egress_free_segment_dns_firewall.RULE,
    vpc_endpoint_policy_present.RULE,
    vpc_endpoint_policy_restrictive.RULE,
    default_security_group_closed.RULE,
    log_group_encrypted.RULE,
    log_group_deletion_protected.RULE,
    log_group_subscribed_to_siem.RULE,
    log_group_subscribed_to_detection.RULE,
    detection_function_single_runner.RULE,
    firehose_encrypted_with_cmk.RULE,
    siem_stream_leaves_the_account.RULE,
    kms_key_rotation_enabled.RULE,
    kms_key_deletion_window.RULE,
    kms_key_policy_least_privilege.RULE,
    kms_no_lockout_bypass.RULE,
    kms_monthly_rotation_scheduled.RULE,
    scheduler_schedule_encrypted.RULE,
    dynamodb_table_encrypted_with_cmk.RULE,
    dynamodb_pitr_enabled.RULE,
    dynamodb_deletion_protection.RULE,
    image_pipeline_scans_images.RULE,
    image_builder_infrastructure_hardened.RULE,
    image_builder_component_encrypted.RULE,
    launch_template_hardened.RULE,
    enclave_user_data_no_debug.RULE,
    model_key_attestation_required.RULE,
    model_key_alias_pinned.RULE,
    api_mtls_required.RULE,
    api_default_endpoint_disabled.RULE,
    api_tls_12.RULE,
    api_route_authorized.RULE,
    api_stage_access_logs.RULE,
    api_stage_throttled.RULE,
    api_rest_stage_waf.RULE,
    api_partner_route_scoped.RULE,
    session_manager_logging_encrypted.RULE,
    lambda_failure_destination.RULE,
    cloudwatch_alarm_has_action.RULE,
    events_target_has_dlq.RULE,
    load_balancer_access_logs.RULE,
    s3_bucket_public_access_blocked.RULE,
    s3_bucket_owner_enforced.RULE,
    s3_bucket_versioning_enabled.RULE,
    s3_bucket_encrypted_with_cmk.RULE,
    s3_bucket_policy_tls_and_key_pinned.RULE,
    s3_bucket_access_logging.RULE,
    inference_path_tls_bound.RULE,
    iam_role_trust_restricted.RULE,
    iam_no_wildcard_action.RULE,
    iam_human_role_conditions.RULE,
    iam_role_permissions_boundary.RULE,
    iam_role_session_duration.RULE,
    jit_grant_expiry.RULE,
    kms_two_person_key_administration.RULE,
    guardrail_key_tagged.RULE,
    guardrail_vpc_egress_tagged.RULE,
    guardrail_image_parameter_path.RULE,
    guardrail_role_names.RULE,
    guardrail_policies_attached.RULE,
    ci_oidc_trust_pinned.RULE,
    identity_part_in_key_layer.RULE,
    cloudtrail_trail_secure.RULE,
    cloudtrail_bucket_object_lock.RULE,
    cloudtrail_data_events_cover.RULE,
]
