"""The program recorded under the preview's mocks, for one stack or a split environment.

A workload stack reads its keys from its key layer's stack (a StackReference): recording it first
records the key layer as its first deployment leaves it (no grants file) and answers the reference
with that stack's outputs, as `ztai preview` does (ztai/cli.py).

Recording a stack runs the whole program under the mocks (seconds; a split environment runs it
three times), and several test modules record the same stacks: each distinct recording is made once
per test process and every caller gets its own deep copy, so a test that edits what it was given
cannot change what another test reads.
"""

from __future__ import annotations

import copy
import json
import runpy
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import ROOT
from ztai.preview.recorder import RecordedStack, existing_resources, record
from ztai.stackfile import StackFile, load_stack

PROJECT = "zero-trust-ai"
GRANTS_FILE = f"{PROJECT}:workloadGrantsFile"
# Prod as one stack (the keys and the workload, one deployer): what the split must be equivalent to.
COMBINED = {f"{PROJECT}:layer": "combined", f"{PROJECT}:keyLayerStack": "",
            f"{PROJECT}:keyAdministratorRoleArns": json.dumps(
                ["arn:aws:iam::111122223333:role/zero-trust-ai-prod-deploy-keys"]),
            f"{PROJECT}:keyInspectorRoleArns": json.dumps(
                ["arn:aws:iam::111122223333:role/zero-trust-ai-prod-ci-preview"]),
            # The alarm topics are a combined stack's, and prod needs someone on the critical one.
            f"{PROJECT}:alarmSubscriptions": json.dumps(["critical:email:security-oncall@example.com"])}


_T = TypeVar("_T")
# (kind, stack name, extra config, key layer's extra config) -> the recording, as first made.
_RECORDINGS: dict[tuple[str, str, frozenset[tuple[str, str]], frozenset[tuple[str, str]]], Any] = {}


def _once(kind: str, name: str, extra: Mapping[str, str] | None, key_extra: Mapping[str, str] | None,
          make: Callable[[], _T]) -> _T:
    """The recording for these arguments, made on the first call; a deep copy on every call. The
    program reads only the stack files and the config given (both in the key), so the recording
    for the same key does not change within a run."""
    key = (kind, name, frozenset((extra or {}).items()), frozenset((key_extra or {}).items()))
    if key not in _RECORDINGS:
        _RECORDINGS[key] = make()
    recorded: _T = copy.deepcopy(_RECORDINGS[key])
    return recorded


def run_program(stack_file: StackFile, config: Mapping[str, str], *,
                stack_outputs: Mapping[str, Any] | None = None,
                before: Callable[[], None] | None = None,
                existing: Mapping[tuple[str, str], Any] | None = None) -> RecordedStack:
    def program() -> None:
        if before is not None:
            before()
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    return record(program, project=stack_file.project, stack=stack_file.stack, config=dict(config),
                  region=stack_file.region or "eu-west-1", stack_outputs=stack_outputs,
                  existing=existing)


def key_layer_of(stack_file: StackFile) -> StackFile | None:
    if stack_file.config.get(f"{PROJECT}:layer") != "workload":
        return None
    reference = stack_file.config[f"{PROJECT}:keyLayerStack"]
    return load_stack(ROOT, reference.rsplit("/", 1)[-1])


def record_stack(name: str, extra: Mapping[str, str] | None = None, *,
                 before: Callable[[], None] | None = None) -> RecordedStack:
    """One stack as `pulumi up` would declare it; a workload stack against its key layer's first
    deployment. Recorded once per process unless `before` is given (it may observe the program
    as it runs, so it must see it run)."""
    if before is None:
        return _once("stack", name, extra, None, lambda: _record_stack(name, extra))
    return _record_stack(name, extra, before=before)


def _record_stack(name: str, extra: Mapping[str, str] | None, *,
                  before: Callable[[], None] | None = None) -> RecordedStack:
    stack_file = load_stack(ROOT, name)
    config = stack_file.config | dict(extra or {})
    key_file = key_layer_of(replace(stack_file, config=config))
    outputs, existing = {}, {}
    if key_file is not None:
        first = run_program(key_file, key_file.config | {GRANTS_FILE: ""})
        outputs = {config[f"{PROJECT}:keyLayerStack"]: first.stack_outputs}
        existing = existing_resources(first)
    return run_program(stack_file, config, stack_outputs=outputs, before=before, existing=existing)


@dataclass(frozen=True)
class SplitEnvironment:
    """A split environment's three states: the key layer's first deployment (no grants), the
    workload, and the key layer sealed with the workload's grants."""

    first_keys: RecordedStack
    workload: RecordedStack
    sealed_keys: RecordedStack

    def combined(self) -> RecordedStack:
        """Both layers' resources as one stack (the sealed key layer's), for checks that span them."""
        return replace(self.workload, resources=[*self.workload.resources,
                                                 *self.sealed_keys.resources[1:]])


def record_split(name: str, extra: Mapping[str, str] | None = None,
                 key_extra: Mapping[str, str] | None = None) -> SplitEnvironment:
    """The split environment's three recordings, made once per process."""
    return _once("split", name, extra, key_extra, lambda: _record_split(name, extra, key_extra))


def _record_split(name: str, extra: Mapping[str, str] | None,
                  key_extra: Mapping[str, str] | None) -> SplitEnvironment:
    stack_file = load_stack(ROOT, name)
    config = stack_file.config | dict(extra or {})
    key_file = key_layer_of(replace(stack_file, config=config))
    assert key_file is not None, f"{name} is not a workload stack"
    key_config = key_file.config | dict(key_extra or {})
    first = run_program(key_file, key_config | {GRANTS_FILE: ""})
    workload = run_program(stack_file, config,
                           stack_outputs={config[f"{PROJECT}:keyLayerStack"]: first.stack_outputs},
                           existing=existing_resources(first))
    with tempfile.TemporaryDirectory() as scratch:
        grants = Path(scratch) / "grants.json"
        grants.write_text(json.dumps(workload.stack_outputs["keyGrants"]), encoding="utf-8")
        sealed = run_program(key_file, key_config | {GRANTS_FILE: str(grants)})
    return SplitEnvironment(first, workload, sealed)
