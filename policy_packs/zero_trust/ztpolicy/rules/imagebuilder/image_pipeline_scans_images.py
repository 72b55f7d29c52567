"""Image Builder pipelines scan and test every image they build (control: immutable infrastructure).

An image is baked once and then runs unchanged, so the build is the one moment to find what is
wrong with it: Amazon Inspector's scan records the vulnerabilities of the build (Image Builder keeps
its findings with the image), and the image tests launch the new AMI and run the components' test
phases before it is distributed. Both are properties of the pipeline (and of a one-off image
build):

- `imageScanningConfiguration.imageScanningEnabled` must be true (Image Builder's default is off);
- `imageTestsConfiguration.imageTestsEnabled` must not be false (Image Builder's default is on);
- with custom `workflows`, one of them must be a test workflow (`...:workflow/test/...`): a
  pipeline that names only a build workflow runs no tests whatever the tests configuration says.

Inspector itself is activated per account (it is not a pipeline property); without it the scan
setting records nothing. Unknown values (a real preview) count as set by this update.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, as_list, known, known_field
from ztpolicy.rule import Resource, Rule

PIPELINE = "aws:imagebuilder/imagePipeline:ImagePipeline"
IMAGE = "aws:imagebuilder/image:Image"




def _is_test_workflow(arn: Any) -> bool:
    return isinstance(arn, str) and ":workflow/test/" in arn


def image_pipeline_scans_images(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    kind = "image pipeline" if resource.type == PIPELINE else "image build"
    messages = []
    scanning = known(resource, "imageScanningConfiguration")
    enabled = UNKNOWN if scanning is UNKNOWN else known_field(scanning, "imageScanningEnabled")
    if enabled is not UNKNOWN and enabled is not True:
        messages.append(f"{kind} {resource.name} does not scan its images: set "
                        "image_scanning_configuration.image_scanning_enabled=True (Amazon Inspector)")
    tests = known(resource, "imageTestsConfiguration")
    tests_enabled = UNKNOWN if tests is UNKNOWN else known_field(tests, "imageTestsEnabled")
    if tests_enabled is False:
        messages.append(f"{kind} {resource.name} skips its image tests: the AMI would be "
                        "distributed without launching it once")
    workflows = known(resource, "workflows")
    if workflows is not UNKNOWN and tests_enabled is not False:
        try:
            arns = [known_field(workflow, "workflowArn") for workflow in as_list(workflows)]
        except UnknownValueError:  # a workflow entry not known yet: decided later, with values
            arns = [UNKNOWN]
        if arns and UNKNOWN not in arns and not any(_is_test_workflow(arn) for arn in arns):
            messages.append(f"{kind} {resource.name} names workflows but no test workflow, so no "
                            "test runs: add a TEST workflow (e.g. AWS-managed test-image)")
    return messages


RULE = Rule(
    name="image-pipeline-scans-images",
    description="Image Builder pipelines and image builds must have Inspector image scanning and "
                "image tests enabled.",
    control="immutable images",
    severity=Severity.HIGH,
    remediation="Set image_scanning_configuration=...(image_scanning_enabled=True) and keep "
                "image_tests_configuration.image_tests_enabled (ImmutableAmiPipeline does); with "
                "custom workflows include a test workflow. Activate Amazon Inspector in the account.",
    resource_check=image_pipeline_scans_images,
    resource_types=frozenset({PIPELINE, IMAGE}),
)
