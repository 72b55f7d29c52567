"""The image parameters live where the organisation guardrails protect them (control:
organisation guardrails).

The images SCP lets only the image pipeline and the rollout overwrite, and only break-glass delete
or relabel, SSM parameters under `/zero-trust-ai/`. A launch template that takes its image from a
parameter elsewhere (data type `aws:ec2:image`), or a pipeline distribution that writes the AMI id
elsewhere, is outside it: any account administrator could point the fleet at their own image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import as_list
from ztpolicy.guardrails import PARAMETER_PREFIX
from ztpolicy.rule import Resource, Rule

PARAMETER = "aws:ssm/parameter:Parameter"
DISTRIBUTION = "aws:imagebuilder/distributionConfiguration:DistributionConfiguration"
IMAGE_DATA_TYPE = "aws:ec2:image"


def _outside(name: Any) -> bool:
    return not (isinstance(name, str) and name.startswith(PARAMETER_PREFIX))


def guardrail_image_parameter_path(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    where = f"the organisation guardrail protects only parameters under {PARAMETER_PREFIX}"
    if resource.type == PARAMETER:
        if resource.get("dataType") == IMAGE_DATA_TYPE and _outside(resource.get("name")):
            return [f"image parameter {resource.name} is named {resource.get('name')!r}: {where}"]
        return []
    problems = []
    for distribution in as_list(resource.get("distributions")):
        for parameter in as_list(distribution.get("ssmParameterConfigurations")
                                 if isinstance(distribution, Mapping) else None):
            name = parameter.get("parameterName") if isinstance(parameter, Mapping) else None
            if _outside(name):
                problems.append(f"distribution {resource.name} writes the AMI id to {name!r}: {where}")
    return problems


RULE = Rule(
    name="guardrail-image-parameter-path",
    description=f"Image id parameters (and the pipeline's distribution) are under {PARAMETER_PREFIX}, "
                "which the organisation guardrails protect.",
    control="organisation guardrails",
    severity=Severity.HIGH,
    remediation="Keep EnclaveInferenceFleetArgs.image_parameter_name (and the pipeline's "
                f"ami_id_parameter_name) under {PARAMETER_PREFIX}.",
    resource_check=guardrail_image_parameter_path,
    resource_types=frozenset({PARAMETER, DISTRIBUTION}),
)
