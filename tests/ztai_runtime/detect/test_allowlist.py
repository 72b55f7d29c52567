"""The allow-list: every entry reasoned, never everyone, critical only when said, expiring, and
every suppression counted."""

from __future__ import annotations

from typing import Any

import pytest

from ztai_runtime.detect.allowlist import AllowList, AllowListError
from ztai_runtime.detect.signals import Signal

ROTATION = "arn:aws:iam::111122223333:role/zero-trust-ai-prod-key-rotation"
REASON = "The monthly rotation re-encrypts every data key on the first of the month."
DAY_MS = 86_400_000
T_2027_06_30 = 1_814_313_600_000  # 2027-06-30T00:00:00Z


def signal(rule: str = "model:rate", severity: str = "medium", principal: str = ROTATION) -> Signal:
    return Signal(rule, severity, principal, "why")


def entry(**fields: Any) -> dict[str, Any]:
    return {"principal": "arn:aws:iam::*:role/zero-trust-ai-*-key-rotation", "reason": REASON,
            **fields}


def test_an_entry_suppresses_its_principal_and_rules_only() -> None:
    allow = AllowList.parse({"allow": [entry(rules=["model:rate", "model:new-*"])]})
    assert allow.suppresses(signal("model:rate"), 0)
    assert allow.suppresses(signal("model:new-action"), 0)
    assert not allow.suppresses(signal("model:volume"), 0)
    assert not allow.suppresses(signal(principal=ROTATION.replace("key-rotation", "deploy")), 0)
    assert allow.counts == [2]


def test_without_rules_an_entry_covers_every_rule_but_not_critical() -> None:
    allow = AllowList.parse({"allow": [entry()]})
    assert allow.suppresses(signal("anything", "high"), 0)
    assert not allow.suppresses(signal("cloudtrail-stopped", "critical"), 0)
    assert AllowList.parse({"allow": [entry(critical=True)]}).suppresses(
        signal("cloudtrail-stopped", "critical"), 0)


def test_until_ends_the_entry_after_that_day() -> None:
    allow = AllowList.parse({"allow": [entry(until="2027-06-30")]})
    assert allow.suppresses(signal(), T_2027_06_30 + DAY_MS - 1)
    assert not allow.suppresses(signal(), T_2027_06_30 + DAY_MS)


def test_an_empty_list_allows_nothing() -> None:
    assert AllowList.parse({"allow": None}).entries == ()
    assert not AllowList.parse({"allow": []}).suppresses(signal(), 0)


@pytest.mark.parametrize(("data", "message"), [
    ([], "a mapping with the one key 'allow'"),
    ({"allow": [], "extra": 1}, "a mapping with the one key 'allow'"),
    ({"allow": "x"}, "'allow' must be a list"),
    ({"allow": ["x"]}, "entry 1: must be a mapping"),
    ({"allow": [entry(reason=None)]}, "'reason' is required"),
    ({"allow": [entry(reason="automation")]}, "at least 20 characters"),
    ({"allow": [entry(principal="*")]}, "would allow everyone"),
    ({"allow": [entry(principal="")]}, "'principal' is required"),
    ({"allow": [entry(rules=[1])]}, "'rules' must be a list"),
    ({"allow": [entry(until="next year")]}, "'until' must be a date"),
    ({"allow": [entry(until="2027-02-30")]}, "is not a date"),
    ({"allow": [entry(critical="yes")]}, "'critical' must be true or false"),
    ({"allow": [entry(owner="me")]}, "unknown key(s) owner"),
])
def test_bad_entries_are_refused_naming_the_problem(data: Any, message: str) -> None:
    with pytest.raises(AllowListError) as raised:
        AllowList.parse(data)
    assert message in str(raised.value)


def test_the_shipped_allow_list_is_valid_and_allows_only_what_it_says() -> None:
    """detections/allow.yaml: each entry names model kinds (never a Sigma rule, never the models
    that show stolen credentials), never critical, and a role, not everyone."""
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[3] / "detections" / "allow.yaml"
    allow = AllowList.parse(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))
    assert allow.entries
    never = {"model:new-network", "model:instance-credentials-outside", "model:long-term-key",
             "model:imdsv1", "model:outside-endpoints"}
    for item in allow.entries:
        assert item.principal.startswith("arn:aws:iam::*:role/"), item.principal
        assert item.rules and all(rule.startswith("model:") and "*" not in rule for rule in item.rules)
        assert not set(item.rules) & never
        assert not item.critical
