"""Sigma detection rules on the CLI side: load them with pySigma, compile them to the JSON form the
runtime evaluates (`ztai_runtime.detect.rules`), export them to a SIEM's query language.

- `load_rules(folder)`: every `*.yml` / `*.yaml` under the folder (recursively), one rule per file,
  parsed by pySigma and checked against the subset the runtime evaluates and the project's rule
  conventions; `RuleError` names the file, the rule id and what is wrong.
- `compile_rules(folder)`: the rules' IR (a JSON-safe dict), which `SigmaRules.from_ir` reads.
- `export(folder, backend)`: the rules as Splunk SPL (`splunk`), Elastic Lucene over the AWS
  integration's ECS fields (`elastic`) or Microsoft Sentinel KQL over the `AWSCloudTrail` table
  (`sentinel`), through pySigma's backends.

`python -m ztai.detect_rules --write` regenerates the IR the project ships
(`ztai_runtime/detect/sigma_rules.json`) from `detections/sigma/`; a test checks it is current.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from sigma import modifiers as m
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldMappingTransformation, ValueListPlaceholderTransformation
from sigma.processing.transformations.base import DetectionItemTransformation
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from ztai_runtime.detect.rules import IR_VERSION, PLACEHOLDERS, pinned_event_names

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "detections" / "sigma"
IR_PATH = ROOT / "ztai_runtime" / "detect" / "sigma_rules.json"
BACKENDS: tuple[str, ...] = ("splunk", "elastic", "sentinel")

# The modifiers the runtime evaluates; any other (base64, base64offset, wide/utf16, windash,
# timestamp parts) is refused when the rules load rather than silently mis-evaluated.
_SUPPORTED_MODIFIERS: frozenset[type] = frozenset((
    m.SigmaContainsModifier, m.SigmaStartswithModifier, m.SigmaEndswithModifier, m.SigmaAllModifier,
    m.SigmaRegularExpressionModifier, m.SigmaRegularExpressionIgnoreCaseFlagModifier,
    m.SigmaRegularExpressionMultilineFlagModifier, m.SigmaRegularExpressionDotAllFlagModifier,
    m.SigmaCaseSensitiveModifier, m.SigmaCIDRModifier, m.SigmaExistsModifier, m.SigmaExpandModifier,
    m.SigmaFieldReferenceModifier, m.SigmaLessThanModifier, m.SigmaLessThanEqualModifier,
    m.SigmaGreaterThanModifier, m.SigmaGreaterThanEqualModifier))
_MODIFIER_NAMES = {cls: name for name, cls in m.modifier_mapping.items()}
# (product, service) -> the runtime's logsource kind.
_LOGSOURCES = {("aws", "cloudtrail"): "cloudtrail", ("zero-trust-ai", "jit"): "jit",
               ("zero-trust-ai", "gateway"): "gateway", ("zero-trust-ai", "inference"): "inference"}
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_TECHNIQUE_TAG = re.compile(r"^attack\.t\d{4}(\.\d{3})?$")
_REQUIRED = ("title", "id", "name", "status", "description", "references", "author", "date", "tags",
             "logsource", "detection", "falsepositives", "level")
_COMPARE_OPS = {CompareOperators.LT: "lt", CompareOperators.LTE: "lte", CompareOperators.GT: "gt",
                CompareOperators.GTE: "gte", CompareOperators.NEQ: "neq"}
_RE_FLAGS = {SigmaRegularExpressionFlag.IGNORECASE: "i", SigmaRegularExpressionFlag.MULTILINE: "m",
             SigmaRegularExpressionFlag.DOTALL: "s"}


class RuleError(ValueError):
    """A rule file that cannot be used, with the file, the rule and what is wrong."""


def _rule_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise RuleError(f"{folder}: no such folder of Sigma rules (give a folder holding *.yml files)")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml"))
    if not files:
        raise RuleError(f"{folder}: holds no Sigma rule (*.yml or *.yaml files)")
    return files


def _check_raw(path: Path, text: str) -> dict[str, Any]:
    """The file as YAML: one mapping holding every field the project's rules carry."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise RuleError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if len(documents) != 1:
        raise RuleError(f"{path}: holds {len(documents)} YAML documents; one rule per file is allowed "
                        "(no multi-document rules, correlations or filters)")
    data = documents[0]
    if not isinstance(data, dict):
        raise RuleError(f"{path}: is not a Sigma rule (a YAML mapping with title, id, detection, ...)")
    rule_id = data.get("id", "no id")
    if "correlation" in data:
        raise RuleError(f"{path} (rule {rule_id}): correlation rules are not supported: the behavioural "
                        "models count and correlate; a rule matches one event")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise RuleError(f"{path} (rule {rule_id}): missing {', '.join(missing)}; every rule has "
                        + ", ".join(_REQUIRED))
    name = data["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise RuleError(f"{path} (rule {rule_id}): name {name!r} must be a short kebab-case id "
                        "(lower-case letters, digits and dashes), the findings' rule")
    return data


def _check_rule(path: Path, rule: SigmaRule) -> None:
    """pySigma's verdict, then the subset the runtime evaluates."""
    where = f"{path} (rule {rule.id})"
    if rule.errors:
        raise RuleError(f"{where}: " + "; ".join(str(e) for e in rule.errors))
    source = (rule.logsource.product, rule.logsource.service)
    if source not in _LOGSOURCES:
        raise RuleError(f"{where}: logsource product {source[0]!r}, service {source[1]!r} is not "
                        "supported; allowed are " + ", ".join(f"{p}/{s}" for p, s in _LOGSOURCES))
    if not any(_TECHNIQUE_TAG.match(str(tag)) for tag in rule.tags):
        raise RuleError(f"{where}: tags name no ATT&CK technique (attack.tNNNN or attack.tNNNN.NNN)")
    for detection in rule.detection.detections.values():
        _check_items(where, detection)
    try:
        for condition in rule.detection.parsed_condition:
            _node(where, condition.parsed)
    except SigmaError as error:
        raise RuleError(f"{where}: {error}") from None


def _check_items(where: str, detection: SigmaDetection) -> None:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            _check_items(where, item)
            continue
        for modifier in item.modifiers:
            if modifier not in _SUPPORTED_MODIFIERS:
                raise RuleError(
                    f"{where}: modifier '{_MODIFIER_NAMES.get(modifier, modifier.__name__)}' on field "
                    f"{item.field!r} is not supported; allowed are "
                    + ", ".join(sorted(_MODIFIER_NAMES[c] for c in _SUPPORTED_MODIFIERS)))


def load_rules(folder: Path | str) -> SigmaCollection:
    """Every rule under `folder`, parsed and checked (RuleError naming the file and the problem)."""
    rules: list[SigmaRule] = []
    seen_ids: dict[str, Path] = {}
    seen_names: dict[str, Path] = {}
    for path in _rule_files(Path(folder)):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise RuleError(f"{path}: cannot be read ({error})") from None
        data = _check_raw(path, text)
        try:
            rule = SigmaRule.from_dict(data, collect_errors=True)
        except SigmaError as error:
            raise RuleError(f"{path} (rule {data.get('id')}): {error}") from None
        _check_rule(path, rule)
        for key, seen in ((str(rule.id), seen_ids), (str(data["name"]), seen_names)):
            if key in seen:
                raise RuleError(f"{path}: id or name {key!r} is already used by {seen[key]}")
            seen[key] = path
        rule.custom_attributes["ztai_file"] = str(path)
        rules.append(rule)
    return SigmaCollection(rules)  # type: ignore[arg-type]


def _pattern(where: str, value: SigmaString) -> str:
    """A SigmaString as the IR's pattern: `*`, `?`, `%name%`, backslash escapes."""
    out: list[str] = []
    for part in value.s:
        if isinstance(part, str):
            out.append(re.sub(r"([\\*?%])", r"\\\1", part))
        elif part is SpecialChars.WILDCARD_MULTI:
            out.append("*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append("?")
        elif isinstance(part, Placeholder):
            if part.name not in PLACEHOLDERS:
                raise RuleError(f"{where}: unknown placeholder %{part.name}%; allowed are "
                                + ", ".join(f"%{n}%" for n in sorted(PLACEHOLDERS)))
            out.append(f"%{part.name}%")
        else:
            raise RuleError(f"{where}: unsupported string part {part!r}")
    return "".join(out)


def _leaf(where: str, expression: ConditionFieldEqualsValueExpression) -> dict[str, Any]:
    field, value = expression.field, expression.value
    if not field:
        raise RuleError(f"{where}: a value without a field (keyword search) is not supported")
    if isinstance(value, SigmaString):
        return {"field": field, "op": "str", "values": [_pattern(where, value)],
                "cased": isinstance(value, SigmaCasedString)}
    if isinstance(value, SigmaRegularExpression):
        return {"field": field, "op": "re", "values": [str(value.regexp)],
                "flags": "".join(sorted(_RE_FLAGS[f] for f in value.flags))}
    if isinstance(value, SigmaCIDRExpression):
        return {"field": field, "op": "cidr", "values": [str(value.network)]}
    if isinstance(value, SigmaBool):
        return {"field": field, "op": "bool", "values": [bool(value.boolean)]}
    if isinstance(value, SigmaNumber):
        return {"field": field, "op": "num", "values": [value.number]}
    if isinstance(value, SigmaNull):
        return {"field": field, "op": "null"}
    if isinstance(value, SigmaExists):
        return {"field": field, "op": "exists", "value": bool(value.exists)}
    if isinstance(value, SigmaCompareExpression):
        return {"field": field, "op": _COMPARE_OPS[value.op], "value": value.number.number}
    if isinstance(value, SigmaFieldReference):
        if value.starts_with or value.ends_with:
            raise RuleError(f"{where}: fieldref with startswith/endswith is not supported")
        return {"field": field, "op": "fieldref", "values": [value.field]}
    raise RuleError(f"{where}: value {value!r} of field {field!r} is of a type the runtime does not "
                    "evaluate (strings, regular expressions, CIDR, numbers, booleans, null, exists, "
                    "comparisons and field references are)")


def _node(where: str, item: Any) -> dict[str, Any]:
    if isinstance(item, ConditionFieldEqualsValueExpression):
        return _leaf(where, item)
    if isinstance(item, ConditionValueExpression):
        raise RuleError(f"{where}: keyword searches (values without a field) are not supported")
    if isinstance(item, ConditionNOT):
        return {"not": _node(where, item.args[0])}
    if isinstance(item, (ConditionAND, ConditionOR)):
        key = "and" if isinstance(item, ConditionAND) else "or"
        children: list[dict[str, Any]] = []
        for child in (_node(where, arg) for arg in item.args):
            # Nested groups of the same kind (a selection inside an `and`) read as one.
            children.extend(child[key] if set(child) == {key} else [child])
        if key == "or":
            children = _merge_strings(children)
        return children[0] if len(children) == 1 else {key: children}
    if isinstance(item, ConditionItem):
        raise RuleError(f"{where}: condition element {type(item).__name__} is not supported")
    raise RuleError(f"{where}: unexpected condition element {item!r}")


def _merge_strings(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An `or` of string leaves on one field (Sigma's value lists) as one leaf with many values."""
    merged: list[dict[str, Any]] = []
    slots: dict[tuple[str, bool], dict[str, Any]] = {}
    for child in children:
        if child.get("op") == "str":
            key = (child["field"], child["cased"])
            if key in slots:
                slots[key]["values"].extend(child["values"])
                continue
            child = {**child, "values": list(child["values"])}
            slots[key] = child
        merged.append(child)
    return merged


def _techniques(rule: SigmaRule) -> list[str]:
    return [str(tag)[len("attack."):].upper() for tag in rule.tags if _TECHNIQUE_TAG.match(str(tag))]


def _compile_rule(rule: SigmaRule) -> dict[str, Any]:
    where = f"{rule.custom_attributes.get('ztai_file', '?')} (rule {rule.id})"
    conditions = [_node(where, c.parsed) for c in rule.detection.parsed_condition]
    condition = conditions[0] if len(conditions) == 1 else {"or": conditions}
    logsource = _LOGSOURCES[(rule.logsource.product, rule.logsource.service)]  # type: ignore[index]
    return {"id": str(rule.id), "name": rule.name, "title": rule.title, "level": rule.level.name.lower()
            if rule.level else "medium", "techniques": _techniques(rule), "logsource": logsource,
            "eventNames": pinned_event_names(condition) if logsource == "cloudtrail" else None,
            "condition": condition}


def compile_rules(folder: Path | str = RULES_DIR) -> dict[str, Any]:
    """The IR of the rules under `folder` (RuleError on a bad rule), rules in name order."""
    rules = [_compile_rule(rule) for rule in load_rules(folder).rules if isinstance(rule, SigmaRule)]
    return {"version": IR_VERSION, "rules": sorted(rules, key=lambda r: r["name"])}


def ir_text(ir: dict[str, Any]) -> str:
    """The IR as the committed file holds it (stable: sorted keys, one rule per line block)."""
    return json.dumps(ir, indent=1, sort_keys=True) + "\n"


# -- export ---------------------------------------------------------------------------------------

# CloudTrail's JSON keys as the Elastic AWS integration's ECS fields (its cloudtrail data stream):
# the nested request/response objects are its `flattened` fields.
_ECS_FIELDS = {
    "eventName": "event.action", "eventSource": "event.provider", "eventType": "aws.cloudtrail.event_type",
    "sourceIPAddress": "source.address", "userAgent": "user_agent.original", "awsRegion": "cloud.region",
    "recipientAccountId": "cloud.account.id", "errorCode": "aws.cloudtrail.error_code",
    "errorMessage": "aws.cloudtrail.error_message", "eventID": "event.id",
    "userIdentity.type": "aws.cloudtrail.user_identity.type",
    "userIdentity.arn": "aws.cloudtrail.user_identity.arn",
    "userIdentity.accessKeyId": "aws.cloudtrail.user_identity.access_key_id",
    "userIdentity.sessionContext.sessionIssuer.arn":
        "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
    "userIdentity.invokedBy": "aws.cloudtrail.user_identity.invoked_by",
    "resources.ARN": "aws.cloudtrail.resources.arn",
}
_ECS_PREFIXES = {"requestParameters.": "aws.cloudtrail.flattened.request_parameters.",
                 "responseElements.": "aws.cloudtrail.flattened.response_elements.",
                 "additionalEventData.": "aws.cloudtrail.flattened.additional_eventdata."}
# The same keys as the Microsoft Sentinel AWSCloudTrail table's columns.
_SENTINEL_FIELDS = {
    "eventName": "EventName", "eventSource": "EventSource", "eventType": "EventTypeName",
    "sourceIPAddress": "SourceIpAddress", "userAgent": "UserAgent", "awsRegion": "AWSRegion",
    "recipientAccountId": "RecipientAccountId", "errorCode": "ErrorCode", "errorMessage": "ErrorMessage",
    "eventID": "AwsEventId", "userIdentity.type": "UserIdentityType", "userIdentity.arn": "UserIdentityArn",
    "userIdentity.accessKeyId": "UserIdentityAccessKeyId",
    "userIdentity.sessionContext.sessionIssuer.arn": "SessionIssuerArn",
    "userIdentity.invokedBy": "UserIdentityInvokedBy", "resources.ARN": "Resources",
}
_SENTINEL_OBJECTS = {"requestParameters": "RequestParameters", "responseElements": "ResponseElements",
                     "additionalEventData": "AdditionalEventData"}


class _NestedAsTextSearch(DetectionItemTransformation):
    """Sentinel keeps CloudTrail's nested objects as JSON text in one column: a field inside one
    (`requestParameters.policyArn`) becomes a search of that column's text. Wider than the rule
    (the value may sit under another key), never narrower: a string or number is searched for
    anywhere, `exists: true` searches for the key's name, and a test for absence (`null`,
    `exists: false`) cannot be said of text and is dropped (any text matches)."""

    def apply_detection_item(self, detection_item: SigmaDetectionItem) -> SigmaDetectionItem | None:
        field = detection_item.field or ""
        head = field.split(".", 1)[0]
        if head not in _SENTINEL_OBJECTS or "." not in field:
            return None
        values: list[Any] = []
        for value in detection_item.value:
            if isinstance(value, SigmaString):
                values.append(SigmaString("*") + value + SigmaString("*"))
            elif isinstance(value, (SigmaNumber, SigmaBool)):
                values.append(SigmaString(f"*{str(value).lower()}*"))
            elif isinstance(value, SigmaExists) and value.exists:
                values.append(SigmaString(f'*"{field.rsplit(".", 1)[-1]}"*'))
            else:
                values.append(SigmaString("*"))
        return SigmaDetectionItem(_SENTINEL_OBJECTS[head], [], values, auto_modifiers=False)


def _mapping(fields: dict[str, str]) -> dict[str | None, str | list[str]]:
    return {key: value for key, value in fields.items()}


def _cloudtrail() -> list[Any]:
    return [LogsourceCondition(product="aws", service="cloudtrail")]


def _ecs_pipeline() -> ProcessingPipeline:
    from sigma.processing.transformations import FieldPrefixMappingTransformation
    return ProcessingPipeline(name="zero-trust-ai CloudTrail to ECS", priority=20, items=[
        ProcessingItem(FieldMappingTransformation(_mapping(_ECS_FIELDS)), rule_conditions=_cloudtrail(),
                       identifier="ztai_ecs_fields"),
        ProcessingItem(FieldPrefixMappingTransformation(_mapping(_ECS_PREFIXES)),
                       rule_conditions=_cloudtrail(), identifier="ztai_ecs_prefixes")])


def _sentinel_pipeline() -> ProcessingPipeline:
    from sigma.pipelines.azuremonitor.azuremonitor import azure_monitor_pipeline
    ours = ProcessingPipeline(name="zero-trust-ai CloudTrail to AWSCloudTrail", priority=5, items=[
        ProcessingItem(_NestedAsTextSearch(), rule_conditions=_cloudtrail(), identifier="ztai_nested"),
        ProcessingItem(FieldMappingTransformation(_mapping(_SENTINEL_FIELDS)), rule_conditions=_cloudtrail(),
                       identifier="ztai_sentinel_fields")])
    return ours + azure_monitor_pipeline(query_table="AWSCloudTrail")


def _placeholder_pipeline(context: Mapping[str, Sequence[str]] | None) -> ProcessingPipeline:
    """The placeholders replaced by the stack's values (`context`) or the defaults, each a glob."""
    values: dict[str, list[str]] = {name: list(p.default) for name, p in PLACEHOLDERS.items()}
    for name, globs in (context or {}).items():
        if name not in PLACEHOLDERS:
            raise RuleError(f"context names unknown placeholder {name!r}: allowed are "
                            + ", ".join(sorted(PLACEHOLDERS)))
        if isinstance(globs, str) or not globs or any(not isinstance(g, str) or not g for g in globs):
            raise RuleError(f"context {name!r}: give a non-empty list of non-empty strings (globs)")
        values[name] = list(globs)
    return ProcessingPipeline(name="zero-trust-ai placeholders", priority=1, vars=values, items=[
        ProcessingItem(ValueListPlaceholderTransformation(), identifier="ztai_placeholders")])


def _backend(name: str, placeholders: ProcessingPipeline) -> Any:
    if name == "splunk":
        from sigma.backends.splunk.splunk import SplunkBackend
        return SplunkBackend(placeholders)
    if name == "elastic":
        from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend
        return LuceneBackend(placeholders + _ecs_pipeline())
    from sigma.backends.kusto.kusto import KustoBackend
    return KustoBackend(placeholders + _sentinel_pipeline())


def _exportable(rule: SigmaRule, backend: str) -> bool:
    """Elastic and Sentinel have a schema for CloudTrail only: the project's own logs
    (JIT, gateway, inference) are exported to Splunk, which keeps their JSON keys."""
    return backend == "splunk" or (rule.logsource.product, rule.logsource.service) == ("aws", "cloudtrail")


def export(folder: Path | str, backend: str,
           context: Mapping[str, Sequence[str]] | None = None) -> str:
    """The rules as the backend's queries: for each rule a `#` line (name, level, title) and its
    query, placeholders replaced by `context` (else their defaults); rules the backend has no
    schema for are listed as skipped. RuleError on a bad rule, an unknown backend or placeholder,
    or a rule the backend cannot convert."""
    if backend not in BACKENDS:
        raise RuleError(f"unknown backend {backend!r}; allowed are {', '.join(BACKENDS)}")
    placeholders = _placeholder_pipeline(context)
    # Conversion applies the pipeline to the rule objects in place: load afresh for each backend.
    collection = load_rules(folder)
    converter = _backend(backend, placeholders)
    lines: list[str] = []
    skipped: list[str] = []
    rules = sorted((r for r in collection.rules if isinstance(r, SigmaRule)), key=lambda r: str(r.name))
    for rule in rules:
        if not _exportable(rule, backend):
            skipped.append(str(rule.name))
            continue
        try:
            queries = converter.convert_rule(rule)
        except SigmaError as error:
            raise RuleError(f"{rule.custom_attributes.get('ztai_file')} (rule {rule.id}): the {backend} "
                            f"backend cannot convert it: {error}") from None
        level = rule.level.name.lower() if rule.level else "medium"
        lines.append(f"# {rule.name} ({level}): {rule.title}")
        lines.extend(str(query) for query in queries)
        lines.append("")
    if skipped:
        lines.append(f"# skipped (no {backend} schema for the project's own logs): {', '.join(skipped)}")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None, out: Callable[[str], Any] = sys.stdout.write) -> int:
    """`python -m ztai.detect_rules [--write | --check | --export BACKEND] [--rules DIR]`: print,
    write or check the IR, or print the rules as a backend's queries."""
    parser = argparse.ArgumentParser(prog="python -m ztai.detect_rules",
                                     description="compile the Sigma rules into the runtime's IR")
    parser.add_argument("--rules", default=str(RULES_DIR), help="folder of Sigma rules")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"write the IR to {IR_PATH.relative_to(ROOT)}")
    action.add_argument("--check", action="store_true", help="exit 1 when the committed IR is stale")
    action.add_argument("--export", choices=BACKENDS, help="print the rules as this backend's queries")
    args = parser.parse_args(argv)
    try:
        if args.export:
            out(export(args.rules, args.export))
            return 0
        text = ir_text(compile_rules(args.rules))
    except RuleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.write:
        IR_PATH.write_text(text, encoding="utf-8")
        return 0
    if args.check:
        current = IR_PATH.read_text(encoding="utf-8") if IR_PATH.exists() else ""
        if current != text:
            print(f"{IR_PATH} is stale: run python -m ztai.detect_rules --write", file=sys.stderr)
            return 1
        return 0
    out(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
