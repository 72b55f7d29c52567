"""Enclave inference fleet (the immutable-infrastructure and enclave-only decryption controls).

Two components and what they share, one module each:

- `fleet`: `EnclaveInferenceFleet`, the parents of the Nitro Enclaves, their load balancer, image
  parameter, role, model bucket and inference events' log group;
- `rollout`: `ImageRollout`, a new image of the AMI pipeline becomes an instance refresh;
- `args`: the fleet's inputs and their validation;
- `boot`: the parents' boot script, rendered from `boot.sh.tpl`;
- `settings`: sizing (`EnclaveFleetSettings`, `sizing_problems`, which the stack configuration
  also checks) and the fixed values the modules share.

Every name other code uses is importable from `components.enclave_fleet` itself.
"""

from components.enclave_fleet.args import (
    EnclaveInferenceFleetArgs,
    image_parameter_name,
    inference_log_group_name,
)
from components.enclave_fleet.boot import BOOT_TEMPLATE, user_data
from components.enclave_fleet.fleet import EnclaveInferenceFleet, instance_policy
from components.enclave_fleet.rollout import (
    IMAGE_STATE_CHANGE,
    PARAMETER_STORE_CHANGE,
    ROLLOUT_HANDLER,
    ROLLOUT_MAX_EVENT_AGE,
    ROLLOUT_METRIC_NAMESPACE,
    ROLLOUT_MODULES,
    ROLLOUT_RETRY_ATTEMPTS,
    UNTRUSTED_IMAGE_ACTIONS,
    ImageRollout,
    ImageRolloutArgs,
    image_available_pattern,
    parameter_changed_pattern,
    rollout_policy,
    untrusted_image_filter_pattern,
)
from components.enclave_fleet.settings import (
    AGENT_ENVIRONMENT_FILE,
    AGENT_PORT,
    ARTIFACT_PREFIX,
    ARTIFACT_STACK_KEYS,
    DEFAULT_AGENT_UNIT,
    DEFAULT_EIF_PATH,
    EIF_MEMORY_FACTOR,
    ENCLAVE_CID,
    ENCLAVE_PORT,
    HEALTH_PATH,
    IMAGE_PARAMETER,
    INFERENCE_EVENTS_LOG_GROUP,
    INSTANCE_WARMUP_SECONDS,
    MAX_FLEET_SIZE,
    MAX_HEALTHY_PERCENTAGE,
    MIN_HEALTHY_PERCENTAGE,
    PARENT_IMAGE_PARAMETERS,
    PARENT_RESERVED_MIB,
    PRIVATE_IPV4_RANGES,
    SSM_AGENT_ACTIONS,
    EnclaveFleetSettings,
    sizing_problems,
)

__all__ = [
    "AGENT_ENVIRONMENT_FILE", "AGENT_PORT", "ARTIFACT_PREFIX", "ARTIFACT_STACK_KEYS", "BOOT_TEMPLATE",
    "DEFAULT_AGENT_UNIT", "DEFAULT_EIF_PATH", "EIF_MEMORY_FACTOR", "ENCLAVE_CID", "ENCLAVE_PORT",
    "HEALTH_PATH", "IMAGE_PARAMETER", "IMAGE_STATE_CHANGE", "INFERENCE_EVENTS_LOG_GROUP",
    "INSTANCE_WARMUP_SECONDS",
    "MAX_FLEET_SIZE", "MAX_HEALTHY_PERCENTAGE", "MIN_HEALTHY_PERCENTAGE", "PARAMETER_STORE_CHANGE",
    "PARENT_IMAGE_PARAMETERS", "PARENT_RESERVED_MIB", "PRIVATE_IPV4_RANGES", "ROLLOUT_HANDLER",
    "ROLLOUT_MAX_EVENT_AGE", "ROLLOUT_METRIC_NAMESPACE", "ROLLOUT_MODULES", "ROLLOUT_RETRY_ATTEMPTS",
    "SSM_AGENT_ACTIONS", "UNTRUSTED_IMAGE_ACTIONS", "EnclaveFleetSettings", "EnclaveInferenceFleet",
    "EnclaveInferenceFleetArgs", "ImageRollout", "ImageRolloutArgs", "image_available_pattern",
    "image_parameter_name", "inference_log_group_name", "instance_policy", "parameter_changed_pattern",
    "rollout_policy", "sizing_problems", "untrusted_image_filter_pattern", "user_data",
]
