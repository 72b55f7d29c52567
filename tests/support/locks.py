"""The requirements files: readable inputs (`*.in`) and the hash-pinned locks `./run lock` writes.

A small reader of the subset of pip's requirements format the project uses, so the tests can
compare an input's pins with its lock without importing pip."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

# Input -> lock, as `./run lock` writes them (the tests check `./run` lists the same pairs).
LOCK_PAIRS: tuple[tuple[str, str], ...] = (
    ("requirements.in", "requirements.txt"),
    ("requirements-dev.in", "requirements-dev.txt"),
    ("policy_packs/zero_trust/requirements.in", "policy_packs/zero_trust/requirements.txt"),
    ("enclave_images/requirements-enclave.in", "enclave_images/requirements-enclave.txt"),
    ("requirements-lock.in", "requirements-lock.txt"),
    ("requirements-lambda.in", "requirements-lambda.txt"),
)

_REQUIREMENT = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9._,-]*\])?(?P<operator>[=<>!~]=?|===)?"
    r"(?P<version>[^\s;]*)\s*(?:;(?P<marker>[^-]*))?(?P<options>.*)")


@dataclass(frozen=True)
class Requirement:
    name: str  # normalised as PyPI compares names (PEP 503)
    operator: str
    version: str
    hashes: tuple[str, ...]
    line: int


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(path: Path) -> list[tuple[int, str]]:
    """(first line number, text) of each requirement, comments dropped, continuations joined."""
    entries: list[tuple[int, str]] = []
    entry, first = "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = re.sub(r"(^|\s)#.*", "", line).strip()
        if not entry:
            first = number
        if text.endswith("\\"):
            entry += text[:-1] + " "
            continue
        entry = (entry + text).strip()
        if entry:
            entries.append((first, entry))
        entry = ""
    if entry.strip():
        entries.append((first, entry.strip()))
    return entries


def requirements(path: Path) -> list[Requirement]:
    """Every requirement of `path`, following `-r` includes (relative to the including file)."""
    found: list[Requirement] = []
    for line, text in logical_lines(path):
        if text.startswith("-r "):
            found.extend(requirements(path.parent / text[3:].strip()))
            continue
        match = _REQUIREMENT.fullmatch(text)
        assert match, f"{path}:{line}: cannot read {text!r}"
        hashes = tuple(re.findall(r"--hash=(\S+)", match["options"]))
        found.append(Requirement(canonical(match["name"]), match["operator"] or "", match["version"],
                                 hashes, line))
    return found


def lock_pins(lock: str) -> dict[str, str]:
    """Package -> version of a lock file (repository-relative path)."""
    return {requirement.name: requirement.version for requirement in requirements(ROOT / lock)}
