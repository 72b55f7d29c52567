"""Run a Pulumi policy pack through its own gRPC Analyzer, as the engine does.

The engine starts a Python pack as `python -u -m pulumi.policy <engine> <pack dir>` from the pack
directory, reads the port the pack prints, then calls GetAnalyzerInfo, Configure, ConfigureStack,
Analyze once per resource and AnalyzeStack once. This module does exactly that, so the pack that
gates `pulumi preview --policy-pack` in CI is the very code exercised offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import grpc
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from ztai.errors import PolicyPackError
from ztai.policy.config import PolicyConfigError, effective_config

# The pack reports each exclusion it applied as a not-applicable result whose reason is this
# prefix followed by JSON (see policy_packs/zero_trust/ztpolicy/exclusions.py).
EXCLUSION_PREFIX = "exclusion: "
START_TIMEOUT_S = 60.0
_MAX_MESSAGE = 400 * 1024 * 1024  # the pack accepts up to 400 MiB, as the engine sends

_LEVELS = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory",
           analyzer_pb2.REMEDIATE: "remediate", analyzer_pb2.DISABLED: "disabled"}
_SEVERITIES = {analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED: "unspecified",
               analyzer_pb2.POLICY_SEVERITY_LOW: "low", analyzer_pb2.POLICY_SEVERITY_MEDIUM: "medium",
               analyzer_pb2.POLICY_SEVERITY_HIGH: "high",
               analyzer_pb2.POLICY_SEVERITY_CRITICAL: "critical"}


@dataclass(frozen=True)
class AnalyzedResource:
    """What the analyzer receives about one resource."""

    urn: str
    type: str
    name: str
    properties: Mapping[str, Any]
    parent: str = ""
    dependencies: Sequence[str] = ()
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    protect: bool = False
    ignore_changes: Sequence[str] = ()
    custom: bool = True
    stack_properties: Mapping[str, Any] | None = None  # AnalyzeStack's view, if different
    # Read, not declared (a StackReference, `Role.get`): the engine analyses only what a program
    # registers one by one, so such a resource is in the stack's view (AnalyzeStack) only.
    external: bool = False


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    description: str
    enforcement_level: str
    severity: str
    control: str
    remediation: str
    policy_type: str


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    severity: str
    urn: str
    message: str


@dataclass(frozen=True)
class Exclusion:
    policy: str
    urn: str
    pattern: str
    reason: str
    suppressed: tuple[str, ...]


@dataclass
class PolicyResult:
    pack_name: str
    pack_version: str
    policies: list[PolicyInfo]
    violations: list[Violation]
    exclusions: list[Exclusion]
    config: dict[str, Any]

    @property
    def mandatory_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "mandatory"]


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(values))
    return struct


class PolicyPackProcess:
    """A running policy pack and a gRPC client to it (use as a context manager)."""

    def __init__(self, pack_dir: Path, *, python: str = sys.executable,
                 env: Mapping[str, str] | None = None) -> None:
        self.pack_dir = pack_dir.resolve()
        self.python = python
        self.env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.stub: analyzer_pb2_grpc.AnalyzerStub

    def start(self) -> None:
        """Spawn the pack without waiting for it, so it boots while the caller works."""
        if self._process is not None:
            return
        if self._closed:
            raise PolicyPackError("policy pack was stopped")
        if not (self.pack_dir / "PulumiPolicy.yaml").is_file():
            raise PolicyPackError(f"{self.pack_dir} is not a policy pack (no PulumiPolicy.yaml)")
        # A file, not a pipe: a chatty pack can never block on a full stderr pipe. Closed in close().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            # The engine address is unused by Python packs; the engine passes its own here.
            [self.python, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(self.pack_dir)],
            cwd=self.pack_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr, env={**os.environ, **self.env},
        )

    def connect(self) -> None:
        """Wait for the pack's port and open the gRPC channel."""
        if self._channel is not None:
            return
        self.start()
        port = self._read_port()
        channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", _MAX_MESSAGE),
                                          ("grpc.max_receive_message_length", _MAX_MESSAGE)])
        with self._lock:
            if self._closed:
                channel.close()
                raise PolicyPackError("policy pack was stopped")
            self._channel = channel
        try:
            grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            raise PolicyPackError(f"policy pack listened on port {port} but never answered") from None
        self.stub = analyzer_pb2_grpc.AnalyzerStub(channel)

    def __enter__(self) -> PolicyPackProcess:
        self.start()  # connect() waits for the port when the pack is first needed
        return self

    def _read_port(self) -> int:
        process = self._process
        if process is None or process.stdout is None:
            raise PolicyPackError("policy pack was stopped before it started")
        stdout = process.stdout
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        text = line[0].decode(errors="replace").strip() if line else ""
        if not text.isdigit():
            stderr = self.stderr_text()
            raise PolicyPackError(f"policy pack {self.pack_dir} did not start "
                                  f"(printed {text!r} instead of a port):\n{stderr}")
        return int(text)

    def stderr_text(self) -> str:
        with self._lock:
            if self._stderr is None:
                return ""
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")[-4000:]

    def close(self) -> None:
        """Stop the pack. Safe to call twice and while a session thread is still connecting."""
        with self._lock:
            channel, process, stderr = self._channel, self._process, self._stderr
            self._channel = self._process = self._stderr = None
            self._closed = True
        if channel is not None:
            channel.close()
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if stderr is not None:
            stderr.close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def pack_version(pack_dir: Path, reported: str) -> str:
    """The pack's version as the CLI takes it: from PulumiPolicy.yaml (the Python SDK always
    reports 0.0.1 and defers to the file)."""
    try:
        document = yaml.safe_load((pack_dir / "PulumiPolicy.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return reported
    version = document.get("version") if isinstance(document, dict) else None
    return str(version) if version else reported


def _policy_infos(info: analyzer_pb2.AnalyzerInfo) -> list[PolicyInfo]:
    return [PolicyInfo(
        name=policy.name, description=policy.description,
        enforcement_level=_LEVELS.get(policy.enforcementLevel, "advisory"),
        severity=_SEVERITIES.get(policy.severity, "unspecified"),
        control=policy.framework.reference,
        remediation=policy.remediation_steps,
        policy_type="stack" if policy.policy_type == analyzer_pb2.POLICY_TYPE_STACK else "resource",
    ) for policy in info.policies]


def _exclusions(policy: str, reason: str, urn: str) -> list[Exclusion]:
    found = []
    for line in reason.splitlines():
        if not line.startswith(EXCLUSION_PREFIX):
            continue
        try:
            data = json.loads(line[len(EXCLUSION_PREFIX):])
        except json.JSONDecodeError:
            continue
        found.append(Exclusion(policy=policy, urn=str(data.get("urn") or urn),
                               pattern=str(data.get("pattern", "")), reason=str(data.get("reason", "")),
                               suppressed=tuple(str(s) for s in data.get("suppressed", []))))
    return found


def _collect(response: analyzer_pb2.AnalyzeResponse, urn: str, policies: Mapping[str, PolicyInfo],
             violations: list[Violation], exclusions: list[Exclusion]) -> None:
    for diagnostic in response.diagnostics:
        violations.append(Violation(
            policy=diagnostic.policyName,
            level=_LEVELS.get(diagnostic.enforcementLevel, "advisory"),
            severity=(policies[diagnostic.policyName].severity if diagnostic.policyName in policies
                      else _SEVERITIES.get(diagnostic.severity, "unspecified")),
            urn=diagnostic.urn or urn,
            # The SDK prefixes the policy description; the report shows it once per policy.
            message=diagnostic.message.split("\n", 1)[-1] if "\n" in diagnostic.message
            else diagnostic.message,
        ))
    for not_applicable in response.not_applicable:
        exclusions += _exclusions(not_applicable.policy_name, not_applicable.reason, urn)


def pack_environment(project: str, stack: str, stack_config: Mapping[str, str] | None,
                     dry_run: bool) -> dict[str, str]:
    """The variables the engine sets for an analyzer (packs may read stack config from them)."""
    return {"PULUMI_PROJECT": project, "PULUMI_STACK": stack,
            "PULUMI_DRY_RUN": "true" if dry_run else "false",
            "PULUMI_CONFIG": json.dumps(dict(stack_config or {}))}


@dataclass(frozen=True)
class _Setup:
    info: analyzer_pb2.AnalyzerInfo
    policies: list[PolicyInfo]
    config: dict[str, tuple[Any, dict[str, Any]]]


class AnalysisSession:
    """One analysis, driven like the engine drives it: configure the pack, `submit` each resource
    as it is registered (Analyze), then `finish` with the whole stack (AnalyzeStack).

    Configuration happens on a background thread, so the pack boots and is configured while the
    program runs; `submit` issues Analyze without waiting for the answer. A failure in either is
    raised by `finish`, never inside the program's registration path.
    """

    def __init__(self, pack: PolicyPackProcess, *, user_config: Mapping[str, Any] | None,
                 project: str, stack: str, stack_config: Mapping[str, str] | None = None,
                 dry_run: bool = True) -> None:
        self.pack = pack
        self._pending: list[tuple[str, Any]] = []
        self._ready: Future[_Setup] = Future()
        arguments = (dict(user_config or {}), project, stack, dict(stack_config or {}), dry_run)
        threading.Thread(target=self._setup, args=arguments, daemon=True).start()

    def _setup(self, user_config: dict[str, Any], project: str, stack: str,
               stack_config: dict[str, str], dry_run: bool) -> None:
        try:
            self.pack.connect()
            info = self.pack.stub.GetAnalyzerInfo(empty_pb2.Empty())
            config = effective_config(info, user_config)
            self.pack.stub.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={
                name: analyzer_pb2.PolicyConfig(enforcementLevel=level, properties=_struct(props))
                for name, (level, props) in config.items()
            }))
            self.pack.stub.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(
                stack=stack, project=project, organization="organization", dry_run=dry_run,
                config=stack_config))
            self._ready.set_result(_Setup(info, _policy_infos(info), config))
        except BaseException as error:  # noqa: BLE001 - handed to finish() to raise
            self._ready.set_exception(error)

    def submit(self, resource: AnalyzedResource) -> None:
        """Analyze one resource; the answer is collected by `finish`."""
        try:
            self._ready.result()
        except Exception:  # noqa: BLE001 - finish() raises the setup error
            return
        self._pending.append((resource.urn, self.pack.stub.Analyze.future(analyzer_pb2.AnalyzeRequest(
            type=resource.type, properties=_struct(resource.properties), urn=resource.urn,
            name=resource.name,
            options=analyzer_pb2.AnalyzerResourceOptions(
                protect=resource.protect, parent=resource.parent,
                ignoreChanges=list(resource.ignore_changes)),
        ))))

    def finish(self, resources: Sequence[AnalyzedResource]) -> PolicyResult:
        """AnalyzeStack over `resources`, then every answer gathered into one result.

        Raises PolicyConfigError for a bad policy configuration, PolicyPackError if the pack fails.
        """
        try:
            setup = self._ready.result()
            by_name = {policy.name: policy for policy in setup.policies}
            violations: list[Violation] = []
            exclusions: list[Exclusion] = []
            for urn, future in self._pending:
                _collect(future.result(), urn, by_name, violations, exclusions)
            stack_response = self.pack.stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
                analyzer_pb2.AnalyzerResource(
                    type=resource.type,
                    properties=_struct(resource.stack_properties
                                       if resource.stack_properties is not None
                                       else resource.properties),
                    urn=resource.urn, name=resource.name,
                    options=analyzer_pb2.AnalyzerResourceOptions(
                        protect=resource.protect, parent=resource.parent,
                        ignoreChanges=list(resource.ignore_changes)),
                    parent=resource.parent, dependencies=list(resource.dependencies),
                    propertyDependencies={
                        key: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(urns))
                        for key, urns in resource.property_dependencies.items()},
                ) for resource in resources]))
            _collect(stack_response, "", by_name, violations, exclusions)
        except grpc.RpcError as error:
            raise PolicyPackError(f"policy pack failed: {error.details()}\n"
                                  f"{self.pack.stderr_text()}") from None
        return PolicyResult(
            pack_name=setup.info.name,
            pack_version=pack_version(self.pack.pack_dir, setup.info.version),
            policies=setup.policies, violations=violations, exclusions=exclusions,
            config={name: {"enforcementLevel": _LEVELS[level], **props}
                    for name, (level, props) in setup.config.items()})


def analyze(pack: PolicyPackProcess, resources: Sequence[AnalyzedResource], *,
            user_config: Mapping[str, Any] | None, project: str, stack: str,
            stack_config: Mapping[str, str] | None = None, dry_run: bool = True) -> PolicyResult:
    """Analyse a complete list of resources (a stack export, a test) in one session."""
    session = AnalysisSession(pack, user_config=user_config, project=project, stack=stack,
                              stack_config=stack_config, dry_run=dry_run)
    for resource in resources:
        if not resource.external:
            session.submit(resource)
    return session.finish(resources)


__all__ = ["AnalysisSession", "AnalyzedResource", "PolicyConfigError", "PolicyPackError", "PolicyResult",
           "analyze"]
