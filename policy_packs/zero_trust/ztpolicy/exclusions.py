"""Exclusions: a named resource pattern and a mandatory reason, per rule.

Policy configuration (the file given to `pulumi preview --policy-pack-config`):

    {"subnet-no-public-ip": {"exclusions": [
        {"resource": "edge-*", "reason": "public load-balancer subnets, reviewed in SEC-123"}]}}

`resource` is a glob matched against the resource's logical name, or against its URN when the
pattern starts with `urn:`. An exclusion only suppresses findings; each one it suppresses is
reported as a "not applicable" result whose reason starts with `EXCLUSION_PREFIX` followed by JSON,
so humans read it in the engine's output and tools (`ztai`) can parse it.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

EXCLUSION_PREFIX = "exclusion: "
MIN_REASON_LENGTH = 10

EXCLUSIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "Resources this rule does not apply to; every entry needs a reason.",
    "default": [],
    "items": {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "minLength": 1,
                         "description": "glob over the logical name, or over the URN if it starts with urn:"},
            # At least MIN_REASON_LENGTH characters between the first and the last that is not
            # blank, so the Pulumi CLI, which validates this schema, refuses a reason of blanks too.
            "reason": {"type": "string", "minLength": MIN_REASON_LENGTH,
                       "pattern": rf"^\s*\S.{{{MIN_REASON_LENGTH - 2},}}\S\s*$",
                       "description": "why the exclusion is acceptable (shown in every report)"},
        },
        "required": ["resource", "reason"],
        "additionalProperties": False,
    },
}
# A rule that cannot be suppressed takes no exclusions: its schema refuses any entry, so the
# engine (and `ztai`) reject such a configuration outright instead of accepting it and letting the
# rule report each would-be exclusion as a violation.
NO_EXCLUSIONS_SCHEMA: dict[str, Any] = {
    **EXCLUSIONS_SCHEMA,
    "description": "This rule cannot be suppressed: it accepts no exclusions.",
    "maxItems": 0,
}


@dataclass(frozen=True)
class Exclusion:
    resource: str
    reason: str

    def matches(self, name: str, urn: str) -> bool:
        target = urn if self.resource.startswith("urn:") else name
        return fnmatch.fnmatchcase(target, self.resource)


class ExclusionConfigError(ValueError):
    """An exclusion entry lacks its pattern or its reason."""


def parse_exclusions(config: Mapping[str, Any]) -> list[Exclusion]:
    """Exclusions from a rule's configuration; malformed entries raise (the engine validates the
    schema first, this guards direct use and engines that do not)."""
    raw = config.get("exclusions") or []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ExclusionConfigError("exclusions must be a list of {resource, reason} objects")
    parsed = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise ExclusionConfigError(f"exclusions[{index}] must be an object")
        resource, reason = entry.get("resource"), entry.get("reason")
        if not isinstance(resource, str) or not resource:
            raise ExclusionConfigError(f"exclusions[{index}].resource must be a non-empty pattern")
        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON_LENGTH:
            raise ExclusionConfigError(
                f"exclusions[{index}] ({resource}) needs a reason of at least "
                f"{MIN_REASON_LENGTH} characters")
        parsed.append(Exclusion(resource, reason.strip()))
    return parsed


def find_exclusion(exclusions: Sequence[Exclusion], name: str, urn: str) -> Exclusion | None:
    return next((exclusion for exclusion in exclusions if exclusion.matches(name, urn)), None)


def exclusion_report(urn: str, exclusion: Exclusion, suppressed: Sequence[str]) -> str:
    """One line saying which resource an exclusion suppressed, why, and what it suppressed."""
    return EXCLUSION_PREFIX + json.dumps({
        "urn": urn, "pattern": exclusion.resource, "reason": exclusion.reason,
        "suppressed": list(suppressed),
    }, sort_keys=True)
