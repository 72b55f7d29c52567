"""`ztai detect PATH...`: its whole interface (findings as a table or JSON, exit 0/1/2,
--fail-on, --state, --since/--until, --allow), shown with a detector whose verdict the test
controls, so each assertion is about the command and not about what the shipped rules find."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from ztai import detect_cmd
from ztai.cli import main
from ztai_runtime.detect.allowlist import AllowList
from ztai_runtime.detect.engine import Engine
from ztai_runtime.detect.signals import Signal
from ztai_runtime.detect.sources import Event

USER = "arn:aws:iam::111122223333:user/mallory"


class Flag:
    """Flags every event whose eventName is in `names` (severity by name), and counts what it saw:
    its state, so --state can be shown to carry learning over."""

    name = "flag"

    def __init__(self, seen: int = 0) -> None:
        self.seen = seen

    def observe(self, event: Event, principal: str) -> list[Signal]:
        self.seen += 1
        severity = {"StopLogging": "critical", "GetObject": "low"}.get(
            str(event.record.get("eventName")))
        if severity is None:
            return []
        return [Signal("test-rule", severity, principal, f"{event.record['eventName']} seen",
                       technique="T1562.008")]

    def to_state(self) -> dict[str, Any]:
        return {"seen": self.seen}


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> list[Engine]:
    built: list[Engine] = []

    def build(*, allow: AllowList | None = None, state: dict[str, Any] | None = None,
              **_: Any) -> Engine:
        flag = Flag(state["detectors"]["flag"]["seen"] if state else 0)
        engine = Engine([flag], allow=allow)
        if state:
            engine.restore(state)
        built.append(engine)
        return engine

    monkeypatch.setattr(detect_cmd, "build_engine", build)
    return built


def call(argv: list[str]) -> int | str | None:
    """`main`, with argparse's own refusals (SystemExit 2) as their exit status."""
    try:
        return main(argv)
    except SystemExit as done:
        return done.code


def record(name: str, when: str, uid: str) -> dict[str, Any]:
    return {"eventVersion": "1.08", "eventSource": "cloudtrail.amazonaws.com", "eventName": name,
            "eventTime": when, "eventID": uid, "awsRegion": "eu-west-1",
            "userIdentity": {"type": "IAMUser", "arn": USER}}


def write_trail(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    return path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "AWSLogs"
    # Two files whose events interleave in time: the burst must take both files' events.
    write_trail(folder / "b.json.gz", [record("StopLogging", "2026-03-01T10:20:00Z", "e2"),
                                       record("DescribeTrails", "2026-03-01T10:25:00Z", "e3")])
    write_trail(folder / "a.json.gz", [record("StopLogging", "2026-03-01T10:00:00Z", "e1"),
                                       record("StopLogging", "2026-03-01T10:40:00Z", "e4")])
    return folder


def test_findings_as_json_list_every_event_of_the_burst(
        logs: Path, engines: list[Engine], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(logs), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    [finding] = document["findings"]
    assert finding["eventIds"] == ["e1", "e2", "e4"]
    assert finding["principal"] == USER
    assert finding["rule"] == "test-rule"
    assert finding["severity"] == "critical"
    assert finding["reason"] == "StopLogging seen"
    assert (finding["firstSeen"], finding["lastSeen"]) == ("2026-03-01T10:00:00.000Z",
                                                           "2026-03-01T10:40:00.000Z")
    assert finding["attack"] == "T1562.008"
    assert document["summary"]["events"] == 4


def test_table_names_the_finding(logs: Path, engines: list[Engine],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(logs)]) == 1
    out = capsys.readouterr().out
    assert "critical" in out and "test-rule" in out and USER in out
    assert out.rstrip().endswith("1 finding(s) from 4 event(s): 1 critical")


def test_no_finding_exits_0(tmp_path: Path, engines: list[Engine],
                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write_trail(tmp_path / "t.json.gz", [record("DescribeTrails", "2026-03-01T10:00:00Z", "x")])
    assert main(["detect", str(path)]) == 0
    assert "0 finding(s) from 1 event(s)" in capsys.readouterr().out


@pytest.mark.parametrize(("fail_on", "status"), [("low", 1), ("medium", 0), ("critical", 0)])
def test_fail_on_sets_the_threshold(tmp_path: Path, engines: list[Engine], fail_on: str,
                                    status: int) -> None:
    path = write_trail(tmp_path / "t.json.gz", [record("GetObject", "2026-03-01T10:00:00Z", "x")])
    assert main(["detect", str(path), "--fail-on", fail_on]) == status


def test_since_and_until_bound_the_events(logs: Path, engines: list[Engine],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(logs), "--json", "--since", "2026-03-01T10:10:00Z",
                 "--until", "2026-03-01T10:30:00Z"]) == 1
    [finding] = json.loads(capsys.readouterr().out)["findings"]
    assert finding["eventIds"] == ["e2"]


def test_state_carries_learning_over_and_is_written_whole(
        logs: Path, tmp_path: Path, engines: list[Engine]) -> None:
    state = tmp_path / "state.json"
    main(["detect", str(logs), "--state", str(state)])
    assert json.loads(state.read_text())["detectors"]["flag"] == {"seen": 4}
    main(["detect", str(logs), "--state", str(state)])
    assert json.loads(state.read_text())["detectors"]["flag"] == {"seen": 8}


def test_bad_input_exits_2_and_leaves_the_state_alone(
        logs: Path, tmp_path: Path, engines: list[Engine],
        capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state.json"
    main(["detect", str(logs), "--state", str(state)])
    before = state.read_bytes()
    (logs / "c.json").write_text('{"Records": [{"eventName": 1}')
    capsys.readouterr()
    assert main(["detect", str(logs), "--state", str(state), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "c.json" in captured.err and "Traceback" not in captured.err
    assert state.read_bytes() == before


@pytest.mark.parametrize(("arguments", "message"), [
    (["no-such-folder"], "no such file or folder"),
    (["{logs}", "--since", "yesterday"], "not a UTC time"),
    (["{logs}", "--since", "2026-03-02", "--until", "2026-03-01"], "is not after --since"),
    (["{logs}", "--fail-on", "severe"], "invalid choice"),
    (["{logs}", "--backend", "splunk"], "--backend goes with `ztai detect export`"),
    (["{logs}", "--allow", "{bad_allow}"], "'reason' is required"),
    (["{logs}", "--context", "{bad_context}"], "must be a JSON object whose values are lists"),
    (["{logs}", "--state", "{bad_state}"], "not a detection state"),
    (["{logs}", "--geoip-db", "missing.mmdb"], "no such file"),
    (["export"], "needs --backend"),
    (["export", "--backend", "splunk", "--json"], "does not take --json"),
    (["export", "{logs}", "--backend", "splunk"], "takes no PATH"),
])
def test_unusable_arguments_exit_2_naming_the_problem(
        logs: Path, tmp_path: Path, engines: list[Engine], capsys: pytest.CaptureFixture[str],
        arguments: list[str], message: str) -> None:
    bad_allow = tmp_path / "allow.yaml"
    bad_allow.write_text("allow:\n  - principal: arn:aws:iam::*:role/ci\n    reason: ok\n")
    bad_context = tmp_path / "context.json"
    bad_context.write_text('{"weights_keys": "arn:aws:kms:eu-west-1:1:key/x"}')
    bad_state = tmp_path / "state.json"
    bad_state.write_text("[]")
    names = {"logs": str(logs), "bad_allow": str(bad_allow), "bad_context": str(bad_context),
             "bad_state": str(bad_state)}
    assert call(["detect", *(argument.format(**names) for argument in arguments)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_the_allow_list_suppresses_and_counts(logs: Path, tmp_path: Path, engines: list[Engine],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    allow = tmp_path / "allow.yaml"
    allow.write_text("allow:\n  - principal: 'arn:aws:iam::*:user/mallory'\n"
                     "    rules: [test-rule]\n    critical: true\n"
                     "    reason: the test user stops logging on purpose in this test\n")
    assert main(["detect", str(logs), "--allow", str(allow), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["findings"] == []
    assert document["summary"]["allowListed"] == [
        {"principal": "arn:aws:iam::*:user/mallory", "rules": ["test-rule"], "suppressed": 3}]


def test_a_critical_signal_needs_critical_true(logs: Path, tmp_path: Path, engines: list[Engine]) -> None:
    allow = tmp_path / "allow.yaml"
    allow.write_text("allow:\n  - principal: 'arn:aws:iam::*:user/mallory'\n"
                     "    reason: the test user stops logging on purpose in this test\n")
    assert main(["detect", str(logs), "--allow", str(allow)]) == 1


def delivered_trail(folder: Path, at: str, records: list[dict[str, Any]], unique: str) -> Path:
    """A CloudTrail file named as S3 holds it, delivered at `at` (YYYYMMDDTHHmmZ): the windowed read
    orders such files by that time."""
    return write_trail(folder / f"111122223333_CloudTrail_eu-west-1_{at}_{unique}.json.gz", records)


def late_trail(folder: Path, name: str) -> Path:
    """Three `name` events, e1 and e3 delivered on time, e2 delivered five hours after it happened
    (past the windowed read's hour): `ztai detect` reads such a folder twice."""
    delivered_trail(folder, "20260301T1010Z", [record(name, "2026-03-01T10:00:00Z", "e1")], "A" * 16)
    delivered_trail(folder, "20260301T1610Z", [record(name, "2026-03-01T16:00:00Z", "e3")], "B" * 16)
    delivered_trail(folder, "20260301T1620Z", [record(name, "2026-03-01T11:00:00Z", "e2")], "C" * 16)
    return folder


def test_a_late_event_means_a_second_reading_with_the_same_result(
        tmp_path: Path, engines: list[Engine], capsys: pytest.CaptureFixture[str]) -> None:
    folder = late_trail(tmp_path / "trail", "StopLogging")
    state = tmp_path / "state.json"
    assert main(["detect", str(folder), "--json", "--state", str(state)]) == 1
    captured = capsys.readouterr()
    assert "read the files a second time" in captured.err and "CCCC" in captured.err
    findings = json.loads(captured.out)["findings"]
    # In time order (the burst gap of an hour splits e1 and e2 from e3), as the exact read gives.
    assert [finding["eventIds"] for finding in findings] == [["e1", "e2"], ["e3"]]
    # The second reading started again from no state: three events seen, not three plus some.
    assert json.loads(state.read_text())["detectors"]["flag"] == {"seen": 3}


def test_a_bad_file_delivered_last_exits_2_after_the_windowed_read_began(
        tmp_path: Path, engines: list[Engine], capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "trail"
    delivered_trail(folder, "20260301T1010Z", [record("StopLogging", "2026-03-01T10:00:00Z", "e1")], "A" * 16)
    delivered_trail(folder, "20260302T1010Z", [record("StopLogging", "2026-03-02T10:00:00Z", "e2")], "B" * 16)
    state = tmp_path / "state.json"
    assert main(["detect", str(folder), "--state", str(state)]) == 1
    before = state.read_bytes()
    bad = delivered_trail(folder, "20260309T1010Z", [], "C" * 16)
    bad.write_bytes(gzip.compress(b'{"Records": [{"eventVersion": "1.08"}]}'))
    capsys.readouterr()
    assert main(["detect", str(folder), "--state", str(state), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "CCCC" in captured.err and "no known kind" in captured.err
    assert engines[-1].events >= 2  # events were judged before the bad file was reached
    assert state.read_bytes() == before


def test_a_second_reading_counts_the_allow_list_once(
        tmp_path: Path, engines: list[Engine], capsys: pytest.CaptureFixture[str]) -> None:
    folder = late_trail(tmp_path / "trail", "GetObject")
    allow = tmp_path / "allow.yaml"
    allow.write_text(f"allow:\n  - principal: '{USER}'\n    reason: the test's own automation\n")
    assert main(["detect", str(folder), "--json", "--allow", str(allow)]) == 0
    captured = capsys.readouterr()
    assert "read the files a second time" in captured.err
    document = json.loads(captured.out)
    assert document["findings"] == []
    # Three events suppressed, as one reading counts them: not three plus the first reading's two.
    assert [entry["suppressed"] for entry in document["summary"]["allowListed"]] == [3]
