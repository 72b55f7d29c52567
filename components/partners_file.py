"""The API partners file: who calls the inference API from outside, with which CA and limits.

The stack key `apiPartnersFile` names it (relative to the project). It is YAML:

    partners:
      - name: acme                # unique; becomes the partner's scope and app client
        caFile: ../truststore/acme-ca.pem   # relative to this file
        rateLimit: 10             # requests per second
        burstLimit: 20
        paths: ["POST /v1/infer"] # optional; this is the default

Every entry is checked, and every problem is reported at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.api_gateway import ApiPartner, partner_problems
from components.config_values import (
    PROJECT_DIR,
    as_string,
    ca_file,
    full,
    parse_burst,
    parse_rate,
    read_project_yaml,
    show,
)

FIELDS = frozenset({"name", "caFile", "rateLimit", "burstLimit", "paths"})
REQUIRED_FIELDS = frozenset({"name", "caFile", "rateLimit", "burstLimit"})
DEFAULT_PATHS = ("POST /v1/infer",)


def parse_partners_file(key: str, value: Any, project_dir: Path = PROJECT_DIR) -> list[ApiPartner]:
    """The partners the file named by stack key `key` lists ("" names none); ValueError listing
    every problem, each naming the key, the entry and the field."""
    if value == "":
        return []
    label = f"{full(key)} = {show(value)}"
    path = (project_dir / as_string(key, value)).resolve()  # its CA files are relative to it
    document = read_project_yaml(label, path)
    if isinstance(document, dict) and set(document) - {"partners"}:
        unknown = sorted(map(str, set(document) - {"partners"}))  # YAML keys may be bools
        raise ValueError(f"{label}: unknown top-level key(s) {', '.join(unknown)}; the file holds "
                         "only a `partners:` list")
    entries = document.get("partners") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{label}: expected a mapping with a `partners:` list")
    partners: list[ApiPartner] = []
    problems: list[str] = []
    for index, entry in enumerate(entries):
        where = f"{label}: partners[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping of {', '.join(sorted(FIELDS))}")
            continue
        value_problems, other_problems, partner = _entry(key, entry, path.parent)
        problems += [f"{where}: {problem}" for problem in other_problems]
        problems += [f"{where} ({entry.get('name')!s}): {problem}" for problem in value_problems]
        if partner is None:
            continue
        if partner.name in {p.name for p in partners}:
            problems.append(f"{where}: partner {partner.name!r} is listed twice")
        partners.append(partner)
    if problems:
        raise ValueError("; ".join(problems))
    return partners


def _entry(key: str, entry: dict[Any, Any], base: Path,
           ) -> tuple[list[str], list[str], ApiPartner | None]:
    """Every problem of one entry, each field checked on its own so that a missing field hides no
    other problem: (the fields' values' problems, the others), and the partner when there is
    none."""
    problems: list[str] = []
    value_problems: list[str] = []
    unknown = sorted(map(str, set(entry) - FIELDS))  # YAML keys may be bools
    missing = sorted(REQUIRED_FIELDS - set(entry))
    if unknown or missing:
        problems.append("; ".join(
            ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
            + ([f"missing {', '.join(missing)}"] if missing else []))
            + f" (fields: {', '.join(sorted(FIELDS))})")

    def field(name: str, parse: Callable[[Any], Any]) -> Any:
        if name not in entry:
            return None  # reported as missing above
        try:
            return parse(entry[name])
        except ValueError as error:
            value_problems.append(str(error))
            return None

    def text(name: str) -> Callable[[Any], str]:
        def parse(value: Any) -> str:
            if not isinstance(value, str):
                raise ValueError(f"{name}: a string, got {show(value)}")
            return value
        return parse

    def path_list(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise ValueError(f"paths = {show(value)}: a list of `METHOD /path` strings")
        return tuple(value)

    name = field("name", text("name"))
    ca = field("caFile", lambda value: ca_file("caFile", text("caFile")(value), base))
    rate = field("rateLimit", lambda value: parse_rate(f"{key}.rateLimit", value))
    burst = field("burstLimit", lambda value: parse_burst(f"{key}.burstLimit", value))
    paths = field("paths", path_list) if "paths" in entry else DEFAULT_PATHS
    if name is not None and paths is not None:
        # The gateway's own checks of the name and paths (its scopes are given later); limits
        # are checked above, and stand-ins replace those that failed.
        shaped = ApiPartner(name=name, scopes=(), rate_limit=rate or 1.0, burst_limit=burst or 0,
                            paths=paths, ca_file=None)
        problems += partner_problems(shaped, scoped=False)
    if (problems or value_problems or name is None or ca is None or rate is None or burst is None
            or paths is None):
        return value_problems, problems, None
    return value_problems, problems, ApiPartner(name=name, scopes=(), rate_limit=rate, burst_limit=burst,
                                paths=paths, ca_file=ca)
