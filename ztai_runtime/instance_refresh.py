"""Roll a new enclave parent image out to the inference fleet (immutable infrastructure).

The fleet's launch template names its image as `resolve:ssm:<parameter>`, and the AMI pipeline's
distribution overwrites that parameter with each new AMI. The template does not change, so
nothing replaces the running instances by itself: an EventBridge rule on Image Builder's
"EC2 Image Builder Image State Change" events (state AVAILABLE, images of the pipeline's recipe)
invokes `handler`, which starts an instance refresh of the Auto Scaling group. Every instance the
refresh launches resolves the parameter again, so it boots the new AMI.

`refresh_for_image` decides one of:

- `refresh-started`: `StartInstanceRefresh` on the group with the fleet's preferences (keep 100 %
  healthy, allow 200 %, the fleet's warm-up; no skip matching, because every instance matches the
  unchanged template; no auto rollback, which Auto Scaling refuses for a template whose image is
  an SSM parameter);
- `already-refreshing`: a refresh that started after the image became available is in progress
  (a repeated event, or a refresh somebody else started): it launches from the new AMI already.
  Also when `StartInstanceRefresh` answers InstanceRefreshInProgress (a race with such a refresh);
- `parameter-mismatch`: just before starting a refresh, the fleet's AMI-id parameter does not name
  the AMI this image produced in the function's region (`GetImage` outputResources.amis): someone
  wrote the parameter outside the pipeline, and a refresh would roll their AMI out. The run fails
  and nothing starts. (A newer image of the pipeline overwriting the parameter between the two
  events also ends here; that image's own event then starts the refresh.)
- `untrusted-image`: the parameter names the image's AMI, but the AMI fails
  `verify_pipeline_ami` (another owner, no Image Builder record of the declared recipe version
  listing it, snapshots not encrypted with the AMI key, a record that was not built by the
  declared pipeline or not as it declares: see `build_problems`): nothing starts;
- `ignored`: the event is not an AVAILABLE image of the configured recipe (the rule matches only
  those; a test event or a changed rule ends here). Not a failure;
- `refresh-predates-image`: a refresh that started *before* the image became available is still
  running. The instances it replaced earlier keep the previous AMI, and a second refresh cannot
  start until it ends, so the run fails: Lambda retries it, then the function's error alarm asks
  an operator to start a refresh once the running one has ended (docs/weights-and-enclave.md);
- `failed`: an Auto Scaling error that survived the client's retries.

The same function watches the parameter itself (`guard_parameter`, on SSM's "Parameter Store
Change" events): the launch template resolves it at EVERY launch (scale-out, replacement of an
unhealthy instance), not only during a refresh, so refusing a rollout is not enough. A value the
pipeline did not produce is replaced with the newest earlier value that it did (`parameter-reverted`)
or, when there is none, left and reported (`parameter-untrusted`).

`refresh-predates-image`, `parameter-mismatch`, `untrusted-image`, `parameter-reverted`,
`parameter-untrusted` and `failed` fail the run (the handler raises after logging), so Lambda
retries the invocation and counts an error; the untrusted ones (UNTRUSTED_ACTIONS) also raise the
component's untrusted-image alarm through a metric filter on the log line. Reruns are safe: the second
run finds the first run's refresh in progress. Every decision is one JSON line (`ztai_runtime.jsonlog`).

Configuration comes from the function's environment (`settings_from_environment`), written by
`components/enclave_fleet/rollout.py`. This module imports only the standard library, boto3/botocore,
`ztai_runtime.jsonlog` and `ztai_runtime.retries`: it ships with them as a Lambda asset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ztai_runtime.jsonlog import get_logger, log_decision
from ztai_runtime.retries import retry_config

# boto3 clients are generated at runtime and carry no static types; these name the boundary.
AutoScalingClient = Any
Ec2Client = Any
ImageBuilderClient = Any
SsmClient = Any

EVENT_SOURCE = "aws.imagebuilder"
EVENT_DETAIL_TYPE = "EC2 Image Builder Image State Change"
AVAILABLE = "AVAILABLE"
# Instance refresh states in which Auto Scaling refuses to start another one.
ACTIVE_REFRESH_STATES = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress",
                                   "Baking"})

# The parameter watch (`guard_parameter`): the event SSM sends when a parameter changes.
PARAMETER_EVENT_SOURCE = "aws.ssm"
PARAMETER_EVENT_DETAIL_TYPE = "Parameter Store Change"
# What Image Builder tags every AMI it creates with: the image build version's ARN.
IMAGE_BUILDER_ARN_TAG = "Ec2ImageBuilderArn"
# Image records that are still on their way to AVAILABLE: an AMI they do not list yet is pending.
IN_PROGRESS_STATES = frozenset({"PENDING", "CREATING", "BUILDING", "TESTING", "DISTRIBUTING",
                                "INTEGRATING"})
# How many earlier values of the parameter are checked for one to restore.
MAX_RESTORE_CANDIDATES = 10
_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
_IMAGE_ARN_PREFIX = re.compile(r"^arn:aws[a-z-]*:imagebuilder:[a-z0-9-]+:\d{12}:image/[A-Za-z0-9._-]+/$")
_RECIPE_ARN = re.compile(
    r"^arn:aws[a-z-]*:imagebuilder:[a-z0-9-]+:\d{12}:image-recipe/[A-Za-z0-9._-]+/\d+\.\d+\.\d+$")
_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_PIPELINE_ARN = re.compile(r"^arn:aws[a-z-]*:imagebuilder:[a-z0-9-]+:\d{12}:image-pipeline/[A-Za-z0-9._-]+$")
_INFRASTRUCTURE_ARN = re.compile(
    r"^arn:aws[a-z-]*:imagebuilder:[a-z0-9-]+:\d{12}:infrastructure-configuration/[A-Za-z0-9._-]+$")
_DISTRIBUTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:imagebuilder:[a-z0-9-]+:\d{12}:distribution-configuration/[A-Za-z0-9._-]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
# An AWS-managed workflow (account "aws"); the version, x.x.x or resolved, is not compared.
_WORKFLOW_ARN = re.compile(
    r"^(arn:aws[a-z-]*:imagebuilder:[a-z0-9-]+:aws:workflow/(?:build|test|distribution)/[a-z0-9-]+)/.+$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")

REFRESH_STARTED = "refresh-started"
ALREADY_REFRESHING = "already-refreshing"
IGNORED = "ignored"
REFRESH_PREDATES_IMAGE = "refresh-predates-image"
PARAMETER_MISMATCH = "parameter-mismatch"
UNTRUSTED_IMAGE = "untrusted-image"
FAILED = "failed"
# The parameter watch's decisions.
PARAMETER_TRUSTED = "parameter-trusted"
PARAMETER_PENDING = "parameter-pending"
PARAMETER_REVERTED = "parameter-reverted"
PARAMETER_UNTRUSTED = "parameter-untrusted"
# Someone other than the pipeline chose the fleet's image: each of these is also counted by the
# component's metric filter and raises its untrusted-image alarm (components/enclave_fleet/rollout.py).
UNTRUSTED_ACTIONS = frozenset({PARAMETER_MISMATCH, UNTRUSTED_IMAGE, PARAMETER_REVERTED,
                               PARAMETER_UNTRUSTED})
FAILING_ACTIONS = frozenset({REFRESH_PREDATES_IMAGE, FAILED, *UNTRUSTED_ACTIONS})

# The environment the component writes (components/enclave_fleet/rollout.py, ImageRollout).
ENV_GROUP = "ZTAI_AUTO_SCALING_GROUP"
ENV_IMAGE_ARN_PREFIX = "ZTAI_IMAGE_ARN_PREFIX"
ENV_AMI_PARAMETER = "ZTAI_AMI_ID_PARAMETER"
ENV_RECIPE_ARN = "ZTAI_IMAGE_RECIPE_ARN"
ENV_AMI_KEY_ARN = "ZTAI_AMI_KEY_ARN"
# How the pipeline builds (components/ami_pipeline.py): what every image record must show.
ENV_PIPELINE_ARN = "ZTAI_IMAGE_PIPELINE_ARN"
ENV_INFRASTRUCTURE_ARN = "ZTAI_INFRASTRUCTURE_CONFIGURATION_ARN"
ENV_DISTRIBUTION_ARN = "ZTAI_DISTRIBUTION_CONFIGURATION_ARN"
ENV_BUILD_SUBNET = "ZTAI_BUILD_SUBNET_ID"
ENV_BUILD_SECURITY_GROUPS = "ZTAI_BUILD_SECURITY_GROUP_IDS"  # comma-separated
ENV_EXECUTION_ROLE_ARN = "ZTAI_IMAGE_EXECUTION_ROLE_ARN"
ENV_WORKFLOW_ARNS = "ZTAI_IMAGE_WORKFLOW_ARNS"  # comma-separated
ENV_MIN_HEALTHY = "ZTAI_MIN_HEALTHY_PERCENTAGE"
ENV_MAX_HEALTHY = "ZTAI_MAX_HEALTHY_PERCENTAGE"
ENV_WARMUP = "ZTAI_INSTANCE_WARMUP_SECONDS"

# Standard retries with backoff on throttling (ztai_runtime.retries), 5 attempts per call in total.
RETRY_CONFIG = retry_config(5)

logger = get_logger("ztai_runtime.instance_refresh")


class InstanceRefreshError(RuntimeError):
    """The run ended in a failing decision; raised after it was logged."""


@dataclass(frozen=True)
class RefreshSettings:
    """The group to refresh, the images that trigger it, the parameter the launch template takes
    its AMI from, and the refresh preferences."""

    group_name: str
    image_arn_prefix: str
    ami_parameter_name: str
    recipe_arn: str
    ami_key_arn: str
    # How the pipeline builds, as Pulumi declares it (`build_problems`).
    pipeline_arn: str
    infrastructure_configuration_arn: str
    distribution_configuration_arn: str
    build_subnet_id: str
    build_security_group_ids: tuple[str, ...]
    execution_role_arn: str
    workflow_arns: tuple[str, ...]
    min_healthy_percentage: int = 100
    max_healthy_percentage: int = 200
    instance_warmup_seconds: int = 300

    def __post_init__(self) -> None:
        if not self.group_name:
            raise ValueError("the Auto Scaling group name is empty")
        if not self.ami_parameter_name:
            raise ValueError("the AMI-id parameter name is empty")
        if not _IMAGE_ARN_PREFIX.match(self.image_arn_prefix):
            raise ValueError(f"image ARN prefix {self.image_arn_prefix!r}: expected "
                             "arn:<partition>:imagebuilder:<region>:<account>:image/<recipe>/")
        if not _RECIPE_ARN.match(self.recipe_arn):
            raise ValueError(f"image recipe ARN {self.recipe_arn!r}: expected "
                             "arn:<partition>:imagebuilder:<region>:<account>:image-recipe/<name>/<version>")
        if not _KEY_ARN.match(self.ami_key_arn):
            raise ValueError(f"AMI key ARN {self.ami_key_arn!r}: expected "
                             "arn:<partition>:kms:<region>:<account>:key/<key id>")
        for what, value, pattern, expected in (
                ("image pipeline ARN", self.pipeline_arn, _PIPELINE_ARN, "image-pipeline/<name>"),
                ("infrastructure configuration ARN", self.infrastructure_configuration_arn,
                 _INFRASTRUCTURE_ARN, "infrastructure-configuration/<name>"),
                ("distribution configuration ARN", self.distribution_configuration_arn,
                 _DISTRIBUTION_ARN, "distribution-configuration/<name>")):
            if not pattern.match(value):
                raise ValueError(f"{what} {value!r}: expected "
                                 f"arn:<partition>:imagebuilder:<region>:<account>:{expected}")
        if not _SUBNET_ID.match(self.build_subnet_id):
            raise ValueError(f"build subnet {self.build_subnet_id!r}: expected subnet-<hex>")
        if not self.build_security_group_ids or not all(
                _SECURITY_GROUP_ID.match(group) for group in self.build_security_group_ids):
            raise ValueError(f"build security groups {self.build_security_group_ids!r}: expected "
                             "one or more sg-<hex>, comma-separated")
        if not _ROLE_ARN.match(self.execution_role_arn):
            raise ValueError(f"execution role ARN {self.execution_role_arn!r}: expected "
                             "arn:<partition>:iam::<account>:role/<name>")
        if not self.workflow_arns or not all(_WORKFLOW_ARN.match(arn) for arn in self.workflow_arns):
            raise ValueError(f"workflow ARNs {self.workflow_arns!r}: expected one or more AWS-managed "
                             "arn:<partition>:imagebuilder:<region>:aws:workflow/<type>/<name>/<version>, "
                             "comma-separated")
        if not 0 <= self.min_healthy_percentage <= 100:
            raise ValueError(f"minimum healthy percentage {self.min_healthy_percentage}: 0 to 100")
        if not 100 <= self.max_healthy_percentage <= 200:
            raise ValueError(f"maximum healthy percentage {self.max_healthy_percentage}: 100 to 200")
        if self.max_healthy_percentage - self.min_healthy_percentage > 100:
            raise ValueError("maximum minus minimum healthy percentage may be at most 100")
        if self.instance_warmup_seconds < 0:
            raise ValueError(f"instance warm-up {self.instance_warmup_seconds}: not negative")

    @property
    def account_id(self) -> str:
        """The account that owns the pipeline's images (from the image ARN prefix)."""
        return self.image_arn_prefix.split(":")[4]

    def preferences(self) -> dict[str, Any]:
        """StartInstanceRefresh preferences. No SkipMatching: the template is unchanged, so every
        instance matches it and a skip would replace none. No AutoRollback: Auto Scaling does not
        support it when the template's image is an SSM parameter."""
        return {"MinHealthyPercentage": self.min_healthy_percentage,
                "MaxHealthyPercentage": self.max_healthy_percentage,
                "InstanceWarmup": self.instance_warmup_seconds,
                "SkipMatching": False, "AutoRollback": False}


@dataclass(frozen=True)
class Decision:
    """What one run did, logged as one JSON line."""

    action: str
    group: str
    reason: str
    image_arn: str | None = None
    refresh_id: str | None = None
    error_code: str | None = None
    ami_id: str | None = None  # the image's AMI in this region (parameter-mismatch)
    parameter_value: str | None = None  # what the AMI-id parameter holds (parameter-mismatch)
    problems: tuple[str, ...] | None = None  # why an AMI is not the pipeline's (untrusted-*)
    restored_value: str | None = None  # the verified AMI the watch wrote back (parameter-reverted)

    @property
    def failed(self) -> bool:
        return self.action in FAILING_ACTIONS


@dataclass(frozen=True)
class ImageEvent:
    """The parts of an Image Builder state-change event the decision needs."""

    image_arn: str | None
    status: str | None
    time: datetime | None
    source: str | None
    detail_type: str | None


def parse_event(event: Any) -> ImageEvent:
    """Read an EventBridge event leniently: what is missing or malformed comes back as None and
    makes the event `ignored`, never a crash."""
    if not isinstance(event, Mapping):
        return ImageEvent(None, None, None, None, None)
    resources = event.get("resources")
    image_arn = resources[0] if isinstance(resources, list) and len(resources) == 1 and isinstance(
        resources[0], str) else None
    detail = event.get("detail")
    state = detail.get("state") if isinstance(detail, Mapping) else None
    status = state.get("status") if isinstance(state, Mapping) else None
    time = _parse_time(event.get("time"))
    source, detail_type = event.get("source"), event.get("detail-type")
    return ImageEvent(image_arn, status if isinstance(status, str) else None, time,
                      source if isinstance(source, str) else None,
                      detail_type if isinstance(detail_type, str) else None)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _ignored_because(event: ImageEvent, settings: RefreshSettings) -> str | None:
    if event.source != EVENT_SOURCE or event.detail_type != EVENT_DETAIL_TYPE:
        return f"not an Image Builder image state change ({event.source!r}, {event.detail_type!r})"
    if event.status != AVAILABLE:
        return f"image state {event.status!r}, not {AVAILABLE}"
    if event.image_arn is None or not event.image_arn.startswith(settings.image_arn_prefix):
        return f"image {event.image_arn!r} is not one of {settings.image_arn_prefix}*"
    if event.time is None:
        return "the event has no time"
    return None


def _log(decision: Decision) -> Decision:
    log_decision(logger, "instance-refresh", **{k: v for k, v in asdict(decision).items()
                                               if v is not None})
    return decision


@dataclass(frozen=True)
class RolloutClients:
    """The AWS clients one run uses."""

    autoscaling: AutoScalingClient
    imagebuilder: ImageBuilderClient
    ssm: SsmClient
    ec2: Ec2Client


# -- is an AMI the pipeline's? ----------------------------------------------------------------------
@dataclass(frozen=True)
class ImageVerdict:
    """Whether an AMI is one the pipeline produced: `problems` says why not; `pending` means its
    image record is still on its way to AVAILABLE and does not list it yet (neither proven nor
    refuted)."""

    ami_id: str
    image_arn: str | None
    problems: tuple[str, ...] = ()
    pending: bool = False

    @property
    def trusted(self) -> bool:
        return not self.problems and not self.pending


def _record_amis(record: Mapping[str, Any], region: str) -> list[str]:
    amis = record.get("outputResources", {}).get("amis", [])
    return sorted({ami["image"] for ami in amis
                   if ami.get("region") == region and isinstance(ami.get("image"), str)})


def _role_name(role: str) -> str:
    return role.rsplit("/", 1)[-1]


def _workflow(arn: str) -> str:
    """A workflow ARN without its version (the pipeline declares x.x.x; a record may resolve it)."""
    match = _WORKFLOW_ARN.match(arn)
    return match.group(1) if match else arn


def build_problems(record: Mapping[str, Any], settings: RefreshSettings) -> list[str]:
    """What in an Image Builder image record (GetImage `image`) shows it was not built by the
    declared pipeline as Pulumi declares it. The record keeps a snapshot of the configurations
    the build used, so a configuration changed in place (same ARN) and changed back is still seen
    here. Field names: botocore's imagebuilder model (2019-12-02), shapes Image,
    InfrastructureConfiguration, ImageTestsConfiguration, ImageScanningConfiguration,
    WorkflowConfiguration.

    - origin: `sourcePipelineArn` is the declared pipeline ("only present for images that a
      pipeline execution created"). The stack's deploy-time build (ImmutableAmiPipeline.build_image,
      a CreateImage) has none: it is accepted when its `executionRole` is the pipeline's execution
      role, which a CreateImage can name only with iam:PassRole on that role (the SCP keeps
      imagebuilder:Create* to the deploy role). Its ARN is not pinned: Pulumi learns it only when
      the build ends, after the build has written the AMI parameter, so a function waiting for it
      would judge that write with its previous configuration (docs/weights-and-enclave.md);
    - `executionRole`, when present: the declared one;
    - image tests and Inspector scanning enabled;
    - the declared infrastructure and distribution configurations (ARN), and the snapshot of the
      infrastructure: no key pair, the declared subnet and security groups, instances terminated
      on failure, IMDSv2 required;
    - workflows: none but the declared ones (AWS-managed, compared without their version)."""
    problems: list[str] = []
    source = record.get("sourcePipelineArn")
    role = record.get("executionRole")
    declared_role = settings.execution_role_arn
    if role is not None and role != declared_role and (
            str(role).startswith("arn:") or role != _role_name(declared_role)):
        problems.append(f"run as execution role {role!r}, not the declared {declared_role}")
    if source is None:
        if role is None:
            problems.append(f"not built by the pipeline {settings.pipeline_arn} (no sourcePipelineArn) "
                            "nor by the stack's deploy-time build (no executionRole)")
    elif source != settings.pipeline_arn:
        problems.append(f"built by pipeline {source!r}, not by the declared {settings.pipeline_arn}")
    if record.get("imageTestsConfiguration", {}).get("imageTestsEnabled") is not True:
        problems.append("image tests were not enabled")
    if record.get("imageScanningConfiguration", {}).get("imageScanningEnabled") is not True:
        problems.append("image scanning (Inspector) was not enabled")
    distribution = record.get("distributionConfiguration", {}).get("arn")
    if distribution != settings.distribution_configuration_arn:
        problems.append(f"distribution configuration {distribution!r}, not the declared "
                        f"{settings.distribution_configuration_arn}")
    infrastructure = record.get("infrastructureConfiguration", {})
    if infrastructure.get("arn") != settings.infrastructure_configuration_arn:
        problems.append(f"infrastructure configuration {infrastructure.get('arn')!r}, not the "
                        f"declared {settings.infrastructure_configuration_arn}")
    if infrastructure.get("keyPair"):
        problems.append(f"the build instance had key pair {infrastructure['keyPair']!r} (an SSH "
                        "way in); the declared configuration has none")
    if infrastructure.get("subnetId") != settings.build_subnet_id:
        problems.append(f"the build instance ran in subnet {infrastructure.get('subnetId')!r}, not "
                        f"the declared {settings.build_subnet_id}")
    groups = sorted(infrastructure.get("securityGroupIds") or [])
    if groups != sorted(settings.build_security_group_ids):
        problems.append(f"the build instance had security groups {', '.join(groups) or 'none'}, not "
                        f"the declared {', '.join(sorted(settings.build_security_group_ids))}")
    if infrastructure.get("terminateInstanceOnFailure") is not True:
        problems.append("the infrastructure did not terminate instances on failure (a failed build "
                        "instance is left running to be changed)")
    if infrastructure.get("instanceMetadataOptions", {}).get("httpTokens") != "required":
        problems.append("the build instance did not require IMDSv2")
    declared_workflows = {_workflow(arn) for arn in settings.workflow_arns}
    extra = sorted({str(item.get("workflowArn")) for item in record.get("workflows") or []
                    if _workflow(str(item.get("workflowArn"))) not in declared_workflows})
    if extra:
        problems.append(f"ran workflows {', '.join(extra)}, beyond the declared "
                        f"{', '.join(settings.workflow_arns)}")
    return problems


def verify_pipeline_ami(clients: RolloutClients, settings: RefreshSettings, ami_id: str) -> ImageVerdict:
    """Check an AMI against what only the pipeline produces, not against the parameter:

    - EC2 (DescribeImages): the AMI exists, is available, is owned by this account, and carries
      the `Ec2ImageBuilderArn` tag Image Builder sets, naming an image of the pipeline's recipe
      (`image_arn_prefix`);
    - EC2 (DescribeSnapshots): every EBS snapshot of it is encrypted with the AMI key
      (`ami_key_arn`), the key the pipeline's distribution encrypts with;
    - Image Builder (GetImage on that tag): the record exists, was built from the recipe version
      Pulumi declared (`recipe_arn`), by the declared pipeline as it is declared
      (`build_problems`), did not fail, and lists this AMI among its outputs in this region. A tag
      can be forged by anyone allowed ec2:CreateTags; the record cannot.

    While the record is still being built, tested or distributed (the pipeline writes the
    parameter during distribution) and does not list the AMI yet, the verdict is `pending`.
    AWS errors other than "no such AMI/image" propagate."""
    if not _AMI_ID.match(ami_id):
        return ImageVerdict(ami_id, None, (f"{ami_id!r} is not an AMI id",))
    region = clients.ec2.meta.region_name
    try:
        images = clients.ec2.describe_images(ImageIds=[ami_id]).get("Images", [])
    except ClientError as error:
        if not error.response.get("Error", {}).get("Code", "").startswith("InvalidAMIID"):
            raise
        images = []
    if not images:
        return ImageVerdict(ami_id, None, (f"no AMI {ami_id} is visible in {region}",))
    image = images[0]
    problems: list[str] = []
    if image.get("OwnerId") != settings.account_id:
        problems.append(f"owned by {image.get('OwnerId')}, not by this account {settings.account_id}")
    if image.get("State") != "available":
        problems.append(f"AMI state {image.get('State')!r}, not 'available'")
    tags = {tag.get("Key"): tag.get("Value") for tag in image.get("Tags", [])}
    image_arn = tags.get(IMAGE_BUILDER_ARN_TAG)
    snapshots = [mapping["Ebs"] for mapping in image.get("BlockDeviceMappings", []) if "Ebs" in mapping]
    if not snapshots:
        problems.append("no EBS snapshot: not an image of the pipeline")
    if any(ebs.get("Encrypted") is not True for ebs in snapshots):
        problems.append("a volume of it is not encrypted")
    snapshot_ids = [ebs["SnapshotId"] for ebs in snapshots if ebs.get("SnapshotId")]
    if snapshot_ids:
        described = clients.ec2.describe_snapshots(SnapshotIds=snapshot_ids).get("Snapshots", [])
        keys = sorted({str(snapshot.get("KmsKeyId")) for snapshot in described})
        if keys != [settings.ami_key_arn]:
            problems.append(f"its snapshots are encrypted with {', '.join(keys) or 'no key'}, not "
                            f"with the AMI key {settings.ami_key_arn}")
    if not isinstance(image_arn, str) or not image_arn.startswith(settings.image_arn_prefix):
        problems.append(f"tag {IMAGE_BUILDER_ARN_TAG}={image_arn!r} does not name an image of the "
                        f"pipeline's recipe ({settings.image_arn_prefix}*)")
        return ImageVerdict(ami_id, None, tuple(problems))
    try:
        record = clients.imagebuilder.get_image(imageBuildVersionArn=image_arn).get("image", {})
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return ImageVerdict(ami_id, image_arn, (*problems, f"Image Builder has no image {image_arn}"))
    recipe = record.get("imageRecipe", {}).get("arn")
    if recipe != settings.recipe_arn:
        problems.append(f"built from recipe {recipe!r}, not from the declared {settings.recipe_arn}")
    problems.extend(build_problems(record, settings))
    status = record.get("state", {}).get("status")
    listed = _record_amis(record, region)
    pending = False
    if ami_id not in listed:
        if status in IN_PROGRESS_STATES:
            pending = True
        else:
            problems.append(f"image {image_arn} ({status}) lists {', '.join(listed) or 'no AMI'} in "
                            f"{region}, not {ami_id}")
    elif status not in IN_PROGRESS_STATES and status != AVAILABLE:
        problems.append(f"image {image_arn} is {status}, not {AVAILABLE}")
    return ImageVerdict(ami_id, image_arn, tuple(problems), pending=pending and not problems)


def _parameter_mismatch(clients: RolloutClients, settings: RefreshSettings, group: str,
                        image: str) -> Decision | None:
    """A `parameter-mismatch` decision unless the AMI-id parameter names one of the AMIs the image
    produced in this region; an `untrusted-image` decision unless that AMI also passes
    `verify_pipeline_ami`. AWS errors propagate (a `failed` decision)."""
    region = clients.ssm.meta.region_name
    answer = clients.imagebuilder.get_image(imageBuildVersionArn=image)
    expected = _record_amis(answer.get("image", {}), region)
    value = clients.ssm.get_parameter(Name=settings.ami_parameter_name)["Parameter"]["Value"]
    if value in expected:
        verdict = verify_pipeline_ami(clients, settings, value)
        if verdict.trusted:
            return None
        return Decision(UNTRUSTED_IMAGE, group,
                        f"the image's AMI {value} is not one the pipeline produced as declared; "
                        "no refresh started", image_arn=image, ami_id=value, parameter_value=value,
                        problems=verdict.problems or ("its image record is not complete",))
    return Decision(PARAMETER_MISMATCH, group,
                    f"parameter {settings.ami_parameter_name} holds {value!r}, but the image's AMI in "
                    f"{region} is {', '.join(expected) or 'none'}: the parameter was written outside "
                    "the pipeline (or by a newer image); no refresh started",
                    image_arn=image, ami_id=", ".join(expected) or None, parameter_value=value)


def refresh_for_image(clients: RolloutClients, settings: RefreshSettings,
                      event: ImageEvent) -> Decision:
    """Decide and act for one event; logs the decision and returns it (never raises for AWS
    errors: they become a `failed` decision)."""
    autoscaling = clients.autoscaling
    group = settings.group_name
    reason = _ignored_because(event, settings)
    image, available_at = event.image_arn, event.time
    if reason is not None or image is None or available_at is None:
        return _log(Decision(IGNORED, group, reason or "incomplete event", image_arn=image))
    try:
        refreshes = autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=group)["InstanceRefreshes"]
        active = [r for r in refreshes if r.get("Status") in ACTIVE_REFRESH_STATES]
        if active:
            return _log(_judge_active(group, image, available_at, active[0]))
        if (mismatch := _parameter_mismatch(clients, settings, group, image)) is not None:
            return _log(mismatch)
        answer = autoscaling.start_instance_refresh(
            AutoScalingGroupName=group, Strategy="Rolling", Preferences=settings.preferences())
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "InstanceRefreshInProgress":
            return _log(Decision(ALREADY_REFRESHING, group, "a refresh started while this one was "
                                 "being requested; it launches from the new image",
                                 image_arn=image, error_code=code))
        return _log(Decision(FAILED, group, str(error), image_arn=image, error_code=code))
    except BotoCoreError as error:
        return _log(Decision(FAILED, group, str(error), image_arn=image,
                             error_code=type(error).__name__))
    return _log(Decision(REFRESH_STARTED, group, "a new image is available",
                         image_arn=image, refresh_id=answer.get("InstanceRefreshId")))


def _judge_active(group: str, image: str, available_at: datetime,
                  refresh: Mapping[str, Any]) -> Decision:
    refresh_id, started = refresh.get("InstanceRefreshId"), refresh.get("StartTime")
    if isinstance(started, datetime) and started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    if isinstance(started, datetime) and started >= available_at:
        return Decision(ALREADY_REFRESHING, group, f"refresh {refresh_id} ({refresh.get('Status')}) "
                        f"started {started.isoformat()}, after the image became available",
                        image_arn=image, refresh_id=refresh_id)
    return Decision(REFRESH_PREDATES_IMAGE, group,
                    f"refresh {refresh_id} ({refresh.get('Status')}) started "
                    f"{started.isoformat() if isinstance(started, datetime) else 'at an unknown time'}"
                    f", before the image became available at {available_at.isoformat()}: instances "
                    "it replaced before then keep the previous image; start a refresh once it ends",
                    image_arn=image, refresh_id=refresh_id)


# -- the parameter watch ----------------------------------------------------------------------------
def is_parameter_event(event: Any) -> bool:
    """An SSM "Parameter Store Change" event (the watch's rule), as opposed to an image event."""
    return (isinstance(event, Mapping) and event.get("source") == PARAMETER_EVENT_SOURCE
            and event.get("detail-type") == PARAMETER_EVENT_DETAIL_TYPE)


def _earlier_values(ssm: SsmClient, name: str, current: str) -> Iterator[str]:
    """The parameter's earlier values, newest first, each once, never the current one."""
    history: list[Mapping[str, Any]] = []
    for page in ssm.get_paginator("get_parameter_history").paginate(Name=name):
        history.extend(page.get("Parameters", []))
    seen = {current}
    for entry in sorted(history, key=lambda item: int(item.get("Version", 0)), reverse=True):
        value = entry.get("Value")
        if isinstance(value, str) and value not in seen:
            seen.add(value)
            yield value


def guard_parameter(clients: RolloutClients, settings: RefreshSettings) -> Decision:
    """Check the value the launch template resolves at every launch, and put back the last one the
    pipeline produced when it is not. Runs on every change of the parameter (an EventBridge rule
    on SSM's "Parameter Store Change" events for it), so a value written outside the pipeline is
    used only by launches in the seconds before this runs. Decides:

    - `parameter-trusted`: the current value passes `verify_pipeline_ami` (the pipeline's own
      writes, and this function's restores);
    - `parameter-pending`: its image record is still being distributed (the pipeline writes the
      parameter then); the AVAILABLE event's rollout checks it again, completely;
    - `parameter-reverted`: not the pipeline's; the newest earlier value that passes is written
      back (PutParameter, overwrite), and the run fails so the alarms fire;
    - `parameter-untrusted`: not the pipeline's, and no earlier value passes (of the last
      MAX_RESTORE_CANDIDATES), or the parameter was deleted: nothing is written; the run fails.
      Launches use the bad value (or fail) until an operator acts (untrusted image runbook, docs/);
    - `failed`: an AWS error.

    Idempotent: the restore's own change event finds a trusted value. It reads the current value,
    never the event's, so a newer pipeline write is never overwritten by an older restore.
    """
    group, name = settings.group_name, settings.ami_parameter_name
    try:
        try:
            value = clients.ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ParameterNotFound":
                raise
            # Deleted: every launch now fails, and its history (the values to restore) is gone.
            return _log(Decision(PARAMETER_UNTRUSTED, group,
                                 f"{name} was deleted: launches fail until it is restored with "
                                 "the pipeline's last AMI (docs/weights-and-enclave.md, untrusted image)",
                                 error_code="ParameterNotFound", problems=("parameter deleted",)))
        verdict = verify_pipeline_ami(clients, settings, value)
        if verdict.trusted:
            return _log(Decision(PARAMETER_TRUSTED, group, f"{name} holds an AMI of the pipeline",
                                 image_arn=verdict.image_arn, parameter_value=value))
        if verdict.pending:
            return _log(Decision(PARAMETER_PENDING, group,
                                 f"{name} holds {value}, of image {verdict.image_arn}, still being "
                                 "distributed: the rollout checks it when the image is available",
                                 image_arn=verdict.image_arn, parameter_value=value))
        for candidate in list(_earlier_values(clients.ssm, name, value))[:MAX_RESTORE_CANDIDATES]:
            if verify_pipeline_ami(clients, settings, candidate).trusted:
                clients.ssm.put_parameter(Name=name, Value=candidate, Type="String",
                                          DataType="aws:ec2:image", Overwrite=True)
                return _log(Decision(
                    PARAMETER_REVERTED, group,
                    f"{name} was set to {value}, which the pipeline did not produce; restored "
                    f"{candidate}. Instances launched in between may run {value}: see the runbook",
                    parameter_value=value, restored_value=candidate, problems=verdict.problems))
        return _log(Decision(
            PARAMETER_UNTRUSTED, group,
            f"{name} holds {value}, which the pipeline did not produce, and none of its last "
            f"{MAX_RESTORE_CANDIDATES} earlier values did: launches boot it until an operator acts",
            parameter_value=value, problems=verdict.problems))
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        return _log(Decision(FAILED, group, str(error), error_code=code))
    except BotoCoreError as error:
        return _log(Decision(FAILED, group, str(error), error_code=type(error).__name__))


def settings_from_environment(environ: Mapping[str, str]) -> RefreshSettings:
    """The function's configuration; a missing or malformed variable is a deployment error."""
    try:
        return RefreshSettings(
            group_name=environ[ENV_GROUP], image_arn_prefix=environ[ENV_IMAGE_ARN_PREFIX],
            ami_parameter_name=environ[ENV_AMI_PARAMETER],
            recipe_arn=environ[ENV_RECIPE_ARN], ami_key_arn=environ[ENV_AMI_KEY_ARN],
            pipeline_arn=environ[ENV_PIPELINE_ARN],
            infrastructure_configuration_arn=environ[ENV_INFRASTRUCTURE_ARN],
            distribution_configuration_arn=environ[ENV_DISTRIBUTION_ARN],
            build_subnet_id=environ[ENV_BUILD_SUBNET],
            build_security_group_ids=_split(environ[ENV_BUILD_SECURITY_GROUPS]),
            execution_role_arn=environ[ENV_EXECUTION_ROLE_ARN],
            workflow_arns=_split(environ[ENV_WORKFLOW_ARNS]),
            min_healthy_percentage=int(environ[ENV_MIN_HEALTHY]),
            max_healthy_percentage=int(environ[ENV_MAX_HEALTHY]),
            instance_warmup_seconds=int(environ[ENV_WARMUP]))
    except KeyError as missing:
        raise ValueError(f"environment variable {missing} is not set") from None


def _split(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def build_clients() -> RolloutClients:
    """The clients as the Lambda uses them: region from the Lambda environment."""
    return RolloutClients(autoscaling=boto3.client("autoscaling", config=RETRY_CONFIG),
                          imagebuilder=boto3.client("imagebuilder", config=RETRY_CONFIG),
                          ssm=boto3.client("ssm", config=RETRY_CONFIG),
                          ec2=boto3.client("ec2", config=RETRY_CONFIG))


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: one event, one decision; raise when the decision fails the run. A
    parameter change goes to `guard_parameter`, anything else to `refresh_for_image`."""
    settings = settings_from_environment(os.environ)
    if is_parameter_event(event):
        decision = guard_parameter(build_clients(), settings)
    else:
        decision = refresh_for_image(build_clients(), settings, parse_event(event))
    if decision.failed:
        raise InstanceRefreshError(f"{decision.action} for {decision.group}: {decision.reason}")
    return asdict(decision)
