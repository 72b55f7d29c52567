"""The just-in-time elevation catalogue: what may be asked for, for how long, approved by whom.

The stack key `jitCatalogueFile` names it (relative to the project); the deploy creates one
elevation role per entry and `ztai access` checks requests against it. It is YAML:

    elevations:
      - name: training-data-write    # lower case, digits and dashes; names the role
        description: Write training data under one prefix of the model bucket for one job run
        grant: model-prefix-write    # what the role may do (GRANTS below)
        prefix: training-data/       # for model-prefix-write: the one prefix written
        maxMinutes: 240              # the longest duration a request may ask for
        approvers: [zero-trust-ai-dev-data-curator]   # the stack's human roles whose people approve
        approvalsNeeded: 1           # different people, never the requester

      - name: key-admin
        description: Change the model-weights key's policy in a two-person session
        grant: key-admin
        key: model-weights           # for key-admin: the key (purpose) it administers
        maxMinutes: 30
        approvers: [zero-trust-ai-dev-security-responder, zero-trust-ai-dev-auditor]
        approvalsNeeded: 2

`key-admin` and `break-glass` grants need at least two approvals. A `key-admin` elevation is the
only principal that may change its key's policy when the key is a two-person key (stack key
`twoPersonKeys`, default model-weights). Every problem is reported at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config_values import PROJECT_DIR, as_string, full, read_project_yaml, show
from components.keys import PURPOSES as KEY_PURPOSES
from components.training_data import PREFIXES as TRAINING_DATA_PREFIXES

# What an elevation role may do, each granted by the owner of what it touches.
GRANTS = ("training-data-prefix-write", "model-prefix-write", "key-admin", "break-glass")
# Grants over one object-key prefix: of the training-data bucket (one of its PREFIXES), or of the
# model bucket (any prefix outside models/ and the enclave artifacts).
PREFIX_GRANTS = frozenset({"training-data-prefix-write", "model-prefix-write"})
TWO_PERSON_GRANTS = frozenset({"key-admin", "break-glass"})
FIELDS = frozenset({"name", "description", "grant", "prefix", "key", "maxMinutes", "approvers",
                    "approvalsNeeded"})
REQUIRED_FIELDS = frozenset({"name", "description", "grant", "maxMinutes", "approvers", "approvalsNeeded"})
# A grant that outlives a working day is standing access by another name.
MAX_MINUTES = 720
# Two-person elevations are for one change, and their sessions last 15 minutes each (the window
# policy holds one statement per few minutes of the grant: ztai_runtime.jit.grants.session_slots).
MAX_TWO_PERSON_MINUTES = 60
NAME = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")
# The JIT's own roles are zero-trust-ai-<env>-jit-<function>-role (jit_function_role_name): an
# elevation named like one would take its name, and the CI boundary tells the two kinds apart by
# that suffix (the workload's deployer may write an elevation's permissions, never those roles').
RESERVED_SUFFIX = "-role"
# The CI deployers are zero-trust-ai-<env>-deploy-keys and -deploy-workload (ci_identity.py): an
# elevation named so would make a JIT role (zero-trust-ai-<env>-jit-<name>) that the detection
# rules' deployer patterns (`zero-trust-ai-*-deploy-keys`) would take for a deployer.
RESERVED_DEPLOYER_SUFFIXES = ("deploy-keys", "deploy-workload")
PREFIX = re.compile(r"[A-Za-z0-9!_.()'-]+(/[A-Za-z0-9!_.()'-]+)*/")


@dataclass(frozen=True)
class JitElevation:
    name: str
    description: str
    grant: str
    prefix: str  # the prefix grants only, else ""
    max_minutes: int
    approvers: tuple[str, ...]
    approvals_needed: int
    key: str = ""  # key-admin only: the key purpose it administers, else ""


def elevation_role_name(environment: str, elevation: str) -> str:
    """The AWS name of an elevation's role (the CLI finds it by this name)."""
    return f"zero-trust-ai-{environment}-jit-{elevation}"


def jit_table_name(environment: str) -> str:
    return f"zero-trust-ai-{environment}-jit"


def jit_api_function_name(environment: str) -> str:
    """The JIT API function (`JustInTimeAccess.api`), which the human boundary names."""
    return f"{jit_table_name(environment)}-api"


def jit_function_role_name(environment: str, function: str) -> str:
    """The role of a JIT function (`api`, `expiry`) or of its scheduler (`scheduler`): known
    names, which the CI roles' boundary and the guardrails protect from the workload's deployer.
    No elevation may take one (`RESERVED_SUFFIX`)."""
    return f"{jit_table_name(environment)}-{function}-role"


def jit_api_role_name(environment: str) -> str:
    """The JIT API function's role: the key layer names it in the two-person deny by its ARN, and
    the policy pack checks that name there (rule kms-two-person-key-administration)."""
    return jit_function_role_name(environment, "api")


def parse_catalogue_file(key: str, value: Any, project_dir: Path = PROJECT_DIR) -> list[JitElevation]:
    """The elevations of the file named by stack key `key` ("" names none); ValueError listing
    every problem, each naming the key, the entry and the field."""
    if value == "":
        return []
    label = f"{full(key)} = {show(value)}"
    document = read_project_yaml(label, project_dir / as_string(key, value))
    return parse_catalogue(label, document)


def parse_catalogue(label: str, document: Any) -> list[JitElevation]:
    if isinstance(document, dict) and set(document) - {"elevations"}:
        unknown = sorted(map(str, set(document) - {"elevations"}))
        raise ValueError(f"{label}: unknown top-level key(s) {', '.join(unknown)}; the file holds "
                         "only an `elevations:` list")
    entries = document.get("elevations") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{label}: expected a mapping with an `elevations:` list")
    elevations: list[JitElevation] = []
    problems: list[str] = []
    for index, entry in enumerate(entries):
        where = f"{label}: elevations[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping of {', '.join(sorted(FIELDS))}")
            continue
        entry_problems, elevation = _entry(entry)
        named = f"{where} ({entry.get('name')!s})" if "name" in entry else where
        problems += [f"{named}: {problem}" for problem in entry_problems]
        if elevation is None:
            continue
        if elevation.name in {e.name for e in elevations}:
            problems.append(f"{where}: elevation {elevation.name!r} is listed twice")
        elevations.append(elevation)
    if problems:
        raise ValueError("; ".join(problems))
    return elevations


def _entry(entry: dict[Any, Any]) -> tuple[list[str], JitElevation | None]:
    problems: list[str] = []
    unknown = sorted(map(str, set(entry) - FIELDS))
    missing = sorted(REQUIRED_FIELDS - set(entry))
    if unknown or missing:
        problems.append("; ".join(
            ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
            + ([f"missing {', '.join(missing)}"] if missing else []))
            + f" (fields: {', '.join(sorted(FIELDS))})")
        return problems, None
    name, description, grant = entry["name"], entry["description"], entry["grant"]
    prefix, minutes = entry.get("prefix", ""), entry["maxMinutes"]
    approvers, needed = entry["approvers"], entry["approvalsNeeded"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        problems.append(f"name = {show(name)}: 2 to 32 lower-case letters, digits and dashes, "
                        "starting with a letter")
    elif name.endswith(RESERVED_SUFFIX):
        problems.append(f"name = {show(name)}: a name ending in {RESERVED_SUFFIX} is reserved (the "
                        "JIT's own roles are named so); choose another name")
    elif name.endswith(RESERVED_DEPLOYER_SUFFIXES):
        problems.append(f"name = {show(name)}: a name ending in "
                        f"{' or '.join(RESERVED_DEPLOYER_SUFFIXES)} is reserved (the CI deployers are "
                        "named so, and detection exempts them by name); choose another name")
    if not isinstance(description, str) or not description.strip():
        problems.append("description: say what the elevation is for, in words")
    if grant not in GRANTS:
        problems.append(f"grant = {show(grant)}: allowed values are {', '.join(GRANTS)}")
    if grant == "training-data-prefix-write":
        if prefix not in TRAINING_DATA_PREFIXES:
            problems.append(f"prefix = {show(prefix)}: training-data-prefix-write needs one of the "
                            f"training-data bucket's prefixes, {', '.join(TRAINING_DATA_PREFIXES)}")
    elif grant == "model-prefix-write":
        if not isinstance(prefix, str) or not PREFIX.fullmatch(prefix):
            problems.append(f"prefix = {show(prefix)}: model-prefix-write needs one object-key prefix "
                            "ending in `/` (such as training-data/)")
    elif "prefix" in entry:
        problems.append(f"prefix: only {' and '.join(sorted(PREFIX_GRANTS))} take one, not {show(grant)}")
    key = entry.get("key", "")
    if grant == "key-admin":
        if key not in KEY_PURPOSES:
            given = f"key = {show(key)}" if "key" in entry else "key: missing"
            problems.append(f"{given}; key-admin needs the key it administers, one of "
                            f"{', '.join(KEY_PURPOSES)}")
    elif "key" in entry:
        problems.append(f"key: only key-admin takes one, not {show(grant)}")
    longest = MAX_TWO_PERSON_MINUTES if grant in TWO_PERSON_GRANTS else MAX_MINUTES
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 15 <= minutes <= longest:
        problems.append(f"maxMinutes = {show(minutes)}: a whole number of minutes from 15 (the shortest "
                        f"AWS role session) to {longest}"
                        + (f" ({grant} is a two-person elevation)" if grant in TWO_PERSON_GRANTS else ""))
    if (not isinstance(approvers, list) or not approvers
            or not all(isinstance(a, str) and ROLE_NAME.fullmatch(a) for a in approvers)):
        problems.append(f"approvers = {show(approvers)}: a non-empty list of IAM role names")
    elif len(set(approvers)) != len(approvers):
        problems.append(f"approvers = {show(approvers)}: a role is listed twice")
    lowest = 2 if grant in TWO_PERSON_GRANTS else 1
    if isinstance(needed, bool) or not isinstance(needed, int) or not lowest <= needed <= 3:
        problems.append(f"approvalsNeeded = {show(needed)}: {lowest} to 3"
                        + (f" ({grant} is a two-person elevation)" if lowest == 2 else ""))
    if problems:
        return problems, None
    return [], JitElevation(name=name, description=description.strip(), grant=grant, prefix=prefix or "",
                            max_minutes=minutes, approvers=tuple(approvers), approvals_needed=needed,
                            key=key)
