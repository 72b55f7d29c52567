"""The SIEM stream: CloudWatch Logs log groups -> Amazon Data Firehose -> the SIEM (docs/siem-stream.md).

`SiemStream` is declared once per layer (`zero-trust-ai-<env>-<layer>-siem`): the key layer
subscribes its own log groups (the trail's CloudWatch copy, the JIT functions'), the workload its
own, a combined stack all of them. Secure by default:

- a Direct PUT Firehose stream, server-side encrypted with the logs key (CUSTOMER_MANAGED_CMK:
  Firehose calls kms:CreateGrant as the deploying principal, which the key admits from its
  creation for the stream's name, `KeyHierarchyArgs.firehose_streams`);
- every record goes through the OCSF transform (`ztai_runtime.siem.firehose.handler`,
  docs/siem-transform.md), then to the destination of the stack key `siem`: the stream's own
  encrypted bucket (`s3`, the default), an HTTPS endpoint (`http`), Splunk HEC (`splunk`) or an
  OpenSearch domain (`opensearch`). An endpoint's access key is only ever a Secrets Manager secret
  named by its ARN, never text in the configuration;
- what cannot be delivered or transformed is backed up to that bucket (the logs key, TLS only,
  written only by the stream's role): `failed/` and `processing-failed/`;
- the stream's role may invoke the transform, write the bucket, read the secret and write the
  destination, nothing else, and trusts firehose.amazonaws.com for this stream only;
- `subscribe(...)`: one subscription filter per log group (empty pattern: every event), through a
  role CloudWatch Logs assumes for this account and Region only, allowed only to put records on
  this stream. The stream's own log groups (the transform's, Firehose's error log) carry the tag
  `SIEM_OWN_LOG_TAG` and are refused: subscribing them would feed the stream its own output.

The stack key `siem` is a list of `name=value` settings (`SIEM_KEYS`, `parse_siem_settings`).
Type token `zero-trust-ai:siem:SiemStream`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

from components.alarm_topics import AlarmActions
from components.alarms import occurrence_alarm, shortfall_alarm
from components.aws_facts import partition_for_region
from components.buckets import access_log_bucket, log_to, private_bucket
from components.config_values import ENVIRONMENT_LAYERS, StackKey, as_string_list, full, show
from components.functions import logged_function, policy_document

DESTINATIONS = ("s3", "http", "splunk", "opensearch")
# The tag on the stream's own log groups, whose value is the stream's name: the pack rule
# log-group-subscribed-to-siem exempts a group so tagged only when it belongs to that stream.
SIEM_OWN_LOG_TAG = "ztai:siem-own-log"
TRANSFORM_HANDLER = "ztai_runtime.siem.firehose.handler"
# What the transform imports of the runtime (docs/siem-transform.md): the siem package, and the
# retry settings of its re-ingesting Firehose client. Nothing else ships (components/functions.py).
TRANSFORM_MODULES: tuple[str, ...] = ("__init__.py", "retries.py", "siem")
# What the transform ships besides: orjson and pybase64, which the runtime uses for JSON and base64
# when it can import them (ztai_runtime/siem/codec.py); the transform's throughput depends on them
# (docs/benchmarks.md). Built for python3.13 on arm64 and hash-pinned in requirements-lambda.txt
# (components/lambda_packages.py).
TRANSFORM_PACKAGES: tuple[str, ...] = ("orjson", "pybase64")
# The Lambda processor's buffer before each invocation. Firehose's range is 0.2-3 MB ("Transform
# source data in Amazon Data Firehose"); the smallest is chosen because Lambda's synchronous
# response is limited to 6 MB and CloudWatch Logs records arrive gzip'd: a JSON log compresses
# about ten times, and an OCSF event that keeps the original in raw_data is about twice to three
# times its source, so 0.2 MB in is roughly 4-6 MB out (base64 included). The transform
# re-ingests what would still cross the limit (firehose:PutRecordBatch on this stream).
PROCESSOR_BUFFER_MB = "0.2"
PROCESSOR_BUFFER_SECONDS = "60"
# Firehose's retries of a failed invocation (its default, said explicitly), before the batch is
# written to processing-failed/ in the backup bucket.
PROCESSOR_RETRIES = "3"
DEFAULT_RETRY_SECONDS = 3600  # Firehose's endpoint retry window, 0-7200 s; an hour of SIEM outage
MAX_RETRY_SECONDS = 7200
FAILED_PREFIX = "failed/"
EVENTS_PREFIX = "events/"
# Firehose writes transform failures under `processing-failed/` of the error prefix.
ERROR_OUTPUT_PREFIX = "failed/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
ERROR_STREAM = "DestinationDelivery"

_SECRET_ARN = re.compile(
    r"^arn:aws(-cn|-us-gov)?:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
_DOMAIN_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:es:[a-z0-9-]+:\d{12}:domain/[a-z][a-z0-9-]{2,27}$")
# An OpenSearch index name: lower case, no \ / * ? " < > | space , # :, not starting with _ - +.
_INDEX = re.compile(r"^[a-z0-9][a-z0-9._-]{0,254}$")
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9 ._-]{1,256}$")  # Firehose: HttpEndpointName
# What each destination reads, and which of them it requires.
_SETTINGS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "s3": ((), ()),
    "http": (("url", "name", "secretArn", "retrySeconds", "gzip"), ("url", "secretArn")),
    "splunk": (("url", "secretArn", "retrySeconds"), ("url", "secretArn")),
    "opensearch": (("domainArn", "index", "retrySeconds"), ("domainArn", "index")),
}


@dataclass(frozen=True)
class SiemSettings:
    """Where the stream delivers (stack key `siem`).

    destination: s3 (the stream's own bucket only; default), http, splunk or opensearch.
    url: the HTTPS endpoint (http) or the HEC endpoint (splunk).
    name: the endpoint's display name (http); default "siem".
    secret_arn: the Secrets Manager secret holding the access key (http: `{"api_key": ...}`) or
        the HEC token (splunk).
    retry_seconds: how long Firehose retries the destination before backing the batch up, 0-7200.
    gzip: compress HTTP requests (http); default True.
    domain_arn, index: the OpenSearch domain and index (opensearch).
    """

    destination: str = "s3"
    url: str = ""
    name: str = "siem"
    secret_arn: str = ""
    retry_seconds: int = DEFAULT_RETRY_SECONDS
    gzip: bool = True
    domain_arn: str = ""
    index: str = ""


def parse_siem_settings(key: str, value: Any) -> SiemSettings:
    """`siem`: a list of `name=value` settings, e.g. ["destination=http", "url=https://...",
    "secretArn=arn:aws:secretsmanager:..."]; empty: destination s3. Every problem raises a
    ValueError naming the setting, the value and what is allowed."""
    items = as_string_list(key, value)
    given: dict[str, str] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{full(key)}: {show(item)} is not a setting; write name=value, "
                             f"e.g. destination=http")
        if name in given:
            raise ValueError(f"{full(key)}: {name} is given twice; give each setting once")
        given[name] = text.strip()
    destination = given.pop("destination", "s3")
    if destination not in DESTINATIONS:
        raise ValueError(f"{full(key)}: destination={show(destination)}: allowed values are "
                         f"{', '.join(DESTINATIONS)}")
    allowed, required = _SETTINGS[destination]
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        what = ", ".join(allowed) if allowed else "no other setting"
        raise ValueError(f"{full(key)}: {', '.join(unknown)} is not a setting of destination="
                         f"{destination}; it reads {what}")
    missing = [name for name in required if not given.get(name)]
    if missing:
        raise ValueError(f"{full(key)}: destination={destination} needs {', '.join(missing)}")
    settings = SiemSettings(destination=destination)
    if "url" in given:
        settings = _with(settings, url=_https_url(key, given["url"]))
    if "name" in given:
        if not _ENDPOINT_NAME.match(given["name"]):
            raise ValueError(f"{full(key)}: name={show(given['name'])}: 1-256 of letters, digits, "
                             "spaces and . _ -")
        settings = _with(settings, name=given["name"])
    if "secretArn" in given:
        if not _SECRET_ARN.match(given["secretArn"]):
            raise ValueError(f"{full(key)}: secretArn={show(given['secretArn'])}: a Secrets Manager "
                             "secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>); "
                             "the access key itself never goes in the configuration")
        settings = _with(settings, secret_arn=given["secretArn"])
    if "retrySeconds" in given:
        text = given["retrySeconds"]
        if not text.isdigit() or int(text) > MAX_RETRY_SECONDS:
            raise ValueError(f"{full(key)}: retrySeconds={show(text)}: a whole number of seconds "
                             f"from 0 to {MAX_RETRY_SECONDS}")
        settings = _with(settings, retry_seconds=int(text))
    if "gzip" in given:
        if given["gzip"].lower() not in ("true", "false"):
            raise ValueError(f"{full(key)}: gzip={show(given['gzip'])}: true or false")
        settings = _with(settings, gzip=given["gzip"].lower() == "true")
    if "domainArn" in given:
        if not _DOMAIN_ARN.match(given["domainArn"]):
            raise ValueError(f"{full(key)}: domainArn={show(given['domainArn'])}: an OpenSearch "
                             "Service domain ARN (arn:aws:es:<region>:<account>:domain/<name>)")
        settings = _with(settings, domain_arn=given["domainArn"])
    if "index" in given:
        if not _INDEX.match(given["index"]):
            raise ValueError(f"{full(key)}: index={show(given['index'])}: an OpenSearch index name "
                             "(lower-case letters, digits, . _ -; not starting with . _ -)")
        settings = _with(settings, index=given["index"])
    return settings


def _with(settings: SiemSettings, **changes: Any) -> SiemSettings:
    return SiemSettings(**{**settings.__dict__, **changes})


def _https_url(key: str, text: str) -> str:
    """Firehose delivers to HTTPS on port 443 only ("HTTP endpoint delivery request and response
    specifications"); a URL with credentials in it would put them in the configuration."""
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password or \
            parts.port not in (None, 443):
        raise ValueError(f"{full(key)}: url={show(text)}: an https:// URL on port 443, without "
                         "credentials in it (Firehose delivers over HTTPS only)")
    return text


SIEM_KEYS: dict[str, StackKey] = {
    "siem": StackKey(
        "Where the SIEM stream delivers (docs/siem-stream.md): a list of name=value settings. "
        "destination=s3 (default: the stream's own encrypted bucket), http (url=https://..., "
        "secretArn=<Secrets Manager ARN of the access key>, name=, retrySeconds=, gzip=), splunk "
        "(url=<HEC endpoint>, secretArn=<HEC token secret>, retrySeconds=) or opensearch "
        "(domainArn=, index=, retrySeconds=).",
        False, parse_siem_settings, [], type="array", layers=ENVIRONMENT_LAYERS),
}


def stream_name(environment: str, layer: str) -> str:
    """The stream's name, known before it exists (the logs key admits it at creation)."""
    return f"zero-trust-ai-{environment}-{layer}-siem"


def transform_function_name(environment: str, layer: str) -> str:
    return stream_transform_name(stream_name(environment, layer))


def stream_transform_name(stream: str) -> str:
    """The stream's OCSF transform, `<stream>-transform`."""
    return f"{stream}-transform"


def backup_bucket_name(stream: str, account_id: str) -> str:
    """The stream's backup bucket, `<stream>-<account>`: fixed, so the key layer's deployer is
    allowed it by name (components/ci_identity.py) and the audit trail leaves it out by name."""
    return f"{stream}-{account_id}"


def backup_access_log_bucket_name(stream: str, account_id: str) -> str:
    """The backup bucket's access logs, `<stream>-a-<account>` (at most 63 characters)."""
    return f"{stream}-a-{account_id}"


def account_streams(environment: str, layer: str) -> tuple[str, ...]:
    """The SIEM streams of the account a stack of `layer` is deployed to: a combined stack's own;
    a split deployment's key layer and workload share one account, so both of theirs."""
    layers = ("combined",) if layer == "combined" else ("keys", "workload")
    return tuple(stream_name(environment, each) for each in layers)


def error_log_group_name(environment: str, layer: str) -> str:
    """Firehose's error log (delivery and transform errors), under the logs key's prefixes."""
    return f"/zero-trust-ai/{environment}/siem/{stream_name(environment, layer)}"


def delivery_policy(*, bucket_arn: str, function_arn: str, error_log_arn: str,
                    settings: SiemSettings) -> str:
    """The stream's role: invoke the transform, write the backup bucket, write its error log,
    read the endpoint's secret, write the OpenSearch domain; nothing else (Firehose Developer
    Guide, "Controlling access with Amazon Data Firehose": the actions of each destination). The
    bucket's objects are never read back (no s3:GetObject)."""
    statements: list[dict[str, Any]] = [
        {"Sid": "InvokeTransform", "Effect": "Allow",
         "Action": ["lambda:GetFunctionConfiguration", "lambda:InvokeFunction"],
         "Resource": function_arn},
        {"Sid": "WriteBackupBucket", "Effect": "Allow",
         "Action": ["s3:AbortMultipartUpload", "s3:PutObject"], "Resource": f"{bucket_arn}/*"},
        {"Sid": "LocateBackupBucket", "Effect": "Allow",
         "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
         "Resource": bucket_arn},
        {"Sid": "WriteErrorLog", "Effect": "Allow", "Action": "logs:PutLogEvents",
         "Resource": f"{error_log_arn}:log-stream:{ERROR_STREAM}"},
    ]
    if settings.secret_arn:
        statements.append({"Sid": "ReadEndpointSecret", "Effect": "Allow",
                           "Action": "secretsmanager:GetSecretValue", "Resource": settings.secret_arn})
    if settings.destination == "opensearch":
        domain = settings.domain_arn
        statements += [
            {"Sid": "DescribeDomain", "Effect": "Allow",
             "Action": ["es:DescribeDomain", "es:DescribeDomainConfig", "es:DescribeDomains"],
             "Resource": [domain, f"{domain}/*"]},
            {"Sid": "WriteIndex", "Effect": "Allow", "Action": ["es:ESHttpPost", "es:ESHttpPut"],
             "Resource": [domain, f"{domain}/*"]},
            {"Sid": "ReadClusterState", "Effect": "Allow", "Action": "es:ESHttpGet",
             "Resource": [f"{domain}/_all/_settings", f"{domain}/_cluster/stats",
                          f"{domain}/{settings.index}*/_mapping/*", f"{domain}/_nodes",
                          f"{domain}/_nodes/stats", f"{domain}/_nodes/*/stats", f"{domain}/_stats",
                          f"{domain}/{settings.index}*/_stats"]},
        ]
    return policy_document(statements)


def delivery_trust(account: str) -> str:
    """Firehose, for this account only (confused-deputy guard): `sts:ExternalId` = the account, the
    condition the Amazon Data Firehose Developer Guide's own trust policy uses ("Controlling access
    with Amazon Data Firehose", allow Firehose to assume an IAM role). Not aws:SourceArn: no page
    says Firehose sets it when it assumes the role, and a condition it never sees would fail the
    stream's creation. The role's permissions name the stream."""
    return policy_document([{
        "Effect": "Allow", "Principal": {"Service": "firehose.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": account}}}])


def subscription_trust(partition: str, region: str, account: str) -> str:
    """CloudWatch Logs of this account and Region only ("Subscription filters with Amazon Data
    Firehose", CloudWatch Logs User Guide: the aws:SourceArn condition on the role's trust)."""
    return policy_document([{
        "Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account}:*"},
                      "StringEquals": {"aws:SourceAccount": account}}}])


def subscription_policy(stream_arn: str) -> str:
    """Put records on this stream and nothing else (the guide's example grants firehose:* on every
    stream of the account)."""
    return policy_document([{"Sid": "PutRecordsOnTheSiemStream", "Effect": "Allow",
                             "Action": ["firehose:PutRecord", "firehose:PutRecordBatch"],
                             "Resource": stream_arn}])


def transform_policy(log_group_arn: str, stream_arn: str) -> str:
    """The transform: its own log, and re-ingesting what would not fit Lambda's 6 MB response
    into the same stream (docs/siem-transform.md)."""
    return policy_document([
        {"Sid": "WriteOwnLog", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{log_group_arn}:*"},
        {"Sid": "ReingestOversizedRecords", "Effect": "Allow", "Action": "firehose:PutRecordBatch",
         "Resource": stream_arn},
    ])


@dataclass(frozen=True)
class SiemStreamArgs:
    """Inputs of `SiemStream`; every default is the secure one.

    environment, layer, region: the stream's name (`stream_name`) and ARNs.
    logs_key_arn: the logs key: the stream's SSE, the bucket, the log groups, the failure queue.
    settings: the destination (stack key `siem`); default the stream's own bucket.
    log_groups: log groups to subscribe now (more with `subscribe`).
    log_retention_days: of the stream's own log groups; default 365.
    alarm_actions: the stack's alarm topics (components/alarm_topics.py): the transform's failures
        notify `high`. Required: no alarm is made without an action.
    reserve_concurrency: reserved concurrency 1 on the transform (`logged_function`); default
        False: Firehose invokes it concurrently and a reservation of 1 would throttle delivery.
    protect: `protect` on the bucket and the log groups (prod). Default False.
    """

    environment: str
    layer: str
    region: str
    logs_key_arn: pulumi.Input[str]
    settings: SiemSettings = SiemSettings()
    log_groups: Sequence[aws.cloudwatch.LogGroup | str] = ()
    log_retention_days: int = 365
    alarm_actions: AlarmActions | None = None
    reserve_concurrency: bool = False
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


class SiemStream(pulumi.ComponentResource):
    """One layer's stream to the SIEM. Type token `zero-trust-ai:siem:SiemStream`."""

    def __init__(self, name: str, args: SiemStreamArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        if args.layer not in ENVIRONMENT_LAYERS:
            raise ValueError(f"SiemStreamArgs.layer {args.layer!r}: one of {', '.join(ENVIRONMENT_LAYERS)}")
        super().__init__("zero-trust-ai:siem:SiemStream", name, None, opts)
        self._name = name
        self._args = args
        self.stream_name = stream_name(args.environment, args.layer)
        partition = partition_for_region(args.region)
        self._partition = partition
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        self._account = account
        self.stream_arn: pulumi.Output[str] = account.apply(
            lambda a: f"arn:{partition}:firehose:{args.region}:{a}:deliverystream/{self.stream_name}")
        own = {**args.tags, SIEM_OWN_LOG_TAG: self.stream_name}

        # The backup bucket: failed deliveries and transforms (and, for s3, every event).
        # Audit events: restricted, with S3 server access logs of who read them.
        bucket_tags = {"data-classification": "restricted", **args.tags}
        # Fixed names (`<stream>-<account>`, `<stream>-a-<account>`: at most 63 characters), so the
        # key layer's deployer is allowed these buckets by name (components/ci_identity.py).
        self.bucket = private_bucket(f"{name}-bucket", key_arn=args.logs_key_arn, tags=bucket_tags,
                                     protect=args.protect, parent=self,
                                     bucket_name=account.apply(
                                         lambda a: backup_bucket_name(self.stream_name, a)))
        self.access_logs = access_log_bucket(
            f"{name}-access-logs", partition=partition, region=args.region, account_id=account,
            source_bucket_arns=[self.bucket.bucket.arn], tags=bucket_tags, protect=args.protect,
            parent=self, bucket_name=account.apply(
                lambda a: backup_access_log_bucket_name(self.stream_name, a)))
        log_to(f"{name}-bucket-logging", bucket=self.bucket.bucket, log_bucket=self.access_logs.bucket,
               after=self.access_logs.policy)
        # Firehose's own error log; never subscribed (it would carry the stream's own failures back).
        self.error_log_group_name = error_log_group_name(args.environment, args.layer)
        self.error_log_group = aws.cloudwatch.LogGroup(
            f"{name}-errors", name=self.error_log_group_name, retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_key_arn, deletion_protection_enabled=args.protect,
            tags={**own, "Name": self.error_log_group_name},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        aws.cloudwatch.LogStream(f"{name}-errors-stream", name=ERROR_STREAM,
                                 log_group_name=self.error_log_group.name,
                                 opts=pulumi.ResourceOptions(parent=self.error_log_group))

        stream_arn = self.stream_arn
        self.transform = logged_function(
            f"{name}-transform", parent=self, account_id=account,
            function_name=transform_function_name(args.environment, args.layer),
            description="Normalises the SIEM stream's records to OCSF (docs/siem-transform.md)",
            role_description="The SIEM stream's OCSF transform",
            handler=TRANSFORM_HANDLER, modules=TRANSFORM_MODULES, packages=TRANSFORM_PACKAGES,
            role_policy=lambda log_arn: pulumi.Output.all(log_arn, stream_arn).apply(
                lambda v: transform_policy(v[0], v[1])),
            logs_key_arn=args.logs_key_arn, log_retention_days=args.log_retention_days,
            memory_size=512, timeout=300,  # Firehose waits up to 5 minutes for a transform
            retry_attempts=0, max_event_age=60,  # invoked synchronously: Firehose retries itself
            errors_alarm_description="The SIEM stream's OCSF transform failed: Firehose retries, "
                                     "then writes the batch to processing-failed/ in the backup bucket",
            errors_alarm_period=300, alarm_actions=args.alarm_actions, tags=own, protect=args.protect,
            environment={"STREAM_NAME": self.stream_name},
            reserve_concurrency=args.reserve_concurrency,
            role_name=f"{self.stream_name}-transform")
        self.transform_log_group_name = f"/aws/lambda/{transform_function_name(args.environment, args.layer)}"

        self.delivery_role = aws.iam.Role(
            f"{name}-delivery-role", name=f"{self.stream_name}-delivery",
            description="The SIEM stream's Firehose role",
            assume_role_policy=account.apply(delivery_trust),
            max_session_duration=3600, tags={**args.tags, "Name": f"{self.stream_name}-delivery"},
            opts=pulumi.ResourceOptions(parent=self))
        settings = args.settings
        self.delivery_policy = aws.iam.RolePolicy(
            f"{name}-delivery-policy", role=self.delivery_role.id,
            policy=pulumi.Output.all(self.bucket.bucket.arn, self.transform.function.arn,
                                     self.error_log_group.arn).apply(
                lambda v: delivery_policy(bucket_arn=v[0], function_arn=v[1], error_log_arn=v[2],
                                          settings=settings)),
            opts=pulumi.ResourceOptions(parent=self.delivery_role))
        self.stream = self._stream(name, own)
        self._alarms(name, settings, args)

        self.subscription_role = aws.iam.Role(
            f"{name}-subscription-role", name=f"{self.stream_name}-subscription",
            description="CloudWatch Logs puts subscribed events on the SIEM stream",
            assume_role_policy=account.apply(
                lambda a: subscription_trust(partition, args.region, a)),
            max_session_duration=3600, tags={**args.tags, "Name": f"{self.stream_name}-subscription"},
            opts=pulumi.ResourceOptions(parent=self))
        self.subscription_policy = aws.iam.RolePolicy(
            f"{name}-subscription-policy", role=self.subscription_role.id,
            policy=self.stream.arn.apply(subscription_policy),
            opts=pulumi.ResourceOptions(parent=self.subscription_role))
        self.filters: dict[str, aws.cloudwatch.LogSubscriptionFilter] = {}
        self._subscribed: list[aws.cloudwatch.LogGroup | str] = []
        self.subscribe(*args.log_groups)
        self.register_outputs({"streamArn": self.stream.arn, "bucket": self.bucket.bucket.bucket})

    def _stream(self, name: str, own: Mapping[str, str]) -> aws.kinesis.FirehoseDeliveryStream:
        args, settings = self._args, self._args.settings
        role = self.delivery_role.arn
        bucket = self.bucket.bucket.arn
        processing = {"enabled": True, "processors": [{"type": "Lambda", "parameters": [
            {"parameter_name": "LambdaArn", "parameter_value": self.transform.function.arn},
            {"parameter_name": "RoleArn", "parameter_value": role},
            {"parameter_name": "NumberOfRetries", "parameter_value": PROCESSOR_RETRIES},
            {"parameter_name": "BufferSizeInMBs", "parameter_value": PROCESSOR_BUFFER_MB},
            {"parameter_name": "BufferIntervalInSeconds", "parameter_value": PROCESSOR_BUFFER_SECONDS},
        ]}]}
        logging = {"enabled": True, "log_group_name": self.error_log_group_name,
                   "log_stream_name": ERROR_STREAM}
        # Backups are written gzip'd under the logs key; CloudWatch Logs data is already gzip'd,
        # so Firehose must not compress what it delivers (CloudWatch Logs User Guide).
        backup = {"role_arn": role, "bucket_arn": bucket, "kms_key_arn": args.logs_key_arn,
                  "prefix": FAILED_PREFIX, "error_output_prefix": ERROR_OUTPUT_PREFIX,
                  "compression_format": "GZIP", "cloudwatch_logging_options": logging}
        secret = {"enabled": True, "secret_arn": settings.secret_arn, "role_arn": role}
        destination: dict[str, Any] = {}
        if settings.destination == "s3":
            destination = {"destination": "extended_s3", "extended_s3_configuration": {
                "role_arn": role, "bucket_arn": bucket, "kms_key_arn": args.logs_key_arn,
                "prefix": EVENTS_PREFIX, "error_output_prefix": ERROR_OUTPUT_PREFIX,
                "compression_format": "GZIP", "processing_configuration": processing,
                "cloudwatch_logging_options": logging}}
        elif settings.destination == "http":
            destination = {"destination": "http_endpoint", "http_endpoint_configuration": {
                "url": settings.url, "name": settings.name, "role_arn": role,
                "retry_duration": settings.retry_seconds, "s3_backup_mode": "FailedDataOnly",
                "s3_configuration": backup, "secrets_manager_configuration": secret,
                "request_configuration": {"content_encoding": "GZIP" if settings.gzip else "NONE"},
                "processing_configuration": processing, "cloudwatch_logging_options": logging}}
        elif settings.destination == "splunk":
            destination = {"destination": "splunk", "splunk_configuration": {
                "hec_endpoint": settings.url, "hec_endpoint_type": "Raw",
                "retry_duration": settings.retry_seconds, "s3_backup_mode": "FailedEventsOnly",
                "s3_configuration": backup, "secrets_manager_configuration": secret,
                "processing_configuration": processing, "cloudwatch_logging_options": logging}}
        else:
            destination = {"destination": "opensearch", "opensearch_configuration": {
                "domain_arn": settings.domain_arn, "index_name": settings.index, "role_arn": role,
                "index_rotation_period": "OneDay", "retry_duration": settings.retry_seconds,
                "s3_backup_mode": "FailedDocumentsOnly", "s3_configuration": backup,
                "processing_configuration": processing, "cloudwatch_logging_options": logging}}
        return aws.kinesis.FirehoseDeliveryStream(
            f"{name}-stream", name=self.stream_name,
            server_side_encryption={"enabled": True, "key_type": "CUSTOMER_MANAGED_CMK",
                                    "key_arn": args.logs_key_arn},
            tags={**args.tags, "Name": self.stream_name},
            **destination,
            # Firehose checks the role when the stream is created: its policy first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.delivery_policy]))

    def _alarms(self, name: str, settings: SiemSettings, args: SiemStreamArgs) -> None:
        """A stream that stops delivering, stops transforming, fails records or falls silent
        notifies `high` (Amazon Data Firehose Developer Guide, "Monitor Amazon Data Firehose with
        CloudWatch metrics": the per-destination `DeliveryTo<destination>.Success`,
        `ExecuteProcessing.Success`, `IncomingRecords`; the transform's own `FailedRecords`). The
        trail and the flow logs write all the time, so an hour without a record is news."""
        stream = {"DeliveryStreamName": self.stream_name}
        delivery = {"s3": "DeliveryToS3.Success", "http": "DeliveryToHttpEndpoint.Success",
                    "splunk": "DeliveryToSplunk.Success",
                    "opensearch": "DeliveryToAmazonOpenSearchService.Success"}[settings.destination]
        for label, metric, statistic, period, missing, what in (
                ("delivery", delivery, "Minimum", 300, "notBreaching",
                 f"the SIEM stream {self.stream_name} failed to deliver to its destination"),
                ("transform", "ExecuteProcessing.Success", "Minimum", 300, "notBreaching",
                 f"the SIEM stream {self.stream_name}'s OCSF transform failed or was throttled"),
                ("silent", "IncomingRecords", "Sum", 3600, "breaching",
                 f"the SIEM stream {self.stream_name} received nothing for an hour: a subscription "
                 "or the stream itself is gone")):
            shortfall_alarm(f"{name}-{label}-alarm", alarm_name=f"{self.stream_name}-{label}",
                            description=what, namespace="AWS/Firehose", metric_name=metric,
                            dimensions=stream, statistic=statistic, threshold=1, period=period,
                            missing=missing, actions=args.alarm_actions, severity="high",
                            tags=args.tags, parent=self.stream)
        occurrence_alarm(f"{name}-failed-records-alarm", alarm_name=f"{self.stream_name}-failed-records",
                         description=f"the SIEM stream {self.stream_name}'s transform could not keep "
                                     "some records (they are in the backup bucket)",
                         namespace="ZeroTrustAI/Siem", metric_name="FailedRecords",
                         dimensions={"DeliveryStream": self.stream_name}, statistic="Sum", period=300,
                         actions=args.alarm_actions, severity="high", tags=args.tags,
                         parent=self.stream)
        # Only the stream's own subscription filters write to it; a payload of another owner or
        # filter was put there by someone allowed firehose:PutRecord, claiming a log group it
        # does not come from (ztai_runtime/siem/firehose.py, PayloadSource). A tripwire: a forger
        # who copies the (public) account and filter name is not seen here.
        occurrence_alarm(f"{name}-foreign-records-alarm", alarm_name=f"{self.stream_name}-foreign-records",
                         description=f"a record on the SIEM stream {self.stream_name} did not come from "
                                     "its own subscriptions: someone put a forged log payload on it "
                                     "(delivered unmapped; see CloudTrail for firehose:PutRecord*)",
                         namespace="ZeroTrustAI/Siem", metric_name="ForeignRecords",
                         dimensions={"DeliveryStream": self.stream_name}, statistic="Sum", period=300,
                         actions=args.alarm_actions, severity="critical", tags=args.tags,
                         parent=self.stream)

    def subscribe(self, *log_groups: aws.cloudwatch.LogGroup | str) -> None:
        """One subscription filter per log group (a LogGroup, or a name the stack does not declare),
        empty pattern: every event. Refuses the stream's own log groups (the loop) and a group
        given twice (CloudWatch Logs allows two filters per group; this takes one)."""
        own = (self.error_log_group, self.transform.log_group, self.error_log_group_name,
               self.transform_log_group_name)
        for group in log_groups:
            if any(group is mine for mine in own):
                raise ValueError(f"{self._name}: {group_label(group)} is the SIEM stream's own log "
                                 "group; subscribing it would send the stream its own output")
            resource_name, name = subscription_of(self._name, group, self._subscribed)
            self.filters[resource_name] = aws.cloudwatch.LogSubscriptionFilter(
                resource_name, name=self.stream_name, log_group=name, filter_pattern="",
                destination_arn=self.stream.arn, role_arn=self.subscription_role.arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.subscription_policy]))

    def grant_keys(self, keys: Any) -> None:
        """What the stream's roles need of the logs key, asked of its owner: the delivery role
        writes the bucket's SSE-KMS objects through S3; the transform's role sends its failure
        records to its SQS queue (components/functions.py)."""
        keys.grant_use_through_service("logs", self.delivery_role, "s3")
        keys.grant_use_through_service("logs", self.transform.role, "sqs")


def group_label(group: aws.cloudwatch.LogGroup | str) -> str:
    return repr(group) if isinstance(group, str) else f"log group {group.pulumi_resource_name}"


def subscription_of(owner: str, group: aws.cloudwatch.LogGroup | str,
                    subscribed: list[aws.cloudwatch.LogGroup | str]) -> tuple[str, pulumi.Input[str]]:
    """The checks and names every subscriber of log groups shares (the SIEM stream, the detection
    function): a group given twice or a name that is no log group is refused (ValueError naming
    it); else the group is recorded in `subscribed`, and its filter's resource name and the group's
    name are returned."""
    if any(group is seen for seen in subscribed):
        raise ValueError(f"{owner}: {group_label(group)} is subscribed already")
    if isinstance(group, str) and not group.startswith("/"):
        raise ValueError(f"{owner}: {group!r} is not a log group name (it starts with /)")
    subscribed.append(group)
    label = group if isinstance(group, str) else group.pulumi_resource_name
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", label).strip("-").lower() or "group"
    return f"{owner}-subscription-{slug}", (group if isinstance(group, str) else group.name)

