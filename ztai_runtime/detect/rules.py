"""The Sigma rules, evaluated event by event without pySigma (stdlib only).

The rules are written in Sigma (`detections/sigma/`) and compiled by the CLI (`ztai.detect_rules`,
which parses them with pySigma) into a small JSON form, the IR, which this module evaluates. The
project ships the IR of its own rules (`sigma_rules.json` beside this file), so the stream function
needs no pySigma, and `ztai detect --rules DIR` compiles a folder of rules into the same form.

The IR (`IR_VERSION`):

    {"version": 1, "rules": [{"id": uuid, "name": kebab id, "title": str, "level": Sigma level,
      "techniques": ["T1562.008", ...], "logsource": "cloudtrail" | "jit" | "gateway" | "inference",
      "eventNames": [str, ...] | null, "condition": NODE}, ...]}

    NODE = {"and": [NODE, ...]} | {"or": [NODE, ...]} | {"not": NODE} | LEAF
    LEAF = {"field": "a.b.c", "op": OP, ...}:
      "str"     values: patterns, cased: bool  (`*` any run, `?` one character, `%name%` a
                placeholder, a backslash escapes the next character)
      "re"      values: Python regular expressions, flags: a subset of "ims" (searched, not anchored)
      "cidr"    values: networks (an address string inside one of them)
      "num"     values: numbers (equal; a string of digits counts)
      "bool"    values: booleans
      "null"    (the field is absent or null)
      "exists"  value: bool (the field has a non-null value, or has not)
      "lt" | "lte" | "gt" | "gte" | "neq"   value: a number
      "fieldref" values: other field paths (some value of one equals some value of the other)

Semantics, Sigma's: a dotted field path walks nested objects and fans out over lists (CloudTrail
nests `items` lists), and a leaf holds when any value reached matches; strings compare without
regard to case unless `cased`; `eventNames` is the set of `eventName` values every match pins (the
rule runs only on those CloudTrail events), or null when the rule can match any event of its
logsource.

Placeholders (`field|expand: '%name%'`) stand for the stack's own names (its keys, roles, tables):
`PLACEHOLDERS` lists the allowed names with a default following the project's naming, and a
`context` passed to `SigmaRules.from_ir` replaces them with the stack's values (each a glob).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ztai_runtime.detect.signals import SEVERITIES, Signal, remember
from ztai_runtime.detect.sources import Event

IR_VERSION = 1
LOGSOURCES: tuple[str, ...] = ("cloudtrail", "jit", "gateway", "inference")

_ROLE = "arn:aws:iam::*:role/"


@dataclass(frozen=True)
class Placeholder:
    """One name a rule may expand: what it stands for, and the globs used without context."""

    description: str
    default: tuple[str, ...]


# The stack's names the rules refer to. The defaults follow the project's naming
# (`zero-trust-ai-<env>-...`, components/): right for a stack deployed as the blueprint names it,
# and widened where CloudTrail records carry no name (a KMS key ARN holds only the key's id).
PLACEHOLDERS: dict[str, Placeholder] = {
    "stack_keys": Placeholder(
        "the stack's KMS keys as CloudTrail names them (key ARN, key id or alias); by default every "
        "key, since a key ARN carries no name",
        ("arn:aws:kms:*:*:key/*", "alias/zero-trust-ai/*", "arn:aws:kms:*:*:alias/zero-trust-ai/*")),
    "weights_key": Placeholder(
        "the model-weights key (its key ARN, key id or alias)",
        ("alias/zero-trust-ai/*/model-weights", "arn:aws:kms:*:*:alias/zero-trust-ai/*/model-weights")),
    "weights_publisher_roles": Placeholder(
        "roles that generate data keys on the weights key without attestation (publishing models)",
        (f"{_ROLE}zero-trust-ai-*-model-publisher",)),
    "key_admin_roles": Placeholder(
        "roles that change key policies and aliases: the key layer's deployer and the JIT function "
        "that writes approved key policies",
        (f"{_ROLE}zero-trust-ai-*-deploy-keys", f"{_ROLE}zero-trust-ai-*-jit-api-role")),
    "deploy_roles": Placeholder(
        "the CI deployers, which create and update the stack's resources",
        # The two deployers by their exact suffixes (components/ci_identity.py); the read-only
        # preview role changes nothing. JIT elevations may not take these suffixes
        # (components/jit_catalogue.py RESERVED_DEPLOYER_SUFFIXES), and the stack's own context
        # names the deployers by environment, which no JIT role (`-jit-<name>`) can match.
        (f"{_ROLE}zero-trust-ai-*-deploy-workload", f"{_ROLE}zero-trust-ai-*-deploy-keys")),
    "parent_ami_parameters": Placeholder(
        "the SSM parameters holding the enclave parents' AMI id",
        ("/zero-trust-ai/*/enclave-parent/ami-id", "/zero-trust-ai-*/enclave-parent/ami*")),
    "image_pipeline_roles": Placeholder(
        "roles that publish a new parent AMI: the Image Builder pipeline's execution role and "
        "Image Builder's service-linked role",
        (f"{_ROLE}zero-trust-ai-*-enclave-parent-imagebuilder-execution",
         f"{_ROLE}aws-service-role/imagebuilder.amazonaws.com/AWSServiceRoleForImageBuilder")),
    "instance_launch_roles": Placeholder(
        "roles that launch instances: EC2 Auto Scaling's and Image Builder's service-linked roles "
        "and the pipeline's execution role",
        (f"{_ROLE}aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
         f"{_ROLE}aws-service-role/imagebuilder.amazonaws.com/AWSServiceRoleForImageBuilder",
         f"{_ROLE}zero-trust-ai-*-enclave-parent-imagebuilder-execution")),
    "vault_tables": Placeholder(
        "the token vault's DynamoDB table names",
        ("zero-trust-ai-*-token-vault",)),
    "detokenize_roles": Placeholder(
        "roles granted detokenisation (token_vault.grant_detokenize); none by default",
        (f"{_ROLE}zero-trust-ai-*-detokeniz*",)),
    "tokenize_roles": Placeholder(
        "roles granted tokenisation, which read the vault's lookup items",
        (f"{_ROLE}zero-trust-ai-*-data-curator", f"{_ROLE}zero-trust-ai-*-tokeniz*")),
    "jit_tables": Placeholder(
        "the JIT elevation requests' DynamoDB table names",
        ("zero-trust-ai-*-jit",)),
    "jit_function_roles": Placeholder(
        "the JIT API and expiry functions' roles, the only writers of the requests table",
        (f"{_ROLE}zero-trust-ai-*-jit-api-role", f"{_ROLE}zero-trust-ai-*-jit-expiry-role")),
}

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b, "neq": lambda a, b: a != b}
_LEAF_OPS = frozenset(("str", "re", "cidr", "num", "bool", "null", "exists", "fieldref", *_COMPARE))
_MISSING = object()
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
# The request parameters that name what a call acted on, in the order a reason prefers them.
_RESOURCE_KEYS = ("name", "keyId", "aliasName", "targetKeyId", "trailName", "functionName", "layerName",
                  "roleName", "userName", "policyArn", "groupId", "imageId", "snapshotId", "instanceId",
                  "tableName", "target", "documentName", "bucketName", "apiId", "restApiId",
                  "flowLogIds", "resolverQueryLogConfigId", "dBSnapshotIdentifier")

Record = dict[str, Any]
# The `eventName`s, as written, whose candidate rules are remembered (AWS has some 15,000 actions).
_EXACT_NAMES = 20_000
Matcher = Callable[[Record], bool]


class _IRError(ValueError):
    """A problem in the IR, with where it is."""


def _values(record: Any, path: tuple[str, ...]) -> list[Any]:
    """Every value `path` reaches in `record`, fanning out over lists at every step."""
    current = [record]
    for part in path:
        following: list[Any] = []
        for item in current:
            if type(item) is dict:
                value = item.get(part, _MISSING)
                if value is _MISSING:
                    continue
                if type(value) is list:
                    _flatten(value, following)
                else:
                    following.append(value)
        if not following:
            return following
        current = following
    return current


def _flatten(items: list[Any], out: list[Any]) -> None:
    for item in items:
        if type(item) is list:
            _flatten(item, out)
        else:
            out.append(item)


def _text(value: Any) -> str | None:
    """A scalar as Sigma compares it with a string; None for null, objects and lists."""
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) in (int, float):
        return str(value)
    return None


def _glob_parts(pattern: str) -> list[tuple[str, str]]:
    """A pattern as ("lit", text) / ("*", "") / ("?", "") / ("ph", name) tokens."""
    parts: list[tuple[str, str]] = []
    literal: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            literal.append(pattern[index + 1])
            index += 2
            continue
        if char in "*?%":
            if char == "%":
                end = pattern.find("%", index + 1)
                if end < 0:
                    raise _IRError(f"pattern {pattern!r}: '%' opens a placeholder that is never closed "
                               "(escape a literal one as \\%)")
                token: tuple[str, str] = ("ph", pattern[index + 1:end])
                index = end + 1
            else:
                token = (char, "")
                index += 1
            if literal:
                parts.append(("lit", "".join(literal)))
                literal = []
            parts.append(token)
            continue
        literal.append(char)
        index += 1
    if literal:
        parts.append(("lit", "".join(literal)))
    return parts


def _expand(parts: list[tuple[str, str]],
            context: Mapping[str, Sequence[str]]) -> list[list[tuple[str, str]]]:
    """The patterns with each placeholder replaced by each of its globs (a cross product)."""
    results: list[list[tuple[str, str]]] = [[]]
    for kind, text in parts:
        if kind != "ph":
            for result in results:
                result.append((kind, text))
            continue
        if text not in context:
            raise _IRError(f"unknown placeholder %{text}%: allowed are "
                       + ", ".join(f"%{name}%" for name in sorted(PLACEHOLDERS)))
        globs = [_glob_parts(glob.replace("%", "\\%")) for glob in context[text]]
        results = [result + glob for result in results for glob in globs]
    return results


def _string_matcher(patterns: list[list[tuple[str, str]]], cased: bool) -> Callable[[str], bool]:
    """One test for all of a leaf's patterns: a set for exact values, prefix/suffix/substring
    tests for one leading or trailing `*`, and one regular expression for the rest."""
    exact: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    inner: list[str] = []
    regexes: list[str] = []
    fold = (lambda s: s) if cased else str.lower
    for parts in patterns:
        kinds = [kind for kind, _ in parts]
        texts = [fold(text) for _, text in parts]
        if all(kind == "lit" for kind in kinds):
            exact.add("".join(texts))
        elif kinds == ["*"]:
            prefixes.append("")
        elif kinds == ["lit", "*"]:
            prefixes.append(texts[0])
        elif kinds == ["*", "lit"]:
            suffixes.append(texts[1])
        elif kinds == ["*", "lit", "*"]:
            inner.append(texts[1])
        else:
            regexes.append("".join(re.escape(text) if kind == "lit" else (".*" if kind == "*" else ".")
                                   for kind, text in zip(kinds, texts, strict=True)))
    starts = tuple(prefixes)
    ends = tuple(suffixes)
    regex = re.compile("(?:" + "|".join(regexes) + r")\Z", re.DOTALL) if regexes else None

    def test(value: str) -> bool:
        value = fold(value)
        if value in exact:
            return True
        if starts and value.startswith(starts):
            return True
        if ends and value.endswith(ends):
            return True
        for text in inner:
            if text in value:
                return True
        return regex is not None and regex.match(value) is not None

    return test


def _number(value: Any) -> float | None:
    if type(value) in (int, float):
        return float(value)
    if type(value) is str:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _path(node: Mapping[str, Any]) -> tuple[str, ...]:
    field = node.get("field")
    if not isinstance(field, str) or not field or any(not part for part in field.split(".")):
        raise _IRError(f"leaf {dict(node)!r}: 'field' must be a dotted path of non-empty names")
    return tuple(field.split("."))


def _list(node: Mapping[str, Any], key: str) -> list[Any]:
    values = node.get(key)
    if not isinstance(values, list) or not values:
        raise _IRError(f"leaf on {node.get('field')!r} ({node.get('op')}): '{key}' must be a non-empty list")
    return values


def _leaf(node: Mapping[str, Any], context: Mapping[str, Sequence[str]]) -> Matcher:
    op = node.get("op")
    if op not in _LEAF_OPS:
        raise _IRError(f"leaf on {node.get('field')!r}: unknown op {op!r}; allowed are "
                   + ", ".join(sorted(_LEAF_OPS)))
    path = _path(node)
    if op == "str":
        patterns = []
        for value in _list(node, "values"):
            if not isinstance(value, str):
                raise _IRError(f"leaf on {node['field']!r}: string pattern {value!r} is not a string")
            patterns.extend(_expand(_glob_parts(value), context))
        test = _string_matcher(patterns, bool(node.get("cased", False)))

        def match_str(record: Record) -> bool:
            for value in _values(record, path):
                text = _text(value)
                if text is not None and test(text):
                    return True
            return False
        return match_str
    if op == "re":
        flags = 0
        for flag in node.get("flags", ""):
            if flag not in "ims":
                raise _IRError(f"leaf on {node['field']!r}: regex flag {flag!r} is not one of i, m, s")
            flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}[flag]
        try:
            regexes = [re.compile(value, flags) for value in _list(node, "values")]
        except (re.error, TypeError) as error:
            raise _IRError(f"leaf on {node['field']!r}: bad regular expression ({error})") from None

        def match_re(record: Record) -> bool:
            for value in _values(record, path):
                text = _text(value)
                if text is not None and any(regex.search(text) for regex in regexes):
                    return True
            return False
        return match_re
    if op == "cidr":
        try:
            networks = [ipaddress.ip_network(value) for value in _list(node, "values")]
        except (ValueError, TypeError) as error:
            raise _IRError(f"leaf on {node['field']!r}: bad network ({error})") from None

        def match_cidr(record: Record) -> bool:
            for value in _values(record, path):
                if type(value) is not str:
                    continue
                try:
                    address = ipaddress.ip_address(value)
                except ValueError:
                    continue
                if any(address.version == net.version and address in net for net in networks):
                    return True
            return False
        return match_cidr
    if op == "num":
        numbers = set()
        for value in _list(node, "values"):
            if type(value) not in (int, float):
                raise _IRError(f"leaf on {node['field']!r}: {value!r} is not a number")
            numbers.add(float(value))
        return lambda record: any(_number(v) in numbers for v in _values(record, path))
    if op == "bool":
        wanted = set()
        for value in _list(node, "values"):
            if type(value) is not bool:
                raise _IRError(f"leaf on {node['field']!r}: {value!r} is not a boolean")
            wanted.add(value)
        texts = {"true" if value else "false" for value in wanted}
        return lambda record: any(
            (v in wanted) if type(v) is bool else (type(v) is str and v.lower() in texts)
            for v in _values(record, path))
    if op == "null":
        return lambda record: all(v is None for v in _values(record, path))
    if op == "exists":
        present = node.get("value")
        if type(present) is not bool:
            raise _IRError(f"leaf on {node['field']!r}: exists needs 'value': true or false")
        return lambda record: any(v is not None for v in _values(record, path)) is present
    if op == "fieldref":
        others = [_path({"field": other}) for other in _list(node, "values")]

        def match_ref(record: Record) -> bool:
            mine = {t for t in (_text(v) for v in _values(record, path)) if t is not None}
            return any(t in mine for other in others for t in (_text(v) for v in _values(record, other)))
        return match_ref
    bound = node.get("value")
    if not isinstance(bound, (int, float)) or isinstance(bound, bool):
        raise _IRError(f"leaf on {node['field']!r}: {op} needs a number 'value'")
    compare = _COMPARE[op]
    limit = float(bound)
    return lambda record: any((n := _number(v)) is not None and compare(n, limit)
                              for v in _values(record, path))


def _compile(node: Any, context: Mapping[str, Sequence[str]]) -> Matcher:
    if not isinstance(node, dict):
        raise _IRError(f"condition node {node!r} is not an object")
    if "and" in node or "or" in node:
        key = "and" if "and" in node else "or"
        items = node[key]
        if not isinstance(items, list) or not items:
            raise _IRError(f"'{key}' must be a non-empty list of nodes")
        parts = [_compile(item, context) for item in items]
        if len(parts) == 1:
            return parts[0]
        if key == "and":
            return lambda record: all(part(record) for part in parts)
        return lambda record: any(part(record) for part in parts)
    if "not" in node:
        inner = _compile(node["not"], context)
        return lambda record: not inner(record)
    return _leaf(node, context)


def pinned_event_names(node: Any) -> list[str] | None:
    """The `eventName` values every match of `node` has (sorted), or None when it pins none: an
    exact, case-insensitive `eventName` leaf, or an `and` with one, or an `or` of pinned nodes."""
    if not isinstance(node, dict):
        return None
    if "and" in node:
        for item in node["and"]:
            names = pinned_event_names(item)
            if names is not None:
                return names
        return None
    if "or" in node:
        found: set[str] = set()
        for item in node["or"]:
            names = pinned_event_names(item)
            if names is None:
                return None
            found.update(names)
        return sorted(found)
    if node.get("field") == "eventName" and node.get("op") == "str" and not node.get("cased"):
        values = node.get("values")
        if isinstance(values, list) and values and all(
                isinstance(v, str) and not any(c in v for c in "*?%\\") for v in values):
            return sorted(values)
    return None


@dataclass(frozen=True)
class CompiledRule:
    """One rule, ready to run."""

    id: str
    name: str
    title: str
    level: str
    technique: str | None
    logsource: str
    event_names: tuple[str, ...] | None
    match: Matcher


def _rule(data: Any, index: int, context: Mapping[str, Sequence[str]]) -> CompiledRule:
    if not isinstance(data, dict):
        raise _IRError(f"rules[{index}] is not an object")
    where = f"rules[{index}] ({data.get('name') or data.get('id') or 'no name'})"
    try:
        for key in ("id", "name", "title"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise _IRError(f"'{key}' must be a non-empty string")
        if data.get("level") not in SEVERITIES:
            raise _IRError(f"level {data.get('level')!r} is not one of {', '.join(SEVERITIES)}")
        if data.get("logsource") not in LOGSOURCES:
            raise _IRError(f"logsource {data.get('logsource')!r} is not one of {', '.join(LOGSOURCES)}")
        techniques = data.get("techniques", [])
        if not isinstance(techniques, list) or any(
                not isinstance(t, str) or not _TECHNIQUE.match(t) for t in techniques):
            raise _IRError(f"techniques {techniques!r} must be a list of ATT&CK ids like T1562.008")
        match = _compile(data.get("condition"), context)
        pinned = pinned_event_names(data["condition"]) if data["logsource"] == "cloudtrail" else None
        if "eventNames" in data and data["eventNames"] != pinned:
            raise _IRError(f"eventNames {data['eventNames']!r} differ from those the condition pins "
                       f"({pinned!r}): recompile the rules")
    except _IRError as error:
        raise _IRError(f"{where}: {error}") from None
    return CompiledRule(data["id"], data["name"], data["title"], data["level"],
                        techniques[0] if techniques else None, data["logsource"],
                        tuple(pinned) if pinned is not None else None, match)


def _resource(record: Record) -> str | None:
    params = record.get("requestParameters")
    if isinstance(params, dict):
        for key in _RESOURCE_KEYS:
            value = params.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value and isinstance(value[0], str):
                return value[0]
    resources = record.get("resources")
    if isinstance(resources, list) and resources and isinstance(resources[0], dict):
        arn = resources[0].get("ARN")
        if isinstance(arn, str):
            return arn
    return None


def _reason(rule: CompiledRule, record: Record, kind: str) -> str:
    """The rule's title and what a person checks first: the call, what it acted on, its error."""
    if kind == "cloudtrail":
        details = [str(record.get("eventName") or "?")]
        resource = _resource(record)
        if resource:
            details.append(f"on {resource}")
        error = record.get("errorCode")
        if error:
            details.append(f"failed: {error}")
    else:
        details = [str(record.get("event") or record.get("routeKey") or kind)]
        for key in ("request_id", "elevation", "by", "requestId"):
            value = record.get(key)
            if isinstance(value, str) and value:
                details.append(f"{key} {value}")
    return f"{rule.title}: {' '.join(details)}"


class SigmaRules:
    """The engine's detector for Sigma rules (`name` "rules"): stateless, each event judged alone.

    CloudTrail rules that pin `eventName` values are looked up by the event's name, so an event
    costs a dictionary lookup plus the few rules of its name (and those that pin none)."""

    name = "rules"

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        self._by_name: dict[str, tuple[CompiledRule, ...]] = {}
        unpinned: dict[str, list[CompiledRule]] = {kind: [] for kind in LOGSOURCES}
        pinned: dict[str, list[CompiledRule]] = {}
        for rule in self.rules:
            if rule.event_names is None:
                unpinned[rule.logsource].append(rule)
            else:
                for event_name in rule.event_names:
                    pinned.setdefault(event_name.lower(), []).append(rule)
        self._unpinned = {kind: tuple(rules) for kind, rules in unpinned.items()}
        cloudtrail_all = self._unpinned["cloudtrail"]
        self._by_name = {key: tuple(rules) + cloudtrail_all for key, rules in pinned.items()}
        self._by_exact: dict[str, tuple[CompiledRule, ...]] = {}

    @classmethod
    def from_ir(cls, ir: Any, context: Mapping[str, Sequence[str]] | None = None) -> SigmaRules:
        """The rules of an IR; `context` gives placeholders the stack's values (globs), the others
        keep PLACEHOLDERS' defaults. ValueError naming the rule and the problem on a bad IR, an
        unknown placeholder or a context naming one that does not exist."""
        if not isinstance(ir, dict):
            raise ValueError("the rules' IR is not a JSON object")
        if ir.get("version") != IR_VERSION:
            raise ValueError(f"the rules' IR has version {ir.get('version')!r}; this reader takes "
                             f"{IR_VERSION}: recompile the rules (python -m ztai.detect_rules --write)")
        values: dict[str, Sequence[str]] = {name: p.default for name, p in PLACEHOLDERS.items()}
        for name, globs in (context or {}).items():
            if name not in PLACEHOLDERS:
                raise ValueError(f"context names unknown placeholder {name!r}: allowed are "
                                 + ", ".join(sorted(PLACEHOLDERS)))
            if isinstance(globs, str) or not isinstance(globs, Sequence) or not globs \
                    or any(not isinstance(g, str) or not g for g in globs):
                raise ValueError(f"context {name!r}: give a non-empty list of non-empty strings (globs)")
            values[name] = tuple(globs)
        rules = ir.get("rules")
        if not isinstance(rules, list):
            raise ValueError("the rules' IR has no 'rules' list")
        compiled = [_rule(data, index, values) for index, data in enumerate(rules)]
        seen: set[str] = set()
        for rule in compiled:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}: a rule's name must be unique")
            seen.add(rule.name)
        return cls(compiled)

    def matching(self, event: Event) -> list[CompiledRule]:
        """The rules `event` matches."""
        record = event.record
        if event.kind == "cloudtrail":
            name = record.get("eventName")
            if type(name) is str:
                # By the name as written first (one lookup, no lowering: CloudTrail writes the same
                # few names again and again), then by its lower case.
                candidates = self._by_exact.get(name)
                if candidates is None:
                    candidates = self._exact(name)
            else:
                candidates = self._unpinned["cloudtrail"]
        else:
            candidates = self._unpinned.get(event.kind, ())
        if not candidates:
            return []
        return [rule for rule in candidates if rule.match(record)]

    def _exact(self, name: str) -> tuple[CompiledRule, ...]:
        """The candidates of an `eventName` as written, remembered (bounded: cleared when full)."""
        return remember(self._by_exact, name,
                        self._by_name.get(name.lower(), self._unpinned["cloudtrail"]), _EXACT_NAMES)

    def observe(self, event: Event, principal: str) -> list[Signal]:
        """A signal per rule the event matches (rules learn nothing)."""
        rules = self.matching(event)
        if not rules:
            return []
        return [Signal(rule.name, rule.level, principal, _reason(rule, event.record, event.kind),
                       rule.technique) for rule in rules]

    def to_state(self) -> dict[str, Any]:
        """Rules keep no state."""
        return {}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], ir: Any,
                   context: Mapping[str, Sequence[str]] | None = None) -> SigmaRules:
        """The rules again (their state is empty; ValueError when it is not)."""
        if state:
            raise ValueError(f"the rules' state must be empty, got keys {sorted(state)}")
        return cls.from_ir(ir, context)


SHIPPED_IR = Path(__file__).with_name("sigma_rules.json")


def shipped_ir() -> dict[str, Any]:
    """The IR of the rules the project ships (detections/sigma/, compiled by `python -m
    ztai.detect_rules --write`)."""
    loaded: dict[str, Any] = json.loads(SHIPPED_IR.read_text(encoding="utf-8"))
    return loaded
