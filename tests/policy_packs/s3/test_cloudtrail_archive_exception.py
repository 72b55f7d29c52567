"""The audit trail's archive may keep an SSE-S3 default (CloudTrail writes digest files with SSE-S3)
only in the shape `ztpolicy.buckets.cloudtrail_archive_only` describes: a trail of the stack with a
KMS key names it, only CloudTrail writes it, and each Allow to CloudTrail is pinned to a trail or
this account."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_policy.proxy import unknown_checking_proxy

from tests.components.test_audit import build
from tests.policy_packs.s3.test_bucket_rules import as_resources
from ztpolicy.rule import Resource
from ztpolicy.rules.s3.s3_bucket_encrypted_with_cmk import s3_bucket_encrypted_with_cmk
from ztpolicy.rules.s3.s3_bucket_policy_tls_and_key_pinned import s3_bucket_policy_tls_and_key_pinned

POLICY = "aws:s3/bucketPolicy:BucketPolicy"
ARCHIVE_POLICY = "audit-bucket-policy"


@pytest.fixture(scope="module")
def archive() -> list[Resource]:
    return as_resources(build(), "outputs")


def findings_on_the_archive(resources: list[Resource]) -> list[str]:
    found = [*s3_bucket_encrypted_with_cmk(resources, {}),
             *s3_bucket_policy_tls_and_key_pinned(resources, {})]
    return [f.message for f in found if "audit-bucket " in f.message or "audit-bucket'" in f.message]


def with_policy(resources: list[Resource], edit: Any) -> list[Resource]:
    out = []
    for r in resources:
        if r.type == POLICY and r.name == ARCHIVE_POLICY:
            document = json.loads(r.props["policy"])
            edit(document["Statement"])
            r = Resource(type=r.type, name=r.name, urn=r.urn, property_dependencies=r.property_dependencies,
                         props=unknown_checking_proxy({**dict(r.props), "policy": json.dumps(document)}))
        out.append(r)
    return out


def test_the_archive_as_built_takes_the_exception(archive: list[Resource]) -> None:
    assert findings_on_the_archive(archive) == []


def test_an_allow_to_cloudtrail_without_a_source_pin_loses_it(archive: list[Resource]) -> None:
    # Any account's trail could then write here (the confused deputy).
    def unpin(statements: list[dict[str, Any]]) -> None:
        for statement in statements:
            if statement["Sid"] == "CloudTrailWrite":
                statement["Condition"] = {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}

    assert findings_on_the_archive(with_policy(archive, unpin))


def test_a_writer_besides_cloudtrail_loses_it(archive: list[Resource]) -> None:
    def admit_a_role(statements: list[dict[str, Any]]) -> None:
        statements.append({"Sid": "Other", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/x"},
                           "Action": "s3:PutObject", "Resource": "*"})

    assert findings_on_the_archive(with_policy(archive, admit_a_role))
