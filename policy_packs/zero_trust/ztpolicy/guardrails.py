"""What the organisation guardrails (the SCPs and RCPs of components/guardrails.py) key on: tag
names and values, the image parameters' path and role-name patterns. The pack may not import the
program, so it keeps its own copy; tests/components/test_guardrails.py checks the two agree.

A guardrail keyed on a tag the stack does not set, or on a role name the stack does not use,
protects nothing: the `guardrail-*` rules check the stack against these."""

from __future__ import annotations

import re

KEY_PURPOSE_TAG = "ztai:key-purpose"
EGRESS_TAG = "ztai:egress"
EGRESS_FREE_VALUE = "none"
EGRESS_VALUE = "nat"
PARAMETER_PREFIX = "/zero-trust-ai/"
# The JIT elevations and the JIT API (`zero-trust-ai-<env>-jit-...`), the key layer's deployer, and
# the monthly rotation with successors (once its role carries this name).
DEFAULT_KEY_ADMIN_ROLE_PATTERNS = ("zero-trust-ai-*-jit-*", "zero-trust-ai-*-deploy-keys",
                                   "zero-trust-ai-*-key-rotation")
DEFAULT_IMAGE_PUBLISHER_ROLE_PATTERNS = ("zero-trust-ai-*-enclave-parent-imagebuilder-execution",
                                         "inference-image-rollout-role-*")
SERVICE_CONTROL_POLICY, RESOURCE_CONTROL_POLICY = "SERVICE_CONTROL_POLICY", "RESOURCE_CONTROL_POLICY"


def name_matches(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Does `name` match one of the patterns, with the wildcards ArnLike understands (`*` any
    run of characters, `?` one)?"""
    for pattern in patterns:
        expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        if re.fullmatch(expression, name, re.DOTALL):
            return True
    return False
