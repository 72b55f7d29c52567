"""SiemStream under Pulumi's mock monitor: the encrypted stream, its backup bucket, the transform,
least-privilege roles, the subscription filters (and the loop they must never make), each
destination, and every bad value of the stack key `siem`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi_aws as aws
import pytest

from components.alarm_topics import AlarmActions
from components.functions import RUNTIME_DIR
from components.siem_stream import (
    PROCESSOR_BUFFER_MB,
    SIEM_OWN_LOG_TAG,
    TRANSFORM_HANDLER,
    TRANSFORM_MODULES,
    SiemSettings,
    SiemStream,
    SiemStreamArgs,
    parse_siem_settings,
)
from components.tags import register_standard_tags
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztpolicy.rule import Resource
from ztpolicy.rules.firehose.firehose_encrypted_with_cmk import firehose_encrypted_with_cmk
from ztpolicy.rules.logs.log_group_subscribed_to_siem import log_group_subscribed_to_siem

KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALARMS = AlarmActions({severity: f"arn:aws:sns:eu-west-1:111122223333:zero-trust-ai-dev-alarms-{severity}"
                       for severity in ("critical", "high", "medium")})
SECRET = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:siem-collector-AbCdEf"
DOMAIN = "arn:aws:es:eu-west-1:111122223333:domain/siem-events"
STREAM = "zero-trust-ai-dev-combined-siem"
STREAM_ARN = f"arn:aws:firehose:eu-west-1:111122223333:deliverystream/{STREAM}"
STREAM_TYPE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
FILTER = "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


DEFAULT = SiemSettings()


def build(settings: SiemSettings = DEFAULT,
          compose: Callable[[SiemStream, list[aws.cloudwatch.LogGroup]], None] | None = None,
          subscribe: bool = True) -> RecordedStack:
    def program() -> None:
        register_standard_tags("dev", "ml-platform")
        groups = [aws.cloudwatch.LogGroup("flow-logs", name="/zero-trust-ai/dev/vpc-flow-logs/data",
                                          kms_key_id=KEY, retention_in_days=365),
                  aws.cloudwatch.LogGroup("access-logs", name="/aws/apigateway/zero-trust-ai-dev-api",
                                          kms_key_id=KEY, retention_in_days=365)]
        stream = SiemStream("siem", SiemStreamArgs(
            environment="dev", layer="combined", region="eu-west-1", logs_key_arn=KEY,
            settings=settings, log_groups=groups if subscribe else (), alarm_actions=ALARMS))
        if compose is not None:
            compose(stream, groups)

    return record(program, project="zero-trust-ai", stack="dev", config={}, region="eu-west-1")


@pytest.fixture(scope="module")
def dev() -> RecordedStack:
    return build()


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def of_type(stack: RecordedStack, token: str) -> list[RecordedResource]:
    return [r for r in stack.resources if r.type == token]


def policy(resource: RecordedResource, prop: str = "policy") -> dict[str, Any]:
    document: dict[str, Any] = json.loads(resource.inputs[prop])
    return document


def as_rule_sees(resource: RecordedResource) -> Resource:
    return Resource(type=resource.type, name=resource.name, urn=resource.urn,
                    props={**resource.inputs, **resource.outputs},
                    property_dependencies={k: tuple(v) for k, v in resource.property_dependencies.items()})


def with_the_logs_key(stack: RecordedStack) -> list[Resource]:
    """The stack as the pack sees it, with the logs key this test pastes in (KEY) as a key of the
    stack, as the program's KeyHierarchy declares it."""
    key = "aws:kms/key:Key"
    return [*(as_rule_sees(r) for r in stack.resources),
            Resource(type=key, name="keys-logs", urn=f"urn:pulumi:dev::zero-trust-ai::{key}::keys-logs",
                     props={"arn": KEY, "id": KEY.rsplit("/", 1)[1]})]


# -- the stream ------------------------------------------------------------------------------------
def test_the_default_stream_is_encrypted_and_delivers_to_its_own_bucket(dev: RecordedStack) -> None:
    stream = named(dev, "siem-stream")
    assert stream.inputs["name"] == STREAM
    assert stream.inputs["serverSideEncryption"] == {"enabled": True, "keyType": "CUSTOMER_MANAGED_CMK",
                                                     "keyArn": KEY}
    assert stream.inputs["destination"] == "extended_s3"
    s3 = stream.inputs["extendedS3Configuration"]
    assert s3["kmsKeyArn"] == KEY and s3["prefix"] == "events/"
    assert s3["errorOutputPrefix"].startswith("failed/!{firehose:error-output-type}/")
    assert s3["bucketArn"] == named(dev, "siem-bucket").outputs["arn"]
    assert firehose_encrypted_with_cmk(with_the_logs_key(dev), {}) == []


def test_the_transform_is_the_runtime_handler_with_a_small_buffer(dev: RecordedStack) -> None:
    stream = named(dev, "siem-stream")
    [processor] = stream.inputs["extendedS3Configuration"]["processingConfiguration"]["processors"]
    parameters = {p["parameterName"]: p["parameterValue"] for p in processor["parameters"]}
    function = named(dev, "siem-transform-function")
    assert function.inputs["handler"] == TRANSFORM_HANDLER
    assert parameters["LambdaArn"] == function.outputs["arn"]
    assert parameters["BufferSizeInMBs"] == PROCESSOR_BUFFER_MB == "0.2"
    assert parameters["NumberOfRetries"] == "3"
    assert parameters["RoleArn"] == named(dev, "siem-delivery-role").outputs["arn"]


def test_the_backup_bucket_is_private_encrypted_and_logged(dev: RecordedStack) -> None:
    encryption = named(dev, "siem-bucket-encryption").inputs["rules"][0]
    assert encryption["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms",
                                                                 "kmsMasterKeyId": KEY}
    statements = policy(named(dev, "siem-bucket-policy"))["Statement"]
    assert {s["Sid"] for s in statements} >= {"DenyInsecureTransport", "DenyOtherKey"}
    assert named(dev, "siem-bucket-logging").inputs["targetPrefix"].startswith("s3/")


def test_the_delivery_role_does_exactly_what_delivery_needs(dev: RecordedStack) -> None:
    trust = policy(named(dev, "siem-delivery-role"), "assumeRolePolicy")["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "firehose.amazonaws.com"},
                      # The guard the Firehose guide's own trust policy uses (no page says Firehose
                      # sets aws:SourceArn when it assumes the role).
                      "Action": "sts:AssumeRole", "Condition": {"StringEquals": {
                          "sts:ExternalId": "111122223333"}}}]
    statements = {s["Sid"]: (s["Action"], s["Resource"])
                  for s in policy(named(dev, "siem-delivery-policy"))["Statement"]}
    bucket = named(dev, "siem-bucket").outputs["arn"]
    errors = named(dev, "siem-errors").outputs["arn"]
    assert statements == {
        "InvokeTransform": (["lambda:GetFunctionConfiguration", "lambda:InvokeFunction"],
                            named(dev, "siem-transform-function").outputs["arn"]),
        "WriteBackupBucket": (["s3:AbortMultipartUpload", "s3:PutObject"], f"{bucket}/*"),
        "LocateBackupBucket": (["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                               bucket),
        "WriteErrorLog": ("logs:PutLogEvents", f"{errors}:log-stream:DestinationDelivery"),
    }


def test_the_transform_may_reingest_into_its_own_stream_only(dev: RecordedStack) -> None:
    statements = {s["Sid"]: s for s in policy(named(dev, "siem-transform-role-policy"))["Statement"]}
    assert statements["ReingestOversizedRecords"]["Action"] == "firehose:PutRecordBatch"
    assert statements["ReingestOversizedRecords"]["Resource"] == \
        f"arn:aws:firehose:eu-west-1:111122223333:deliverystream/{STREAM}"
    assert set(statements) == {"WriteOwnLog", "ReingestOversizedRecords"}


def test_the_transform_ships_only_the_runtime_it_imports(dev: RecordedStack) -> None:
    archive = named(dev, "siem-transform-function").inputs["code"]["assets"]["ztai_runtime"]["assets"]
    assert set(archive) == set(TRANSFORM_MODULES)
    assert all(Path(entry["path"]) == RUNTIME_DIR / module for module, entry in archive.items())


@pytest.mark.skipif(not (RUNTIME_DIR / "siem" / "firehose.py").exists(),
                    reason="the transform (ztai_runtime/siem) is not in this tree yet")
def test_the_shipped_modules_are_all_the_transform_needs(tmp_path: Path) -> None:
    package = tmp_path / "ztai_runtime"
    package.mkdir()
    for module in TRANSFORM_MODULES:
        source = RUNTIME_DIR / module
        if source.is_dir():
            shutil.copytree(source, package / module, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, package / module)
    # A fresh interpreter that sees only the shipped package (plus boto3, which Lambda provides).
    handler_module = TRANSFORM_HANDLER.rsplit(".", 1)[0]
    probe = subprocess.run(
        [sys.executable, "-c", f"import {handler_module} as m, sys; "
         "assert m.__file__.startswith(sys.argv[1]); assert callable(m.handler); "
         "assert not [n for n in sys.modules if n.startswith('pulumi')]",
         str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr


# -- subscriptions ---------------------------------------------------------------------------------
def test_every_group_given_gets_one_filter_of_every_event(dev: RecordedStack) -> None:
    filters = of_type(dev, FILTER)
    assert sorted(f.inputs["logGroup"] for f in filters) == [
        "/aws/apigateway/zero-trust-ai-dev-api", "/zero-trust-ai/dev/vpc-flow-logs/data"]
    stream_arn = named(dev, "siem-stream").outputs["arn"]
    for subscription in filters:
        assert subscription.inputs["filterPattern"] == ""
        assert subscription.inputs["destinationArn"] == stream_arn
        assert subscription.inputs["roleArn"] == named(dev, "siem-subscription-role").outputs["arn"]


def test_the_subscription_role_is_logs_of_this_account_and_region_putting_on_this_stream(
        dev: RecordedStack) -> None:
    [trust] = policy(named(dev, "siem-subscription-role"), "assumeRolePolicy")["Statement"]
    assert trust["Principal"] == {"Service": "logs.amazonaws.com"}
    assert trust["Condition"] == {"StringLike": {"aws:SourceArn": "arn:aws:logs:eu-west-1:111122223333:*"},
                                  "StringEquals": {"aws:SourceAccount": "111122223333"}}
    [allowed] = policy(named(dev, "siem-subscription-policy"))["Statement"]
    assert allowed["Action"] == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    assert allowed["Resource"] == named(dev, "siem-stream").outputs["arn"]


def test_the_streams_own_groups_are_tagged_and_the_stack_passes_the_rule(dev: RecordedStack) -> None:
    own = [g for g in of_type(dev, LOG_GROUP) if g.inputs.get("tags", {}).get(SIEM_OWN_LOG_TAG) == STREAM]
    assert sorted(g.inputs["name"] for g in own) == [
        f"/aws/lambda/{STREAM}-transform", f"/zero-trust-ai/dev/siem/{STREAM}"]
    resources = [as_rule_sees(r) for r in dev.resources]
    assert log_group_subscribed_to_siem(resources, {}) == []


def test_a_group_left_out_fails_the_rule() -> None:
    stack = build(subscribe=False)
    findings = log_group_subscribed_to_siem([as_rule_sees(r) for r in stack.resources], {})
    assert sorted(f.urn.rsplit("::", 1)[-1] for f in findings) == ["access-logs", "flow-logs"]


def test_subscribing_the_streams_own_groups_is_refused() -> None:
    for pick in (lambda s: s.transform.log_group, lambda s: s.error_log_group,
                 lambda s: s.transform_log_group_name, lambda s: s.error_log_group_name):
        with pytest.raises(Exception, match="own log group; subscribing it would send the stream its own"):
            build(compose=lambda stream, groups, pick=pick: stream.subscribe(pick(stream)))  # type: ignore[misc]


def test_subscribing_a_group_twice_is_refused() -> None:
    with pytest.raises(Exception, match="subscribed already"):
        build(compose=lambda stream, groups: stream.subscribe(groups[0]))


def test_a_name_that_is_no_log_group_is_refused() -> None:
    with pytest.raises(Exception, match="is not a log group name"):
        build(compose=lambda stream, groups: stream.subscribe("vpc-flow-logs"))


def test_a_layer_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="one of combined, keys, workload"):
        SiemStream("siem", SiemStreamArgs(environment="dev", layer="bootstrap", region="eu-west-1",
                                          logs_key_arn=KEY))


# -- destinations ----------------------------------------------------------------------------------
def test_http_destination_reads_its_key_from_the_secret_and_backs_up_failures() -> None:
    stack = build(parse_siem_settings("siem", ["destination=http", "url=https://siem.example.com/firehose",
                                               f"secretArn={SECRET}", "retrySeconds=600", "gzip=false"]))
    stream = named(stack, "siem-stream")
    assert stream.inputs["destination"] == "http_endpoint"
    http = stream.inputs["httpEndpointConfiguration"]
    assert http["url"] == "https://siem.example.com/firehose" and "accessKey" not in http
    assert http["secretsManagerConfiguration"]["secretArn"] == SECRET
    assert http["secretsManagerConfiguration"]["enabled"] is True
    assert http["retryDuration"] == 600 and http["requestConfiguration"] == {"contentEncoding": "NONE"}
    assert http["s3BackupMode"] == "FailedDataOnly"
    assert http["s3Configuration"]["kmsKeyArn"] == KEY and http["s3Configuration"]["prefix"] == "failed/"
    statements = {s["Sid"]: s for s in policy(named(stack, "siem-delivery-policy"))["Statement"]}
    assert statements["ReadEndpointSecret"]["Action"] == "secretsmanager:GetSecretValue"
    assert statements["ReadEndpointSecret"]["Resource"] == SECRET
    assert firehose_encrypted_with_cmk(with_the_logs_key(stack), {}) == []


def test_splunk_destination_sends_raw_events_with_the_token_from_the_secret() -> None:
    stack = build(parse_siem_settings("siem", ["destination=splunk", "url=https://hec.example.com:443",
                                               f"secretArn={SECRET}"]))
    stream = named(stack, "siem-stream")
    splunk = stream.inputs["splunkConfiguration"]
    assert stream.inputs["destination"] == "splunk" and "hecToken" not in splunk
    assert splunk["hecEndpoint"] == "https://hec.example.com:443" and splunk["hecEndpointType"] == "Raw"
    assert splunk["secretsManagerConfiguration"]["secretArn"] == SECRET
    assert splunk["s3BackupMode"] == "FailedEventsOnly" and splunk["retryDuration"] == 3600
    assert firehose_encrypted_with_cmk(with_the_logs_key(stack), {}) == []


def test_opensearch_destination_writes_its_index_only() -> None:
    stack = build(parse_siem_settings("siem", ["destination=opensearch", f"domainArn={DOMAIN}",
                                               "index=ocsf"]))
    stream = named(stack, "siem-stream")
    search = stream.inputs["opensearchConfiguration"]
    assert search["domainArn"] == DOMAIN and search["indexName"] == "ocsf"
    assert search["s3BackupMode"] == "FailedDocumentsOnly"
    statements = {s["Sid"]: s for s in policy(named(stack, "siem-delivery-policy"))["Statement"]}
    assert statements["WriteIndex"]["Action"] == ["es:ESHttpPost", "es:ESHttpPut"]
    assert statements["WriteIndex"]["Resource"] == [DOMAIN, f"{DOMAIN}/*"]
    assert f"{DOMAIN}/ocsf*/_mapping/*" in statements["ReadClusterState"]["Resource"]
    assert "ReadEndpointSecret" not in statements
    assert firehose_encrypted_with_cmk(with_the_logs_key(stack), {}) == []


# -- the stack key ---------------------------------------------------------------------------------
def test_no_setting_is_the_streams_own_bucket() -> None:
    assert parse_siem_settings("siem", []) == SiemSettings(destination="s3")
    assert parse_siem_settings("siem", '["destination=s3"]') == SiemSettings()


@pytest.mark.parametrize(("value", "message"), [
    ("destination=http", "expected a list of strings"),
    (["http"], "'http' is not a setting; write name=value"),
    (["=http"], "is not a setting; write name=value"),
    (["destination=kafka"], "destination='kafka': allowed values are s3, http, splunk, opensearch"),
    (["destination=s3", "url=https://x.example.com"], "url is not a setting of destination=s3; it reads "
                                                      "no other setting"),
    (["destination=http", "url=https://x.example.com"], "destination=http needs secretArn"),
    (["destination=http", f"secretArn={SECRET}"], "destination=http needs url"),
    (["destination=http", "url=http://x.example.com", f"secretArn={SECRET}"], "an https:// URL on port 443"),
    (["destination=http", "url=https://x.example.com:8088", f"secretArn={SECRET}"], "port 443"),
    (["destination=http", "url=https://user:pw@x.example.com", f"secretArn={SECRET}"],
     "without credentials in it"),
    (["destination=http", "url=https://x.example.com", "secretArn=hunter2"],
     "a Secrets Manager secret ARN"),
    (["destination=http", "url=https://x.example.com", f"secretArn={SECRET}", "accessKey=hunter2"],
     "accessKey is not a setting of destination=http"),
    (["destination=http", "url=https://x.example.com", f"secretArn={SECRET}", "retrySeconds=9000"],
     "retrySeconds='9000': a whole number of seconds from 0 to 7200"),
    (["destination=http", "url=https://x.example.com", f"secretArn={SECRET}", "retrySeconds=-1"],
     "from 0 to 7200"),
    (["destination=http", "url=https://x.example.com", f"secretArn={SECRET}", "gzip=yes"],
     "gzip='yes': true or false"),
    (["destination=http", "url=https://x.example.com", f"secretArn={SECRET}", "name=a/b"],
     "name='a/b': 1-256 of letters"),
    (["destination=splunk", "url=https://hec.example.com"], "destination=splunk needs secretArn"),
    (["destination=opensearch", "index=ocsf"], "destination=opensearch needs domainArn"),
    (["destination=opensearch", "domainArn=arn:aws:es:eu-west-1:111122223333:domain/X", "index=ocsf"],
     "an OpenSearch Service domain ARN"),
    (["destination=opensearch", f"domainArn={DOMAIN}", "index=OCSF"], "an OpenSearch index name"),
    (["destination=opensearch", f"domainArn={DOMAIN}"], "destination=opensearch needs index"),
    (["destination=http", "destination=http"], "listed twice"),
    (["destination=http", "destination=splunk"], "destination is given twice"),
])
def test_each_bad_setting_is_named_with_what_is_allowed(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        parse_siem_settings("siem", value)
    assert str(raised.value).startswith("zero-trust-ai:siem")


# -- the logs key admits Firehose's grant from its creation ---------------------------------------------
def test_the_logs_key_admits_the_streams_creation_through_firehose_only() -> None:
    from tests.components.test_keys import ARGS as KEY_ARGS
    from tests.components.test_keys import build as build_keys
    from tests.components.test_keys import named as key_named
    from tests.components.test_keys import statements as key_statements
    from ztpolicy.rules.kms.kms_key_policy_least_privilege import document_problems

    admins = ("arn:aws:iam::111122223333:role/deployer",)
    stack = build_keys(replace(KEY_ARGS, administrator_role_arns=admins, firehose_streams={"logs": [STREAM]}),
                       compose=lambda keys: keys.seal())
    created = key_statements(key_named(stack, "keys-logs"))
    admitted = {sid.rstrip("0123456789"): s for sid, s in created.items() if sid.startswith("CreateFirehose")}
    via = {"kms:ViaService": "firehose.eu-west-1.amazonaws.com", "kms:CallerAccount": "111122223333"}
    assert admitted == {
        "CreateFirehoseStreamsDescribe": {**admitted["CreateFirehoseStreamsDescribe"],
                                          "Action": ["kms:DescribeKey"], "Principal": {"AWS": list(admins)},
                                          "Condition": {"StringEquals": via}},
        "CreateFirehoseStreamsGrant": {**admitted["CreateFirehoseStreamsGrant"],
                                       "Action": ["kms:CreateGrant"], "Principal": {"AWS": list(admins)},
                                       "Condition": {"StringEquals": via,
                                                     "Bool": {"kms:GrantIsForAWSResource": "true"}}}}
    # Sealed too, and what the pack's least-privilege rule accepts.
    sealed = key_statements(key_named(stack, "keys-logs-policy"))
    assert all(statement in sealed.values() for statement in admitted.values())
    document = json.loads(key_named(stack, "keys-logs-policy").inputs["policy"])
    assert document_problems(document, "logs", set()) == []
    # No other key admits it.
    assert not [sid for sid in key_statements(key_named(stack, "keys-inference")) if "Firehose" in sid]


def test_a_split_key_layer_admits_its_own_stream_to_the_key_administrators_too() -> None:
    from tests.components.test_keys import ARGS as KEY_ARGS
    from tests.components.test_keys import build as build_keys
    from tests.components.test_keys import named as key_named
    from tests.components.test_keys import statements as key_statements

    admin, deployer = "arn:aws:iam::111122223333:role/keys", "arn:aws:iam::111122223333:role/workload"
    stack = build_keys(replace(KEY_ARGS, administrator_role_arns=(admin,), deployer_role_arns=(deployer,),
                               firehose_streams={"logs": ["zero-trust-ai-dev-keys-siem",
                                                          "zero-trust-ai-dev-workload-siem"]}))
    grants = [s for sid, s in key_statements(key_named(stack, "keys-logs")).items()
              if sid.startswith("CreateFirehoseStreamsGrant")]
    assert sorted(s["Principal"]["AWS"][0] for s in grants) == [admin, deployer]


@pytest.mark.parametrize(("streams", "message"), [
    ({"model-weights": [STREAM]}, "the model-weights key cannot encrypt them"),
    ({"tokens": [STREAM]}, "the tokens key cannot encrypt them"),
    ({"logs": ["zero-trust-ai-*"]}, "name each in plain text"),
    ({"logs": []}, "name each in plain text"),
])
def test_streams_are_named_plainly_on_a_usable_key(streams: dict[str, list[str]], message: str) -> None:
    from tests.components.test_keys import ARGS as KEY_ARGS
    from tests.components.test_keys import build as build_keys

    with pytest.raises(ValueError, match=message):
        build_keys(replace(KEY_ARGS, firehose_streams=streams))


# -- the stack key, as the program reads it ------------------------------------------------------------
def test_the_stack_config_reads_siem_and_names_a_bad_value() -> None:
    from components.stack_config import StackConfigError, parse_stack_config
    from tests.components.test_stack_config import VALID

    assert parse_stack_config(VALID).siem == SiemSettings()
    given = {**VALID, "zero-trust-ai:siem": json.dumps(["destination=splunk", "url=https://hec.example.com",
                                                        f"secretArn={SECRET}"])}
    assert parse_stack_config(given).siem.destination == "splunk"
    with pytest.raises(StackConfigError) as raised:
        parse_stack_config({**VALID, "zero-trust-ai:siem": '["destination=syslog"]'})
    assert raised.value.problems == ["zero-trust-ai:siem: destination='syslog': allowed values are s3, http, "
                                     "splunk, opensearch"]


def test_a_stream_that_stops_delivering_or_falls_silent_notifies(dev: RecordedStack) -> None:
    alarms = {r.inputs["name"]: r.inputs for r in dev.resources
              if r.type == "aws:cloudwatch/metricAlarm:MetricAlarm"}
    stream = "zero-trust-ai-dev-combined-siem"
    delivery, transform = alarms[f"{stream}-delivery"], alarms[f"{stream}-transform"]
    silent, failed = alarms[f"{stream}-silent"], alarms[f"{stream}-failed-records"]
    # The default destination is the stream's own bucket.
    assert (delivery["namespace"], delivery["metricName"]) == ("AWS/Firehose", "DeliveryToS3.Success")
    assert transform["metricName"] == "ExecuteProcessing.Success"
    for alarm in (delivery, transform):
        assert (alarm["statistic"], alarm["comparisonOperator"], alarm["threshold"]) == (
            "Minimum", "LessThanThreshold", 1)
    # No record for an hour is the news: missing data breaches.
    assert (silent["metricName"], silent["period"], silent["treatMissingData"]) == (
        "IncomingRecords", 3600, "breaching")
    assert failed["namespace"] == "ZeroTrustAI/Siem" and failed["dimensions"] == {"DeliveryStream": stream}
    for alarm in (delivery, transform, silent, failed):
        assert alarm["alarmActions"] == [ALARMS.topic_arns["high"]]


def test_a_payload_not_from_the_streams_own_subscriptions_pages_critical(dev: RecordedStack) -> None:
    # The transform counts such payloads (ForeignRecords): someone with firehose:PutRecord forged
    # a log payload. Paged like the trail's own tampering watches.
    alarms = {r.inputs["name"]: r.inputs for r in dev.resources
              if r.type == "aws:cloudwatch/metricAlarm:MetricAlarm"}
    stream = "zero-trust-ai-dev-combined-siem"
    foreign = alarms[f"{stream}-foreign-records"]
    assert (foreign["namespace"], foreign["metricName"], foreign["statistic"]) == (
        "ZeroTrustAI/Siem", "ForeignRecords", "Sum")
    assert foreign["dimensions"] == {"DeliveryStream": stream}
    assert foreign["comparisonOperator"] == "GreaterThanOrEqualToThreshold" and foreign["threshold"] == 1
    assert foreign["alarmActions"] == [ALARMS.topic_arns["critical"]]
