"""The training-data bucket's S3 server access logs (components/training_data.py): they go to an
access-log bucket of its own, built as the model bucket's is (components/buckets.py)."""

from __future__ import annotations

import json

import pytest

from components.training_data import TrainingDataBucket, TrainingDataBucketArgs
from ztai.preview.recorder import RecordedResource, RecordedStack, record

REGION = "eu-west-1"
KEY = f"arn:aws:kms:{REGION}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def build(*, protect: bool = False, unknowns: bool = False) -> RecordedStack:
    def program() -> None:
        TrainingDataBucket("training-data", TrainingDataBucketArgs(
            environment="prod", owner="ml-platform", region=REGION, key_arn=KEY, protect=protect))

    return record(program, project="zero-trust-ai", stack="prod", config={}, region=REGION,
                  unknowns=unknowns)


@pytest.fixture(scope="module")
def stack() -> RecordedStack:
    built = build()
    assert not built.errors
    return built


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def test_server_access_logs_go_to_an_sse_s3_log_bucket_of_its_own(stack: RecordedStack) -> None:
    data, logs = named(stack, "training-data-bucket"), named(stack, "training-data-access-logs")
    logging = named(stack, "training-data-logging")
    assert (logging.inputs["bucket"], logging.inputs["targetBucket"]) == (data.id, logs.id)
    assert logging.inputs["targetPrefix"] == f"s3/{data.outputs['bucket']}/"
    # Created after the log bucket's policy admits the logging service.
    assert named(stack, "training-data-access-logs-policy").urn in logging.dependencies
    assert named(stack, "training-data-access-logs-encryption").inputs["rules"][0][
        "applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}  # all S3 logging accepts
    assert named(stack, "training-data-access-logs-public-access").inputs["restrictPublicBuckets"] is True
    assert logs.inputs["tags"]["data-classification"] == "restricted"
    statements = {s["Sid"]: s for s in json.loads(
        named(stack, "training-data-access-logs-policy").inputs["policy"])["Statement"]}
    delivery = statements["S3ServerAccessLogDelivery"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Resource"] == f"{logs.outputs['arn']}/s3/*"
    # Only this bucket's logs: delivery for any other source bucket is refused.
    assert delivery["Condition"]["ArnLike"] == {"aws:SourceArn": [data.outputs["arn"]]}
    assert "DenyWritesButLogDelivery" in statements


@pytest.mark.parametrize("protect", [True, False])
def test_the_log_bucket_is_protected_with_the_data(protect: bool) -> None:
    built = build(protect=protect)
    assert named(built, "training-data-access-logs").protect is protect
    assert named(built, "training-data-bucket").protect is protect


def test_a_first_preview_with_unknown_names_builds_the_same_resources() -> None:
    built = build(unknowns=True)
    assert not built.errors
    logging = named(built, "training-data-logging")
    assert logging.property_dependencies["targetBucket"] == [named(built, "training-data-access-logs").urn]
    assert logging.property_dependencies["bucket"] == [named(built, "training-data-bucket").urn]

