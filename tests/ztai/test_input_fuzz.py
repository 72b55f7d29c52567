"""No file content ends in a traceback: random bytes and random JSON/YAML shapes fed to every file
the CLI reads (`policy analyze --file`, `--policy-config`, preview's stack file) end in exit 0, 1
or 2 with a message, never in exit 3 or a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PACK_DIR, ROOT
from ztai import cli
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
from ztai.policy.config import PolicyConfigError, load_policy_config

# Every example is a fresh run: no shared database of failures between machines.
FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

URN = "urn:pulumi:fuzz::zero-trust-ai::"

# JSON values, including what Python's parser accepts beyond the standard (NaN, Infinity, huge
# integers, lone surrogate escapes) and deep nesting.
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300),
                    st.floats(), st.text(max_size=20), st.sampled_from(["\ud800", "urn:pulumi:", "*"]))
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=12)
deep = st.integers(min_value=60, max_value=3000).map(lambda n: "[" * n + "]" * n)


def _resource(props: Any, fields: dict[str, Any], token: str, name: str) -> dict[str, Any]:
    return {"urn": f"{URN}{token}::{name}", "custom": True, "type": token, "inputs": props, **fields}


resources = st.builds(
    _resource, props=st.one_of(values, st.dictionaries(st.text(max_size=10), values, max_size=3)),
    fields=st.dictionaries(st.sampled_from(["parent", "dependencies", "propertyDependencies", "protect",
                                            "ignoreChanges", "custom", "delete", "outputs", "type",
                                            "id", "urn"]), values, max_size=3),
    token=st.sampled_from(["aws:ec2/subnet:Subnet", "aws:s3/bucket:Bucket", "x"]),
    name=st.text(max_size=8))
exports = st.one_of(
    values,
    st.fixed_dictionaries({"version": st.one_of(st.just(3), values), "deployment": values}),
    st.fixed_dictionaries({"version": st.just(3),
                           "deployment": st.fixed_dictionaries({"resources": st.lists(resources,
                                                                                      max_size=3)})}),
)


def _policy_names() -> list[str]:
    return sorted(path.stem.replace("_", "-") for path in (PACK_DIR / "ztpolicy" / "rules").rglob("*.py")
                  if path.stem != "__init__")


policy_configs = st.one_of(
    values,
    st.dictionaries(st.sampled_from([*_policy_names(), "all"]), st.one_of(
        values, st.sampled_from(["advisory", "mandatory", "disabled", "remediate"]),
        st.fixed_dictionaries({}, optional={
            "enforcementLevel": st.one_of(values, st.just("advisory")),
            "exclusions": st.one_of(values, st.lists(st.fixed_dictionaries(
                {"resource": st.one_of(st.just("*"), values), "reason": st.one_of(values, st.text())}),
                max_size=2))})), max_size=3),
)


def _dumped(value: Any) -> bytes:
    return json.dumps(value).encode()


def _contents(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=200), documents.map(_dumped), deep.map(str.encode),
                     documents.map(lambda v: json.dumps(v).encode("utf-16")))


def run_cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(args))
        except SystemExit as done:
            status = done.code if isinstance(done.code, int) else 2
    return status, err.getvalue()


def assert_clean(status: int, err: str) -> None:
    assert status in (0, 1, 2), err
    assert "Traceback" not in err, err
    if status == 2:
        assert err.startswith("error: ") or "usage:" in err, err


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


@settings(FUZZ, max_examples=60)
@given(content=_contents(exports))
def test_any_export_file(workdir: Path, content: bytes) -> None:
    path = workdir / "export.json"
    path.write_bytes(content)
    assert_clean(*run_cli("policy", "analyze", "--file", str(path), "--quiet"))


@pytest.fixture(scope="module")
def empty_export(workdir: Path) -> Path:
    path = workdir / "empty-export.json"
    path.write_text(json.dumps({"version": 3, "deployment": {"resources": []}}))
    return path


@settings(FUZZ, max_examples=8)
@given(content=_contents(policy_configs))
def test_any_policy_config_file_through_the_cli(workdir: Path, empty_export: Path, content: bytes) -> None:
    path = workdir / "policy.json"
    path.write_bytes(content)
    assert_clean(*run_cli("policy", "analyze", "--file", str(empty_export), "--policy-config", str(path),
                          "--quiet"))


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "fuzz", {}, False)) as running:
        yield running


@settings(FUZZ, max_examples=150)
@given(content=_contents(policy_configs))
def test_any_policy_config_file_configures_the_pack_or_is_refused(
        workdir: Path, pack: PolicyPackProcess, content: bytes) -> None:
    # The CLI's path, on one running pack: read the file, then configure the pack with it. The
    # only error allowed is PolicyConfigError, which the CLI prints as a usage error (exit 2).
    path = workdir / "policy.json"
    path.write_bytes(content)
    try:
        config = load_policy_config(path)
        analyze(pack, [], user_config=config, project="zero-trust-ai", stack="fuzz")
    except PolicyConfigError as error:
        assert str(error)


yaml_snippets = st.sampled_from([
    "2020-01-01", "2020-01-01 10:00:00", "!!binary aGVsbG8=", "&a [*a]", "{a: 1, a: 2}", "? [1]\n    : x",
    "1e999", ".nan", "-.inf", "0x1F", "0o17", "!!python/object:os.system", "!!set {a, b}", "~", "''",
    "[1, [2, [3]]]", "{x: {y: z}}", "!!omap [a: 1]", "!!timestamp 2001-12-14", "|\n    text", "'\t'",
    "\"\\ud800\"", "!!str", "=", "<<: {a: 1}", "- a\n  - b",
])
stack_keys = st.sampled_from([
    *sorted(yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"]),
    "aws:regoin", "zero-trust-aii:azCount"])
stack_files = st.one_of(
    st.binary(max_size=200),
    values.map(lambda v: yaml.safe_dump(v, allow_unicode=True).encode("utf-8", "surrogatepass")),
    st.builds(lambda key, snippet: f"config:\n  {key}: {snippet}\n".encode(), stack_keys, yaml_snippets),
    st.builds(lambda key, value: yaml.safe_dump({"config": {key: value}}).encode("utf-8", "surrogatepass"),
              stack_keys, values),
)


@settings(FUZZ, max_examples=120)
@given(content=stack_files)
def test_any_stack_file(workdir: Path, content: bytes) -> None:
    project = workdir / "project"
    (project / "stacks").mkdir(parents=True, exist_ok=True)
    if not (project / "Pulumi.yaml").exists():
        (project / "Pulumi.yaml").write_bytes((ROOT / "Pulumi.yaml").read_bytes())
    (project / "stacks" / "Pulumi.fuzz.yaml").write_bytes(content)
    # No policy pack in this project: a stack file that is accepted stops there (exit 2) before
    # the program would run.
    assert_clean(*run_cli("preview", "--stack", "fuzz", "--project-dir", str(project)))
