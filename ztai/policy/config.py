"""Policy configuration: the JSON file `pulumi preview --policy-pack-config` takes.

Shape (as the Pulumi CLI reads it): policy name → an enforcement level, or an object with an
optional `enforcementLevel` and the policy's own properties; the key `all` sets the level of every
policy. Like the CLI, properties are validated against each policy's config schema and schema
defaults are filled in before the pack is configured.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import jsonschema
from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

from ztai.jsonfile import read_json

Level: TypeAlias = analyzer_pb2.EnforcementLevel.ValueType

LEVELS: dict[str, Level] = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}


class PolicyConfigError(ValueError):
    """The policy configuration names an unknown policy or breaks a policy's schema."""


def load_policy_config(path: Path) -> dict[str, Any]:
    data = read_json(path, "policy config", PolicyConfigError)
    if not isinstance(data, dict):
        raise PolicyConfigError(f"policy config {path} must be a JSON object keyed by policy name")
    return data


def _level(name: str, value: Any) -> Level:
    if not isinstance(value, str) or value not in LEVELS:
        raise PolicyConfigError(f"{name}: enforcement level {value!r} is not one of "
                                f"{', '.join(LEVELS)}")
    return LEVELS[value]


# The pack's rule for a reason (ztpolicy/exclusions.py MIN_REASON_LENGTH), checked here so the
# message names the exclusion; blanks around it do not count.
MIN_REASON_LENGTH = 10


def _check_reasons(name: str, exclusions: Any) -> None:
    if not isinstance(exclusions, list):
        return  # the schema names a wrong shape
    for index, entry in enumerate(exclusions):
        reason = entry.get("reason") if isinstance(entry, Mapping) else None
        if isinstance(reason, str) and len(reason.strip()) < MIN_REASON_LENGTH:
            raise PolicyConfigError(
                f"{name}: exclusions[{index}] ({entry.get('resource')!s}) needs a reason of at least "
                f"{MIN_REASON_LENGTH} characters besides blanks: say why the exclusion is acceptable "
                "(it is shown in every report)")


def unmatched_exclusions(user: Mapping[str, Any], names_and_urns: list[tuple[str, str]]) -> list[str]:
    """Warnings for exclusions whose pattern matches no resource of the stack: a stale exclusion,
    or one waiting for a resource that does not exist yet, both worth a reviewer's eye. The glob
    is the pack's (ztpolicy/exclusions.py): over the URN when it starts with `urn:`, else over the
    logical name."""
    warnings = []
    for policy, given in user.items():
        entries = given.get("exclusions") if isinstance(given, Mapping) else None
        for entry in entries if isinstance(entries, list) else []:
            pattern = entry.get("resource") if isinstance(entry, Mapping) else None
            if not isinstance(pattern, str):
                continue
            by_urn = pattern.startswith("urn:")
            if not any(fnmatch.fnmatchcase(urn if by_urn else name, pattern)
                       for name, urn in names_and_urns):
                warnings.append(f"policy config: the exclusion {pattern!r} of {policy} matches no "
                                "resource of this stack; remove it, or it will silently apply to "
                                "a resource of that name created later")
    return warnings


def effective_config(info: analyzer_pb2.AnalyzerInfo,
                     user: Mapping[str, Any]) -> dict[str, tuple[Level, dict[str, Any]]]:
    """Per policy: the enforcement level and the properties to send with Configure."""
    policies = {policy.name: policy for policy in info.policies}
    unknown = sorted(set(user) - set(policies) - {"all"})
    if unknown:
        raise PolicyConfigError(f"policy config names unknown policies {', '.join(unknown)}; "
                                f"the pack has {', '.join(sorted(policies))}")
    all_level = _level("all", user["all"]) if "all" in user else None
    initial = {name: json_format.MessageToDict(config.properties)
               for name, config in info.initialConfig.items()}

    result: dict[str, tuple[Level, dict[str, Any]]] = {}
    for name, policy in policies.items():
        level = all_level if all_level is not None else policy.enforcementLevel
        schema = json_format.MessageToDict(policy.configSchema)
        properties: dict[str, Any] = {
            key: spec["default"] for key, spec in schema.get("properties", {}).items()
            if isinstance(spec, dict) and "default" in spec
        }
        properties.update(initial.get(name, {}))
        given = user.get(name)
        if name in user and given is None:
            raise PolicyConfigError(f"{name}: null is not a setting; give an enforcement level "
                                    f"({', '.join(LEVELS)}) or an object, or leave the policy out")
        if isinstance(given, Mapping):
            _check_reasons(name, given.get("exclusions"))
        if isinstance(given, str):
            level = _level(name, given)
        elif isinstance(given, Mapping):
            given = dict(given)
            if "enforcementLevel" in given:
                level = _level(name, given.pop("enforcementLevel"))
            properties.update(given)
        elif given is not None:
            raise PolicyConfigError(f"{name}: expected an enforcement level or an object, "
                                    f"got {json.dumps(given)}")
        # Unknown properties are refused: a misspelt "exclusion" must not silently do nothing.
        if "not-suppressible" in policy.tags and level not in (analyzer_pb2.MANDATORY,
                                                               analyzer_pb2.REMEDIATE):
            # The engine would let the level drop; that would be a silent way around the rule's
            # refusal of exclusions, so it is refused here too.
            raise PolicyConfigError(f"{name} cannot be suppressed: its enforcement level stays "
                                    "mandatory (set by " + ("'all'" if given is None else name) + ")")
        if "not-suppressible" in policy.tags and properties.get("exclusions"):
            # The pack's schema refuses these too (maxItems 0); said here in words, with the
            # rules that do take exclusions.
            allowed = sorted(other.name for other in policies.values() if "suppressible" in other.tags)
            raise PolicyConfigError(f"{name} cannot be suppressed: it accepts no exclusions; remove "
                                    f"its \"exclusions\" (rules that accept exclusions: "
                                    f"{', '.join(allowed)})")
        full_schema = {"type": "object", "additionalProperties": False, **schema}
        try:
            jsonschema.validate(properties, full_schema)
        except jsonschema.ValidationError as error:
            where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
            raise PolicyConfigError(f"{name}: configuration at {where} is invalid: "
                                    f"{error.message}") from None
        result[name] = (level, properties)
    return result
