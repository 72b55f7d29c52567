"""How the CloudTrail rules read a trail's event selectors (ztpolicy.trails): every field selector
of a selector must match, a field given twice included; narrowing fields never count; each
resources.ARN operator is judged against the whole target, on the side of logging less; basic
event selectors log every management event only with All, management events on and no source
left out."""

from __future__ import annotations

from typing import Any

import pytest

from ztpolicy.graph import UNKNOWN
from ztpolicy.rule import Resource
from ztpolicy.trails import Target, logs_every_management_event, selector_logs, trail_logs

BUCKET = "arn:aws:s3:::zero-trust-ai-dev-models"
ARCHIVE = "arn:aws:s3:::zero-trust-ai-dev-audit-111122223333"
TABLE = "arn:aws:dynamodb:eu-west-1:111122223333:table/zero-trust-ai-dev-token-vault"
OBJECTS = Target(under=f"{BUCKET}/")


def data(resource_type: str, *arn_conditions: dict[str, Any], **extra: list[str]) -> dict[str, Any]:
    fields: list[dict[str, Any]] = [{"field": "eventCategory", "equals": ["Data"]},
                                    {"field": "resources.type", "equals": [resource_type]}]
    fields += [{"field": "resources.ARN", **condition} for condition in arn_conditions]
    fields += [{"field": name, "equals": values} for name, values in extra.items()]
    return {"name": "s", "fieldSelectors": fields}


def objects(*arn_conditions: dict[str, Any], **extra: list[str]) -> bool | None:
    return selector_logs(data("AWS::S3::Object", *arn_conditions, **extra), "Data", "AWS::S3::Object",
                         OBJECTS)


@pytest.mark.parametrize("conditions", [
    (),
    ({"startsWiths": [f"{BUCKET}/"]},),
    ({"startsWiths": ["arn:aws:s3:::"]},),  # a shorter prefix: this bucket and others
    ({"notStartsWiths": [f"{ARCHIVE}/"]},),  # does not reach into the bucket
    ({"notStartsWiths": [f"{BUCKET}-other/"]},),  # another bucket whose name extends this one's
    ({"notEquals": [f"{ARCHIVE}/AWSLogs/x.json.gz"]},),
    ({"startsWiths": ["arn:aws:s3:::"]}, {"notStartsWiths": [f"{ARCHIVE}/"]}),  # the field twice
])
def test_selectors_that_log_every_object_of_the_bucket(conditions: tuple[dict[str, Any], ...]) -> None:
    assert objects(*conditions) is True


@pytest.mark.parametrize("conditions", [
    ({"startsWiths": [f"{BUCKET}/weights/"]},),  # one prefix of it only
    ({"startsWiths": [f"{ARCHIVE}/"]},),  # another bucket
    ({"equals": [f"{BUCKET}/weights/model.bin"]},),  # one object
    ({"endsWiths": [".bin"]},),
    ({"notEndsWiths": [".safetensors"]},),
    ({"notStartsWiths": [f"{BUCKET}/"]},),
    ({"notStartsWiths": [f"{BUCKET}/weights/"]},),  # part of it left out
    ({"notStartsWiths": ["arn:aws:s3:::zero-trust-ai-dev"]},),  # a prefix wider than the bucket
    ({"notEquals": [f"{BUCKET}/weights/model.bin"]},),
    # The field twice: the second narrows what the first admits (AND).
    ({"startsWiths": ["arn:aws:s3:::"]}, {"startsWiths": [f"{ARCHIVE}/"]}),
    # Two operators in one field selector: both must hold.
    ({"startsWiths": [f"{BUCKET}/"], "notStartsWiths": [f"{BUCKET}/weights/"]},),
])
def test_selectors_that_leave_objects_out(conditions: tuple[dict[str, Any], ...]) -> None:
    assert objects(*conditions) is False


@pytest.mark.parametrize("narrowing", ["readOnly", "eventName", "eventSource", "userIdentity.arn"])
def test_a_narrowing_field_never_counts(narrowing: str) -> None:
    assert objects(**{narrowing: ["true"]}) is False


def test_the_category_and_type_must_match() -> None:
    assert selector_logs(data("AWS::S3::Object"), "Data", "AWS::DynamoDB::Table", OBJECTS) is False
    management_typed = {"fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]},
                                           {"field": "resources.type", "equals": ["AWS::S3::Object"]}]}
    assert selector_logs(management_typed, "Data", "AWS::S3::Object", OBJECTS) is False
    untyped = {"fieldSelectors": [{"field": "eventCategory", "equals": ["Data"]}]}
    assert selector_logs(untyped, "Data", "AWS::S3::Object", OBJECTS) is False


@pytest.mark.parametrize(("condition", "logged"), [
    ({"equals": [TABLE]}, True), ({"startsWiths": [TABLE[:-5]]}, True),
    ({"endsWiths": ["token-vault"]}, True),
    ({"notEquals": [TABLE]}, False), ({"notStartsWiths": [TABLE[:-5]]}, False),
    ({"notEndsWiths": ["vault"]}, False), ({"equals": [f"{TABLE}-old"]}, False),
])
def test_one_table(condition: dict[str, Any], logged: bool) -> None:
    assert selector_logs(data("AWS::DynamoDB::Table", condition), "Data", "AWS::DynamoDB::Table",
                         Target(exact=TABLE)) is logged


def test_account_wide_leaves_out_only_the_archive() -> None:
    archive_only = Target(all_but=(f"{ARCHIVE}/",))

    def logs(*conditions: dict[str, Any]) -> bool | None:
        return selector_logs(data("AWS::S3::Object", *conditions), "Data", "AWS::S3::Object", archive_only)

    assert logs() is True
    assert logs({"notStartsWiths": [f"{ARCHIVE}/"]}) is True
    assert logs({"notStartsWiths": [f"{ARCHIVE}/AWSLogs/"]}) is True
    assert logs({"notStartsWiths": [f"{ARCHIVE}/", f"{BUCKET}/"]}) is False
    assert logs({"notStartsWiths": [ARCHIVE]}) is False  # no slash: also zero-trust-ai-...-audit-x
    assert logs({"startsWiths": ["arn:aws:s3:::"]}) is False
    assert logs({"notEndsWiths": [".gz"]}) is False


def test_account_wide_leaves_out_exactly_the_functions_named() -> None:
    transform = "arn:aws:lambda:eu-west-1:111122223333:function:zero-trust-ai-dev-combined-siem-transform"
    all_but_transform = Target(all_but=(), all_but_exact=(transform,))

    def logs(*conditions: dict[str, Any]) -> bool | None:
        return selector_logs(data("AWS::Lambda::Function", *conditions), "Data", "AWS::Lambda::Function",
                             all_but_transform)

    assert logs() is True
    assert logs({"notEquals": [transform]}) is True
    assert logs({"notEquals": [transform, transform.replace("combined", "keys")]}) is False
    # A prefix, even the whole ARN, also leaves out `...-transform2`: only NotEquals may name it.
    assert logs({"notStartsWiths": [transform]}) is False
    assert logs({"notEquals": [transform.replace("eu-west-1", "us-east-1")]}) is False
    assert logs({"equals": [transform]}) is False
    assert logs({"notEquals": [UNKNOWN]}) is None


def test_values_not_known_yet() -> None:
    assert objects({"startsWiths": [UNKNOWN]}) is None
    # A bucket created in this update: what does not depend on its ARN decides already.
    unknown = Target(under="/", unknown=True)
    assert selector_logs(data("AWS::S3::Object", {"notEndsWiths": [".bin"]}), "Data", "AWS::S3::Object",
                         unknown) is False
    assert selector_logs(data("AWS::S3::Object", {"startsWiths": ["arn:aws:s3:::x/"]}), "Data",
                         "AWS::S3::Object", unknown) is None
    assert selector_logs(data("AWS::S3::Object"), "Data", "AWS::S3::Object", unknown) is True


def trail(**props: Any) -> Resource:
    return Resource(type="aws:cloudtrail/trail:Trail", name="t", urn="urn:t", props=props)


def test_a_trail_logs_a_target_when_one_selector_does() -> None:
    selectors = [data("AWS::S3::Object", {"startsWiths": [f"{ARCHIVE}/"]}), data("AWS::S3::Object")]
    assert trail_logs(trail(advancedEventSelectors=selectors), "AWS::S3::Object", OBJECTS) is True
    assert trail_logs(trail(advancedEventSelectors=selectors[:1]), "AWS::S3::Object", OBJECTS) is False
    assert trail_logs(trail(), "AWS::S3::Object", OBJECTS) is False


@pytest.mark.parametrize(("props", "logged"), [
    ({}, True),  # no selector at all: CloudTrail logs every management event
    ({"eventSelectors": [{"readWriteType": "All", "includeManagementEvents": True}]}, True),
    ({"eventSelectors": [{}]}, True),  # the provider's defaults: All, included
    ({"eventSelectors": [{"readWriteType": "ReadOnly", "includeManagementEvents": True}]}, False),
    ({"eventSelectors": [{"readWriteType": "All", "includeManagementEvents": False}]}, False),
    ({"eventSelectors": [{"readWriteType": "All", "includeManagementEvents": True,
                          "excludeManagementEventSources": ["kms.amazonaws.com"]}]}, False),
    ({"advancedEventSelectors": [{"fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}]}]},
     True),
    ({"advancedEventSelectors": [{"fieldSelectors": [
        {"field": "eventCategory", "equals": ["Management"]},
        {"field": "eventSource", "notEquals": ["kms.amazonaws.com"]}]}]}, False),
    ({"advancedEventSelectors": [{"fieldSelectors": [
        {"field": "eventCategory", "equals": ["Management"]}, {"field": "readOnly", "equals": ["true"]}]}]},
     False),
    ({"advancedEventSelectors": [{"fieldSelectors": [
        {"field": "eventCategory", "equals": ["Management", "Data"]}]}]}, True),
    ({"advancedEventSelectors": [data("AWS::S3::Object")]}, False),  # data events only
    # Advanced selectors replace the basic ones: those no longer count.
    ({"advancedEventSelectors": [data("AWS::S3::Object")], "eventSelectors": [{}]}, False),
])
def test_every_management_event(props: dict[str, Any], logged: bool) -> None:
    assert logs_every_management_event(trail(**props)) is logged
