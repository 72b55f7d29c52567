"""Run a Pulumi program under the mock monitor and record what the engine would see.

`MockMonitor.RegisterResource` receives every registration (components included) with its type,
name, parent, inputs, dependencies and options; the recorder keeps all of it, which is what the
policy analyzer and a `pulumi stack export` need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi.runtime
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from ztai.preview.mocks import AwsMocks

STACK_TYPE = "pulumi:pulumi:Stack"


def plain(value: Any) -> Any:
    """JSON values from a protobuf Struct: whole-number floats back to ints (Struct has only
    doubles, exports and reports read better with 60 than 60.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    result = plain(json_format.MessageToDict(struct))
    assert isinstance(result, dict)
    return result


@dataclass
class RecordedResource:
    """One registration, as the engine would hold it in its state."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str = ""
    id: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    protect: bool = False
    provider: str = ""
    ignore_changes: list[str] = field(default_factory=list)
    retain_on_delete: bool = False
    # create/update/delete timeouts the program set (e.g. "360m"); empty when the defaults apply
    custom_timeouts: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedStack:
    project: str
    stack: str
    resources: list[RecordedResource]
    stack_outputs: dict[str, Any]
    errors: list[str]
    config: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Resources the program read rather than declared (a StackReference): in the engine's state
    # and in AnalyzeStack's view of the stack, not created, so not among `resources`.
    reads: list[RecordedResource] = field(default_factory=list)


class RecordingMonitor(MockMonitor):
    """A MockMonitor that also keeps every registration in order."""

    def __init__(self, mocks: AwsMocks,
                 on_register: Callable[[RecordedResource], None] | None = None) -> None:
        super().__init__(mocks)
        self.on_register = on_register
        self.recorded: list[RecordedResource] = []
        self.reads: list[RecordedResource] = []
        self.stack_outputs: dict[str, Any] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # As the engine builds URNs: a child's type is qualified by its parent's whole qualified
        # type chain, and the root stack's type is left out. (MockMonitor keeps only the last
        # link and keeps the stack's, so its URNs differ from the ones a real preview prints.)
        qualified = type_
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != STACK_TYPE:
                qualified = f"{parent_type}${type_}"
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), qualified, name])

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == STACK_TYPE:
            return response  # record() describes the root stack itself, with its outputs
        resource = RecordedResource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent,
            id=response.id,
            inputs=struct_to_dict(request.object),
            outputs=struct_to_dict(response.object) if request.custom else {},
            dependencies=list(request.dependencies),
            property_dependencies={key: list(deps.urns)
                                   for key, deps in request.propertyDependencies.items()},
            protect=bool(request.protect),
            provider=request.provider,
            ignore_changes=list(request.ignoreChanges),
            retain_on_delete=bool(request.retainOnDelete),
            custom_timeouts={kind: value for kind in ("create", "update", "delete")
                             if (value := getattr(request.customTimeouts, kind, ""))},
        )
        self.recorded.append(resource)
        if self.on_register is not None:
            self.on_register(resource)
        return response

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().ReadResource(request)  # type: ignore[no-untyped-call]
        self.reads.append(RecordedResource(
            urn=response.urn, type=request.type, name=request.name, custom=True,
            parent=request.parent, id=request.id, inputs=struct_to_dict(request.properties),
            outputs=struct_to_dict(response.properties), dependencies=list(request.dependencies),
            provider=request.provider))
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        if request.urn.split("::")[-2] == STACK_TYPE:
            self.stack_outputs.update(struct_to_dict(request.outputs))
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


class _DiagnosticCollector(logging.Handler):
    """The program's `pulumi.log` warnings and errors, as the engine's diagnostics."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        (self.errors if record.levelno >= logging.ERROR else self.warnings).append(record.getMessage())


def record(program: Callable[[], None], *, project: str, stack: str,
           config: Mapping[str, str], region: str,
           on_register: Callable[[RecordedResource], None] | None = None,
           unknowns: bool = False,
           stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
           existing: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> RecordedStack:
    """Run `program` against the mocks with `config` set, wait for every registration, and
    return what was registered. `on_register` sees each resource as it is registered (the
    moment the engine would call Analyze). `unknowns` leaves ids and computed outputs unknown,
    as in a first real preview. `stack_outputs` answers stack references, `existing` reads of
    resources another stack made (`existing_resources`). Exceptions from the program propagate
    unchanged."""
    mocks = AwsMocks(region, unknowns=unknowns, stack_outputs=stack_outputs, existing=existing)
    monitor = RecordingMonitor(mocks, on_register)
    diagnostics = _DiagnosticCollector()
    logger = logging.getLogger(f"ztai.preview.{stack}")
    logger.handlers = [diagnostics]  # one collector per run, not one more per run
    logger.propagate = False
    # Each run gets a fresh root stack (set_mocks reuses one left by an earlier run).
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=True, logger=logger,
                             monitor=monitor)
    # set_mocks keeps the config of an earlier run in this process; start from this stack's only.
    pulumi.runtime.set_all_config(dict(config))
    program()
    _sync_await(wait_for_rpcs())

    root = pulumi.runtime.get_root_resource()
    outputs: dict[str, Any] = {}
    if root is not None:
        for key, value in getattr(root, "outputs", {}).items():
            outputs[key] = _sync_await(_resolve(value))
    stack_urn = f"urn:pulumi:{stack}::{project}::{STACK_TYPE}::{project}-{stack}"
    root_record = RecordedResource(urn=stack_urn, type=STACK_TYPE, name=f"{project}-{stack}",
                                   custom=False, outputs=outputs)
    resources = [root_record, *monitor.recorded]
    return RecordedStack(project=project, stack=stack, resources=resources,
                         stack_outputs=outputs, errors=diagnostics.errors,
                         warnings=diagnostics.warnings, config=dict(config), reads=monitor.reads)


async def _resolve(value: Any) -> Any:
    output = pulumi.Output.from_input(value)
    return await output.future()


def existing_resources(stack: RecordedStack) -> dict[tuple[str, str], dict[str, Any]]:
    """What a recorded stack leaves in the account for another stack to read: (type, id) -> state."""
    return {(r.type, r.id): dict(r.outputs) for r in stack.resources if r.custom and r.id}
