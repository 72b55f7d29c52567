"""What the audit trail leaves out, as the program composes it: the SIEM streams' own buckets and
transforms (whose data events would come back to the stream through the trail's copy, in a loop),
by the names the streams really get, and nothing else of the account.

The trail is read as the policy pack reads it (ztpolicy.trails): each resource of the stacks that
share the trail's account, with the ARN AWS would give it, is either logged by one of the trail's
selectors or one of the SIEM streams' plumbing. A split deployment's key layer holds the trail for
the workload's resources too, so its trail is checked against both stacks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.stacks import record_split, record_stack
from ztai.preview.recorder import RecordedResource, RecordedStack
from ztpolicy.rule import Resource
from ztpolicy.trails import Target, trail_logs

REGION, ACCOUNT = "eu-west-1", "111122223333"  # the stacks' Region, the mocks' account
BUCKET, TABLE, FUNCTION = "aws:s3/bucket:Bucket", "aws:dynamodb/table:Table", "aws:lambda/function:Function"
OBJECT_EVENTS, TABLE_EVENTS = "AWS::S3::Object", "AWS::DynamoDB::Table"
FUNCTION_EVENTS = "AWS::Lambda::Function"
# What the trail must cover whatever else changes: the weights, the training data, the vault.
REQUIRED = {"inference-fleet-models", "training-data-bucket", "token-vault-table"}


class Account:
    """The trail of an account and every resource the account's stacks declare."""

    def __init__(self, trail_stack: RecordedStack, *others: RecordedStack) -> None:
        [trail] = [r for r in trail_stack.resources if r.type == "aws:cloudtrail/trail:Trail"]
        self.trail = Resource(type=trail.type, name=trail.name, urn=trail.urn, props=dict(trail.outputs))
        self.resources = [r for stack in (trail_stack, *others) for r in stack.resources]

    def of_type(self, kind: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == kind]


@pytest.fixture(scope="module")
def accounts() -> dict[str, Account]:
    split = record_split("prod")
    return {"dev": Account(record_stack("dev")),
            "prod": Account(split.sealed_keys, split.workload),
            "prod-first": Account(split.first_keys, split.workload)}


def name_of(resource: RecordedResource) -> str:
    return str(resource.outputs.get("bucket") or resource.outputs["name"])


def logged(account: Account, resource: RecordedResource) -> bool | None:
    """Does the trail log every data event on `resource`, named by the ARN AWS gives it? (The
    mocks' ARNs of functions and tables are not AWS's.)"""
    name = name_of(resource)
    targets: dict[str, tuple[str, Target]] = {
        BUCKET: (OBJECT_EVENTS, Target(under=f"arn:aws:s3:::{name}/")),
        TABLE: (TABLE_EVENTS, Target(exact=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")),
        FUNCTION: (FUNCTION_EVENTS, Target(exact=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"))}
    resource_type, target = targets[resource.type]
    return trail_logs(account.trail, resource_type, target)


def siem_plumbing(account: Account) -> set[str]:
    """The names of the SIEM streams' backup buckets, their access-log buckets and transforms, as
    the streams declare them (components/siem_stream.py), and of the detection functions beside
    them with their state buckets (components/detection.py)."""
    return {name_of(r) for r in account.resources
            if r.name in ("siem-bucket", "siem-access-logs", "siem-transform-function",
                          "detect-state", "detect-state-access-logs", "detect-function-function")}


@pytest.mark.parametrize(("which", "streams"), [
    ("dev", ["zero-trust-ai-dev-combined-siem"]),
    ("prod", ["zero-trust-ai-prod-keys-siem", "zero-trust-ai-prod-workload-siem"]),
    ("prod-first", ["zero-trust-ai-prod-keys-siem", "zero-trust-ai-prod-workload-siem"]),
])
def test_the_trail_leaves_out_each_stream_of_its_account(accounts: dict[str, Account], which: str,
                                                         streams: list[str]) -> None:
    account = accounts[which]
    plumbing = siem_plumbing(account)
    assert plumbing == {name for stream in streams
                        for name in (f"{stream}-{ACCOUNT}", f"{stream}-a-{ACCOUNT}", f"{stream}-transform",
                                     f"{stream}-d-{ACCOUNT}", f"{stream}-l-{ACCOUNT}", f"{stream}-detect")}
    resources = [r for kind in (BUCKET, FUNCTION) for r in account.of_type(kind) if name_of(r) in plumbing]
    assert len(resources) == 6 * len(streams)
    assert [name_of(r) for r in resources if logged(account, r) is not False] == []


@pytest.mark.parametrize("which", ["dev", "prod", "prod-first"])
def test_every_other_bucket_table_and_function_is_logged(accounts: dict[str, Account], which: str) -> None:
    account = accounts[which]
    plumbing = siem_plumbing(account)
    archives = {f"zero-trust-ai-{which.split('-')[0]}-audit{infix}-{ACCOUNT}" for infix in ("", "-access")}
    checked: dict[str, Any] = {}
    for kind in (BUCKET, TABLE, FUNCTION):
        for resource in account.of_type(kind):
            if name_of(resource) in plumbing | archives:
                continue
            checked[resource.name] = logged(account, resource)
    assert set(checked) >= REQUIRED
    # Every function of the account but the transforms and detection functions: the JIT's, rotation,
    # the image rollout.
    functions = {r.name for r in account.of_type(FUNCTION) if name_of(r) not in plumbing}
    assert "jit-api-function" in functions and len(functions) >= 3
    assert {name: answer for name, answer in checked.items() if answer is not True} == {}


# -- what the trail leaves out is watched instead (review50 M2) ---------------------------------------

def watch_rules(account: Account) -> dict[str, dict[str, Any]]:
    import json
    return {str(r.inputs["name"]): json.loads(r.inputs["eventPattern"])
            for r in account.of_type("aws:cloudwatch/eventRule:EventRule")
            if str(r.inputs["name"]).startswith("zero-trust-ai-")}


@pytest.mark.parametrize("which", ["prod", "prod-first"])
def test_every_stream_the_trail_leaves_out_is_watched(accounts: dict[str, Account], which: str) -> None:
    # The key layer's trail leaves out the workload stream's transform invocations and bucket
    # objects: a change to that stream or transform pages (high: the workload's deployer changes
    # its own transform in a release), next to the key layer's own watches (critical).
    rules = watch_rules(accounts[which])
    other_stream = rules["zero-trust-ai-prod-audit-other-stream-used"]["detail"]
    assert other_stream["requestParameters"]["deliveryStreamName"] == ["zero-trust-ai-prod-workload-siem"]
    other_transform = rules["zero-trust-ai-prod-audit-other-transform-used"]["detail"]
    assert other_transform["requestParameters"]["functionName"] == [
        {"suffix": "zero-trust-ai-prod-workload-siem-transform"}]
    assert {"prefix": "UpdateFunctionCode"} in other_transform["eventName"]
    own = rules["zero-trust-ai-prod-audit-stream-used"]["detail"]
    assert own["requestParameters"]["deliveryStreamName"] == ["zero-trust-ai-prod-keys-siem"]
    targets = {str(r.name): r.inputs["arn"] for r in accounts[which].of_type(
        "aws:cloudwatch/eventTarget:EventTarget")}
    high = targets["audit-watch-other-stream-notify"]
    assert targets["audit-watch-other-transform-notify"] == high
    assert high.endswith("alarms-high") and targets["audit-watch-stream-notify"].endswith("alarms-critical")


def test_a_combined_stack_watches_its_one_stream_once(accounts: dict[str, Account]) -> None:
    rules = watch_rules(accounts["dev"])
    assert not [name for name in rules if "-other-" in name]
    assert rules["zero-trust-ai-dev-audit-stream-used"]["detail"]["requestParameters"][
        "deliveryStreamName"] == ["zero-trust-ai-dev-combined-siem"]
