"""Roll a new enclave parent image out to the inference fleet (control map §2.2).

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
- `ignored`: the event is not an AVAILABLE image of the configured recipe (the rule matches only
  those; a test event or a changed rule ends here). Not a failure;
- `refresh-predates-image`: a refresh that started *before* the image became available is still
  running. The instances it replaced earlier keep the previous AMI, and a second refresh cannot
  start until it ends, so the run fails: Lambda retries it, then the function's error alarm asks
  an operator to start a refresh once the running one has ended (README runbook);
- `failed`: an Auto Scaling error that survived the client's retries.

`refresh-predates-image`, `parameter-mismatch` and `failed` fail the run (the handler raises
after logging), so Lambda retries the invocation and counts an error. Reruns are safe: the second
run finds the first run's refresh in progress. Every decision is one JSON line (`ztai_runtime.jsonlog`).

Configuration comes from the function's environment (`settings_from_environment`), written by
`components/enclave_fleet.py`. This module imports only the standard library, boto3/botocore,
`ztai_runtime.jsonlog` and `ztai_runtime.retries`: it ships with them as a Lambda asset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ztai_runtime.jsonlog import get_logger, log_decision
from ztai_runtime.retries import retry_config

# boto3 clients are generated at runtime and carry no static types; these name the boundary.
AutoScalingClient = Any
ImageBuilderClient = Any
SsmClient = Any

EVENT_SOURCE = "aws.imagebuilder"
EVENT_DETAIL_TYPE = "EC2 Image Builder Image State Change"
AVAILABLE = "AVAILABLE"
# Instance refresh states in which Auto Scaling refuses to start another one.
ACTIVE_REFRESH_STATES = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress",
                                   "Baking"})

REFRESH_STARTED = "refresh-started"
ALREADY_REFRESHING = "already-refreshing"
IGNORED = "ignored"
REFRESH_PREDATES_IMAGE = "refresh-predates-image"
PARAMETER_MISMATCH = "parameter-mismatch"
FAILED = "failed"
FAILING_ACTIONS = frozenset({REFRESH_PREDATES_IMAGE, PARAMETER_MISMATCH, FAILED})

# The environment the component writes (components/enclave_fleet.py, ImageRollout).
ENV_GROUP = "ZTAI_AUTO_SCALING_GROUP"
ENV_IMAGE_ARN_PREFIX = "ZTAI_IMAGE_ARN_PREFIX"
ENV_AMI_PARAMETER = "ZTAI_AMI_ID_PARAMETER"
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
    min_healthy_percentage: int = 100
    max_healthy_percentage: int = 200
    instance_warmup_seconds: int = 300

    def __post_init__(self) -> None:
        if not self.group_name:
            raise ValueError("the Auto Scaling group name is empty")
        if not self.ami_parameter_name:
            raise ValueError("the AMI-id parameter name is empty")
        if not self.image_arn_prefix.startswith("arn:") or ":image/" not in self.image_arn_prefix:
            raise ValueError(f"image ARN prefix {self.image_arn_prefix!r}: expected "
                             "arn:<partition>:imagebuilder:<region>:<account>:image/<recipe>/")
        if not 0 <= self.min_healthy_percentage <= 100:
            raise ValueError(f"minimum healthy percentage {self.min_healthy_percentage}: 0 to 100")
        if not 100 <= self.max_healthy_percentage <= 200:
            raise ValueError(f"maximum healthy percentage {self.max_healthy_percentage}: 100 to 200")
        if self.max_healthy_percentage - self.min_healthy_percentage > 100:
            raise ValueError("maximum minus minimum healthy percentage may be at most 100")
        if self.instance_warmup_seconds < 0:
            raise ValueError(f"instance warm-up {self.instance_warmup_seconds}: not negative")

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


def _parameter_mismatch(clients: RolloutClients, settings: RefreshSettings, group: str,
                        image: str) -> Decision | None:
    """A `parameter-mismatch` decision unless the AMI-id parameter names one of the AMIs the image
    produced in this region. AWS errors propagate (a `failed` decision)."""
    region = clients.ssm.meta.region_name
    answer = clients.imagebuilder.get_image(imageBuildVersionArn=image)
    amis = answer.get("image", {}).get("outputResources", {}).get("amis", [])
    expected = sorted({ami["image"] for ami in amis
                       if ami.get("region") == region and isinstance(ami.get("image"), str)})
    value = clients.ssm.get_parameter(Name=settings.ami_parameter_name)["Parameter"]["Value"]
    if value in expected:
        return None
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


def settings_from_environment(environ: Mapping[str, str]) -> RefreshSettings:
    """The function's configuration; a missing or malformed variable is a deployment error."""
    try:
        return RefreshSettings(
            group_name=environ[ENV_GROUP], image_arn_prefix=environ[ENV_IMAGE_ARN_PREFIX],
            ami_parameter_name=environ[ENV_AMI_PARAMETER],
            min_healthy_percentage=int(environ[ENV_MIN_HEALTHY]),
            max_healthy_percentage=int(environ[ENV_MAX_HEALTHY]),
            instance_warmup_seconds=int(environ[ENV_WARMUP]))
    except KeyError as missing:
        raise ValueError(f"environment variable {missing} is not set") from None


def build_clients() -> RolloutClients:
    """The clients as the Lambda uses them: region from the Lambda environment."""
    return RolloutClients(autoscaling=boto3.client("autoscaling", config=RETRY_CONFIG),
                          imagebuilder=boto3.client("imagebuilder", config=RETRY_CONFIG),
                          ssm=boto3.client("ssm", config=RETRY_CONFIG))


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: one event, one decision; raise when the decision fails the run."""
    settings = settings_from_environment(os.environ)
    decision = refresh_for_image(build_clients(), settings, parse_event(event))
    if decision.failed:
        raise InstanceRefreshError(f"{decision.action} for {decision.group}: {decision.reason}")
    return asdict(decision)
