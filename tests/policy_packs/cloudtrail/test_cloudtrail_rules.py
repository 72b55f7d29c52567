"""cloudtrail-trail-secure, cloudtrail-bucket-object-lock and cloudtrail-data-events-cover
(control: logs that last), on the program as it composes: the dev stack (combined) and prod's key
layer (before the workload's grants, and sealed) pass them, and prod's workload declares no trail;
each way a stack could keep a trail that records too little (the hostile review's probes) is a
finding. Checked directly on inputs (a preview) and on outputs (an export), and through the pack's
analyzer with each stack's own config."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from typing import Any

import pytest

from components import audit, siem_stream, token_vault, training_data
from tests.conftest import PACK_DIR, ROOT
from tests.support.stacks import record_split, record_stack
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztai.policy.config import PolicyConfigError
from ztai.preview.recorder import RecordedStack
from ztai.stackfile import load_stack
from ztpolicy.rule import Finding, Resource
from ztpolicy.rules import ALL_RULES
from ztpolicy.rules.cloudtrail import cloudtrail_data_events_cover as cover_module
from ztpolicy.rules.cloudtrail.cloudtrail_bucket_object_lock import cloudtrail_bucket_object_lock
from ztpolicy.rules.cloudtrail.cloudtrail_data_events_cover import cloudtrail_data_events_cover
from ztpolicy.rules.cloudtrail.cloudtrail_trail_secure import cloudtrail_trail_secure
from ztpolicy.stack import STACK_SETTINGS, from_values

RULES = ("cloudtrail-trail-secure", "cloudtrail-bucket-object-lock", "cloudtrail-data-events-cover")
GRANTS = "zero-trust-ai:workloadGrantsFile"
TRAIL, LOCK, KEY_POLICY = "audit-trail", "audit-bucket-object-lock", "keys-audit-policy"
# The key layer's stack resource, where a finding about the whole stack is reported.
KEYS_ROOT = "zero-trust-ai-prod-keys"
MODELS, TRAINING, VAULT = "inference-fleet-models", "training-data-bucket", "token-vault-table"
PROD_POLICY = json.loads((ROOT / "stacks" / "policy" / "prod-keys.json").read_text(encoding="utf-8"))
Edit = Callable[[str, dict[str, Any]], None]
FOREIGN_KEY = "arn:aws:kms:eu-west-1:999988887777:key/0b1c2d3e-aaaa-bbbb-cccc-000011112222"
ACCOUNT = "111122223333"  # the mocks' account
# The key layer's SIEM transform, and a function of the account that must stay logged.
TRANSFORM = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:zero-trust-ai-prod-keys-siem-transform"
JIT_API = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:zero-trust-ai-prod-jit-api"


class Stacks:
    """The recordings, each with the stack config it is checked with."""

    def __init__(self) -> None:
        split = record_split("prod")
        self.dev = record_stack("dev")
        self.keys, self.sealed, self.workload = split.first_keys, split.sealed_keys, split.workload
        keys_config = dict(load_stack(ROOT, "prod-keys").config)
        self.configs: dict[str, dict[str, str]] = {
            "dev": dict(load_stack(ROOT, "dev").config),
            "keys": {**keys_config, GRANTS: ""},
            "sealed": {**keys_config, GRANTS: "stacks/grants/prod.json"},
            "workload": dict(load_stack(ROOT, "prod").config)}

    def stack(self, which: str) -> RecordedStack:
        return {"dev": self.dev, "keys": self.keys, "sealed": self.sealed, "workload": self.workload}[which]


@pytest.fixture(scope="module")
def stacks() -> Stacks:
    return Stacks()


def rules_see(stack: RecordedStack, edit: Edit | None = None, *, form: str = "outputs") -> list[Resource]:
    """The stack as a rule sees it: its inputs (a preview) or its outputs (an export), `edit`ed."""
    found = []
    for r in stack.resources:
        if not r.custom and r.type != "pulumi:pulumi:Stack":
            continue
        props = copy.deepcopy(dict(r.outputs if form == "outputs" or r.type == "pulumi:pulumi:Stack"
                                   else r.inputs))
        before = copy.deepcopy(props)
        if edit is not None:
            edit(r.name, props)
        found.append(Resource(type=r.type, name=r.name, urn=r.urn, props=props, parent=r.parent or None,
                              property_dependencies=dependencies(r.property_dependencies, before, props)))
    return found


def dependencies(recorded: Mapping[str, Any], before: Mapping[str, Any],
                 after: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The property dependencies of an edited resource: a property the edit set is a literal now,
    which the engine records with no dependency."""
    return {k: () if before.get(k) != after.get(k) else tuple(v) for k, v in recorded.items()}


def config(stacks: Stacks, which: str, **more: Any) -> dict[str, Any]:
    return {STACK_SETTINGS: from_values(stacks.configs[which]), **more}


def check(stacks: Stacks, which: str, edit: Edit | None = None, *, form: str = "outputs",
          layer_of: str | None = None, **more: Any) -> set[tuple[str, str]]:
    """(rule, resource name) of every finding of the three rules on the edited stack."""
    found = rules_see(stacks.stack(which), edit, form=form)
    settings = config(stacks, layer_of or which, **more)
    results: list[tuple[str, list[Finding]]] = [
        ("cloudtrail-trail-secure", cloudtrail_trail_secure(found, settings)),
        ("cloudtrail-bucket-object-lock", cloudtrail_bucket_object_lock(found, settings)),
        ("cloudtrail-data-events-cover", cloudtrail_data_events_cover(found, settings))]
    return {(rule, f.urn.rsplit("::", 1)[-1]) for rule, findings in results for f in findings}


def messages(stacks: Stacks, which: str, rule: Callable[..., list[Finding]], edit: Edit | None = None,
             **more: Any) -> list[str]:
    return [f.message for f in rule(rules_see(stacks.stack(which), edit), config(stacks, which, **more))]


# -- edits: what an insider (or a careless change) would do --------------------------------------------
def on(name: str, change: Callable[[dict[str, Any]], None]) -> Edit:
    def edit(resource: str, props: dict[str, Any]) -> None:
        if resource == name:
            change(props)
    return edit


def selectors(change: Callable[[list[dict[str, Any]]], None]) -> Edit:
    return on(TRAIL, lambda props: change(props["advancedEventSelectors"]))


def selector(props: list[dict[str, Any]], starts: str) -> dict[str, Any]:
    return next(s for s in props if s["name"].startswith(starts))


def management(change: Callable[[dict[str, Any]], None]) -> Edit:
    return selectors(lambda found: change(selector(found, "Every management event")))


def s3_selector(change: Callable[[dict[str, Any]], None]) -> Edit:
    return selectors(lambda found: change(selector(found, "Every S3 object")))


def no_management(found: list[dict[str, Any]]) -> None:
    found.remove(selector(found, "Every management event"))


def without_kms(found: dict[str, Any]) -> None:
    found["fieldSelectors"].append({"field": "eventSource", "notEquals": ["kms.amazonaws.com"]})


def read_only(found: dict[str, Any]) -> None:
    found["fieldSelectors"].append({"field": "readOnly", "equals": ["true"]})


def set_props(name: str, **values: Any) -> Edit:
    return on(name, lambda props: props.update(values))


def retention(days: int) -> Edit:
    return on(LOCK, lambda props: props["rule"]["defaultRetention"].update(days=days))


def arn_of(stack: RecordedStack, name: str) -> str:
    return str(next(r for r in stack.resources if r.name == name).outputs["arn"])


def s3_arn_condition(condition: dict[str, Any]) -> Edit:
    """The S3 selector with one more `resources.ARN` field selector (a field given twice)."""
    return s3_selector(lambda found: found["fieldSelectors"].append({"field": "resources.ARN", **condition}))


def excluded(prefix: str) -> Edit:
    """The S3 selector leaves out one more prefix (NotStartsWith)."""
    return s3_selector(lambda found: found["fieldSelectors"][2]["notStartsWiths"].append(prefix))


def arn_condition(starts: str, operator: str, value: str) -> Edit:
    """The selector named `starts...` leaves out one more ARN (its `resources.ARN` field selector,
    added when it has none)."""
    def change(found: dict[str, Any]) -> None:
        conditions = [f for f in found["fieldSelectors"] if f["field"] == "resources.ARN"]
        if not conditions:
            conditions = [{"field": "resources.ARN"}]
            found["fieldSelectors"].append(conditions[0])
        conditions[0].setdefault(operator, []).append(value)
    return selectors(lambda found: change(selector(found, starts)))


def archive_policy(keep: Callable[[dict[str, Any]], Any]) -> Edit:
    """The archive's bucket policy, each statement passed through `keep` (False drops it)."""
    def change(props: dict[str, Any]) -> None:
        document = json.loads(props["policy"])
        document["Statement"] = [s for s in document["Statement"] if keep(s) is not False]
        props["policy"] = json.dumps(document)
    return on("audit-bucket-policy", change)


def conditional_deletion(statement: dict[str, Any]) -> None:
    if statement["Sid"] == "DenyDeletion":
        statement["Condition"] = {"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/x"}}


def bucket_only_deletion(statement: dict[str, Any]) -> None:
    if statement["Sid"] == "DenyDeletion":
        statement["Resource"] = [r for r in statement["Resource"] if not r.endswith("/*")]


def deletion_resource(resource: Callable[[str], Any]) -> Callable[[dict[str, Any]], None]:
    """DenyDeletion's Resource rewritten from the bucket's ARN (its first entry)."""
    def change(statement: dict[str, Any]) -> None:
        if statement["Sid"] == "DenyDeletion":
            statement["Resource"] = resource(statement["Resource"][0])
    return change


def with_second_policy(stack: RecordedStack, *, permissive: bool = True) -> RecordedStack:
    """The archive with a second aws.s3.BucketPolicy: one that allows the account everything, or a
    copy of the first (still two policies fighting over one bucket)."""
    changed = copy.deepcopy(stack)
    first = next(r for r in changed.resources if r.name == "audit-bucket-policy")
    second = copy.deepcopy(first)
    second.name, second.urn = "audit-bucket-policy-2", first.urn + "-2"
    if permissive:
        arn = json.loads(first.inputs["policy"])["Statement"][0]["Resource"][0]
        document = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "Everything", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
            "Action": "s3:*", "Resource": [arn, f"{arn}/*"]}]})
        second.inputs["policy"] = second.outputs["policy"] = document
    changed.resources.append(second)
    return changed


def without_trail(stack: RecordedStack) -> RecordedStack:
    changed = copy.deepcopy(stack)
    changed.resources = [r for r in changed.resources if r.type != "aws:cloudtrail/trail:Trail"]
    return changed


def without_deny(props: dict[str, Any]) -> None:
    document = json.loads(props["policy"])
    document["Statement"] = [s for s in document["Statement"] if s.get("Effect") != "Deny"]
    props["policy"] = json.dumps(document)


# -- the program as it composes passes ---------------------------------------------------------------
@pytest.mark.parametrize("form", ["inputs", "outputs"])
@pytest.mark.parametrize("which", ["dev", "keys", "sealed", "workload"])
def test_the_shipped_stacks_pass(stacks: Stacks, which: str, form: str) -> None:
    policy = PROD_POLICY["cloudtrail-bucket-object-lock"] if which in ("keys", "sealed") else {}
    assert check(stacks, which, form=form, **policy) == set()


def test_the_shipped_stacks_hold_what_the_rules_look_for(stacks: Stacks) -> None:
    # The combined stack's targets are found (so its pass means they are covered), the workload
    # declares no trail, and the key layer's two-person key is checked on its sealed policy.
    names = {target.name for target, _, _ in cover_module._combined_targets(rules_see(stacks.dev))}
    assert names == {MODELS, TRAINING, VAULT}
    assert not [r for r in stacks.workload.resources if r.type == "aws:cloudtrail/trail:Trail"]
    assert any(r.name == KEY_POLICY for r in stacks.sealed.resources)
    assert not any(r.name == KEY_POLICY for r in stacks.keys.resources)
    assert PROD_POLICY == {"cloudtrail-bucket-object-lock": {"minRetentionDays": 365}}


def test_the_pack_names_the_components_tags() -> None:
    assert cover_module.TRAINING_DATA_TAG == training_data.PURPOSE_TAG
    assert cover_module.VAULT_TAG == ("ztai:purpose", token_vault.CONTEXT_PURPOSE)


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_the_pack_names_the_siem_streams_plumbing_as_the_trail_does(environment: str) -> None:
    for layer in cover_module.SPLIT_LAYERS:
        assert (cover_module.siem_stream_name(environment, layer)
                == siem_stream.stream_name(environment, layer))
    streams = siem_stream.account_streams(environment, "keys")
    buckets, functions = audit.siem_exclusions("aws", "eu-west-1", ACCOUNT, streams)
    prefixes, allowed = cover_module.siem_plumbing("aws", "eu-west-1", ACCOUNT, [environment])
    assert sorted(prefixes) == [f"{arn}/" for arn in buckets]
    assert sorted(allowed) == functions


def test_the_key_layer_may_leave_out_exactly_the_siem_streams_plumbing(stacks: Stacks) -> None:
    # The shipped key layer does leave it out (so its pass above is this rule accepting it), and
    # each exclusion taken alone is still accepted; without the trail's ARN nothing is decided.
    [trail] = [r for r in rules_see(stacks.sealed) if r.name == TRAIL]
    fields = {s["name"].split(" ")[1]: s["fieldSelectors"] for s in trail.props["advancedEventSelectors"]}
    # The transforms and the detection functions beside them (components/detection.py).
    detect = TRANSFORM.replace("-transform", "-detect")
    assert {"field": "resources.ARN", "notEquals": [
        detect, TRANSFORM, detect.replace("-keys-", "-workload-"),
        TRANSFORM.replace("-keys-", "-workload-")]} in fields["Lambda"]
    [objects] = [f for f in fields["S3"] if f["field"] == "resources.ARN"]
    assert f"arn:aws:s3:::zero-trust-ai-prod-workload-siem-a-{ACCOUNT}/" in objects["notStartsWiths"]
    assert check(stacks, "sealed", arn_condition("Every Lambda", "notEquals", TRANSFORM)) == set()
    one_folder = f"arn:aws:s3:::zero-trust-ai-prod-keys-siem-{ACCOUNT}/x/"
    assert check(stacks, "sealed", excluded(one_folder)) == set()
    # The same trail checked as another environment's: its prod SIEM names are no longer accepted.
    other = {**stacks.configs["sealed"], "zero-trust-ai:environment": "staging"}
    staged = cloudtrail_data_events_cover(rules_see(stacks.sealed), {STACK_SETTINGS: from_values(other)})
    assert [f.urn.rsplit("::", 1)[-1] for f in staged] == [KEYS_ROOT]
    assert "every S3 object" in staged[0].message and "every Lambda function" in staged[0].message
    # A key layer whose config names no environment: any environment's names, still this account's.
    unnamed = {STACK_SETTINGS: from_values({"zero-trust-ai:layer": "keys"})}
    dev_bucket = excluded(f"arn:aws:s3:::zero-trust-ai-dev-keys-siem-{ACCOUNT}/")
    assert cloudtrail_data_events_cover(rules_see(stacks.sealed, dev_bucket), unnamed) == []
    foreign = excluded("arn:aws:s3:::zero-trust-ai-dev-keys-siem-999988887777/")
    assert len(cloudtrail_data_events_cover(rules_see(stacks.sealed, foreign), unnamed)) == 1
    # A trail ARN that is not a trail's: no account or Region to name the streams' by, none accepted.
    odd = on(TRAIL, lambda props: props.update(arn="arn:aws:cloudtrail:eu-west-1:trail"))
    [finding] = messages(stacks, "sealed", cloudtrail_data_events_cover, odd)
    assert "every S3 object" in finding and "every Lambda function" in finding


# -- each failing variant, directly, on inputs and on outputs ------------------------------------------
def _cases(stacks: Stacks) -> list[tuple[str, str, Edit | None, dict[str, Any], set[tuple[str, str]]]]:
    dev_models, dev_training = arn_of(stacks.dev, MODELS), arn_of(stacks.dev, TRAINING)
    workload_models = arn_of(stacks.workload, MODELS)
    vault = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/zero-trust-ai-prod-token-vault"
    secure, lock, cover = RULES
    return [
        ("no management selector", "dev", selectors(no_management), {}, {(secure, TRAIL)}),
        ("no management selector (key layer)", "keys", selectors(no_management), {}, {(secure, TRAIL)}),
        ("eventSource NotEquals kms", "dev", management(without_kms), {}, {(secure, TRAIL)}),
        ("readOnly true only", "sealed", management(read_only), {}, {(secure, TRAIL)}),
        ("global service events off", "dev", set_props(TRAIL, includeGlobalServiceEvents=False), {},
         {(secure, TRAIL)}),
        ("single region", "keys", set_props(TRAIL, isMultiRegionTrail=False), {}, {(secure, TRAIL)}),
        ("no validation", "dev", set_props(TRAIL, enableLogFileValidation=False), {}, {(secure, TRAIL)}),
        ("stopped", "dev", set_props(TRAIL, enableLogging=False), {}, {(secure, TRAIL)}),
        ("no log group", "dev", set_props(TRAIL, cloudWatchLogsGroupArn=""), {}, {(secure, TRAIL)}),
        ("log group not of the stack", "dev",
         set_props(TRAIL, cloudWatchLogsGroupArn="arn:aws:logs:eu-west-1:111122223333:log-group:"
                                                 "/elsewhere:*"),
         {}, {(secure, TRAIL)}),
        ("log group of another account (key layer)", "sealed",
         set_props(TRAIL, cloudWatchLogsGroupArn="arn:aws:logs:eu-west-1:999988887777:log-group:"
                                                 "/zero-trust-ai/prod/cloudtrail:*"),
         {}, {(secure, TRAIL)}),
        ("no log role", "keys", set_props(TRAIL, cloudWatchLogsRoleArn=""), {}, {(secure, TRAIL)}),
        ("one insight only", "dev",
         set_props(TRAIL, insightSelectors=[{"insightType": "ApiCallRateInsight"}]),
         {}, {(secure, TRAIL)}),
        ("key not of the stack", "dev",
         set_props(TRAIL, kmsKeyId=FOREIGN_KEY),
         {}, {(secure, TRAIL)}),
        ("key without the two-person deny", "dev", on(KEY_POLICY, without_deny), {}, {(secure, KEY_POLICY)}),
        ("sealed key without the two-person deny", "sealed", on(KEY_POLICY, without_deny), {},
         {(secure, KEY_POLICY)}),
        ("retention 1 day, 365 required", "sealed", retention(1), {"minRetentionDays": 365}, {(lock, TRAIL)}),
        ("dev's 1 day, 365 required", "dev", None, {"minRetentionDays": 365}, {(lock, TRAIL)}),
        ("governance mode", "dev",
         on(LOCK, lambda p: p["rule"]["defaultRetention"].update(mode="GOVERNANCE")),
         {}, {(lock, TRAIL)}),
        ("archive policy without DenyDeletion", "sealed",
         archive_policy(lambda st: st["Sid"] != "DenyDeletion"), {}, {(lock, TRAIL)}),
        ("DenyDeletion with a condition", "dev", archive_policy(conditional_deletion), {}, {(lock, TRAIL)}),
        ("DenyDeletion on the bucket only", "dev", archive_policy(bucket_only_deletion), {}, {(lock, TRAIL)}),
        ("DenyDeletion on one object only", "dev",
         archive_policy(deletion_resource(lambda arn: [arn, f"{arn}/x"])), {}, {(lock, TRAIL)}),
        ("DenyDeletion on one-character keys", "dev",
         archive_policy(deletion_resource(lambda arn: f"{arn}/?")), {}, {(lock, TRAIL)}),
        ("DenyDeletion on the AWSLogs prefix only", "sealed",
         archive_policy(deletion_resource(lambda arn: f"{arn}/AWSLogs/*")), {}, {(lock, TRAIL)}),
        ("model bucket left out", "dev", excluded(f"{dev_models}/"), {}, {(cover, MODELS)}),
        ("a second resources.ARN narrowing", "dev", s3_arn_condition({"startsWiths": [f"{dev_training}/"]}),
         {}, {(cover, MODELS)}),
        ("a second resources.ARN narrowing (key layer)", "keys",
         s3_arn_condition({"startsWiths": ["arn:aws:s3:::zero-trust-ai-prod-"]}), {}, {(cover, KEYS_ROOT)}),
        ("a NotEndsWith", "dev", s3_arn_condition({"notEndsWiths": [".safetensors"]}), {},
         {(cover, MODELS), (cover, TRAINING)}),
        ("a NotEndsWith (key layer)", "keys", s3_arn_condition({"notEndsWiths": [".safetensors"]}), {},
         {(cover, KEYS_ROOT)}),
        ("objects read only", "dev", s3_selector(read_only), {}, {(cover, MODELS), (cover, TRAINING)}),
        ("vault not logged", "dev", selectors(lambda f: f.remove(selector(f, "Every DynamoDB"))), {},
         {(cover, VAULT)}),
        ("functions not logged (key layer)", "sealed",
         selectors(lambda f: f.remove(selector(f, "Every Lambda"))),
         {}, {(cover, KEYS_ROOT)}),
        ("an exclusion wider than the archive (key layer)", "keys",
         excluded("arn:aws:s3:::zero-trust-ai-prod"),
         {}, {(cover, KEYS_ROOT)}),
        ("the model bucket left out (key layer)", "sealed", excluded(f"{workload_models}/"), {},
         {(cover, KEYS_ROOT)}),
        ("a SIEM prefix wider than its bucket (key layer)", "sealed",
         excluded("arn:aws:s3:::zero-trust-ai-prod-keys-siem-"), {}, {(cover, KEYS_ROOT)}),
        ("another account's SIEM bucket (key layer)", "sealed",
         excluded("arn:aws:s3:::zero-trust-ai-prod-keys-siem-999988887777/"), {}, {(cover, KEYS_ROOT)}),
        ("another environment's SIEM bucket (key layer)", "sealed",
         excluded(f"arn:aws:s3:::zero-trust-ai-dev-keys-siem-{ACCOUNT}/"), {}, {(cover, KEYS_ROOT)}),
        ("the vault left out (key layer)", "sealed", arn_condition("Every DynamoDB", "notEquals", vault),
         {}, {(cover, KEYS_ROOT)}),
        ("another function left out (key layer)", "sealed",
         arn_condition("Every Lambda", "notEquals", JIT_API), {}, {(cover, KEYS_ROOT)}),
        ("the transform by prefix (key layer)", "sealed",
         arn_condition("Every Lambda", "notStartsWiths", TRANSFORM), {}, {(cover, KEYS_ROOT)}),
        ("the transform of another Region (key layer)", "keys",
         arn_condition("Every Lambda", "notEquals", TRANSFORM.replace("eu-west-1", "us-east-1")), {},
         {(cover, KEYS_ROOT)}),
        ("another environment's transform (key layer)", "keys",
         arn_condition("Every Lambda", "notEquals", TRANSFORM.replace("-prod-", "-dev-")), {},
         {(cover, KEYS_ROOT)}),
    ]


CASE_IDS = ["no management selector", "no management selector (key layer)", "eventSource NotEquals kms",
            "readOnly true only", "global service events off", "single region", "no validation", "stopped",
            "no log group", "log group not of the stack", "log group of another account (key layer)",
            "no log role", "one insight only", "key not of the stack", "key without the two-person deny",
            "sealed key without the two-person deny", "retention 1 day, 365 required",
            "dev's 1 day, 365 required", "governance mode", "archive policy without DenyDeletion",
            "DenyDeletion with a condition", "DenyDeletion on the bucket only",
            "DenyDeletion on one object only", "DenyDeletion on one-character keys",
            "DenyDeletion on the AWSLogs prefix only", "model bucket left out",
            "a second resources.ARN narrowing", "a second resources.ARN narrowing (key layer)",
            "a NotEndsWith", "a NotEndsWith (key layer)", "objects read only", "vault not logged",
            "functions not logged (key layer)", "an exclusion wider than the archive (key layer)",
            "the model bucket left out (key layer)", "a SIEM prefix wider than its bucket (key layer)",
            "another account's SIEM bucket (key layer)", "another environment's SIEM bucket (key layer)",
            "the vault left out (key layer)", "another function left out (key layer)",
            "the transform by prefix (key layer)", "the transform of another Region (key layer)",
            "another environment's transform (key layer)"]


# What only a bucket's ARN can decide: in a preview of new buckets (inputs, no ARN yet) these wait
# until the ARN is known; so do the SIEM streams' names, which need the trail's account and Region
# (its ARN). Every other variant is caught on inputs already.
NEEDS_ARNS = {"model bucket left out", "DenyDeletion on the bucket only", "DenyDeletion on one object only",
              "DenyDeletion on one-character keys", "DenyDeletion on the AWSLogs prefix only",
              "a second resources.ARN narrowing", "log group of another account (key layer)",
              "an exclusion wider than the archive (key layer)", "the model bucket left out (key layer)",
              "a SIEM prefix wider than its bucket (key layer)", "another account's SIEM bucket (key layer)",
              "another environment's SIEM bucket (key layer)", "another function left out (key layer)",
              "the transform by prefix (key layer)", "the transform of another Region (key layer)",
              "another environment's transform (key layer)"}


def expected_in(form: str, case: str, expected: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return set() if form == "inputs" and case in NEEDS_ARNS else expected


@pytest.mark.parametrize("form", ["inputs", "outputs"])
@pytest.mark.parametrize("case", CASE_IDS)
def test_each_insecure_variant_is_caught(stacks: Stacks, case: str, form: str) -> None:
    [(_, which, edit, more, expected)] = [c for c in _cases(stacks) if c[0] == case]
    assert check(stacks, which, edit, form=form, **more) == expected_in(form, case, expected)


def test_the_case_list_is_the_one_tested(stacks: Stacks) -> None:
    assert [c[0] for c in _cases(stacks)] == CASE_IDS


def test_the_layer_decides_whether_a_stack_holds_a_trail(stacks: Stacks) -> None:
    secure = RULES[0]
    # A key layer or a combined stack without a trail; unless requireTrail is false.
    assert check_stack(stacks, without_trail(stacks.keys), "keys") == {(secure, "zero-trust-ai-prod-keys")}
    assert check_stack(stacks, without_trail(stacks.dev), "dev") == {(secure, "zero-trust-ai-dev")}
    assert check_stack(stacks, without_trail(stacks.dev), "dev", requireTrail=False) == set()
    # A workload declaring a trail (the combined stack's, checked as a workload): whatever it says.
    assert check(stacks, "dev", layer_of="workload", requireTrail=False) == {(secure, TRAIL)}
    assert check(stacks, "workload") == set()
    # The organisation and bootstrap stacks set accounts up: no environment's trail is theirs.
    for layer in ("organization", "bootstrap"):
        settings = from_values({**stacks.configs["dev"], "zero-trust-ai:layer": layer})
        assert cloudtrail_trail_secure(rules_see(without_trail(stacks.dev)), {STACK_SETTINGS: settings}) == []
    unknown = from_values({**stacks.configs["dev"], "zero-trust-ai:layer": "other"})
    assert cloudtrail_trail_secure(rules_see(without_trail(stacks.dev)), {STACK_SETTINGS: unknown}) != []


@pytest.mark.parametrize("form", ["inputs", "outputs"])
@pytest.mark.parametrize("permissive", [True, False])
def test_a_second_policy_on_the_archive_is_caught(stacks: Stacks, form: str, permissive: bool) -> None:
    for which in ("dev", "sealed"):
        found = rules_see(with_second_policy(stacks.stack(which), permissive=permissive), form=form)
        [finding] = cloudtrail_bucket_object_lock(found, config(stacks, which))
        assert finding.urn.endswith(f"::{TRAIL}") and "has 2 bucket policies" in finding.message
    assert check(stacks, "dev", form=form) == set()  # the shipped stack: one policy


@pytest.mark.parametrize(("pattern", "covers"), [
    ("*", True), ("ARN/*", True), ("ARN*", True), ("arn:aws:s3:::zero-trust-ai-*", True),
    ("arn:aws:s3:::*/*", True), ("arn:aws:s3:::zero-trust-ai-dev-audit-????????????/*", True),
    ("ARN/x", False), ("ARN/?", False), ("ARN/AWSLogs/*", False), ("ARN", False), ("ARN/*x", False),
    ("arn:aws:s3:::other-bucket/*", False), ("ARN[/]*", False),
])
def test_a_deny_covers_every_object_only_with_a_pattern_that_takes_any_key(pattern: str,
                                                                            covers: bool) -> None:
    from ztpolicy.rules.cloudtrail.cloudtrail_bucket_object_lock import covers_every_object

    arn = "arn:aws:s3:::zero-trust-ai-dev-audit-111122223333"
    assert covers_every_object(pattern.replace("ARN", arn), arn) is covers


def check_stack(stacks: Stacks, stack: RecordedStack, which: str, **more: Any) -> set[tuple[str, str]]:
    found = rules_see(stack)
    return {(RULES[0], f.urn.rsplit("::", 1)[-1])
            for f in cloudtrail_trail_secure(found, config(stacks, which, **more))}


def test_findings_say_what_is_wrong(stacks: Stacks) -> None:
    [narrowed] = messages(stacks, "dev", cloudtrail_trail_secure, management(without_kms))
    assert "does not log every management event" in narrowed and "eventSource" in narrowed
    [outsider] = messages(stacks, "dev", cloudtrail_trail_secure,
                          set_props(TRAIL, kmsKeyId="arn:aws:kms:eu-west-1:999988887777:key/x"))
    assert "not encrypted with a KMS key of this stack" in outsider
    [deny] = messages(stacks, "dev", cloudtrail_trail_secure, on(KEY_POLICY, without_deny))
    assert "trail audit-trail's key keys-audit" in deny and "kms:DisableKey" in deny
    [short] = messages(stacks, "sealed", cloudtrail_bucket_object_lock, retention(1), minRetentionDays=365)
    assert "keeps each log file 1 day (default retention), less than the 365 days" in short
    [layer] = messages(stacks, "keys", cloudtrail_data_events_cover,
                       s3_arn_condition({"notEndsWiths": [".bin"]}))
    assert "every S3 object" in layer and "AWS::S3::Object" in layer and "DynamoDB" not in layer
    [workload] = [f.message for f in cloudtrail_trail_secure(rules_see(stacks.dev),
                                                             config(stacks, "workload"))]
    assert "declared in a workload stack" in workload


def test_a_preview_that_does_not_know_a_value_yet_is_not_a_finding(stacks: Stacks) -> None:
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

    def unknown(name: str, props: dict[str, Any]) -> None:
        if name == TRAIL:
            for key in ("kmsKeyId", "advancedEventSelectors", "isMultiRegionTrail", "cloudWatchLogsGroupArn"):
                props[key] = UNKNOWN_STRING_VALUE
        if name == MODELS:
            props["arn"] = UNKNOWN_STRING_VALUE

    found = [Resource(r.type, r.name, r.urn, unknown_checking_proxy(dict(r.props)), r.parent,
                      property_dependencies=r.property_dependencies)
             for r in rules_see(stacks.dev, unknown, form="inputs")]
    settings = config(stacks, "dev")
    assert cloudtrail_trail_secure(found, settings) == []
    assert cloudtrail_data_events_cover(found, settings) == []


def test_a_log_group_not_known_yet_must_come_from_a_group_of_the_stack(stacks: Stacks) -> None:
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

    def unknown(name: str, props: dict[str, Any]) -> None:
        if name == TRAIL:
            props["cloudWatchLogsGroupArn"] = UNKNOWN_STRING_VALUE

    def with_group_dependency(resource: Resource, dependency: str) -> Resource:
        dependencies = dict(resource.property_dependencies)
        if resource.name == TRAIL:
            dependencies["cloudWatchLogsGroupArn"] = (dependency,)
        return Resource(resource.type, resource.name, resource.urn,
                        unknown_checking_proxy(dict(resource.props)), resource.parent,
                        property_dependencies=dependencies)

    seen = rules_see(stacks.dev, unknown, form="inputs")
    group = next(r.urn for r in seen if r.name == "audit-logs")
    bucket = next(r.urn for r in seen if r.name == MODELS)
    settings = config(stacks, "dev")
    assert cloudtrail_trail_secure([with_group_dependency(r, group) for r in seen], settings) == []
    [finding] = cloudtrail_trail_secure([with_group_dependency(r, bucket) for r in seen], settings)
    assert "computed from no log group of this stack" in finding.message


# -- through the pack's analyzer, each stack with its own config -----------------------------------------
@pytest.fixture(scope="module")
def packs(stacks: Stacks) -> Iterator[dict[str, PolicyPackProcess]]:
    with ExitStack() as running:
        yield {which: running.enter_context(PolicyPackProcess(PACK_DIR, env=pack_environment(
            "zero-trust-ai", stacks.stack(which).stack, stacks.configs[which], True)))
            for which in ("dev", "keys", "sealed", "workload")}


def analyzed(stack: RecordedStack, edit: Edit | None, form: str) -> list[AnalyzedResource]:
    """The stack as the engine hands it to the pack; with `form` inputs, the stack view holds
    the inputs too (a preview's view before the values are known)."""
    found = []
    for r in [*stack.resources]:
        inputs, outputs = copy.deepcopy(dict(r.inputs)), copy.deepcopy(dict(r.outputs))
        before = copy.deepcopy(inputs)
        if edit is not None:
            edit(r.name, inputs)
            edit(r.name, outputs)
        view = outputs if form == "outputs" or r.type == "pulumi:pulumi:Stack" else inputs
        found.append(AnalyzedResource(
            urn=r.urn, type=r.type, name=r.name, properties=inputs,
            stack_properties=view if r.custom or r.type == "pulumi:pulumi:Stack" else None,
            parent=r.parent, dependencies=r.dependencies,
            property_dependencies={k: list(v) for k, v in dependencies(r.property_dependencies, before,
                                                                        inputs).items()},
            protect=r.protect, ignore_changes=r.ignore_changes, custom=r.custom))
    return found


def through_pack(stacks: Stacks, packs: Mapping[str, PolicyPackProcess], which: str, edit: Edit | None,
                 *, form: str = "outputs", stack: RecordedStack | None = None,
                 user_config: Mapping[str, Any] | None = None) -> set[tuple[str, str]]:
    recorded = stack or stacks.stack(which)
    result = analyze(packs[which], analyzed(recorded, edit, form), user_config=user_config,
                     project="zero-trust-ai", stack=recorded.stack, stack_config=stacks.configs[which])
    return {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.mandatory_violations if v.policy in RULES}


@pytest.mark.parametrize("form", ["inputs", "outputs"])
def test_the_analyzer_passes_the_shipped_stacks(stacks: Stacks, packs: Mapping[str, PolicyPackProcess],
                                                form: str) -> None:
    assert through_pack(stacks, packs, "dev", None, form=form) == set()
    assert through_pack(stacks, packs, "keys", None, form=form, user_config=PROD_POLICY) == set()
    assert through_pack(stacks, packs, "sealed", None, form=form, user_config=PROD_POLICY) == set()
    assert through_pack(stacks, packs, "workload", None, form=form) == set()


@pytest.mark.parametrize("form", ["inputs", "outputs"])
@pytest.mark.parametrize("case", [c for c in CASE_IDS if "365 required" not in c])
def test_the_analyzer_catches_each_insecure_variant(stacks: Stacks, packs: Mapping[str, PolicyPackProcess],
                                                   case: str, form: str) -> None:
    [(_, which, edit, _, expected)] = [c for c in _cases(stacks) if c[0] == case]
    assert through_pack(stacks, packs, which, edit, form=form) == expected_in(form, case, expected)


def test_the_analyzer_reads_the_retention_the_policy_config_requires(
        stacks: Stacks, packs: Mapping[str, PolicyPackProcess]) -> None:
    assert through_pack(stacks, packs, "sealed", retention(1), user_config=PROD_POLICY) == {
        (RULES[1], TRAIL)}
    assert through_pack(stacks, packs, "sealed", retention(1)) == set()  # the default: 1 day
    assert through_pack(stacks, packs, "dev", None, user_config=PROD_POLICY) == {(RULES[1], TRAIL)}


@pytest.mark.parametrize("form", ["inputs", "outputs"])
def test_the_analyzer_catches_a_second_policy_on_the_archive(
        stacks: Stacks, packs: Mapping[str, PolicyPackProcess], form: str) -> None:
    assert through_pack(stacks, packs, "dev", None, form=form, stack=with_second_policy(stacks.dev)) == {
        (RULES[1], TRAIL)}


def test_the_analyzer_holds_each_layer_to_its_part(stacks: Stacks,
                                                   packs: Mapping[str, PolicyPackProcess]) -> None:
    secure = RULES[0]
    assert through_pack(stacks, packs, "keys", None, stack=without_trail(stacks.keys)) == {
        (secure, "zero-trust-ai-prod-keys")}
    # The dev stack's trail checked with the workload's config: a workload declaring a trail.
    assert (secure, TRAIL) in through_pack(stacks, packs, "workload", None, stack=stacks.dev)


def test_the_rules_are_registered_as_documented() -> None:
    rules = {rule.name: rule for rule in ALL_RULES}
    assert rules["cloudtrail-trail-secure"].suppressible is False
    assert rules["cloudtrail-trail-secure"].defaults() == {"requireTrail": True}
    assert rules["cloudtrail-bucket-object-lock"].defaults() == {"minRetentionDays": 1}
    assert all(rules[name].control == "logs that last" for name in RULES)


@pytest.mark.parametrize(("setting", "value"), [
    ("cloudtrail-bucket-object-lock", {"minRetentionDays": 0}),
    ("cloudtrail-bucket-object-lock", {"minRetentionDays": "365"}),
    ("cloudtrail-bucket-object-lock", {"minRetentionDays": 36501}),
    ("cloudtrail-trail-secure", {"requireTrail": "no"}),
])
def test_a_bad_setting_is_refused_with_its_name(stacks: Stacks, packs: Mapping[str, PolicyPackProcess],
                                               setting: str, value: dict[str, Any]) -> None:
    [(key, _)] = value.items()
    with pytest.raises(PolicyConfigError, match=rf"{setting}.*{key}|{key}.*{setting}"):
        through_pack(stacks, packs, "sealed", None, user_config={setting: value})
