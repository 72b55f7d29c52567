"""cloudtrail-trail-secure, cloudtrail-bucket-object-lock and cloudtrail-data-events-cover
(control: logs that last): what components.audit.AuditTrail builds passes them, directly and
through the pack's analyzer; each insecure variant fails them, and a stack without a trail
passes unless requireTrail is set."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pulumi_aws as aws
import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from components.audit import AuditTrail, AuditTrailArgs
from tests.conftest import PACK_DIR
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztpolicy.rule import Finding, Resource
from ztpolicy.rules.cloudtrail.cloudtrail_bucket_object_lock import cloudtrail_bucket_object_lock
from ztpolicy.rules.cloudtrail.cloudtrail_data_events_cover import cloudtrail_data_events_cover
from ztpolicy.rules.cloudtrail.cloudtrail_trail_secure import cloudtrail_trail_secure

REGION = "eu-west-1"
RULES = ("cloudtrail-trail-secure", "cloudtrail-bucket-object-lock", "cloudtrail-data-events-cover")
NO_CONFIG: dict[str, Any] = {}


def program() -> None:
    key = aws.kms.Key("logs-key", enable_key_rotation=True)
    models = aws.s3.Bucket("models", tags={"ztai:workload": "enclave-inference",
                                           "data-classification": "restricted"})
    vault = aws.dynamodb.Table("vault", hash_key="token", attributes=[{"name": "token", "type": "S"}],
                               tags={"ztai:purpose": "token-vault"})
    AuditTrail("audit", AuditTrailArgs(environment="prod", region=REGION, logs_key_arn=key.arn,
                                       s3_data_event_bucket_arns=(models.arn,),
                                       dynamodb_table_arns=(vault.arn,), protect=True))


@pytest.fixture(scope="module")
def recorded() -> RecordedStack:
    built = record(program, project="zero-trust-ai", stack="prod", config={}, region=REGION)
    assert not built.errors
    return built


def as_rule_input(resource: RecordedResource, changes: dict[str, Any] | None = None) -> Resource:
    """A resource as an export shows it (its outputs, else its inputs), with `changes`."""
    props = {**(resource.outputs or resource.inputs), **(changes or {})}
    return Resource(type=resource.type, name=resource.name, urn=resource.urn,
                    props=unknown_checking_proxy({k: v for k, v in props.items() if v is not None}),
                    property_dependencies={k: tuple(v) for k, v in resource.property_dependencies.items()},
                    protect=resource.protect)


def resources(stack: RecordedStack, **changes: dict[str, Any]) -> list[Resource]:
    """The stack's resources, those named in `changes` (by resource name) changed."""
    return [as_rule_input(r, changes.get(r.name)) for r in stack.resources]


def messages(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.urn.rsplit("::", 1)[-1], f.message) for f in findings]


def selectors(stack: RecordedStack) -> list[dict[str, Any]]:
    [trail] = [r for r in stack.resources if r.name == "audit-trail"]
    found = trail.outputs.get("advancedEventSelectors") or trail.inputs["advancedEventSelectors"]
    return copy.deepcopy(list(found))


# -- what AuditTrail builds passes ------------------------------------------------------------------
def test_the_audit_trail_passes_the_three_rules(recorded: RecordedStack) -> None:
    built = resources(recorded)
    assert cloudtrail_trail_secure(built, {"requireTrail": True}) == []
    assert cloudtrail_bucket_object_lock(built, NO_CONFIG) == []
    assert cloudtrail_data_events_cover(built, NO_CONFIG) == []


# -- cloudtrail-trail-secure ------------------------------------------------------------------------
@pytest.mark.parametrize("change, fragment", [
    ({"isMultiRegionTrail": False}, "is not multi-region"),
    ({"isMultiRegionTrail": None}, "is not multi-region"),
    ({"enableLogFileValidation": False}, "has no log file validation"),
    ({"enableLogFileValidation": None}, "has no log file validation"),
    ({"kmsKeyId": ""}, "not encrypted with a customer managed key"),
    ({"kmsKeyId": None}, "not encrypted with a customer managed key"),
    ({"enableLogging": False}, "is stopped"),
])
def test_an_insecure_trail_is_caught(recorded: RecordedStack, change: dict[str, Any], fragment: str) -> None:
    [(name, message)] = messages(cloudtrail_trail_secure(resources(recorded, **{"audit-trail": change}),
                                                         NO_CONFIG))
    assert name == "audit-trail" and fragment in message


def test_values_unknown_in_a_preview_are_not_findings(recorded: RecordedStack) -> None:
    unknown = {"isMultiRegionTrail": UNKNOWN_STRING_VALUE, "enableLogFileValidation": UNKNOWN_STRING_VALUE,
               "kmsKeyId": UNKNOWN_STRING_VALUE}
    assert cloudtrail_trail_secure(resources(recorded, **{"audit-trail": unknown}), NO_CONFIG) == []


def test_a_stack_without_a_trail_passes_unless_a_trail_is_required(recorded: RecordedStack) -> None:
    # The account's trail may be an organisation trail of another stack, which this one cannot see.
    without = [r for r in resources(recorded) if r.type != "aws:cloudtrail/trail:Trail"]
    assert cloudtrail_trail_secure(without, NO_CONFIG) == []
    assert cloudtrail_bucket_object_lock(without, NO_CONFIG) == []
    assert cloudtrail_data_events_cover(without, NO_CONFIG) == []
    [(name, message)] = messages(cloudtrail_trail_secure(without, {"requireTrail": True}))
    assert name == "zero-trust-ai-prod" and "declares no CloudTrail trail" in message


# -- cloudtrail-bucket-object-lock ------------------------------------------------------------------
def _lock(recorded: RecordedStack, **retention: Any) -> dict[str, Any]:
    [lock] = [r for r in recorded.resources if r.name == "audit-bucket-object-lock"]
    rule = copy.deepcopy(dict(lock.outputs or lock.inputs)["rule"])
    rule["defaultRetention"] = {k: v for k, v in {**rule["defaultRetention"], **retention}.items()
                                if v is not None}
    return {"rule": rule}


@pytest.mark.parametrize("changes, fragment", [
    (lambda r: {"audit-bucket-object-lock": _lock(r, mode="GOVERNANCE")},
     "has a default retention in GOVERNANCE mode, not COMPLIANCE"),
    (lambda r: {"audit-bucket-object-lock": _lock(r, days=None)}, "has a default retention of no days"),
    (lambda r: {"audit-bucket": {"objectLockEnabled": False}}, "has no Object Lock"),
    (lambda r: {"audit-bucket-object-lock": {"bucket": "another-bucket"}}, "no default retention"),
    (lambda r: {"audit-trail": {"s3BucketName": "someone-elses-bucket"}},
     "a bucket this stack does not declare"),
])
def test_a_trail_bucket_without_compliance_lock_is_caught(
        recorded: RecordedStack, changes: Callable[[RecordedStack], dict[str, Any]], fragment: str) -> None:
    changed = changes(recorded)
    built = resources(recorded, **changed)
    if "bucket" in changed.get("audit-bucket-object-lock", {}):
        # an export links by value: the lock names another bucket and no dependency decides
        built = [Resource(r.type, r.name, r.urn, r.props, property_dependencies={}) if
                 r.name == "audit-bucket-object-lock" else r for r in built]
    [(name, message)] = messages(cloudtrail_bucket_object_lock(built, NO_CONFIG))
    assert name == "audit-trail" and fragment in message


# -- cloudtrail-data-events-cover -------------------------------------------------------------------
def _without(recorded: RecordedStack, selector_name: str) -> dict[str, Any]:
    return {"audit-trail": {"advancedEventSelectors": [
        s for s in selectors(recorded) if s["name"] != selector_name]}}


def test_a_model_bucket_without_object_data_events_is_caught(recorded: RecordedStack) -> None:
    [(name, message)] = messages(cloudtrail_data_events_cover(
        resources(recorded, **_without(recorded, "S3 object reads and writes")), NO_CONFIG))
    assert name == "models" and "AWS::S3::Object" in message and "who read it" in message


def test_a_vault_without_data_events_is_caught(recorded: RecordedStack) -> None:
    [(name, message)] = messages(cloudtrail_data_events_cover(
        resources(recorded, **_without(recorded, "DynamoDB data events")), NO_CONFIG))
    assert name == "vault" and "AWS::DynamoDB::Table" in message


def _narrowed(recorded: RecordedStack, extra: dict[str, Any] | None = None,
              arns: dict[str, Any] | None = None) -> list[Resource]:
    changed = []
    for selector in selectors(recorded):
        if selector["name"] == "S3 object reads and writes":
            if extra:
                selector["fieldSelectors"].append(extra)
            if arns is not None:
                selector["fieldSelectors"][2] = {"field": "resources.ARN", **arns}
        changed.append(selector)
    return resources(recorded, **{"audit-trail": {"advancedEventSelectors": changed}})


@pytest.mark.parametrize("extra, arns", [
    ({"field": "readOnly", "equals": ["false"]}, None),  # writes only: reads unrecorded
    ({"field": "eventName", "equals": ["PutObject"]}, None),
    (None, {"startsWiths": ["arn:aws:s3:::another-bucket/"]}),
    (None, {"startsWiths": ["BUCKET/weights/"]}),  # one prefix of the bucket only
    (None, {"equals": ["BUCKET/weights/model.bin"]}),  # one object only
    (None, {"notStartsWiths": ["BUCKET/"]}),
])
def test_a_selector_that_logs_less_than_every_object_does_not_count(
        recorded: RecordedStack, extra: dict[str, Any] | None, arns: dict[str, Any] | None) -> None:
    [models] = [r for r in recorded.resources if r.name == "models"]
    if arns is not None:
        arns = {k: [v.replace("BUCKET", models.outputs["arn"]) for v in values] for k, values in arns.items()}
    [(name, _)] = messages(cloudtrail_data_events_cover(_narrowed(recorded, extra, arns), NO_CONFIG))
    assert name == "models"


def test_a_wider_selector_counts(recorded: RecordedStack) -> None:
    # No resources.ARN: every object of every bucket; a shorter prefix: this bucket and others.
    assert cloudtrail_data_events_cover(_narrowed(recorded, arns={"startsWiths": ["arn:aws:s3:::"]}),
                                        NO_CONFIG) == []
    everything = []
    for selector in selectors(recorded):
        if selector["name"] == "S3 object reads and writes":
            selector["fieldSelectors"] = selector["fieldSelectors"][:2]
        everything.append(selector)
    assert cloudtrail_data_events_cover(
        resources(recorded, **{"audit-trail": {"advancedEventSelectors": everything}}), NO_CONFIG) == []


def test_arns_unknown_in_a_preview_are_checked_later(recorded: RecordedStack) -> None:
    changes = {**_without(recorded, "S3 object reads and writes"), "models": {"arn": UNKNOWN_STRING_VALUE}}
    assert cloudtrail_data_events_cover(resources(recorded, **changes), NO_CONFIG) == []


# -- through the pack's analyzer --------------------------------------------------------------------
@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "prod", {}, True)) as running:
        yield running


def analyzed(resource: RecordedResource, changes: dict[str, Any] | None = None) -> AnalyzedResource:
    outputs = {**resource.outputs, **(changes or {})} if resource.custom else None
    return AnalyzedResource(
        urn=resource.urn, type=resource.type, name=resource.name,
        properties={**resource.inputs, **(changes or {})}, stack_properties=outputs,
        parent=resource.parent, dependencies=resource.dependencies,
        property_dependencies=resource.property_dependencies, protect=resource.protect,
        ignore_changes=resource.ignore_changes, custom=resource.custom)


def ours(pack: PolicyPackProcess, stack: RecordedStack, **changes: dict[str, Any]) -> set[tuple[str, str]]:
    result = analyze(pack, [analyzed(r, changes.get(r.name)) for r in stack.resources],
                     user_config=None, project="zero-trust-ai", stack="prod")
    return {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations if v.policy in RULES}


def test_the_analyzer_passes_the_audit_trail(pack: PolicyPackProcess, recorded: RecordedStack) -> None:
    assert ours(pack, recorded) == set()


def test_the_analyzer_catches_each_insecure_variant(pack: PolicyPackProcess, recorded: RecordedStack) -> None:
    assert ours(pack, recorded, **{"audit-trail": {"isMultiRegionTrail": False}}) == {
        ("cloudtrail-trail-secure", "audit-trail")}
    assert ours(pack, recorded, **{"audit-bucket-object-lock": _lock(recorded, mode="GOVERNANCE")}) == {
        ("cloudtrail-bucket-object-lock", "audit-trail")}
    assert ours(pack, recorded, **_without(recorded, "DynamoDB data events")) == {
        ("cloudtrail-data-events-cover", "vault")}


def test_the_whole_pack_on_the_audit_trail_reports_only_the_archive_policys_known_gap(
        pack: PolicyPackProcess, recorded: RecordedStack) -> None:
    # The log-archive bucket does not deny writes without SSE-KMS under the logs key: CloudTrail
    # writes its digest files with SSE-S3 (CloudTrail User Guide, "Encrypting CloudTrail log files
    # with AWS KMS keys"); it denies writes by anyone but CloudTrail instead. The S3 rule does not
    # know that shape yet, so it reports the policy (the audit trail is not wired into a stack).
    result = analyze(pack, [analyzed(r) for r in recorded.resources], user_config=None,
                     project="zero-trust-ai", stack="prod")
    audit = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations
             if v.urn.rsplit("::", 1)[-1].startswith("audit")}
    assert audit == {("s3-bucket-policy-tls-and-key-pinned", "audit-bucket-policy")}
