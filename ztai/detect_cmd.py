"""`ztai detect PATH...`: behavioural detection over CloudTrail files and the project's own logs.

    ztai detect PATH... [--json] [--rules DIR] [--state FILE] [--since T] [--until T]
                        [--fail-on SEVERITY] [--allow FILE] [--context FILE] [--geoip-db FILE]
    ztai detect export --backend splunk|elastic|sentinel [--rules DIR] [--context FILE]

PATH: CloudTrail files as S3 delivers them (`{"Records": [...]}`, optionally gzip'd), JSON arrays of
records, JSONL, or folders of those (read recursively); also the project's OCSF records, gateway
access logs, inference events and JIT lines (`ztai_runtime.detect.sources`). Events are processed
in event-time order across files; the models learn as they go (the first days of the log are
their baseline), and `--state FILE` resumes what an earlier run learned and saves it again.

Exit 0 with no finding at or above `--fail-on` (default `low`), 1 with one, 2 on bad input
(nothing is reported and the state file is left as it was).

`export` (a first PATH literally `export`; a folder of that name is `./export`) prints the rules
converted for a SIEM through pySigma's backends (`ztai.detect_rules`).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ztai.errors import EXIT_OK, EXIT_VIOLATION, UsageError
from ztai_runtime.detect.allowlist import AllowList, AllowListError
from ztai_runtime.detect.build import build_engine, run_files
from ztai_runtime.detect.engine import Engine, Finding
from ztai_runtime.detect.signals import SEVERITIES, severity_rank
from ztai_runtime.detect.sources import InputError, iso
from ztai_runtime.trail.validation import parse_time

DEFAULT_FAIL_ON = "low"
BACKENDS = ("splunk", "elastic", "sentinel")
# The table's reason column is cut here; --json always has the whole reason.
REASON_WIDTH = 100


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    detect = commands.add_parser(
        "detect", help="find insider behaviour in CloudTrail files and the project's logs",
        description="Run the detection rules (Sigma) and the behavioural models over CloudTrail "
                    "files as S3 delivers them ({\"Records\": [...]}, optionally .gz), JSON arrays, "
                    "JSONL, or folders of those, plus the project's OCSF records, gateway access "
                    "logs, inference events and JIT lines, in event-time order across files. One "
                    "finding per burst, listing every event it flags. `ztai detect export --backend "
                    "NAME` prints the rules for a SIEM instead (docs/detection.md).",
        epilog="for this command: 0 no finding at or above --fail-on; 1 findings at or above it; "
               "2 a path, file, option, rule, allow-list or state that cannot be used (no finding "
               "is reported and the state file is not changed)")
    detect.add_argument("paths", nargs="+", metavar="PATH",
                        help="files or folders to read (recursively); `export` as the first PATH "
                             "prints the rules for a SIEM (--backend)")
    detect.add_argument("--json", action="store_true",
                        help='print {"findings": [...], "summary": {...}} instead of a table')
    detect.add_argument("--rules", type=Path, metavar="DIR",
                        help="a folder of Sigma rules to run instead of the shipped ones "
                             "(detections/sigma)")
    detect.add_argument("--state", type=Path, metavar="FILE",
                        help="what the models learned: read when the file exists, written back "
                             "(atomically) after a successful run")
    detect.add_argument("--since", metavar="T",
                        help="only events at or after T (UTC, 2026-01-08T05:00:00Z or 2026-01-08)")
    detect.add_argument("--until", metavar="T", help="only events before T (UTC)")
    detect.add_argument("--fail-on", default=DEFAULT_FAIL_ON, choices=SEVERITIES,
                        metavar="SEVERITY",
                        help=f"exit 1 when a finding is at or above this severity ({', '.join(SEVERITIES)}; "
                             f"default {DEFAULT_FAIL_ON})")
    detect.add_argument("--allow", type=Path, metavar="FILE",
                        help="an allow-list of known automation (YAML or JSON; each entry with its "
                             "reason: docs/detection.md)")
    detect.add_argument("--context", type=Path, metavar="FILE",
                        help="a JSON object of the stack's names the rules' placeholders expand to "
                             "(its keys, roles, tables: docs/detection-rules.md); default: the "
                             "project's naming conventions")
    detect.add_argument("--geoip-db", metavar="FILE",
                        help="an MMDB file (ASN and country, e.g. DB-IP Lite) for the network-origin "
                             "model; without it, new networks are judged by address prefix only")
    detect.add_argument("--backend", choices=BACKENDS,
                        help="with `export`: the SIEM query language to print the rules in")
    detect.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.paths[0] == "export":
        return _export(args)
    if args.backend is not None:
        raise UsageError("--backend goes with `ztai detect export`; to detect, give PATHs only")
    since_ms = _time_ms(args.since, "--since")
    until_ms = _time_ms(args.until, "--until")
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise UsageError(f"--until {args.until} is not after --since {args.since}")
    for path in args.paths:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file or folder")
    allow = _allow_list(args.allow)
    context = _context(args.context)
    rules_ir = _rules_ir(args.rules)
    state = _state(args.state)
    if args.geoip_db is not None and not Path(args.geoip_db).is_file():
        raise UsageError(f"--geoip-db {args.geoip_db}: no such file (an MMDB file, e.g. DB-IP Lite "
                         "ASN and country: docs/detection-models.md)")

    def make_engine() -> Engine:
        # Fresh each time: a second reading (run_files) starts again from the saved state and with
        # the allow-list's counts at zero, so its output is what one reading would give.
        try:
            return build_engine(rules_ir=rules_ir, context=context,
                                allow=AllowList(allow.entries) if allow is not None else None,
                                geoip_db=args.geoip_db, state=copy.deepcopy(state))
        except ValueError as problem:  # raised before any file is read (run_files builds first)
            raise UsageError(f"cannot start the detectors: {problem}") from None

    try:
        engine, reread = run_files(args.paths, make_engine, since_ms=since_ms, until_ms=until_ms)
    except InputError as problem:
        raise UsageError(str(problem)) from None
    if reread is not None:
        sys.stderr.write(f"ztai detect: read the files a second time, all at once, in exact time order: "
                         f"{reread}\n")
    findings = engine.finish()
    if args.state is not None:
        _save_state(args.state, engine.to_state())
    summary = _summary(findings, engine.events, engine.allow if allow is not None else None)
    if args.json:
        document = {"findings": [finding.to_json() for finding in findings], "summary": summary}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(render_table(findings, summary))
    threshold = severity_rank(args.fail_on)
    failing = any(severity_rank(finding.severity) >= threshold for finding in findings)
    return EXIT_VIOLATION if failing else EXIT_OK


def _time_ms(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    text = value + "T00:00:00Z" if len(value) == 10 else value
    try:
        moment: datetime = parse_time(text)
    except ValueError:
        raise UsageError(f"{option} {value!r}: not a UTC time; write 2026-01-08T05:00:00Z or "
                         "2026-01-08") from None
    return int(moment.timestamp() * 1000)


def _allow_list(path: Path | None) -> AllowList | None:
    if path is None:
        return None
    # ztai.jsonfile imports components: only after the CLI has chosen the project's copy of them
    # (ztai.project.use_project), never at import time.
    from ztai.jsonfile import read_text

    text = read_text(path, "allow-list", UsageError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"allow-list {path}: not YAML or JSON{where}") from None
    try:
        return AllowList.parse(data, source=f"allow-list {path}")
    except AllowListError as problem:
        raise UsageError(str(problem)) from None


def _context(path: Path | None) -> dict[str, list[str]] | None:
    if path is None:
        return None
    from ztai.jsonfile import read_json

    data = read_json(path, "context file", UsageError)
    if not isinstance(data, Mapping) or not all(
            isinstance(values, list) and all(isinstance(v, str) for v in values)
            for values in data.values()):
        raise UsageError(f"context file {path}: must be a JSON object whose values are lists of "
                         "strings (placeholder name -> values: docs/detection-rules.md)")
    return {str(name): list(values) for name, values in data.items()}


def _rules_ir(folder: Path | None) -> dict[str, Any] | None:
    if folder is None:
        return None
    if not folder.is_dir():
        raise UsageError(f"--rules {folder}: not a folder (a folder of Sigma rules, *.yml)")
    from ztai.detect_rules import RuleError, compile_rules  # pySigma loads only when asked

    try:
        return compile_rules(folder)
    except RuleError as problem:
        raise UsageError(str(problem)) from None


def _state(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    from ztai.jsonfile import read_json

    data = read_json(path, "state file", UsageError)
    if not isinstance(data, dict):
        raise UsageError(f"state file {path}: not a detection state (a JSON object written by "
                         "`ztai detect --state`)")
    return data


def _save_state(path: Path, state: Mapping[str, Any]) -> None:
    """Write the state whole or not at all: a temporary file in the same folder, then a rename."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(state, out, separators=(",", ":"))
        os.replace(name, path)
    except OSError as problem:
        raise UsageError(f"state file {path}: cannot write it ({problem.strerror or problem})") from None


def _summary(findings: Sequence[Finding], events: int, allow: AllowList | None) -> dict[str, Any]:
    by_severity = {name: 0 for name in SEVERITIES}
    for finding in findings:
        by_severity[finding.severity] += 1
    summary: dict[str, Any] = {"events": events, "findings": len(findings),
                               "bySeverity": by_severity}
    if allow is not None:
        summary["allowListed"] = [
            {"principal": entry.principal, "rules": list(entry.rules), "suppressed": count}
            for entry, count in zip(allow.entries, allow.counts, strict=True)]
    return summary


def render_table(findings: Sequence[Finding], summary: Mapping[str, Any]) -> str:
    """The findings as a plain table, most severe first, then a summary line."""
    rows = [("SEVERITY", "RULE", "PRINCIPAL", "EVENTS", "FIRST SEEN", "LAST SEEN", "ATT&CK",
             "REASON")]
    ordered = sorted(findings, key=lambda f: (-severity_rank(f.severity), f.first_ms))
    for finding in ordered:
        reason = finding.reason if len(finding.reason) <= REASON_WIDTH else \
            finding.reason[:REASON_WIDTH - 1] + "…"
        rows.append((finding.severity, finding.rule, finding.principal, str(finding.event_count),
                     iso(finding.first_ms), iso(finding.last_ms), finding.technique or "-", reason))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
             + "  " + row[-1] for row in rows] if findings else []
    counts = ", ".join(f"{count} {name}" for name, count in summary["bySeverity"].items() if count)
    lines.append(f"{summary['findings']} finding(s) from {summary['events']} event(s)"
                 + (f": {counts}" if counts else ""))
    for entry in summary.get("allowListed", []):
        lines.append(f"allow-list: {entry['principal']} suppressed {entry['suppressed']} signal(s)")
    return "\n".join(lines) + "\n"


def _export(args: argparse.Namespace) -> int:
    if len(args.paths) > 1:
        raise UsageError("`ztai detect export` takes no PATH: give --backend and optionally --rules")
    if args.backend is None:
        raise UsageError(f"`ztai detect export` needs --backend ({', '.join(BACKENDS)})")
    extra = [name for name, given in (("--json", args.json), ("--state", args.state),
                                       ("--since", args.since), ("--until", args.until),
                                       ("--allow", args.allow), ("--geoip-db", args.geoip_db))
             if given]
    if extra:
        raise UsageError(f"`ztai detect export` does not take {', '.join(extra)}: it prints the "
                         "rules, it reads no events")
    from ztai.detect_rules import RULES_DIR, RuleError, export

    folder = args.rules if args.rules is not None else RULES_DIR
    if not folder.is_dir():
        raise UsageError(f"--rules {folder}: not a folder (a folder of Sigma rules, *.yml)")
    context = _context(args.context)
    try:
        sys.stdout.write(export(folder, args.backend, context).rstrip("\n") + "\n")
    except RuleError as problem:
        raise UsageError(str(problem)) from None
    return EXIT_OK
