"""Evaluation: which attack techniques the detector flags in weeks of benign activity, and how many
false findings it raises.

Run with `./run bench detect-eval` (or `python -m benchmarks.detection_eval`). What it does:

1. Builds the corpus, deterministically from `--seed`: `--weeks` (default 4) of this
   architecture's benign activity (`benchmarks.detection_data.benign_activity`: the teams and their
   working hours, the inference fleet, the SIEM and Config automation, the monthly key rotation, the
   CI releases, the JIT elevations and one late on-call night), and the 35 Stratus Red Team
   techniques re-homed into the evaluation account (`rehome`) and mixed in (`mixed`) at spread-out
   times after the baseline period (the first BASELINE_DAYS days, which hold no attack).
2. Writes it as CloudTrail delivers it to S3: one gzip'd `{"Records": [...]}` file per region and
   five minutes, under `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`, records in no
   particular order inside a file (CloudTrail does not sort them either).
3. Runs the engine over the folder as `ztai detect` does: `read_events` (event-time order across
   files), `Engine.process` for each event, `Engine.finish`. The engine is
   `ztai_runtime.detect.build.build_engine()` with its defaults.
4. Reports, per technique: whether it is relevant to this architecture (and why), whether it was
   flagged, by which rules or models, and how many of its events the findings list; overall: the
   benign events, the benign events listed by any finding, the findings, the false findings (those
   listing no attack event) and false findings per 10,000 benign events (the target is below 1).

What gives the Stratus records away by themselves, without any model: their user agent
(`stratus-red-team_<uuid>`), their actor (mostly an IAM user with a long-term AKIA key, which this
architecture never uses), resource names with "stratus" in them, and anonymised source addresses
(reserved ranges, leading zeros). So the evaluation runs twice: as recorded, and "disguised"
(`disguise`): the same records with a normal SDK user agent, the IAM and federated users replaced
by an ML engineer's assumed-role session (MFA as the record says), the address by that engineer's
office, "stratus" names replaced. A technique flagged as recorded but not disguised was flagged
only through such giveaways, and the report counts those.

Output: a markdown table (for docs/detection-evaluation.md; `--markdown FILE` writes it) and JSON
(`benchmarks/results/detection_eval.json`).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from benchmarks.detection_data import (
    ACCOUNT,
    PERSONAS,
    REGION,
    assumed_identity,
    benign_activity,
    load_stratus,
    mixed,
    on_call_night,
)
from ztai_runtime.detect.allowlist import AllowList
from ztai_runtime.detect.build import build_engine, run_files
from ztai_runtime.detect.engine import Engine, Finding

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ALLOW_LIST = ROOT / "detections" / "allow.yaml"
# Beside the checkout (a clone, or a worktree one level deeper), or under ZTAI_SHARED_DIR.
DATASET_CANDIDATES = tuple(Path(base) / "datasets" / "stratus-red-team" for base in (
    *((os.environ["ZTAI_SHARED_DIR"],) if os.environ.get("ZTAI_SHARED_DIR") else ()),
    ROOT.parent / "shared", ROOT.parent.parent / "shared"))
# A Monday, so that four weeks hold a 1st of the month (the key rotation) after the baseline.
DEFAULT_START = datetime(2026, 11, 16, tzinfo=UTC)
BASELINE_DAYS = 7
DELIVERY_MINUTES = 5
TARGET_FALSE_PER_10K = 1.0

# Which techniques apply to this architecture (services: S3, KMS, EC2/ASG/Image Builder, IAM, STS,
# CloudTrail, SSM, Lambda, VPC, Route 53 Resolver, Organizations, Secrets Manager through the
# perimeter policies, API Gateway, DynamoDB, CloudHSM), and why. Relevant ones must be flagged;
# "generic" ones are reported but are no target.
RELEVANCE: dict[str, tuple[bool, str]] = {
    "cloudtrail-delete": (True, "the audit trail is a control"),
    "cloudtrail-stop": (True, "the audit trail is a control"),
    "cloudtrail-event-selectors": (True, "narrows what the audit trail records"),
    "vpc-remove-flow-logs": (True, "flow logs are on every VPC"),
    "dns-delete-logs": (True, "Route 53 Resolver query logs feed the SIEM"),
    "organizations-leave": (True, "the SCPs, RCPs and data perimeter depend on the organisation"),
    "iam-backdoor-role": (True, "roles are the access model"),
    "iam-create-backdoor-role": (True, "roles are the access model"),
    "iam-create-admin-user": (True, "IAM users and admin attachments are named detections"),
    "iam-backdoor-user": (True, "access keys for users are named detections"),
    "iam-create-user-login-profile": (True, "login profiles are named detections"),
    "iam-update-user-login-profile": (True, "login profiles are named detections"),
    "sts-federation-token": (True, "mints sessions outside SSO and revocation"),
    "rolesanywhere-create-trust-anchor": (True, "mints sessions outside SSO and revocation"),
    "console-login-without-mfa": (True, "human roles require MFA; a named detection"),
    "ec2-share-ami": (True, "the parent AMI is sensitive; sharing is a named detection"),
    "ec2-share-ebs-snapshot": (True, "incident snapshots are sensitive; sharing is a named detection"),
    "ec2-security-group-open-port-22-ingress": (True, "no ingress from the internet"),
    "ec2-instance-connect": (True, "no SSH keys: SSM only"),
    "ec2-serial-console-send-ssh-public-key": (True, "no SSH keys: SSM only"),
    "ec2-steal-instance-credentials": (True, "instance credentials used outside AWS is named"),
    "ec2-user-data": (True, "tampers with the fleet's launch configuration"),
    "ec2-download-user-data": (True, "reconnaissance of the fleet's launch configuration"),
    "ec2-launch-unusual-instances": (True, "RunInstances outside the ASG and Image Builder roles"),
    "ssm-send-command": (True, "not an operation of the SSM-managed fleet"),
    "ssm-start-session": (True, "operators do it: a model case (new principal, target or hour)"),
    "ssm-retrieve-securestring-parameters": (True, "the parent-AMI parameter lives in SSM; volume"),
    "secretsmanager-retrieve-secrets": (True, "the data perimeter covers Secrets Manager"),
    "secretsmanager-batch-retrieve-secrets": (True, "the data perimeter covers Secrets Manager"),
    "lambda-overwrite-code": (True, "the runtime (rotation, JIT, playbooks) is Lambda"),
    "lambda-layer-extension": (True, "the runtime (rotation, JIT, playbooks) is Lambda"),
    "lambda-backdoor-function": (True, "the runtime (rotation, JIT, playbooks) is Lambda"),
    "rds-share-snapshot": (False, "no RDS in the architecture"),
    "bedrock-invoke-model": (False, "models are self-hosted in enclaves, not on Bedrock"),
    "ec2-get-password-data": (False, "Windows-only API, the fleet is Linux"),
}

# The disguise: a normal SDK, an ML engineer at the London office.
_SDK_AGENT = ("Boto3/1.35.90 md/Botocore#1.35.90 ua/2.0 os/linux#6.8.0 md/arch#x86_64 "
              "lang/python#3.11.11 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.90")
_ENGINEERS = next(p for p in PERSONAS if p.name == "ml-engineers")
_STRATUS_NAME = re.compile(r"stratus[-_]?red[-_]?team", re.IGNORECASE)
_IP = re.compile(r"^[0-9.]+$|^[0-9a-fA-F:]+:[0-9a-fA-F:.]*$")


def short_name(technique: str) -> str:
    """"defense-evasion.cloudtrail-stop" -> "cloudtrail-stop" (the data set's file names)."""
    return technique.split(".", 1)[-1]


def find_dataset(directory: Path | None) -> Path:
    for candidate in (directory,) if directory else DATASET_CANDIDATES:
        if candidate.is_dir() and any(candidate.glob("aws.*.json")):
            return candidate
    where = ", ".join(str(c) for c in ((directory,) if directory else DATASET_CANDIDATES))
    print(f"detection_eval: no Stratus Red Team records (aws.*.json) in {where}; give the data set's "
          "folder with --dataset", file=sys.stderr)
    raise SystemExit(2)


# -- the corpus -----------------------------------------------------------------------------------

def attack_times(names: Sequence[str], *, start: datetime, days: int, seed: int) -> dict[str, datetime]:
    """A start time for each technique, after the baseline period and at least two hours before the
    window ends: the techniques in a seeded order, one per equal slot of the remaining time, at a
    seeded point in the first half of the slot (so some fall at night, some in working hours)."""
    if days <= BASELINE_DAYS:
        raise ValueError(f"the window must be longer than the {BASELINE_DAYS}-day baseline, got {days} days")
    rng = random.Random(f"attack-times/{seed}")
    order = sorted(names)
    rng.shuffle(order)
    midnight = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    begin = midnight + timedelta(days=BASELINE_DAYS)
    span = timedelta(days=days - BASELINE_DAYS) - timedelta(hours=2)
    slot = span / max(1, len(order))
    return {name: begin + slot * index + timedelta(seconds=rng.uniform(0, slot.total_seconds() / 2))
            for index, name in enumerate(order)}


def disguise(records: Iterable[Mapping[str, Any]], *, account: str = ACCOUNT) -> list[dict[str, Any]]:
    """The records without what gives Stratus Red Team away by itself (new dicts; eventID, times,
    actions, parameters and errors kept): the user agent becomes a normal SDK's; an IAM or federated
    user becomes an ML engineer's assumed-role session (its MFA as the record says: a console
    sign-in without MFA stays without); a literal source address becomes one of the engineer's office
    (service names such as "ec2.amazonaws.com" stay); "stratus-red-team" in any name becomes "ops"."""
    out = []
    for original in records:
        record: dict[str, Any] = _renamed(json.loads(json.dumps(original)))
        if isinstance(record.get("userAgent"), str) and _STRATUS_NAME.search(str(original.get("userAgent"))):
            record["userAgent"] = _SDK_AGENT
        identity = record.get("userIdentity")
        if isinstance(identity, dict) and identity.get("type") in ("IAMUser", "FederatedUser"):
            session = _ENGINEERS.sessions[0]
            extra = record.get("additionalEventData") or {}
            mfa = not (isinstance(extra, dict) and extra.get("MFAUsed") == "No")
            created = datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            record["userIdentity"] = assumed_identity(
                _ENGINEERS.role, session, created - timedelta(minutes=5), account=account, mfa=mfa,
                source_identity=session)
        address = record.get("sourceIPAddress")
        if isinstance(address, str) and _IP.match(address):
            record["sourceIPAddress"] = f"{_ENGINEERS.ips[0]}37"
        record["eventID"] = original["eventID"]
        out.append(record)
    return out


def _renamed(value: Any) -> Any:
    if isinstance(value, str):
        return _STRATUS_NAME.sub("ops", value)
    if isinstance(value, list):
        return [_renamed(item) for item in value]
    if isinstance(value, dict):
        return {key: _renamed(item) for key, item in value.items()}
    return value


@dataclass
class Corpus:
    """The corpus as written: its folder, the ground truth {technique: eventIDs}, the counts."""

    folder: Path
    truth: dict[str, list[str]]
    events: int
    benign: int
    files: int
    start: datetime
    days: int
    at: dict[str, datetime] = field(default_factory=dict)
    seed: int = 0


def rotations(corpus: Corpus) -> list[str]:
    """The days of the window on which the key rotation runs (the 1st of a month)."""
    days = (corpus.start + timedelta(days=offset) for offset in range(corpus.days))
    return [day.date().isoformat() for day in days if day.day == 1]


def build_corpus(folder: Path, *, techniques: Mapping[str, Sequence[Mapping[str, Any]]], start: datetime,
                 days: int, seed: int, events_per_day: int, disguised: bool = False,
                 account: str = ACCOUNT, region: str = REGION) -> Corpus:
    """Write the benign window with every technique mixed in under `folder` (see the module
    docstring); the same arguments write the same files, byte for byte."""
    at = attack_times(list(techniques), start=start, days=days, seed=seed)
    benign = benign_activity(start=start, days=days, seed=seed, account=account, region=region,
                             events_per_day=events_per_day)
    records, truth = mixed(benign, techniques, at, account=account, region=region, seed=seed)
    if disguised:
        attack = {event_id for ids in truth.values() for event_id in ids}
        records = [disguise([r], account=account)[0] if r["eventID"] in attack else r for r in records]
    files = write_cloudtrail(folder, records, account=account, seed=seed)
    attacks = sum(len(ids) for ids in truth.values())
    return Corpus(folder, truth, len(records), len(records) - attacks, files, start, days, at, seed)


def write_cloudtrail(folder: Path, records: Iterable[Mapping[str, Any]], *, account: str, seed: int) -> int:
    """The records as CloudTrail delivers them to S3: one gzip'd `{"Records": [...]}` per region and
    five minutes of event time, named as CloudTrail names them with the time of its delivery (1-10
    minutes after its five minutes end, seeded: a file holds "records written at any point before"
    it was delivered), records shuffled inside a file (seeded). Returns the number of files."""
    buckets: dict[tuple[str, datetime], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        moment = datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ")
        moment = moment.replace(minute=moment.minute - moment.minute % DELIVERY_MINUTES, second=0)
        buckets[(str(record.get("awsRegion") or REGION), moment)].append(record)
    rng = random.Random(f"delivery/{seed}")
    for (region, period), batch in sorted(buckets.items()):
        rng.shuffle(batch)
        at = period + timedelta(minutes=DELIVERY_MINUTES + rng.randint(1, 10))
        stamp = at.strftime("%Y%m%dT%H%MZ")
        # Named after its five minutes: two files may be delivered in the same minute.
        suffix = hashlib.sha256(f"{seed}/{region}/{period:%Y%m%dT%H%M}".encode()).hexdigest()[:16].upper()
        path = (folder / "AWSLogs" / account / "CloudTrail" / region / stamp[:4] / stamp[4:6] / stamp[6:8]
                / f"{account}_CloudTrail_{region}_{stamp}_{suffix}.json.gz")
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"Records": batch}, separators=(",", ":")).encode()
        path.write_bytes(gzip.compress(body, compresslevel=6, mtime=0))
    return len(buckets)


# -- the run and its accounting ----------------------------------------------------------------------

def run_engine(folder: Path, make_engine: Callable[[], Engine]) -> tuple[list[Finding], int]:
    """The findings of an engine `make_engine` builds over every file under `folder`, as `ztai
    detect` runs it (`run_files`), and the number of events read."""
    engine, _ = run_files([folder], make_engine)
    return engine.finish(), engine.events


@dataclass
class TechniqueResult:
    name: str
    relevant: bool
    reason: str
    events: int
    flagged_events: int
    rules: list[str]

    @property
    def flagged(self) -> bool:
        return self.flagged_events > 0


@dataclass
class Evaluation:
    techniques: list[TechniqueResult]
    events: int
    benign_events: int
    benign_flagged: int
    findings: int
    false_findings: int
    false_rules: dict[str, int]

    @property
    def false_per_10k(self) -> float:
        return 10_000 * self.false_findings / self.benign_events if self.benign_events else 0.0

    def to_json(self) -> dict[str, Any]:
        relevant = [t for t in self.techniques if t.relevant]
        return {
            "events": self.events, "benign_events": self.benign_events,
            "benign_events_flagged": self.benign_flagged, "findings": self.findings,
            "false_findings": self.false_findings, "false_findings_per_10k_benign": self.false_per_10k,
            "false_findings_by_rule": self.false_rules,
            "relevant_flagged": sum(t.flagged for t in relevant), "relevant": len(relevant),
            "techniques": {t.name: {"relevant": t.relevant, "reason": t.reason, "events": t.events,
                                    "flagged": t.flagged, "flagged_events": t.flagged_events,
                                    "rules": t.rules} for t in self.techniques},
        }


def account(findings: Sequence[Finding], truth: Mapping[str, Sequence[str]], events: int) -> Evaluation:
    """Score findings against the ground truth: a technique is flagged when a finding lists any of
    its events; a finding listing no attack event is a false finding; a benign event is flagged when
    any finding lists it."""
    owner = {event_id: name for name, ids in truth.items() for event_id in ids}
    flagged_ids: dict[str, set[str]] = defaultdict(set)
    rules: dict[str, set[str]] = defaultdict(set)
    benign_flagged: set[str] = set()
    false_rules: dict[str, int] = defaultdict(int)
    false_findings = 0
    for finding in findings:
        hit = False
        for event_id in finding.event_ids:
            name = owner.get(event_id)
            if name is None:
                benign_flagged.add(event_id)
            else:
                hit = True
                flagged_ids[name].add(event_id)
                rules[name].add(finding.rule)
        if not hit:
            false_findings += 1
            false_rules[finding.rule] += 1
    attacks = len(owner)
    results = []
    for name in sorted(truth, key=short_name):
        short = short_name(name)
        relevant, reason = RELEVANCE.get(short, (False, "not classified"))
        results.append(TechniqueResult(short, relevant, reason, len(truth[name]), len(flagged_ids[name]),
                                       sorted(rules[name])))
    return Evaluation(results, events, events - attacks, len(benign_flagged), len(findings), false_findings,
                      dict(sorted(false_rules.items(), key=lambda item: (-item[1], item[0]))))


def evaluate(corpus: Corpus, make_engine: Callable[[], Engine]) -> Evaluation:
    findings, events = run_engine(corpus.folder, make_engine)
    if events != corpus.events:
        raise SystemExit(f"detection_eval: read {events} events of the {corpus.events} written")
    return account(findings, corpus.truth, events)


# -- the report -----------------------------------------------------------------------------------------

def markdown(plain: Evaluation, disguised: Evaluation | None, corpus: Corpus,
             unallowed: Evaluation | None = None) -> str:
    by_name = {t.name: t for t in disguised.techniques} if disguised else {}
    lines = ["| technique | relevant | why | events | flagged | by | events flagged |"
             + (" disguised: flagged | by |" if disguised else ""),
             "|---|---|---|---:|---|---|---:|" + ("---|---|" if disguised else "")]
    for result in sorted(plain.techniques, key=lambda t: (not t.relevant, t.name)):
        row = (f"| {result.name} | {'yes' if result.relevant else 'generic'} | {result.reason} | "
               f"{result.events} | {'**yes**' if result.flagged else 'no'} | "
               f"{', '.join(result.rules) or '-'} | {result.flagged_events} |")
        if disguised:
            other = by_name[result.name]
            row += f" {'yes' if other.flagged else 'no'} | {', '.join(other.rules) or '-'} |"
        lines.append(row)
    lines.append("")
    lines += summary(plain, disguised, corpus)
    if unallowed is not None:
        lines.append(f"- without the allow-list: relevant flagged "
                     f"{sum(t.flagged for t in unallowed.techniques if t.relevant)} of "
                     f"{sum(t.relevant for t in unallowed.techniques)}; false findings "
                     f"{unallowed.false_findings:,} ({unallowed.false_per_10k:.2f} per 10,000)"
                     + (": " + ", ".join(f"{rule} {count}" for rule, count in unallowed.false_rules.items())
                        if unallowed.false_rules else ""))
    return "\n".join(lines) + "\n"


def summary(plain: Evaluation, disguised: Evaluation | None, corpus: Corpus) -> list[str]:
    relevant = [t for t in plain.techniques if t.relevant]
    generic = [t for t in plain.techniques if not t.relevant]
    verdict = ("no finding at all: nothing to judge" if not plain.findings
               else "met" if plain.false_per_10k < TARGET_FALSE_PER_10K else "NOT met")
    out = [
        f"- corpus: {corpus.days} days from {corpus.start.date()} ({BASELINE_DAYS} days of baseline, no "
        f"attack), {corpus.events:,} events in {corpus.files:,} CloudTrail files, of which "
        f"{corpus.events - corpus.benign} attack events of {len(corpus.truth)} techniques",
        f"- in the benign activity: key rotation on {', '.join(rotations(corpus)) or 'no day (no 1st)'}; "
        f"the on-call night {on_call_night(corpus.start, corpus.days, corpus.seed) or 'none (too short)'}; "
        "CI releases on Thursdays, image rollouts on Tuesdays, JIT elevations on Wednesdays",
        f"- relevant techniques flagged: **{sum(t.flagged for t in relevant)} of {len(relevant)}**; "
        f"generic: {sum(t.flagged for t in generic)} of {len(generic)}",
        f"- benign events: {plain.benign_events:,}; listed by a finding: {plain.benign_flagged:,}",
        f"- findings: {plain.findings:,}; false findings (listing no attack event): "
        f"{plain.false_findings:,} = **{plain.false_per_10k:.2f} per 10,000 benign events** "
        f"(target < {TARGET_FALSE_PER_10K:g}: {verdict})",
    ]
    if plain.false_rules:
        out.append("- false findings by rule: "
                   + ", ".join(f"{rule} {count}" for rule, count in plain.false_rules.items()))
    if disguised:
        only = [t.name for t in plain.techniques
                if t.flagged and not next(d for d in disguised.techniques if d.name == t.name).flagged]
        drelevant = [t for t in disguised.techniques if t.relevant]
        out += [
            f"- disguised (normal SDK agent, an engineer's assumed role and office address, no \"stratus\" "
            f"names): relevant flagged {sum(t.flagged for t in drelevant)} of {len(drelevant)}; "
            f"false findings {disguised.false_findings:,} ({disguised.false_per_10k:.2f} per 10,000)",
            f"- flagged only through what gives Stratus away (flagged as recorded, not disguised): "
            f"{len(only)}" + (f" ({', '.join(only)})" if only else ""),
        ]
    return out


def shipped_allow_list(path: Path = ALLOW_LIST) -> AllowList:
    """The allow-list the project ships (detections/allow.yaml), fresh (its counts start at 0)."""
    return AllowList.parse(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))


def main(argv: Sequence[str] | None = None, *, engine_factory: Callable[[], Engine] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path,
                        help="the stratus-red-team folder (found beside the checkout by default)")
    parser.add_argument("--weeks", type=int, default=4,
                        help="weeks of activity (default 4; the first week is the baseline)")
    parser.add_argument("--events-per-day", type=int, default=2000,
                        help="benign records on a weekday (default 2000)")
    parser.add_argument("--seed", type=int, default=14, help="seed of everything generated (default 14)")
    parser.add_argument("--start", default=DEFAULT_START.date().isoformat(),
                        help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--no-disguised", action="store_true", help="skip the disguised run")
    parser.add_argument("--no-allow", action="store_true",
                        help="run without the shipped allow-list (detections/allow.yaml); by default "
                             "the evaluation runs with it, and once more without it for the record")
    parser.add_argument("--keep", type=Path,
                        help="write the corpus here (kept) instead of a temporary folder")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for detection_eval.json")
    parser.add_argument("--markdown", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    if args.weeks < 2:
        parser.error(f"--weeks must be at least 2 (one week of baseline, then the attacks), not {args.weeks}")
    if args.events_per_day < 1:
        parser.error(f"--events-per-day must be at least 1, not {args.events_per_day}")
    try:
        start = datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        parser.error(f"--start {args.start!r} is not a date; allowed: YYYY-MM-DD")
    techniques = load_stratus(find_dataset(args.dataset))
    if engine_factory is None:
        def engine_factory() -> Engine:
            return build_engine(allow=None if args.no_allow else shipped_allow_list())
        bare: Callable[[], Engine] | None = None if args.no_allow else build_engine
    else:
        bare = None
    days = 7 * args.weeks
    evaluations: dict[str, Evaluation] = {}
    corpus: Corpus | None = None
    with tempfile.TemporaryDirectory(prefix="ztai-detect-eval-") as scratch:
        base = args.keep or Path(scratch)
        for variant in ("recorded",) + (() if args.no_disguised else ("disguised",)):
            built = build_corpus(base / variant, techniques=techniques, start=start, days=days,
                                 seed=args.seed, events_per_day=args.events_per_day,
                                 disguised=variant == "disguised")
            corpus = corpus or built
            evaluations[variant] = evaluate(built, engine_factory)
            if variant == "recorded" and bare is not None:
                evaluations["recorded-without-allow-list"] = evaluate(built, bare)
    assert corpus is not None
    report = markdown(evaluations["recorded"], evaluations.get("disguised"), corpus,
                      evaluations.get("recorded-without-allow-list"))
    print(report)
    if args.markdown:
        args.markdown.write_text(report, encoding="utf-8")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "detection_eval.json").write_text(json.dumps({
        "seed": args.seed, "start": start.date().isoformat(), "days": days, "baseline_days": BASELINE_DAYS,
        "events_per_day": args.events_per_day, "files": corpus.files, "key_rotations": rotations(corpus),
        "on_call_night": str(on_call_night(corpus.start, corpus.days, corpus.seed)),
        "attack_times": {short_name(name): moment.isoformat() for name, moment in sorted(corpus.at.items())},
        **{variant: evaluation.to_json() for variant, evaluation in evaluations.items()},
    }, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
