"""`ztai trail verify PATH`: CloudTrail log file integrity, checked offline as
`aws cloudtrail validate-logs` checks it online.

    ztai trail verify PATH [--public-keys FILE] [--json] [--start T] [--end T]

PATH is a local copy of the trail's `AWSLogs/` prefix with a `<digest>.metadata.json` sidecar per
digest and the output of `aws cloudtrail list-public-keys` (ztai_runtime/trail/local.py, and
docs/audit-trail.md for the commands that fetch them). Exit 0 every digest and log file valid, 1
any problem (a digest or log file missing, altered, added, re-ordered, badly signed or signed by
an unknown key), 2 an unusable input.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from ztai.errors import EXIT_OK, EXIT_VIOLATION, UsageError
from ztai_runtime.trail import local
from ztai_runtime.trail.validation import DigestFormatError, TrailReport, parse_time, verify_trail

DEFAULT_KEYS = "public-keys.json"


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    trail = commands.add_parser("trail", help="CloudTrail audit trail commands",
                                description="Commands on the CloudTrail audit trail.")
    actions = trail.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify", help="check a local copy of the trail's digest and log files (integrity)",
        description="Validate CloudTrail log file integrity offline, as `aws cloudtrail "
                    "validate-logs` does online: each digest's SHA256withRSA signature (from its "
                    "S3 metadata, kept in a `<digest>.metadata.json` sidecar written by `aws "
                    "s3api head-object`), the chain of digests, and the SHA-256 of every log file "
                    "the digests list; a log file no digest lists is reported as added. "
                    "docs/audit-trail.md has the commands that fetch the copy.",
        epilog="for this command: 0 every digest and log file valid; 1 any problem (missing, "
               "altered, added, re-ordered, bad signature, unknown key, a gap in the chain); 2 a "
               "path, key file, sidecar, time or digest that cannot be read")
    verify.add_argument("path", type=Path, metavar="PATH",
                        help="directory holding the copy's AWSLogs/ folder (`aws s3 sync "
                             "s3://BUCKET/PREFIX/AWSLogs/ PATH/AWSLogs/`)")
    verify.add_argument("--public-keys", type=Path, metavar="FILE",
                        help="the output of `aws cloudtrail list-public-keys --region REGION "
                             f"--start-time T` (default: PATH/{DEFAULT_KEYS})")
    verify.add_argument("--start", metavar="T",
                        help="check digests that end at or after T (UTC, e.g. 2026-01-08T05:00:00Z; "
                             "default: all)")
    verify.add_argument("--end", metavar="T",
                        help="check digests that start at or before T (UTC; default: all). With "
                             "it, every log file up to T must be listed by a digest; without it, "
                             "log files newer than the newest digest are counted as not yet "
                             "digested")
    verify.add_argument("--json", action="store_true",
                        help="one JSON document on stdout (valid, problems, summary) instead of "
                             "the text report")
    verify.set_defaults(handler=run)


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise UsageError(f"{option} {value!r}: not a UTC time; write it as "
                         "2026-01-08T05:00:00Z") from None


def _render(report: TrailReport) -> str:
    lines = [f"{problem.kind}\t{problem.file}\t{problem.message}" for problem in report.problems]
    lines.append(f"{report.digests_valid} of {report.digests_checked} digest files valid, "
                 f"{report.logs_valid} of {report.logs_checked} log files valid, "
                 f"{len(report.problems)} problem(s)")
    if report.logs_not_yet_digested:
        lines.append(f"{report.logs_not_yet_digested} log file(s) delivered after the newest "
                     "digest: not checked (the next digest will list them)")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    start, end = _time(args.start, "--start"), _time(args.end, "--end")
    if start is not None and end is not None and start > end:
        raise UsageError(f"--start {args.start} is after --end {args.end}")
    root: Path = args.path
    if not root.is_dir():
        raise UsageError(f"{root}: no such directory; give the directory holding the trail's "
                         "AWSLogs/ copy")
    keys_file: Path = args.public_keys if args.public_keys is not None else root / DEFAULT_KEYS
    try:
        public_keys = local.load_public_keys(keys_file)
        digests = local.load_digests(root)
        if not digests:
            raise UsageError(f"{root}: no digest files under AWSLogs/*/CloudTrail-Digest/; is log "
                             "file validation on for the trail, and was the digest prefix copied?")
        report = verify_trail(digests, public_keys, local.log_reader(root), local.present_logs(root),
                              log_time=local.log_time, start=start, end=end)
    except (local.TrailInputError, DigestFormatError) as error:
        raise UsageError(str(error)) from None
    print(json.dumps(report.as_json(), indent=2) if args.json else _render(report), end="")
    return EXIT_OK if report.ok else EXIT_VIOLATION
