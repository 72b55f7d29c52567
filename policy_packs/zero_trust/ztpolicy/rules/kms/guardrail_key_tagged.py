"""Every KMS key of the stack carries the tag the organisation guardrails key on (control:
organisation guardrails).

The keys SCP denies PutKeyPolicy, deletion, disabling, alias moves, tag changes and grants on keys
tagged `ztai:key-purpose` to all but the key-administration roles (aws:ResourceTag). A key without
the tag is outside that guardrail: any account administrator may rewrite its policy. KeyHierarchy
tags every key it creates with its purpose; a key made by hand must be tagged too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.guardrails import KEY_PURPOSE_TAG
from ztpolicy.rule import Resource, Rule

KEY = "aws:kms/key:Key"
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"


def guardrail_key_tagged(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    purpose = resource.tags().get(KEY_PURPOSE_TAG)
    if isinstance(purpose, str) and purpose.strip():
        return []
    return [f"key {resource.name} has no {KEY_PURPOSE_TAG} tag: the organisation guardrail that keeps "
            "its policy, deletion and grants to the key administrators does not cover it"]


RULE = Rule(
    name="guardrail-key-tagged",
    description=f"KMS keys carry the {KEY_PURPOSE_TAG} tag the organisation guardrails key on.",
    control="organisation guardrails",
    severity=Severity.HIGH,
    remediation="Create keys with KeyHierarchy (it tags each with its purpose), or tag the key "
                f"{KEY_PURPOSE_TAG}=<purpose>.",
    resource_check=guardrail_key_tagged,
    resource_types=frozenset({KEY, REPLICA_KEY}),
)
