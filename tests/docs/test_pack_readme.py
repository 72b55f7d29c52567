"""The policy pack's README lists exactly the pack's rules, each with its real enforcement level,
severity, excludability and kind, and a section saying why and on which AWS documentation."""

from __future__ import annotations

import re

import pytest

from tests.docs.markdown import ROOT, section
from ztpolicy.rule import Rule
from ztpolicy.rules import ALL_RULES

PACK_README = ROOT / "policy_packs" / "zero_trust" / "README.md"
_ROW = re.compile(r"^\| `([a-z0-9-]+)` \| (\w+) \| (\w+) \| (yes|no) \| (resource|stack) \|$")


def _readme() -> str:
    return PACK_README.read_text(encoding="utf-8")


def _table() -> dict[str, tuple[str, str, str, str]]:
    rows: dict[str, tuple[str, str, str, str]] = {}
    for line in section(_readme(), "Rules at a glance").splitlines():
        match = _ROW.match(line)
        if match:
            name, *columns = match.groups()
            assert name not in rows, f"{name} is listed twice"
            level, severity, excludable, kind = columns
            rows[name] = (level, severity, excludable, kind)
    return rows


def _expected(rule: Rule) -> tuple[str, str, str, str]:
    return (rule.enforcement_level.value, rule.severity.value, "yes" if rule.suppressible else "no",
            "stack" if rule.stack_check is not None else "resource")


def test_the_table_lists_exactly_the_packs_rules() -> None:
    listed = set(_table())
    rules = {rule.name for rule in ALL_RULES}
    assert listed == rules, (f"in the pack, not in its README: {sorted(rules - listed)}; "
                             f"in the README, not in the pack: {sorted(listed - rules)}")


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.name)
def test_each_rule_is_listed_with_its_level_severity_excludability_and_kind(rule: Rule) -> None:
    level, severity, excludable, kind = _expected(rule)
    assert _table().get(rule.name) == (level, severity, excludable, kind), (
        f"the README's line for {rule.name} should read: {level} | {severity} | {excludable} | {kind}")


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.name)
def test_each_rule_has_a_section_with_why_and_aws_documentation(rule: Rule) -> None:
    text = _readme()
    heading = f"### `{rule.name}`"
    assert heading in text, f"the pack README has no section {heading}"
    body = text.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    assert "**Why:**" in body
    assert re.search(r"\*\*AWS documentation:\*\* \[[^\]]+\]\(https://docs\.aws\.amazon\.com/", body), (
        f"{rule.name}: no AWS documentation link")
    excludable = "**Excludable:** yes" if rule.suppressible else "**Excludable:** no"
    assert excludable in body, f"{rule.name}: the section should say '{excludable}'"
    for key in rule.config:
        assert f"`{key}`" in body, f"{rule.name}: the section does not name its setting {key}"
