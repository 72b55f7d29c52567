"""The preview's mocks answer with the shapes AWS uses, and refuse what they cannot answer."""

from __future__ import annotations

import pytest
from pulumi.runtime import MockCallArgs, MockResourceArgs

from ztai.preview.mocks import PREVIEW_ACCOUNT_ID, AwsMocks


def created(mocks: AwsMocks, token: str, logical_name: str,
            **inputs: object) -> tuple[str | None, dict[str, object]]:
    return mocks.new_resource(MockResourceArgs(typ=token, name=logical_name, inputs=dict(inputs)))


def test_ids_and_arns_carry_service_partition_region_and_account() -> None:
    mocks = AwsMocks("eu-west-1")
    vpc_id, vpc = created(mocks, "aws:ec2/vpc:Vpc", "data-vpc", cidrBlock="10.0.0.0/16")
    assert vpc_id is not None and vpc_id.startswith("vpc-") and len(vpc_id) == 21
    assert vpc["arn"] == f"arn:aws:ec2:eu-west-1:{PREVIEW_ACCOUNT_ID}:vpc/{vpc_id}"
    assert str(vpc["defaultNetworkAclId"]).startswith("acl-")
    key_id, key = created(mocks, "aws:kms/key:Key", "k")
    assert key["arn"] == f"arn:aws:kms:eu-west-1:{PREVIEW_ACCOUNT_ID}:key/{key_id}"
    _, role = created(mocks, "aws:iam/role:Role", "r", path="/service/")
    assert str(role["arn"]).startswith(f"arn:aws:iam::{PREVIEW_ACCOUNT_ID}:role/service/r-")


def test_ids_are_stable_between_runs() -> None:
    first = created(AwsMocks("eu-west-1"), "aws:ec2/subnet:Subnet", "s")[0]
    assert first == created(AwsMocks("eu-west-1"), "aws:ec2/subnet:Subnet", "s")[0]


def test_other_partitions() -> None:
    _, group = created(AwsMocks("cn-north-1"), "aws:cloudwatch/logGroup:LogGroup", "g", name="/x")
    assert group["arn"] == f"arn:aws-cn:logs:cn-north-1:{PREVIEW_ACCOUNT_ID}:log-group:/x"
    partition = AwsMocks("us-gov-west-1").call(
        MockCallArgs("aws:index/getPartition:getPartition", {}, ""))
    assert partition["partition"] == "aws-us-gov"


def test_zones_match_the_region() -> None:
    zones = AwsMocks("us-west-1").call(MockCallArgs(
        "aws:index/getAvailabilityZones:getAvailabilityZones", {"state": "available"}, ""))
    assert zones["names"] == ["us-west-1a", "us-west-1b"]


def test_unknown_invokes_fail_loudly() -> None:
    with pytest.raises(NotImplementedError, match="no mock for invoke aws:s3/getBucket:getBucket"):
        AwsMocks("eu-west-1").call(MockCallArgs("aws:s3/getBucket:getBucket", {}, ""))


def test_ssm_parameters_answer_like_parameter_store() -> None:
    mocks = AwsMocks("eu-west-1")
    name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    public = mocks.call(MockCallArgs("aws:ssm/getParameter:getParameter", {"name": name}, ""))
    assert str(public["value"]).startswith("ami-") and len(str(public["value"])) == 21
    assert public["insecureValue"] == public["value"] and public["type"] == "String"
    assert public["arn"] == f"arn:aws:ssm:eu-west-1::parameter{name}"  # public: no account
    other = mocks.call(MockCallArgs("aws:ssm/getParameter:getParameter",
                                    {"name": name.replace("x86_64", "arm64")}, ""))
    assert other["value"] != public["value"]
    parameter_id, parameter = created(mocks, "aws:ssm/parameter:Parameter", "p", name="/ztai/ami-id")
    assert parameter_id == "/ztai/ami-id"
    assert parameter["arn"] == f"arn:aws:ssm:eu-west-1:{PREVIEW_ACCOUNT_ID}:parameter/ztai/ami-id"
    _, rule = created(mocks, "aws:cloudwatch/eventRule:EventRule", "r", name="image-available")
    assert rule["arn"] == f"arn:aws:events:eu-west-1:{PREVIEW_ACCOUNT_ID}:rule/image-available"
