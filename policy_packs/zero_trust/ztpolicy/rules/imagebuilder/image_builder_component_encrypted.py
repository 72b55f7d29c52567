"""EC2 Image Builder components are encrypted with a customer managed key (control: immutable
infrastructure; the independent Checkov run's CKV_AWS_180).

A component document is the image: what the build installs and runs as root. Without `kmsKeyId`
Image Builder keeps it under an AWS owned key, outside any key policy; with one, reading it
(GetComponent, which every build instance does) needs the key, which KeyHierarchy admits only
through Image Builder for the stack's own components, and every read is a CloudTrail event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import sets_a_key
from ztpolicy.rule import Resource, Rule

COMPONENT = "aws:imagebuilder/component:Component"


def image_builder_component_encrypted(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if sets_a_key(resource, "kmsKeyId"):
        return []
    return [f"Image Builder component {resource.name} has no kmsKeyId: its document is encrypted "
            "with an AWS owned key, outside any key policy and unseen in CloudTrail"]


RULE = Rule(
    name="image-builder-component-encrypted",
    description="EC2 Image Builder components must be encrypted with a customer managed KMS key.",
    control="immutable images",
    severity=Severity.MEDIUM,
    remediation="Pass component_key_arn (the key hierarchy's logs key) and name the components in "
                "KeyHierarchyArgs.image_builder_components; grant the build instance "
                "keys.grant_component_decrypt.",
    resource_check=image_builder_component_encrypted,
    resource_types=frozenset({COMPONENT}),
)
