"""Policy configuration: the JSON file `pulumi preview --policy-pack-config` takes.

Shape (as the Pulumi CLI reads it): policy name → an enforcement level, or an object with an
optional `enforcementLevel` and the policy's own properties; the key `all` sets the level of every
policy. Like the CLI, properties are validated against each policy's config schema and schema
defaults are filled in before the pack is configured.
"""

from __future__ import annotations

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
