"""s3-bucket-access-logging (control: logs that last): the training-data bucket as
TrainingDataBucket builds it passes (a preview's inputs, an export's outputs, a first preview with
unknown names, and through the pack's gRPC analyzer); without its server access logs it is caught;
access-log destinations and buckets classified public or internal are not held to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from components.training_data import TrainingDataBucket, TrainingDataBucketArgs
from tests.conftest import PACK_DIR
from tests.policy_packs.s3.test_bucket_rules import as_resources, changed, run_all, without
from tests.policy_packs.test_rules import NO_CONFIG, STACK, res, urns
from ztai.export import analyzed_resources
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
from ztai.preview.recorder import RecordedStack, record
from ztpolicy.rule import Finding, Resource
from ztpolicy.rules import ALL_RULES
from ztpolicy.rules.s3.s3_bucket_access_logging import s3_bucket_access_logging

REGION = "eu-west-1"
KEY = f"arn:aws:kms:{REGION}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
MODES = ("inputs", "outputs")
DEFAULTS = next(rule for rule in ALL_RULES if rule.name == "s3-bucket-access-logging").defaults()


def _recorded(unknowns: bool) -> RecordedStack:
    def program() -> None:
        TrainingDataBucket("training-data", TrainingDataBucketArgs(
            environment="prod", owner="ml-platform", region=REGION, key_arn=KEY))

    return record(program, project="zero-trust-ai", stack="prod", config={}, region=REGION,
                  unknowns=unknowns)


@pytest.fixture(scope="module")
def recorded() -> RecordedStack:
    return _recorded(False)


def logging_findings(resources: list[Resource], config: dict[str, Any] | None = None) -> list[Finding]:
    return s3_bucket_access_logging(resources, DEFAULTS if config is None else config)


@pytest.mark.parametrize("mode", MODES)
def test_the_training_data_bucket_and_its_log_bucket_pass(recorded: RecordedStack, mode: str) -> None:
    resources = as_resources(recorded, mode)
    assert logging_findings(resources) == []
    # Its SSE-S3 log bucket passes the other bucket rules as the access-log destination it is.
    assert run_all(resources) == []


def test_a_first_preview_with_unknown_names_passes() -> None:
    assert logging_findings(as_resources(_recorded(True), "inputs")) == []


@pytest.mark.parametrize("mode", MODES)
def test_the_training_data_bucket_without_server_access_logs_is_caught(recorded: RecordedStack,
                                                                       mode: str) -> None:
    findings = logging_findings(without(as_resources(recorded, mode), LOGGING))
    # The log bucket, which then receives nothing, is no longer exempt either.
    assert urns(findings) == {"training-data-bucket", "training-data-access-logs"}
    assert ("bucket training-data-bucket (data-classification=restricted) keeps no S3 server access "
            "logs") in "\n".join(finding.message for finding in findings)


@pytest.mark.parametrize("mode", MODES)
def test_a_logging_without_a_target_is_caught(recorded: RecordedStack, mode: str) -> None:
    findings = logging_findings(changed(as_resources(recorded, mode), LOGGING, targetBucket=""))
    assert "training-data-bucket" in urns(findings)


def bucket(name: str, token: str = BUCKET, **props: Any) -> Resource:
    return res(token, name, id=name, bucket=name, **props)


@pytest.mark.parametrize("tags, held", [
    ({"data-classification": "restricted"}, True), ({"data-classification": "confidential"}, True),
    ({}, True), ({"data-classification": "internal"}, False), ({"data-classification": " Public "}, False),
], ids=["restricted", "confidential", "untagged", "internal", "public"])
def test_which_buckets_are_held_to_it(tags: dict[str, str], held: bool) -> None:
    findings = logging_findings([bucket("data", tags=tags)])
    assert bool(findings) is held
    if not tags:
        assert "bucket data (no data-classification tag) keeps no S3 server" in findings[0].message


def test_the_exempt_classifications_are_configurable() -> None:
    internal = bucket("truststore", tags={"data-classification": "internal"})
    assert logging_findings([internal]) == []
    assert urns(logging_findings([internal], {"exemptClassifications": []})) == {"truststore"}
    assert logging_findings([internal], NO_CONFIG) == []  # the defaults when the config says nothing


def test_the_tag_is_read_from_tags_all_too() -> None:
    assert logging_findings([bucket("data", tags={}, tagsAll={"data-classification": "internal"})]) == []


@pytest.mark.parametrize("token, props", [
    (BUCKET, {"logging": {"targetBucket": "logs", "targetPrefix": "s3/data/"}}),
    (BUCKET_V2, {"loggings": [{"targetBucket": "logs", "targetPrefix": "s3/data/"}]}),
], ids=["bucket", "bucket-v2"])
def test_inline_logging_counts_without_a_separate_resource(token: str, props: dict[str, Any]) -> None:
    assert logging_findings([bucket("data", token, **props)]) == []
    empty = {key: ({"targetBucket": ""} if token == BUCKET else [{"targetBucket": ""}]) for key in props}
    assert urns(logging_findings([bucket("data", token, **empty)])) == {"data"}


def test_a_separate_logging_of_another_bucket_does_not_count() -> None:
    other = res(LOGGING, "other-logging", bucket="other", targetBucket="logs")
    # "logs" receives other's logs: a destination, not held to the rule.
    found = logging_findings([bucket("data"), bucket("other"), bucket("logs"), other])
    assert urns(found) == {"data"}


# -- through the pack's gRPC analyzer, on an export of the component ---------------------------------
@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "prod", {}, True)) as running:
        yield running


def export_of(stack: RecordedStack, *, drop: str | None = None) -> dict[str, Any]:
    resources = [{"urn": r.urn, "custom": True, "type": r.type, "id": r.id,
                  "outputs": {**r.outputs, "id": r.id}, "inputs": r.inputs}
                 for r in stack.resources if r.custom and r.type != drop]
    return {"version": 3, "deployment": {"resources": resources}}


@pytest.mark.parametrize("drop, expected", [
    (None, set()), (LOGGING, {"training-data-bucket", "training-data-access-logs"})],
                         ids=["logged", "not-logged"])
def test_an_exports_outputs_through_the_analyzer(pack: PolicyPackProcess, recorded: RecordedStack,
                                                 drop: str | None, expected: set[str]) -> None:
    _, _, resources = analyzed_resources(export_of(recorded, drop=drop))
    result = analyze(pack, resources, user_config=None, project="zero-trust-ai", stack="prod")
    assert {v.urn.rsplit("::", 1)[-1] for v in result.mandatory_violations
            if v.policy == "s3-bucket-access-logging"} == expected


def test_the_rule_names_the_urn_of_the_bucket() -> None:
    [finding] = logging_findings([bucket("data")])
    assert finding.urn == f"{STACK}{BUCKET}::data"
