"""scheduler-schedule-encrypted and image-builder-component-encrypted: what the stack registers
passes (directly, in a first preview with unknowns, and from an export's outputs or inputs); a
schedule or component without a customer managed key is caught, also through the pack's gRPC
analyzer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import PACK_DIR
from tests.policy_packs.test_logging_rules import analyzed, ztai
from tests.policy_packs.test_rules import NO_CONFIG, STACK
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.imagebuilder.image_builder_component_encrypted import (
    COMPONENT,
    image_builder_component_encrypted,
)
from ztpolicy.rules.scheduler.scheduler_schedule_encrypted import SCHEDULE, scheduler_schedule_encrypted

KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def schedule(key: Any = KEY_ARN, name: str = "rotation") -> Resource:
    props: dict[str, Any] = {"name": name, "scheduleExpression": "cron(0 3 * * ? *)"}
    if key is not None:
        props["kmsKeyArn"] = key
    return Resource(type=SCHEDULE, name=name, urn=f"{STACK}{SCHEDULE}::{name}", props=props)


def component(key: Any = KEY_ARN, name: str = "base-hardening") -> Resource:
    props: dict[str, Any] = {"name": name, "platform": "Linux", "version": "1.0.1"}
    if key is not None:
        props["kmsKeyId"] = key
    return Resource(type=COMPONENT, name=name, urn=f"{STACK}{COMPONENT}::{name}", props=props)


def test_a_schedule_and_a_component_under_a_customer_managed_key_pass() -> None:
    assert scheduler_schedule_encrypted(schedule(), NO_CONFIG) == []
    assert image_builder_component_encrypted(component(), NO_CONFIG) == []


def test_a_first_preview_with_the_key_not_created_yet_passes() -> None:
    for resource, check in ((schedule(UNKNOWN_STRING_VALUE), scheduler_schedule_encrypted),
                            (component(UNKNOWN_STRING_VALUE), image_builder_component_encrypted)):
        previewed = Resource(type=resource.type, name=resource.name, urn=resource.urn,
                             props=unknown_checking_proxy(dict(resource.props)))
        assert check(previewed, NO_CONFIG) == []


@pytest.mark.parametrize("key", [None, "", "  "])
def test_without_a_key_both_are_caught(key: Any) -> None:
    assert scheduler_schedule_encrypted(schedule(key), NO_CONFIG) == [
        "schedule rotation has no kmsKeyArn: its payload is encrypted with an AWS owned key, "
        "outside any key policy and unseen in CloudTrail"]
    assert [m.split(":")[0] for m in image_builder_component_encrypted(component(key), NO_CONFIG)] == [
        "Image Builder component base-hardening has no kmsKeyId"]


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as running:
        yield running


def test_the_pack_catches_an_unencrypted_schedule_and_component(pack: PolicyPackProcess) -> None:
    resources = [schedule(), schedule(None, "bare-schedule"), component(),
                 component(None, "bare-component")]
    result = analyze(pack, [analyzed(r) for r in resources], user_config=None,
                     project="zero-trust-ai", stack="test")
    found = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations}
    assert found == {("scheduler-schedule-encrypted", "bare-schedule"),
                     ("image-builder-component-encrypted", "bare-component")}


@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_an_export_with_the_keys_removed_fails(dev_export: Path, tmp_path: Path, where: str) -> None:
    document = json.loads(dev_export.read_text())
    assert ztai("policy", "analyze", "--file", str(dev_export)).returncode == 0
    resources = document["deployment"]["resources"]
    [rotation] = [r for r in resources if r["type"] == SCHEDULE]
    components = [r for r in resources if r["type"] == COMPONENT]
    assert components
    for resource, prop in ((rotation, "kmsKeyArn"), *((c, "kmsKeyId") for c in components)):
        if where == "inputs":
            resource.pop("outputs", None)  # no outputs recorded: the rules read the inputs
        assert resource[where][prop]
        del resource[where][prop]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    run = ztai("policy", "analyze", "--file", str(tampered), "--json")
    assert run.returncode == 1
    assert {(v["policy"], v["urn"]) for v in json.loads(run.stdout)["violations"]} == {
        ("scheduler-schedule-encrypted", rotation["urn"]),
        *(("image-builder-component-encrypted", c["urn"]) for c in components)}
