"""`pulumi stack export` documents: write one from a recorded preview, read any for analysis.

Deployment version 3, the format `pulumi stack export` writes:
`{"version": 3, "deployment": {"manifest": {...}, "resources": [{"urn", "custom", "id", "type",
"inputs", "outputs", "parent", "dependencies", "propertyDependencies", "protect", "ignoreChanges",
"provider"}]}}`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ztai.jsonfile import read_json
from ztai.policy.analyzer import AnalyzedResource
from ztai.preview.recorder import RecordedResource, RecordedStack

DEPLOYMENT_VERSION = 3
# Pulumi's marker of a secret value in state: {SECRET_SIG: SECRET_VALUE, "ciphertext" | "plaintext"}.
SECRET_SIG, SECRET_VALUE = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
REDACTED = "[secret]"


class ExportFileError(ValueError):
    """The file is not a readable stack export."""


def _provider_version(package: str) -> str:
    try:
        return version(f"pulumi_{package}")
    except PackageNotFoundError:
        return "0.0.0"


def to_export(recorded: RecordedStack, pulumi_version: str) -> dict[str, Any]:
    """The export document of a recorded preview, with the default providers the engine would
    have registered (the SDK under mocks registers none)."""
    providers: dict[str, dict[str, Any]] = {}
    resources: list[dict[str, Any]] = []
    for resource in recorded.resources:
        entry: dict[str, Any] = {"urn": resource.urn, "custom": resource.custom, "type": resource.type}
        if resource.custom:
            package = resource.type.split(":", 1)[0]
            if package not in providers:
                provider_version = _provider_version(package)
                urn = (f"urn:pulumi:{recorded.stack}::{recorded.project}::pulumi:providers:{package}"
                       f"::default_{provider_version.replace('.', '_')}")
                provider_id = hashlib.sha256(urn.encode()).hexdigest()[:8] + "-offline"
                inputs = {"version": provider_version}
                if package == "aws" and "aws:region" in recorded.config:
                    inputs["region"] = recorded.config["aws:region"]
                providers[package] = {"urn": urn, "custom": True, "id": provider_id,
                                      "type": f"pulumi:providers:{package}", "inputs": inputs,
                                      "outputs": inputs}
            provider = providers[package]
            entry["id"] = resource.id
            entry["provider"] = f"{provider['urn']}::{provider['id']}"
        entry["inputs"] = resource.inputs
        entry["outputs"] = resource.outputs
        if resource.parent:
            entry["parent"] = resource.parent
        if resource.dependencies:
            entry["dependencies"] = resource.dependencies
        if resource.property_dependencies:
            entry["propertyDependencies"] = resource.property_dependencies
        if resource.protect:
            entry["protect"] = True
        if resource.ignore_changes:
            entry["ignoreChanges"] = resource.ignore_changes
        resources.append(entry)
    # What the program read (a StackReference) is in the state too, marked external.
    resources += [{"urn": read.urn, "custom": True, "external": True, "type": read.type, "id": read.id,
                   "inputs": read.inputs, "outputs": read.outputs} for read in recorded.reads]
    # Providers come first in real state files: resources refer to them.
    ordered = [resources[0], *providers.values(), *resources[1:]] if resources else []
    manifest_version = f"v{pulumi_version}"
    return {
        "version": DEPLOYMENT_VERSION,
        "deployment": {
            "manifest": {
                "time": datetime.now(UTC).isoformat(),
                # The engine's magic is the SHA-256 of the manifest version.
                "magic": hashlib.sha256(manifest_version.encode()).hexdigest(),
                "version": manifest_version,
            },
            "resources": ordered,
        },
    }


def load_export(path: Path) -> dict[str, Any]:
    document = read_json(path, "stack export", ExportFileError)
    if not isinstance(document, dict) or "deployment" not in document:
        raise ExportFileError(f"{path} is not a `pulumi stack export` document "
                              "(no top-level \"deployment\")")
    if document.get("version") != DEPLOYMENT_VERSION:
        raise ExportFileError(f"{path}: deployment version {document.get('version')!r} is not "
                              f"supported; `pulumi stack export` writes version {DEPLOYMENT_VERSION}")
    return document


# The string Pulumi's engine writes for a value not known until deploy (pulumi.runtime.rpc.UNKNOWN).
UNKNOWN_MARKER = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def _unknown_marker_paths(value: Any, path: str) -> list[str]:
    """The property paths (`outputs.a.b[0]`) of the unknown-value markers in `value`."""
    found, pending = [], [(value, path)]
    while pending:
        item, where = pending.pop()
        if item == UNKNOWN_MARKER:
            found.append(where)
        elif isinstance(item, Mapping):
            pending += [(child, f"{where}.{key}") for key, child in item.items()]
        elif isinstance(item, list):
            pending += [(child, f"{where}[{position}]") for position, child in enumerate(item)]
    return sorted(found)


def unknown_value_warnings(document: Mapping[str, Any]) -> list[str]:
    """One warning per resource whose analysed properties hold Pulumi's unknown-value marker. The
    rules skip an unknown value ("can't run during preview"): right for a preview, where it is
    decided at deploy, but deployed state never holds one, so in the export of a deployed stack it
    means the file was edited to hide a value from the pack. (An offline preview's export holds
    some: the mocks leave a few computed outputs unknown.)"""
    warnings = []
    for resource in document["deployment"]["resources"]:
        outputs, inputs = resource.get("outputs") or {}, resource.get("inputs") or {}
        paths = _unknown_marker_paths(outputs or inputs, "outputs" if outputs else "inputs")
        if paths and not resource.get("delete"):
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            warnings.append(f"{resource['urn']}: {shown} hold Pulumi's unknown-value marker; the "
                            "policies skip unknown values. An offline preview's export holds a few "
                            "(the mocks leave some outputs unknown); a deployed stack's state holds "
                            "none, so there it means the file was edited")
    return warnings


def analyzable(value: Any) -> Any:
    """State values as the analyzer protocol carries them: a secret becomes {sig, "value"}.

    Exports hold secrets as ciphertext (or as JSON-encoded plaintext with --show-secrets); the
    pack's deserializer expects "value", so ciphertext is redacted and plaintext decoded.
    """
    if isinstance(value, list):
        return [analyzable(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    if value.get(SECRET_SIG) == SECRET_VALUE and "value" not in value:
        inner: Any = REDACTED
        if isinstance(value.get("plaintext"), str):
            try:
                inner = analyzable(json.loads(value["plaintext"]))
            except json.JSONDecodeError:
                inner = value["plaintext"]
        return {SECRET_SIG: SECRET_VALUE, "value": inner}
    return {key: analyzable(item) for key, item in value.items()}


def _urn_parts(urn: str, index: int) -> tuple[str, str, str, str]:
    parts = urn.split("::")
    if "\x00" in urn:
        raise ExportFileError(f"resources[{index}].urn {urn!r} contains a NUL character")
    if not urn.startswith("urn:pulumi:") or len(parts) < 4:
        raise ExportFileError(f"resources[{index}].urn {urn!r} is not a Pulumi URN "
                              "(urn:pulumi:<stack>::<project>::<type>::<name>)")
    return parts[0][len("urn:pulumi:"):], parts[1], parts[2], "::".join(parts[3:])


def analyzed_resources(document: Mapping[str, Any]) -> tuple[str, str, list[AnalyzedResource]]:
    """Stack, project and the resources of an export, as the analyzer receives them.

    The properties are the outputs (what is deployed) where there are any, else the inputs.
    Resources pending deletion are skipped: they are on their way out.
    """
    deployment = document.get("deployment")
    resources = deployment.get("resources") if isinstance(deployment, Mapping) else None
    if not isinstance(resources, list):
        raise ExportFileError("deployment.resources must be a list")
    analyzed: list[AnalyzedResource] = []
    stack = project = ""
    for index, resource in enumerate(resources):
        if not isinstance(resource, Mapping):
            raise ExportFileError(f"resources[{index}] must be an object")
        urn = resource.get("urn")
        if not isinstance(urn, str):
            raise ExportFileError(f"resources[{index}] has no urn")
        stack, project, qualified_type, name = _urn_parts(urn, index)
        fields = _Fields(resource, f"resources[{index}] ({urn})")
        if fields.flag("delete"):
            continue
        resource_type = fields.text("type") or qualified_type.split("$")[-1]
        outputs = resource.get("outputs") or {}
        inputs = resource.get("inputs") or {}
        for label, value in (("inputs", inputs), ("outputs", outputs)):
            if not isinstance(value, Mapping):
                raise ExportFileError(f"resources[{index}] ({urn}) {label} must be an object")
        properties = analyzable(outputs or inputs)
        property_dependencies = resource.get("propertyDependencies") or {}
        if not isinstance(property_dependencies, Mapping) or not all(
                _is_texts(urns) for urns in property_dependencies.values()):
            raise ExportFileError(f"resources[{index}] ({urn}) propertyDependencies must map each "
                                  "property to a list of URNs")
        analyzed.append(AnalyzedResource(
            urn=urn, type=resource_type, name=name, properties=properties,
            parent=fields.text("parent"),
            dependencies=fields.texts("dependencies", "URNs"),
            property_dependencies={str(k): list(v) for k, v in property_dependencies.items()},
            protect=fields.flag("protect"),
            # Stored in state since pulumi/pulumi#16146 (2024), so refresh can honour it.
            ignore_changes=fields.texts("ignoreChanges", "property paths"),
            custom=fields.flag("custom"),
            external=fields.flag("external"),
        ))
    return stack, project, analyzed


def _is_texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


class _Fields:
    """Typed access to the optional fields of one exported resource: a field of the wrong type is
    an error naming the resource, never a guess."""

    def __init__(self, resource: Mapping[str, Any], label: str) -> None:
        self.resource, self.label = resource, label

    def flag(self, key: str) -> bool:
        value = self.resource.get(key, False)
        if not isinstance(value, bool):
            raise ExportFileError(f"{self.label} {key} must be true or false, not {json.dumps(value)}")
        return value

    def text(self, key: str) -> str:
        value = self.resource.get(key) or ""
        if not isinstance(value, str):
            raise ExportFileError(f"{self.label} {key} must be a string, not {json.dumps(value)}")
        return value

    def texts(self, key: str, what: str) -> list[str]:
        value = self.resource.get(key) or []
        if not _is_texts(value):
            raise ExportFileError(f"{self.label} {key} must be a list of {what}")
        return list(value)


def for_analysis(resource: RecordedResource, *, read: bool = False) -> AnalyzedResource:
    """A recorded resource as the engine hands it to a policy pack: Analyze sees its inputs, as
    in a preview; AnalyzeStack the state the mocks returned (and the root stack's outputs, the
    exports). `read`: one the program read rather than declared (`stack.reads`), which the
    engine shows in the stack's view only."""
    return AnalyzedResource(
        urn=resource.urn, type=resource.type, name=resource.name, properties=resource.inputs,
        stack_properties=(resource.outputs if resource.custom or resource.type == "pulumi:pulumi:Stack"
                          else None),
        parent=resource.parent, dependencies=resource.dependencies,
        property_dependencies=resource.property_dependencies, protect=resource.protect,
        ignore_changes=resource.ignore_changes, custom=resource.custom, external=read)


def stack_for_analysis(stack: RecordedStack) -> list[AnalyzedResource]:
    """Every resource of a recorded stack as the engine hands it to a pack: what the program
    declared, then what it read."""
    return [*map(for_analysis, stack.resources), *(for_analysis(r, read=True) for r in stack.reads)]
