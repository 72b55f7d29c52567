"""The Sigma rules on the CLI side (`ztai.detect_rules`): the shipped rules load and follow the
project's conventions, the committed IR is current, the IR evaluator agrees with an evaluation
written directly over pySigma's parsed rules, every bad rule file is refused naming the file and
the problem, and the export reaches Splunk, Elastic and Sentinel with their field names."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import textwrap
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionNOT, ConditionOR
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import ValueListPlaceholderTransformation
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
)

from benchmarks.detection_data import benign_activity
from tests.support.datasets import stratus_red_team_records
from tests.support.sigma_cases import CASES
from ztai.detect_rules import IR_PATH, RULES_DIR, RuleError, compile_rules, export, ir_text, load_rules, main
from ztai_runtime.detect.rules import PLACEHOLDERS, SigmaRules
from ztai_runtime.detect.sources import event_from_record

AREAS = {"logging", "keys", "network", "iam", "compute", "identity", "tokenization", "jit"}


def test_committed_ir_is_a_fresh_compile_of_the_shipped_rules() -> None:
    assert IR_PATH.read_text(encoding="utf-8") == ir_text(compile_rules(RULES_DIR)), \
        "run: python -m ztai.detect_rules --write"


def test_shipped_rules_follow_the_conventions() -> None:
    files = sorted(RULES_DIR.rglob("*.yml"))
    rules = [r for r in load_rules(RULES_DIR).rules if isinstance(r, SigmaRule)]
    assert len(rules) == len(files) >= 30
    for path in files:
        assert path.parent.name in AREAS and path.parent.parent == RULES_DIR
    for rule in rules:
        assert Path(str(rule.custom_attributes["ztai_file"])).stem == rule.name
        assert rule.references and rule.falsepositives and rule.description and rule.author
        assert rule.level is not None and rule.status is not None and rule.date is not None
        assert any(re.fullmatch(r"attack\.t\d{4}(\.\d{3})?", str(tag)) for tag in rule.tags)
    # Every placeholder the rules use is documented, and every documented one is used.
    text = "\n".join(p.read_text(encoding="utf-8") for p in files)
    assert set(re.findall(r"%([a-z_]+)%", text)) == set(PLACEHOLDERS)


def test_main_prints_and_checks_the_ir(capsys: pytest.CaptureFixture[str]) -> None:
    chunks: list[str] = []
    assert main([], out=chunks.append) == 0
    assert "".join(chunks) == IR_PATH.read_text(encoding="utf-8")
    assert main(["--check"]) == 0


def test_main_exports_for_a_backend() -> None:
    chunks: list[str] = []
    assert main(["--export", "sentinel"], out=chunks.append) == 0
    assert "".join(chunks) == export(RULES_DIR, "sentinel") and "AWSCloudTrail" in chunks[0]


def test_main_refuses_an_unknown_backend_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--export", "qradar"])
    assert exited.value.code == 2 and "invalid choice: 'qradar'" in capsys.readouterr().err


def test_main_refuses_a_bad_folder_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rules", str(tmp_path / "none")]) == 2
    assert "no such folder of Sigma rules" in capsys.readouterr().err


# -- the IR agrees with pySigma's parse -----------------------------------------------------------

def _placeholders() -> ProcessingPipeline:
    return ProcessingPipeline(vars={n: list(p.default) for n, p in PLACEHOLDERS.items()}, items=[
        ProcessingItem(ValueListPlaceholderTransformation())])


def _values(record: Any, parts: list[str]) -> list[Any]:
    """Written apart from the runtime's: recursion instead of a work list."""
    if isinstance(record, list):
        return [v for item in record for v in _values(item, parts)]
    if not parts:
        return [record]
    if not isinstance(record, dict) or parts[0] not in record:
        return []
    return _values(record[parts[0]], parts[1:])


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, (str, int, float)) else None


def _leaf(leaf: ConditionFieldEqualsValueExpression, record: dict[str, Any]) -> bool:
    values = _values(record, leaf.field.split("."))
    expected = leaf.value
    if isinstance(expected, SigmaNull):
        return all(v is None for v in values)
    if isinstance(expected, SigmaExists):
        return any(v is not None for v in values) == expected.exists
    if isinstance(expected, SigmaFieldReference):
        other = {_text(v) for v in _values(record, expected.field.split("."))} - {None}
        return any(_text(v) in other for v in values)
    texts = [t for t in (_text(v) for v in values) if t is not None]
    if isinstance(expected, SigmaString):
        assert not expected.contains_placeholder()
        case = 0 if isinstance(expected, SigmaCasedString) else re.IGNORECASE
        pattern = str(expected.to_regex().regexp)
        return any(re.fullmatch(pattern, t, re.DOTALL | case) for t in texts)
    if isinstance(expected, SigmaRegularExpression):
        names = {SigmaRegularExpressionFlag.IGNORECASE: re.I, SigmaRegularExpressionFlag.MULTILINE: re.M,
                 SigmaRegularExpressionFlag.DOTALL: re.S}
        flags: int = 0
        for flag in expected.flags:
            flags |= names[flag]
        return any(re.search(str(expected.regexp), t, flags) for t in texts)
    if isinstance(expected, SigmaCIDRExpression):
        found = False
        for t in texts:
            with contextlib.suppress(ValueError):
                found = found or ipaddress.ip_address(t) in expected.network
        return found
    if isinstance(expected, SigmaBool):
        return any(t == str(expected.boolean).lower() for t in texts)
    if isinstance(expected, SigmaNumber):
        return any(t == str(expected.number) or t == f"{float(expected.number)}" for t in texts)
    if isinstance(expected, SigmaCompareExpression):
        ops = {CompareOperators.LT: float.__lt__, CompareOperators.LTE: float.__le__,
               CompareOperators.GT: float.__gt__, CompareOperators.GTE: float.__ge__}
        return any(ops[expected.op](float(t), float(expected.number.number)) for t in texts)
    raise AssertionError(f"unexpected value {expected!r}")


def _naive(node: Any, record: dict[str, Any]) -> bool:
    if isinstance(node, ConditionAND):
        return all(_naive(arg, record) for arg in node.args)
    if isinstance(node, ConditionOR):
        return any(_naive(arg, record) for arg in node.args)
    if isinstance(node, ConditionNOT):
        return not _naive(node.args[0], record)
    assert isinstance(node, ConditionFieldEqualsValueExpression)
    return _leaf(node, record)


_KIND = {("aws", "cloudtrail"): "cloudtrail", ("zero-trust-ai", "jit"): "jit"}


def _sample() -> list[dict[str, Any]]:
    records = [record for _, _, record, _ in CASES]
    records += list(islice(benign_activity(start=datetime(2026, 11, 2, tzinfo=UTC), days=3, seed=3), 3000))
    # The data set is optional here: the cases and the benign records still compare without it.
    with contextlib.suppress(pytest.skip.Exception):
        records += [record for _, record in stratus_red_team_records()]
    return records


def test_ir_evaluation_agrees_with_pysigma_parsed_rules() -> None:
    records = _sample()
    events = [event_from_record(r, f"s:{i}") for i, r in enumerate(records)]
    runtime = SigmaRules.from_ir(compile_rules(RULES_DIR))
    by_runtime: dict[str, set[int]] = {rule.name: set() for rule in runtime.rules}
    for index, ev in enumerate(events):
        for rule in runtime.matching(ev):
            by_runtime[rule.name].add(index)
    pipeline = _placeholders()
    matched_any = 0
    for parsed in load_rules(RULES_DIR).rules:
        assert isinstance(parsed, SigmaRule)
        pipeline.apply(parsed)
        kind = _KIND[(str(parsed.logsource.product), str(parsed.logsource.service))]
        trees = [condition.parsed for condition in parsed.detection.parsed_condition]
        expected = {i for i, ev in enumerate(events)
                    if ev.kind == kind and any(_naive(tree, ev.record) for tree in trees)}
        assert by_runtime[str(parsed.name)] == expected, parsed.name
        matched_any += bool(expected)
    assert matched_any == len(by_runtime)  # every rule matched something in the sample


# -- bad rule files -------------------------------------------------------------------------------

GOOD = textwrap.dedent("""\
    title: Test rule
    id: 3f1e2d4c-5b6a-4978-8a1b-2c3d4e5f6a7b
    name: test-rule
    status: experimental
    description: A rule for the tests.
    references:
        - https://docs.aws.amazon.com/
    author: tests
    date: 2026-12-07
    tags:
        - attack.t1078
    logsource:
        product: aws
        service: cloudtrail
    detection:
        selection:
            eventName: StopLogging
        condition: selection
    falsepositives:
        - none
    level: high
    """)


def _write(folder: Path, text: str, name: str = "rule.yml") -> Path:
    path = folder / "area" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_rule_compiles(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    [rule] = compile_rules(tmp_path)["rules"]
    assert rule["name"] == "test-rule" and rule["eventNames"] == ["StopLogging"]
    assert rule["techniques"] == ["T1078"] and rule["logsource"] == "cloudtrail"


@pytest.mark.parametrize(("text", "message"), [
    ("title: [unclosed", "not valid YAML"),
    (GOOD + "---\n" + GOOD, "holds 2 YAML documents; one rule per file"),
    ("- a list\n", "is not a Sigma rule"),
    (GOOD.replace("falsepositives:\n    - none\n", ""), "missing falsepositives"),
    (GOOD.replace("name: test-rule", "name: Test Rule"), "must be a short kebab-case id"),
    (GOOD.replace("    - attack.t1078\n", "    - attack.persistence\n"), "no ATT&CK technique"),
    (GOOD.replace("product: aws", "product: windows"), "logsource product 'windows'.*allowed are"),
    (GOOD.replace("condition: selection", "condition: selection and other"), "other"),
    (GOOD.replace("condition: selection", "condition: selection | count() > 5"), "pipe syntax"),
    (GOOD.replace("eventName: StopLogging", "eventName|base64offset|contains: x"),
     "modifier 'base64offset' .* not supported"),
    (GOOD.replace("eventName: StopLogging", "eventName|windash: x"), "modifier 'windash' .* not supported"),
    (GOOD.replace("eventName: StopLogging", "eventName|expand: '%nope%'"), "unknown placeholder %nope%"),
    (GOOD.replace("selection:\n        eventName: StopLogging", "keywords:\n        - StopLogging")
     .replace("condition: selection", "condition: keywords"), "keyword searches"),
    (GOOD.replace("level: high", "level: severe"), "level"),
    (GOOD.replace("id: 3f1e2d4c-5b6a-4978-8a1b-2c3d4e5f6a7b", "id: not-a-uuid"), "id"),
    ("title: c\nid: 3f1e2d4c-5b6a-4978-8a1b-2c3d4e5f6a7c\nname: c\ncorrelation:\n    type: event_count\n",
     "correlation rules are not supported"),
])
def test_bad_rule_file_is_refused_naming_file_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(RuleError, match=message) as caught:
        compile_rules(tmp_path)
    assert str(path) in str(caught.value)


def test_bad_rule_names_its_id(tmp_path: Path) -> None:
    _write(tmp_path, GOOD.replace("eventName: StopLogging", "eventName|windash: x"))
    with pytest.raises(RuleError, match="rule 3f1e2d4c-5b6a-4978-8a1b-2c3d4e5f6a7b"):
        load_rules(tmp_path)


def test_duplicate_id_and_name_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "a.yml")
    _write(tmp_path, GOOD.replace("name: test-rule", "name: other-rule"), "b.yml")
    with pytest.raises(RuleError, match=r"is already used by .*a\.yml"):
        load_rules(tmp_path)
    (tmp_path / "area" / "b.yml").write_text(GOOD.replace("id: 3f1e", "id: 4f1e"), encoding="utf-8")
    with pytest.raises(RuleError, match="'test-rule' is already used"):
        load_rules(tmp_path)


def test_missing_or_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no such folder of Sigma rules"):
        load_rules(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(RuleError, match="holds no Sigma rule"):
        load_rules(tmp_path)


def test_unreadable_rule_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    path.write_bytes(b"\xff\xfe title")
    with pytest.raises(RuleError, match="cannot be read"):
        load_rules(tmp_path)


# -- export ---------------------------------------------------------------------------------------

def _queries(backend: str) -> dict[str, str]:
    """{rule name: query} of an export."""
    out: dict[str, str] = {}
    name = None
    for line in export(RULES_DIR, backend).splitlines():
        if line.startswith("# skipped"):
            continue
        if line.startswith("# "):
            name = line[2:].split(" ", 1)[0]
            out[name] = ""
        elif name and line:
            out[name] += line + "\n"
    return out


def test_export_splunk_keeps_cloudtrail_field_names() -> None:
    queries = _queries("splunk")
    assert set(queries) == {rule["name"] for rule in json.loads(IR_PATH.read_text())["rules"]}
    admin = queries["iam-admin-policy-attached"]
    assert 'eventSource="iam.amazonaws.com"' in admin and "requestParameters.policyArn" in admin
    assert "AttachRolePolicy" in admin
    # Placeholders become the defaults.
    assert "zero-trust-ai-*-deploy-workload" in queries["lambda-changed-outside-deployer"]
    assert "'by'='requester'" in queries["jit-approved-by-requester"]


def test_export_elastic_uses_ecs_fields() -> None:
    queries = _queries("elastic")
    assert "jit-approved-by-requester" not in queries  # no Elastic schema for the JIT lines
    stop = queries["cloudtrail-stopped-or-deleted"]
    assert "event.provider:cloudtrail.amazonaws.com" in stop and "event.action:" in stop
    assert "aws.cloudtrail.flattened.request_parameters.policyArn" in queries["iam-admin-policy-attached"]
    assert "eventName" not in "".join(queries.values())
    assert "# skipped (no elastic schema" in export(RULES_DIR, "elastic")


def test_export_sentinel_uses_the_awscloudtrail_table() -> None:
    queries = _queries("sentinel")
    stop = queries["cloudtrail-stopped-or-deleted"]
    assert stop.startswith("AWSCloudTrail\n") and 'EventSource =~ "cloudtrail.amazonaws.com"' in stop
    assert "EventName in~" in stop
    assert "SessionIssuerArn" in queries["lambda-changed-outside-deployer"]
    assert "RequestParameters contains" in queries["iam-admin-policy-attached"]


def test_export_takes_the_stack_context() -> None:
    text = export(RULES_DIR, "splunk", {"deploy_roles": ["arn:aws:iam::1:role/our-deployer"]})
    assert "arn:aws:iam::1:role/our-deployer" in text and "zero-trust-ai-*-deploy-*" not in text


@pytest.mark.parametrize(("backend", "context", "message"), [
    ("qradar", None, "unknown backend 'qradar'; allowed are splunk, elastic, sentinel"),
    ("splunk", {"deploy_role": ["x"]}, "unknown placeholder 'deploy_role'"),
    ("splunk", {"deploy_roles": "x"}, "non-empty list"),
])
def test_export_refuses_bad_backend_or_context(backend: str, context: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        export(RULES_DIR, backend, context)


def test_docs_table_lists_every_rule_with_its_level_and_technique() -> None:
    page = (RULES_DIR.parent.parent / "docs" / "detection-rules.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in page.splitlines()
            if line.startswith("| `") and "|" in line[3:]}
    for rule in compile_rules(RULES_DIR)["rules"]:
        row = rows.get(rule["name"])
        assert row is not None, f"docs/detection-rules.md lists no rule {rule['name']}"
        assert f"| {rule['level']} |" in row and rule["techniques"][0] in row
