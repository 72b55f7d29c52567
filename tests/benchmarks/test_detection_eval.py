"""The detection evaluation's harness: the corpus it writes, and its accounting, checked with fake
detectors whose findings are known in advance."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks import detection_eval
from benchmarks.detection_data import load_stratus
from benchmarks.detection_eval import (
    BASELINE_DAYS,
    RELEVANCE,
    Corpus,
    account,
    attack_times,
    build_corpus,
    disguise,
    evaluate,
    short_name,
    write_cloudtrail,
)
from tests.support.datasets import stratus_red_team_files
from ztai_runtime.detect.engine import Engine, Finding
from ztai_runtime.detect.signals import Signal
from ztai_runtime.detect.sources import Event

START = datetime(2026, 11, 16, tzinfo=UTC)


class NameDetector:
    """Flags every event whose eventName is one of `names` (a stand-in for a rule)."""

    def __init__(self, rule: str, *names: str) -> None:
        self.name = rule
        self.names = frozenset(names)

    def observe(self, event: Event, principal: str) -> list[Signal]:
        if event.record.get("eventName") in self.names:
            return [Signal(self.name, "high", principal, f"{event.record['eventName']} called")]
        return []

    def to_state(self) -> dict[str, Any]:
        return {}


class AgentDetector:
    """Flags the Stratus Red Team user agent: a giveaway, not behaviour."""

    name = "stratus-agent"

    def observe(self, event: Event, principal: str) -> list[Signal]:
        if str(event.record.get("userAgent", "")).startswith("stratus-red-team"):
            return [Signal(self.name, "high", principal, "the emulator's user agent")]
        return []

    def to_state(self) -> dict[str, Any]:
        return {}


def techniques(*names: str) -> dict[str, list[dict[str, Any]]]:
    everything = load_stratus(stratus_red_team_files()[0].parent)
    return {name: records for name, records in everything.items() if short_name(name) in names}


def finding(rule: str, *ids: str) -> Finding:
    return Finding(rule=rule, principal="p", group="", severity="high", reason="r", technique=None,
                   first_ms=0, last_ms=0, event_ids=list(ids), event_count=len(ids))


# -- the accounting -----------------------------------------------------------------------------

def test_accounting_counts_flagged_techniques_false_findings_and_the_rate_per_10k() -> None:
    truth = {"defense-evasion.cloudtrail-stop": ["a1", "a2"],
             "persistence.iam-create-admin-user": ["b1", "b2", "b3"]}
    findings = [finding("stop", "a1"), finding("stop", "a2", "x1"),  # attack (with one benign event)
                finding("noise", "x2", "x3"), finding("noise", "x2"), finding("other", "x4")]
    result = account(findings, truth, events=20_005)
    by_name = {t.name: t for t in result.techniques}
    assert by_name["cloudtrail-stop"].flagged and by_name["cloudtrail-stop"].flagged_events == 2
    assert by_name["cloudtrail-stop"].rules == ["stop"]
    assert not by_name["iam-create-admin-user"].flagged and by_name["iam-create-admin-user"].rules == []
    assert result.benign_events == 20_000
    assert result.benign_flagged == 4  # x1..x4, x2 counted once
    assert result.findings == 5 and result.false_findings == 3
    assert result.false_rules == {"noise": 2, "other": 1}
    assert result.false_per_10k == pytest.approx(1.5)
    data = result.to_json()
    assert data["relevant_flagged"] == 1 and data["relevant"] == 2
    assert data["false_findings_per_10k_benign"] == pytest.approx(1.5)


def test_a_finding_listing_one_attack_event_among_benign_ones_is_not_false() -> None:
    result = account([finding("wide", "x1", "x2", "a1")], {"t.cloudtrail-stop": ["a1"]}, events=3)
    assert result.false_findings == 0 and result.benign_flagged == 2
    assert result.techniques[0].flagged_events == 1


def test_every_dataset_technique_has_a_relevance_and_a_reason() -> None:
    names = {path.name.removeprefix("aws.").removesuffix(".json") for path in stratus_red_team_files()}
    assert {short_name(name) for name in names} == set(RELEVANCE)
    assert sum(relevant for relevant, _ in RELEVANCE.values()) == 32
    assert all(reason for _, reason in RELEVANCE.values())


# -- the corpus -----------------------------------------------------------------------------------

def test_attacks_start_after_the_baseline_and_before_the_end_in_a_seeded_order() -> None:
    names = [f"t{i}" for i in range(35)]
    at = attack_times(names, start=START, days=28, seed=3)
    assert min(at.values()) >= datetime(2026, 11, 23, tzinfo=UTC)
    assert max(at.values()) < datetime(2026, 12, 14, tzinfo=UTC)
    assert at == attack_times(names, start=START, days=28, seed=3)
    assert at != attack_times(names, start=START, days=28, seed=4)
    hours = {moment.hour for moment in at.values()}
    assert len(hours) > 8  # spread over the day, not all at one hour
    with pytest.raises(ValueError, match="longer than the 7-day baseline"):
        attack_times(names, start=START, days=BASELINE_DAYS, seed=3)


def test_files_are_written_as_s3_delivers_cloudtrail(tmp_path: Path) -> None:
    records = [{"eventTime": f"2026-11-16T10:0{minute}:00Z", "eventID": f"e{minute}", "awsRegion": region}
               for minute in range(8) for region in ("eu-west-1", "us-east-1")]
    assert write_cloudtrail(tmp_path, records, account="111122223333", seed=1) == 4
    files = sorted(tmp_path.rglob("*.json.gz"))
    pattern = re.compile(r"AWSLogs/111122223333/CloudTrail/(eu-west-1|us-east-1)/2026/11/16/"
                         r"111122223333_CloudTrail_\1_20261116T10([0-9]{2})Z_[0-9A-F]{16}\.json\.gz")
    matches = [pattern.fullmatch(path.relative_to(tmp_path).as_posix()) for path in files]
    assert all(matches), files
    batches = [json.loads(gzip.decompress(path.read_bytes()))["Records"] for path in files]
    assert sorted(len(batch) for batch in batches) == [3, 3, 5, 5]  # minutes 0-4 and 5-7
    assert all(len({r["awsRegion"] for r in batch}) == 1 for batch in batches)
    # Each named by its delivery: 1-10 minutes after its five minutes end, never before an event.
    for match, batch in zip(matches, batches, strict=True):
        assert match is not None
        period_end = 5 if max(r["eventTime"] for r in batch) < "2026-11-16T10:05" else 10
        assert period_end + 1 <= int(match.group(2)) <= period_end + 10
    again = tmp_path / "again"
    write_cloudtrail(again, records, account="111122223333", seed=1)
    assert [p.read_bytes() for p in sorted(again.rglob("*.gz"))] == [p.read_bytes() for p in files]


def test_four_weeks_from_the_default_start_hold_a_key_rotation_and_the_on_call_night_after_the_baseline(
        tmp_path: Path) -> None:
    corpus = Corpus(tmp_path, {}, 0, 0, 0, detection_eval.DEFAULT_START, 28, seed=14)
    assert detection_eval.rotations(corpus) == ["2026-12-01"]
    assert "the on-call night 2026-12-07" in "\n".join(detection_eval.summary(
        account([], {}, 0), None, corpus))


def test_disguise_removes_the_giveaways_and_keeps_the_action() -> None:
    records = [r for records in techniques("iam-create-admin-user", "console-login-without-mfa").values()
               for r in records]
    hidden = disguise(records)
    text = json.dumps(hidden)
    assert "stratus" not in text.lower()
    # Long-term keys stay only where the action made one (CreateAccessKey's response), never as the actor.
    assert not any("AKIA" in json.dumps(r["userIdentity"]) for r in hidden)
    for before, after in zip(records, hidden, strict=True):
        assert after["eventID"] == before["eventID"] and after["eventName"] == before["eventName"]
        assert after["userIdentity"]["type"] == "AssumedRole"
        assert after["sourceIPAddress"].startswith("203.0.113.")
    login = next(r for r in hidden if r["eventName"] == "ConsoleLogin")
    assert login["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] == "false"
    assert login["additionalEventData"]["MFAUsed"] == "No"


# -- the whole run, with fake detectors ----------------------------------------------------------

def small_corpus(folder: Path, *, disguised: bool = False) -> Corpus:
    return build_corpus(folder, techniques=techniques("cloudtrail-stop", "iam-create-admin-user"),
                        start=START, days=14, seed=5, events_per_day=60, disguised=disguised)


def test_a_fake_rule_flags_its_technique_and_its_benign_hits_are_false_findings(tmp_path: Path) -> None:
    corpus = small_corpus(tmp_path)
    # StartInstanceRefresh: the image rollout, once on each of the window's two Tuesdays (hours apart
    # from anything else): two bursts, two false findings.
    engine = Engine([NameDetector("stop", "StopLogging"), NameDetector("refresh", "StartInstanceRefresh")])
    result = evaluate(corpus, lambda: engine)
    by_name = {t.name: t for t in result.techniques}
    stops = sum(1 for r in techniques("cloudtrail-stop")["defense-evasion.cloudtrail-stop"]
                if r["eventName"] == "StopLogging")
    assert by_name["cloudtrail-stop"].flagged and by_name["cloudtrail-stop"].rules == ["stop"]
    assert by_name["cloudtrail-stop"].flagged_events == stops
    assert not by_name["iam-create-admin-user"].flagged
    assert result.false_findings == 2 and result.false_rules == {"refresh": 2}
    assert result.benign_flagged == 2
    assert result.benign_events == corpus.benign and result.events == corpus.events
    assert result.false_per_10k == pytest.approx(2 * 10_000 / corpus.benign)


def test_a_giveaway_detector_flags_as_recorded_but_not_disguised(tmp_path: Path) -> None:
    recorded = evaluate(small_corpus(tmp_path / "r"), lambda: Engine([AgentDetector()]))
    hidden = evaluate(small_corpus(tmp_path / "d", disguised=True), lambda: Engine([AgentDetector()]))
    assert all(t.flagged for t in recorded.techniques)
    assert not any(t.flagged for t in hidden.techniques)
    report = detection_eval.markdown(recorded, hidden, small_corpus(tmp_path / "again"))
    assert "flagged only through what gives Stratus away (flagged as recorded, not disguised): 2" in report


def test_main_writes_the_json_and_the_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = stratus_red_team_files()[0].parent
    out = tmp_path / "eval.md"
    code = detection_eval.main(["--dataset", str(dataset), "--weeks", "2", "--events-per-day", "40",
                                "--results", str(tmp_path), "--markdown", str(out)],
                               engine_factory=lambda: Engine([NameDetector("stop", "StopLogging")]))
    assert code == 0
    data = json.loads((tmp_path / "detection_eval.json").read_text())
    assert data["recorded"]["techniques"]["cloudtrail-stop"]["flagged"] is True
    assert data["recorded"]["relevant_flagged"] == 1 and data["recorded"]["relevant"] == 32
    assert data["disguised"]["techniques"]["cloudtrail-stop"]["flagged"] is True
    assert len(data["attack_times"]) == 35
    # Two weeks from 2026-11-16: no 1st of the month; the on-call night after the first week.
    assert data["key_rotations"] == [] and data["on_call_night"] >= "2026-11-23"
    assert out.read_text() in capsys.readouterr().out
    assert "| cloudtrail-stop | yes | the audit trail is a control |" in out.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--weeks", "1"], "--weeks must be at least 2"),
    (["--events-per-day", "0"], "--events-per-day must be at least 1"),
    (["--start", "16/11/2026"], "is not a date; allowed: YYYY-MM-DD"),
])
def test_bad_options_exit_2_naming_the_option(args: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        detection_eval.main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_folder_without_the_dataset_exits_2_naming_it(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        detection_eval.main(["--dataset", str(tmp_path)])
    assert exit_.value.code == 2
    assert f"no Stratus Red Team records (aws.*.json) in {tmp_path}" in capsys.readouterr().err
