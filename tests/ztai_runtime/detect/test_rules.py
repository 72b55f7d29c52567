"""The Sigma rules' runtime evaluator (`ztai_runtime.detect.rules`): each shipped rule on a matching
record and a near miss, the Sigma semantics the IR carries, the eventName index, the signals it
raises, the Stratus Red Team techniques it flags, silence on benign activity, and a clear
ValueError for each bad IR or context."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from benchmarks.detection_data import ACCOUNT, benign_activity, key_id, load_stratus
from tests.support.datasets import shared_dir, stratus_red_team_files
from tests.support.sigma_cases import CASES, STRATUS_FLAGGED, ct, jit
from ztai_runtime.detect.engine import Engine, run
from ztai_runtime.detect.rules import IR_VERSION, PLACEHOLDERS, SigmaRules, shipped_ir
from ztai_runtime.detect.signals import SEVERITIES, principal_of
from ztai_runtime.detect.sources import Event, event_from_record

IR = shipped_ir()
RULES = SigmaRules.from_ir(IR)


def event(record: dict[str, Any]) -> Event:
    return event_from_record(record, "test:1")


def names(rules: SigmaRules, record: dict[str, Any]) -> set[str]:
    return {rule.name for rule in rules.matching(event(record))}


@pytest.mark.parametrize(("rule", "what", "record", "expected"), CASES,
                         ids=[f"{rule}: {what}" for rule, what, _, _ in CASES])
def test_each_rule_on_its_record_and_near_miss(rule: str, what: str, record: dict[str, Any],
                                               expected: bool) -> None:
    assert (rule in names(RULES, record)) is expected


def test_every_shipped_rule_has_a_match_and_a_near_miss() -> None:
    shipped = {rule["name"] for rule in IR["rules"]}
    matched = {rule for rule, _, _, expected in CASES if expected}
    missed = {rule for rule, _, _, expected in CASES if not expected}
    assert shipped == matched == missed


def test_signal_names_rule_level_technique_and_the_call() -> None:
    record = ct("kms", "ScheduleKeyDeletion", {"keyId": "arn:aws:kms:eu-west-1:111122223333:key/k1"},
                errorCode="AccessDenied")
    ev = event(record)
    [signal] = RULES.observe(ev, principal_of(ev))
    assert signal.rule == "kms-key-disabled-or-deletion-scheduled"
    assert signal.severity == "critical" and signal.technique == "T1485"
    assert signal.principal == principal_of(ev)
    assert "ScheduleKeyDeletion" in signal.reason and "key/k1" in signal.reason
    assert "AccessDenied" in signal.reason and signal.reason.startswith("A stack key disabled")


def test_jit_signal_reason_names_the_request() -> None:
    line = jit("jit.approved", "arn:aws:iam::1:role/r/ann", "arn:aws:iam::1:role/r/ann")
    ev = event_from_record(line, "jit.log:3")
    [signal] = RULES.observe(ev, principal_of(ev))
    assert signal.rule == "jit-approved-by-requester" and "r-1" in signal.reason
    assert signal.technique == "T1548"


def test_shipped_rules_levels_and_techniques_are_well_formed() -> None:
    for rule in RULES.rules:
        assert rule.level in SEVERITIES
        assert rule.technique is not None and rule.technique.startswith("T")


def test_detector_protocol_state_is_empty_and_round_trips() -> None:
    assert RULES.name == "rules" and RULES.to_state() == {}
    again = SigmaRules.from_state({}, IR)
    assert [r.name for r in again.rules] == [r.name for r in RULES.rules]
    with pytest.raises(ValueError, match="state must be empty"):
        SigmaRules.from_state({"x": 1}, IR)


def test_rules_run_in_the_engine_one_finding_per_burst() -> None:
    records = [ct("ssm", "SendCommand", {"documentName": "AWS-RunShellScript", "instanceIds": ["i-1"]},
                  eventTime=f"2026-12-07T10:0{minute}:00Z") for minute in range(3)]
    findings = run((event(r) for r in records), Engine([RULES]))
    [finding] = findings
    assert finding.rule == "ssm-send-command" and finding.event_ids == [r["eventID"] for r in records]


# -- the index ----------------------------------------------------------------------------------

def test_rules_are_indexed_by_the_event_names_they_pin() -> None:
    pinned = [rule for rule in RULES.rules if rule.logsource == "cloudtrail"]
    assert pinned and all(rule.event_names for rule in pinned)
    by_ir = {rule["name"]: rule["eventNames"] for rule in IR["rules"]}
    for rule in pinned:
        assert list(rule.event_names or ()) == by_ir[rule.name]
    # An event no rule pins meets no rule (nothing unpinned runs on CloudTrail).
    assert RULES.matching(event(ct("s3", "GetObject", {"bucketName": "b"}))) == []


def test_an_unpinned_rule_runs_on_every_event_of_its_logsource() -> None:
    ir = _ir(_leaf("sourceIPAddress", "str", ["203.0.113.*"]))
    rules = SigmaRules.from_ir(ir)
    assert rules.rules[0].event_names is None
    assert names(rules, ct("s3", "GetObject", {})) == {"t"}
    assert names(rules, ct("s3", "GetObject", {}, sourceIPAddress="10.0.0.1")) == set()


# -- semantics ------------------------------------------------------------------------------------

def _leaf(field: str, op: str, values: Any = None, **extra: Any) -> dict[str, Any]:
    leaf: dict[str, Any] = {"field": field, "op": op, **extra}
    if values is not None:
        leaf["values"] = values
    return leaf


def _ir(condition: dict[str, Any], *, logsource: str = "cloudtrail", **rule: Any) -> dict[str, Any]:
    return {"version": IR_VERSION, "rules": [{"id": "00000000-0000-0000-0000-000000000001", "name": "t",
                                              "title": "T", "level": "high", "techniques": ["T1078"],
                                              "logsource": logsource, "condition": condition, **rule}]}


def matches(condition: dict[str, Any], record: dict[str, Any], context: Any = None) -> bool:
    return bool(names(SigmaRules.from_ir(_ir(condition), context), record))


NESTED = ct("ec2", "AuthorizeSecurityGroupIngress", {"ipPermissions": {"items": [
    {"fromPort": 22, "ipRanges": {"items": [{"cidrIp": "10.1.0.0/16"}]}},
    {"fromPort": 443, "ipRanges": {"items": [{"cidrIp": "192.0.2.0/24"}, {"cidrIp": "0.0.0.0/0"}]}}]}})
CIDR_PATH = "requestParameters.ipPermissions.items.ipRanges.items.cidrIp"


@pytest.mark.parametrize(("condition", "expected"), [
    (_leaf(CIDR_PATH, "str", ["0.0.0.0/0"]), True),                   # fans out over both lists
    (_leaf(CIDR_PATH, "str", ["172.16.0.0/12"]), False),
    (_leaf("requestParameters.ipPermissions.items.fromPort", "num", [443]), True),
    (_leaf("requestParameters.ipPermissions.items.fromPort", "num", [80]), False),
    (_leaf("requestParameters.ipPermissions.items.fromPort", "gt", value=400), True),
    (_leaf("requestParameters.ipPermissions.items.fromPort", "lt", value=22), False),
    (_leaf("requestParameters.ipPermissions.items.fromPort", "lte", value=22), True),
    (_leaf("requestParameters.ipPermissions.items.fromPort", "gte", value=444), False),
    (_leaf("eventname", "str", ["AuthorizeSecurityGroupIngress"]), False),  # field names are exact
    (_leaf("eventName", "str", ["authorizesecuritygroupingress"]), True),  # values are not
    (_leaf("eventName", "str", ["authorizesecuritygroupingress"], cased=True), False),
    (_leaf("eventName", "str", ["AuthorizeSecurityGroupIngress"], cased=True), True),
    (_leaf("eventName", "str", ["Authorize*"]), True),
    (_leaf("eventName", "str", ["*groupingress"]), True),
    (_leaf("eventName", "str", ["*SecurityGroup*"]), True),
    (_leaf("eventName", "str", ["Auth?rize*Ingress"]), True),
    (_leaf("eventName", "str", ["Auth?rize*Egress"]), False),
    (_leaf("eventName", "str", ["Authorize\\*"]), False),             # an escaped star is a star
    (_leaf("eventName", "re", ["^Authorize.*Ingress$"]), True),
    (_leaf("eventName", "re", ["^authorize"]), False),                # regexes are case-sensitive
    (_leaf("eventName", "re", ["^authorize"], flags="i"), True),
    (_leaf(CIDR_PATH, "cidr", ["10.0.0.0/8"]), False),                # a network, not an address
    (_leaf("sourceIPAddress", "cidr", ["203.0.113.0/24"]), True),
    (_leaf("sourceIPAddress", "cidr", ["2001:db8::/32", "198.51.100.0/24"]), False),
    (_leaf("requestParameters.ipPermissions", "exists", value=True), True),
    (_leaf("requestParameters.nothing", "exists", value=True), False),
    (_leaf("requestParameters.nothing", "exists", value=False), True),
    (_leaf("responseElements", "exists", value=True), False),         # null is no value
    (_leaf("responseElements", "null"), True),
    (_leaf("requestParameters.nothing", "null"), True),
    (_leaf("eventName", "null"), False),
    (_leaf("readOnly", "bool", [False]), True),
    (_leaf("readOnly", "bool", [True]), False),
    (_leaf("readOnly", "str", ["false"]), True),                      # a boolean compares as text
    (_leaf("awsRegion", "fieldref", ["awsRegion"]), True),
    (_leaf("awsRegion", "fieldref", ["eventName"]), False),
    ({"and": [_leaf("eventName", "str", ["Authorize*"]), {"not": _leaf(CIDR_PATH, "str", ["0.0.0.0/0"])}]},
     False),
    ({"or": [_leaf("eventName", "str", ["x"]), _leaf(CIDR_PATH, "str", ["0.0.0.0/0"])]}, True),
])
def test_semantics(condition: dict[str, Any], expected: bool) -> None:
    assert matches(condition, NESTED) is expected


def test_placeholders_take_the_context_or_the_defaults() -> None:
    condition = _leaf("requestParameters.name", "str", ["%parent_ami_parameters%"])
    record = ct("ssm", "PutParameter", {"name": "/zero-trust-ai/prod/enclave-parent/ami-id"})
    other = ct("ssm", "PutParameter", {"name": "/fleet/ami"})
    assert matches(condition, record) and not matches(condition, other)
    context = {"parent_ami_parameters": ["/fleet/*"]}
    assert matches(condition, other, context) and not matches(condition, record, context)
    # A placeholder inside a pattern, and a literal percent sign in a value.
    arn = _leaf("resources.ARN", "str", ["*:table/%vault_tables%"])
    table = ct("dynamodb", "Scan", {},
               resources=[{"ARN": "arn:aws:dynamodb:r:1:table/zero-trust-ai-x-token-vault"}])
    assert matches(arn, table)
    percent = _leaf("requestParameters.name", "str", ["100\\%"])
    assert matches(percent, ct("ssm", "PutParameter", {"name": "100%"}))


def test_rules_of_other_logsources_see_only_their_events() -> None:
    rules = SigmaRules.from_ir(_ir(_leaf("event", "str", ["jit.*"]), logsource="jit"))
    line = jit("jit.approved", "a", "b")
    assert names(rules, line) == {"t"}
    assert names(rules, ct("sts", "AssumeRole", {}, event="jit.approved")) == set()


def test_every_placeholder_has_a_description_and_defaults() -> None:
    for name, placeholder in PLACEHOLDERS.items():
        assert placeholder.description and placeholder.default, name
        assert all(isinstance(glob, str) and glob for glob in placeholder.default)


# -- bad IR and context ---------------------------------------------------------------------------

def _bad(mutate: Any) -> dict[str, Any]:
    ir = copy.deepcopy(_ir(_leaf("eventName", "str", ["X"]), eventNames=["X"]))
    mutate(ir)
    return ir


@pytest.mark.parametrize(("ir", "message"), [
    ([], "not a JSON object"),
    ({"version": 2, "rules": []}, "version 2"),
    ({"version": IR_VERSION}, "no 'rules' list"),
    (_bad(lambda ir: ir["rules"].append(5)), r"rules\[1\] is not an object"),
    (_bad(lambda ir: ir["rules"][0].update(level="severe")), "level 'severe' is not one of"),
    (_bad(lambda ir: ir["rules"][0].update(logsource="vpc")), "logsource 'vpc'"),
    (_bad(lambda ir: ir["rules"][0].update(name="")), "'name' must be a non-empty string"),
    (_bad(lambda ir: ir["rules"][0].update(techniques=["attack.t1078"])), "ATT&CK ids"),
    (_bad(lambda ir: ir["rules"][0].update(eventNames=["Y"])), "eventNames .* differ"),
    (_bad(lambda ir: ir["rules"][0].update(condition={"and": []})), "non-empty list"),
    (_bad(lambda ir: ir["rules"][0].update(condition=[1])), "is not an object"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(op="like")), "unknown op 'like'"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(field="a..b")), "dotted path"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(values=[])), "non-empty list"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(values=["%nope%"])), "unknown placeholder %nope%"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(values=["50%"])), "never closed"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(values=[3])), "is not a string"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(op="re", values=["("])), "bad regular expression"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(op="re", flags="x")), "regex flag 'x'"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(op="cidr", values=["10.0.0.0/33"])), "bad network"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(op="num", values=["1"])), "not a number"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(op="bool", values=[1])), "not a boolean"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(op="exists")), "exists needs"),
    (_bad(lambda ir: ir["rules"][0]["condition"].update(op="gt", value="3")), "needs a number"),
    (_bad(lambda ir: ir["rules"].append(copy.deepcopy(ir["rules"][0]))), "two rules are named 't'"),
])
def test_bad_ir_is_refused_with_the_rule_and_the_problem(ir: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SigmaRules.from_ir(ir)


def test_bad_ir_names_the_rule() -> None:
    ir = _bad(lambda ir: ir["rules"][0]["condition"].update(op="like"))
    with pytest.raises(ValueError, match=r"rules\[0\] \(t\)"):
        SigmaRules.from_ir(ir)


@pytest.mark.parametrize(("context", "message"), [
    ({"weights_keys": ["x"]}, "unknown placeholder 'weights_keys'"),
    ({"weights_key": "alias/x"}, "non-empty list"),
    ({"weights_key": []}, "non-empty list"),
    ({"weights_key": [""]}, "non-empty list"),
])
def test_bad_context_is_refused(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SigmaRules.from_ir(IR, context)


def test_shipped_ir_is_json_the_stream_function_can_read() -> None:
    assert json.loads(json.dumps(IR)) == IR and IR["version"] == IR_VERSION


# -- real attacks and benign activity -------------------------------------------------------------

def test_stratus_red_team_techniques_flagged_by_the_rules() -> None:
    stratus_red_team_files()  # skips, saying where it looked, when the data set is absent
    flagged: dict[str, set[str]] = {}
    for technique, records in load_stratus(shared_dir() / "datasets" / "stratus-red-team").items():
        hits = set()
        for index, record in enumerate(records):
            hits |= {rule.name for rule in RULES.matching(event_from_record(record, f"{technique}:{index}"))}
        if hits:
            flagged[technique] = hits
    assert flagged == STRATUS_FLAGGED


def test_no_rule_fires_on_weeks_of_benign_activity() -> None:
    # The stack's weights key as the evaluation names it (its key ARN), as a deployment's context would.
    context = {"weights_key": [f"arn:aws:kms:*:{ACCOUNT}:key/{key_id(ACCOUNT, 'model-weights')}"]}
    rules = SigmaRules.from_ir(IR, context)
    count = 0
    for index, record in enumerate(benign_activity(start=datetime(2026, 11, 2, tzinfo=UTC), days=35, seed=7)):
        count += 1
        assert rules.matching(event_from_record(record, f"benign:{index}")) == [], record
    assert count > 50_000


def test_the_weights_key_context_makes_its_rules_fire_on_the_stack_key_arn() -> None:
    arn = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{key_id(ACCOUNT, 'model-weights')}"
    record = ct("kms", "Decrypt", {"keyId": arn})
    assert "weights-key-use-without-attestation" not in names(RULES, record)
    rules = SigmaRules.from_ir(IR, {"weights_key": [arn]})
    assert "weights-key-use-without-attestation" in names(rules, record)
