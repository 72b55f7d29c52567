"""The detection stream: the detection engine on the log groups the SIEM stream carries
(docs/detection-stream.md).

`DetectionStream` is declared beside each layer's `SiemStream` and subscribed to the same log
groups: CloudWatch Logs allows two subscription filters per log group ("CloudWatch Logs quotas"),
the SIEM stream takes one and this the other. Its function (`ztai_runtime.detect.stream.handler`)
runs the detection engine the command line runs over files, keeps what it learned in a state
bucket, puts one event per finding on the EventBridge bus `zero-trust-ai-<env>-detections` for
the playbooks, and writes each finding as an OCSF Detection Finding to its own log group, which
the SIEM stream subscribes (this stream never does: it would read its own output). Secure by
default:

- the function through `logged_function`: its encrypted log group, a role trusted by Lambda of this
  account only, reserved concurrency 1 (one learner: two runs would race on the state), Lambda's
  asynchronous retries with an encrypted SQS failure queue and a maximum event age, alarms on its
  errors, on a record in the failure queue, and (here) on throttles;
- the state bucket (`private_bucket`): the logs key, TLS only, versioned (an overwritten or damaged
  state can be restored), access-logged to its own access-log bucket; the role reads and writes its
  one state object, nothing else of it;
- the bus, with no resource policy: no other account may put events on it. In a split deployment
  the key layer owns it (`create_bus`), and the workload's function puts on it by name;
- `subscribe(...)`: per log group, a Lambda permission for logs.amazonaws.com limited to that log
  group of this account (aws:SourceArn and SourceAccount), then the subscription filter (empty
  pattern: every event), which CloudWatch Logs checks against the permission when it is created.

Its resources are named under the SIEM stream's name (`<stream>-detect...`), so that in a split
deployment the CI boundary that keeps the workload's deployer off the key layer's SIEM stream
(components/ci_identity.py, `identity_part`) covers them too.
Type token `zero-trust-ai:detection:DetectionStream`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import yaml

from components.alarm_topics import AlarmActions
from components.alarms import occurrence_alarm
from components.aws_facts import partition_for_region
from components.buckets import access_log_bucket, log_to, private_bucket
from components.config_values import ENVIRONMENT_LAYERS
from components.enclave_fleet.settings import INFERENCE_EVENTS_LOG_GROUP
from components.functions import log_group_name, logged_function, policy_document
from components.jit_catalogue import jit_table_name
from components.keys import audit_log_group_name
from components.siem_stream import stream_name, subscription_of

DETECT_HANDLER = "ztai_runtime.detect.stream.handler"
# What the function imports of the runtime: the detect package, the SIEM package (its payload
# decoder, the OCSF version and the fast codec), the retry settings, the JSON log helper and the
# inference events module (the extraction detector reads its cell constants).
DETECT_MODULES: tuple[str, ...] = ("__init__.py", "retries.py", "jsonlog.py", "inference_events.py", "siem",
                                   "detect")
# orjson and pybase64, as the SIEM transform: the runtime's codec uses them when it can import them.
DETECT_PACKAGES: tuple[str, ...] = ("orjson", "pybase64")
STATE_KEY = "state/detection.json.gz"
# The tag on the function's own log group (value: the function's name): the pack rule
# log-group-subscribed-to-detection exempts that group, and `subscribe` refuses it (a loop).
DETECTION_OWN_LOG_TAG = "ztai:detection-own-log"
# Lambda's asynchronous retries (0-2) of a failed run, and how long an event may wait for them:
# a state conflict or an EventBridge outage is redone by a retry; six hours covers a short outage
# before the event goes to the failure queue, from which it can be replayed.
RETRY_ATTEMPTS = 2
MAX_EVENT_AGE_SECONDS = 6 * 3600
TIMEOUT_SECONDS = 120
MEMORY_MB = 1024


# The allow-list the project ships (docs/detection.md#the-allow-list): the same file `ztai detect
# --allow` reads, so the stream function and the CLI suppress the same signals.
SHIPPED_ALLOW_LIST = Path(__file__).resolve().parent.parent / "detections" / "allow.yaml"
# Lambda's environment variables hold 4 KB in all ("Lambda quotas"); the allow-list travels in one.
MAX_ALLOW_LIST_BYTES = 3072


class AllowListFileError(pulumi.RunError, ValueError):
    """The allow-list file cannot be shipped: the message names the file and what is wrong (a
    `pulumi.RunError`, so a preview reports it as the user's error, without a traceback)."""


def shipped_allow_list(path: Path = SHIPPED_ALLOW_LIST) -> dict[str, Any]:
    """The allow-list file's content for the function's ALLOW_LIST. Only its outline is checked here
    (a mapping with the list `allow`, small enough for the function's environment); every entry is
    checked by the runtime's parser, by the tests of the shipped file and at the function's start."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as problem:
        raise AllowListFileError(f"allow-list {path}: cannot read it as YAML ({problem})") from None
    if not isinstance(data, dict) or set(data) != {"allow"} or not isinstance(data["allow"], list | None):
        raise AllowListFileError(f"allow-list {path}: must be a mapping with the one key 'allow', a "
                                 "list of entries (docs/detection.md#the-allow-list)")
    # YAML reads an unquoted `until: 2027-06-30` as a date: carried as the text the runtime reads.
    data = dict(json.loads(json.dumps(data, default=_date_text)))
    size = len(json.dumps(data, sort_keys=True).encode())
    if size > MAX_ALLOW_LIST_BYTES:
        raise AllowListFileError(f"allow-list {path}: {size} bytes as JSON, more than the "
                                 f"{MAX_ALLOW_LIST_BYTES} the function's environment can carry")
    return data


def _date_text(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise AllowListFileError(f"the allow-list holds a {type(value).__name__}, which JSON cannot carry")


def stack_context(environment: str, key_arns: Mapping[str, pulumi.Input[str]]
                  ) -> dict[str, list[pulumi.Input[str]]]:
    """The rules' placeholders for this stack (docs/detection-rules.md#placeholders-the-stacks-own-names):
    its keys by ARN and alias (`alias/zero-trust-ai/<env>/<purpose>`, components/keys.py; a Decrypt
    names its key by ARN in `resources`, so the rules on the weights key need the ARN), and its
    deployers and key administrators by their exact names in this environment, which no JIT role
    (`zero-trust-ai-<env>-jit-<name>`) can match."""
    role = f"arn:aws:iam::*:role/zero-trust-ai-{environment}-"
    aliases = f"alias/zero-trust-ai/{environment}/"
    return {
        "weights_key": [key_arns["model-weights"], f"{aliases}model-weights",
                        f"arn:aws:kms:*:*:{aliases}model-weights"],
        "stack_keys": [*(key_arns[purpose] for purpose in sorted(key_arns)), f"{aliases}*",
                       f"arn:aws:kms:*:*:{aliases}*"],
        "deploy_roles": [f"{role}deploy-workload", f"{role}deploy-keys"],
        "key_admin_roles": [f"{role}deploy-keys", f"{role}jit-api-role"],
    }


def source_kinds(environment: str) -> list[list[Any]]:
    """The function's SOURCE_KINDS: which log groups may carry which kind of record (log group name
    patterns, the first match wins; any other group may carry no CloudTrail, gateway or inference
    record). Without it, anyone who may write to one subscribed group (root on an enclave parent
    writes the inference events group) could write lines shaped like CloudTrail or the gateway's
    access log and have them believed (docs/detection-stream.md)."""
    return [[audit_log_group_name(environment), ["cloudtrail"]],
            [INFERENCE_EVENTS_LOG_GROUP.format(environment=environment), ["inference"]],
            # SecureApiGateway's access log group (components/api_gateway.py).
            [f"/aws/apigateway/zero-trust-ai-{environment}-*", ["gateway"]],
            # The JIT functions' own log groups (components/jit.py: `<jit table name>-<function>`).
            [log_group_name(f"{jit_table_name(environment)}-*"), ["jit"]]]


def detections_bus_name(environment: str) -> str:
    """The environment's one bus of findings (the playbooks' input)."""
    return f"zero-trust-ai-{environment}-detections"


def function_name(environment: str, layer: str) -> str:
    return stream_detect_name(stream_name(environment, layer))


def stream_detect_name(stream: str) -> str:
    """The detection function beside the SIEM stream `stream`: `<stream>-detect`."""
    return f"{stream}-detect"


def state_bucket_name(environment: str, layer: str, account: str) -> str:
    """`<stream>-d-<account>`: at most 63 characters for every environment name the stack accepts
    (`zero-trust-ai-` 14 + at most 20 + `-workload-siem` 14 + `-d-` 3 + 12), as S3 requires."""
    return stream_state_bucket_name(stream_name(environment, layer), account)


def state_access_log_bucket_name(environment: str, layer: str, account: str) -> str:
    """`<stream>-l-<account>`: the state bucket's server access logs (same length)."""
    return stream_state_access_log_bucket_name(stream_name(environment, layer), account)


def stream_state_bucket_name(stream: str, account: str) -> str:
    return f"{stream}-d-{account}"


def stream_state_access_log_bucket_name(stream: str, account: str) -> str:
    return f"{stream}-l-{account}"


def detection_policy(*, log_group_arn: str, bucket_arn: str, bus_arn: str) -> str:
    """The function: its own log, its one state object (read, conditional write), the bus; nothing
    else. A conditional PutObject needs no other action than s3:PutObject (Amazon S3 User Guide,
    conditional writes)."""
    return policy_document([
        {"Sid": "WriteOwnLog", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{log_group_arn}:*"},
        {"Sid": "ReadWriteState", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"{bucket_arn}/{STATE_KEY}"},
        # Without ListBucket a missing object answers 403 instead of 404 (NoSuchKey): the first run
        # could not tell "no state yet" from "not allowed" (Amazon S3 API reference, GetObject).
        # The bucket holds the state object alone.
        {"Sid": "KnowWhetherStateExists", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": bucket_arn},
        {"Sid": "PutFindings", "Effect": "Allow", "Action": "events:PutEvents", "Resource": bus_arn},
    ])


@dataclass(frozen=True)
class DetectionStreamArgs:
    """Inputs of `DetectionStream`; every default is the secure one.

    environment, layer, region: the names (`function_name`, `detections_bus_name`) and ARNs.
    logs_key_arn: the logs key: the log group, the state bucket, the failure queue.
    alarm_actions: the stack's alarm topics: failures notify `high`. Required.
    log_groups: log groups to subscribe now (more with `subscribe`).
    create_bus: declare the bus here (default True); False in a split deployment's workload, whose
        key layer declares it.
    allow_list: the allow-list file's content (ztai_runtime/detect/allowlist.py), default none.
    context: the rules' placeholders (name -> values: text or Outputs, e.g. the stack's key ARNs),
        default none (the rules' defaults, which cannot tell the weights key by its ARN:
        `stack_context` gives the stack's own).
    log_retention_days: of the function's log group; default 365.
    protect: `protect` on the bucket, the log group and the bus (prod). Default False.
    """

    environment: str
    layer: str
    region: str
    logs_key_arn: pulumi.Input[str]
    alarm_actions: AlarmActions | None = None
    log_groups: Sequence[aws.cloudwatch.LogGroup | str] = ()
    create_bus: bool = True
    allow_list: Mapping[str, Any] | None = None
    context: Mapping[str, Sequence[pulumi.Input[str]]] = field(default_factory=dict)
    log_retention_days: int = 365
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


class DetectionStream(pulumi.ComponentResource):
    """One layer's detection function. Type token `zero-trust-ai:detection:DetectionStream`."""

    def __init__(self, name: str, args: DetectionStreamArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        if args.layer not in ENVIRONMENT_LAYERS:
            raise ValueError(f"DetectionStreamArgs.layer {args.layer!r}: one of "
                             f"{', '.join(ENVIRONMENT_LAYERS)}")
        super().__init__("zero-trust-ai:detection:DetectionStream", name, None, opts)
        self._name = name
        self._args = args
        self.function_name = function_name(args.environment, args.layer)
        self.bus_name = detections_bus_name(args.environment)
        partition = partition_for_region(args.region)
        self._partition = partition
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        self._account = account
        own = {**args.tags, DETECTION_OWN_LOG_TAG: self.function_name}

        bucket_tags = {"data-classification": "restricted", **args.tags}
        self.bucket = private_bucket(
            f"{name}-state", key_arn=args.logs_key_arn, tags=bucket_tags, protect=args.protect,
            parent=self, bucket_name=account.apply(
                lambda a: state_bucket_name(args.environment, args.layer, a)))
        self.access_logs = access_log_bucket(
            f"{name}-state-access-logs", partition=partition, region=args.region, account_id=account,
            source_bucket_arns=[self.bucket.bucket.arn], tags=bucket_tags, protect=args.protect,
            parent=self, bucket_name=account.apply(
                lambda a: state_access_log_bucket_name(args.environment, args.layer, a)))
        log_to(f"{name}-state-logging", bucket=self.bucket.bucket, log_bucket=self.access_logs.bucket,
               after=self.access_logs.policy)

        # No event bus policy: only this account's principals allowed events:PutEvents may put.
        self.bus: aws.cloudwatch.EventBus | None = None
        if args.create_bus:
            self.bus = aws.cloudwatch.EventBus(
                f"{name}-bus", name=self.bus_name,
                description="Detection findings (docs/detection-stream.md)",
                tags={**args.tags, "Name": self.bus_name},
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        self.bus_arn: pulumi.Output[str] = account.apply(
            lambda a: f"arn:{partition}:events:{args.region}:{a}:event-bus/{self.bus_name}")

        environment: dict[str, pulumi.Input[str]] = {
            "STATE_BUCKET": self.bucket.bucket.bucket, "STATE_KEY": STATE_KEY,
            "EVENT_BUS_NAME": self.bus_name,
            "SOURCE_KINDS": json.dumps(source_kinds(args.environment), separators=(",", ":"))}
        if args.allow_list is not None:
            environment["ALLOW_LIST"] = json.dumps(dict(args.allow_list), sort_keys=True)
        if args.context:
            names = sorted(args.context)
            environment["CONTEXT"] = pulumi.Output.all(
                *(pulumi.Output.all(*args.context[n]) for n in names)).apply(
                lambda values: json.dumps(dict(zip(names, values, strict=True)), sort_keys=True))
        bucket_arn, bus_arn = self.bucket.bucket.arn, self.bus_arn
        self.function = logged_function(
            f"{name}-function", parent=self, account_id=account, function_name=self.function_name,
            description="Runs the detection engine on the SIEM stream's log groups "
                        "(docs/detection-stream.md)",
            role_description="The detection stream function",
            handler=DETECT_HANDLER, modules=DETECT_MODULES, packages=DETECT_PACKAGES,
            role_policy=lambda log_arn: pulumi.Output.all(log_arn, bucket_arn, bus_arn).apply(
                lambda v: detection_policy(log_group_arn=v[0], bucket_arn=v[1], bus_arn=v[2])),
            logs_key_arn=args.logs_key_arn, log_retention_days=args.log_retention_days,
            memory_size=MEMORY_MB, timeout=TIMEOUT_SECONDS,
            retry_attempts=RETRY_ATTEMPTS, max_event_age=MAX_EVENT_AGE_SECONDS,
            errors_alarm_description="The detection stream function failed (a state conflict, "
                                     "EventBridge refusing findings, or a bug): Lambda retries, then "
                                     "the event goes to the failure queue",
            errors_alarm_period=300, alarm_actions=args.alarm_actions, tags=own, protect=args.protect,
            environment=environment, reserve_concurrency=True, role_name=self.function_name)
        self.log_group = self.function.log_group
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        # Reserved concurrency 1: a second event waits; throttling that lasts means detection lags.
        occurrence_alarm(
            f"{name}-throttles-alarm", alarm_name=f"{self.function_name}-throttles",
            description=f"{self.function_name} was throttled: events wait (its reserved concurrency is 1) "
                        "and detection lags; a lasting backlog ends in the failure queue",
            namespace="AWS/Lambda", metric_name="Throttles",
            dimensions={"FunctionName": self.function.function.name}, statistic="Sum", period=900,
            actions=args.alarm_actions, severity="high", tags=args.tags, parent=self.function.function)
        self.permissions: dict[str, aws.lambda_.Permission] = {}
        self.filters: dict[str, aws.cloudwatch.LogSubscriptionFilter] = {}
        self._subscribed: list[aws.cloudwatch.LogGroup | str] = []
        self.subscribe(*args.log_groups)
        self.register_outputs({"functionName": self.function_name, "busName": self.bus_name,
                               "stateBucket": self.bucket.bucket.bucket})

    def subscribe(self, *log_groups: aws.cloudwatch.LogGroup | str) -> None:
        """One subscription filter per log group, every event, after its invoke permission. Refuses
        the function's own log group (it would read its own findings), a group given twice and a
        name that is no log group."""
        for group in log_groups:
            if group is self.log_group or group == self.log_group_name:
                raise ValueError(f"{self._name}: the detection function's own log group cannot be "
                                 "subscribed: it would read its own findings, in a loop")
            resource_name, group_name = subscription_of(self._name, group, self._subscribed)
            source_arn = pulumi.Output.all(self._account, group_name).apply(self._group_arn)
            permission = aws.lambda_.Permission(
                f"{resource_name}-permission", action="lambda:InvokeFunction",
                function=self.function.function.name, principal="logs.amazonaws.com",
                source_arn=source_arn, source_account=self._account,
                opts=pulumi.ResourceOptions(parent=self))
            self.permissions[resource_name] = permission
            # CloudWatch Logs checks it may invoke the function when the filter is created.
            self.filters[resource_name] = aws.cloudwatch.LogSubscriptionFilter(
                resource_name, name=self.function_name, log_group=group_name, filter_pattern="",
                destination_arn=self.function.function.arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[permission]))

    def _group_arn(self, values: list[str]) -> str:
        """The source ARN CloudWatch Logs invokes with: the log group's ARN with `:*`."""
        account, group = values
        return f"arn:{self._partition}:logs:{self._args.region}:{account}:log-group:{group}:*"

    def grant_keys(self, keys: Any) -> None:
        """What the function's role needs of the logs key, asked of its owner: the state object's
        SSE-KMS through S3, and its failure records through SQS. Its log group must be under the
        prefixes the logs key admits CloudWatch Logs for."""
        keys.grant_cloudwatch_logs(self.log_group_name)
        keys.grant_use_through_service("logs", self.function.role, "s3")
        keys.grant_use_through_service("logs", self.function.role, "sqs")

