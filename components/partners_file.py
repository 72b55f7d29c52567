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

from pathlib import Path
from typing import Any

import yaml

from components import strict_yaml
from components.api_gateway import ApiPartner, partner_problems
from components.config_values import PROJECT_DIR, as_string, ca_file, full, parse_burst, parse_rate, show
from components.text_files import NotUtf8TextError, decode_utf8

FIELDS = frozenset({"name", "caFile", "rateLimit", "burstLimit", "paths"})
REQUIRED_FIELDS = frozenset({"name", "caFile", "rateLimit", "burstLimit"})
DEFAULT_PATHS = ("POST /v1/infer",)


def parse_partners_file(key: str, value: Any, project_dir: Path = PROJECT_DIR) -> list[ApiPartner]:
    """The partners the file named by stack key `key` lists ("" names none); ValueError listing
    every problem, each naming the key, the entry and the field."""
    if value == "":
        return []
    path = (project_dir / as_string(key, value)).resolve()
    label = f"{full(key)} = {show(value)}"
    try:
        document = strict_yaml.load(decode_utf8(path.read_bytes()))
    except OSError as error:
        raise ValueError(f"{label}: cannot read it as YAML ({error})") from None
    except NotUtf8TextError as problem:
        raise ValueError(f"{label}: cannot read it as YAML: the file {problem}") from None
    except RecursionError:
        raise ValueError(f"{label}: the file nests too deeply to be read") from None
    except ValueError as error:
        raise ValueError(f"{label}: cannot read it as YAML ({error})") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{label}: cannot read it as YAML (not valid YAML"
                         f"{strict_yaml.describe(error)})") from None
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
        unknown = sorted(map(str, set(entry) - FIELDS))  # YAML keys may be bools
        missing = sorted(REQUIRED_FIELDS - set(entry))
        if unknown or missing:
            problems.append(f"{where}: " + "; ".join(
                ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing {', '.join(missing)}"] if missing else []))
                + f" (fields: {', '.join(sorted(FIELDS))})")
            continue
        try:
            paths = entry.get("paths", list(DEFAULT_PATHS))
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise ValueError("paths: a list of `METHOD /path` strings")
            if not isinstance(entry["name"], str) or not isinstance(entry["caFile"], str):
                raise ValueError("name and caFile: strings")
            partner = ApiPartner(
                name=entry["name"], scopes=(),
                rate_limit=parse_rate(f"{key}.rateLimit", entry["rateLimit"]),
                burst_limit=parse_burst(f"{key}.burstLimit", entry["burstLimit"]),
                paths=tuple(paths), ca_file=ca_file("caFile", entry["caFile"], path.parent))
        except ValueError as error:
            problems.append(f"{where} ({entry.get('name')!s}): {error}")
            continue
        # The gateway's own checks of names, paths and limits (its scopes are given later).
        problems += [f"{where}: {problem}" for problem in partner_problems(partner, scoped=False)]
        if partner.name in {p.name for p in partners}:
            problems.append(f"{where}: partner {partner.name!r} is listed twice")
        partners.append(partner)
    if problems:
        raise ValueError("; ".join(problems))
    return partners
