"""Review finding: CODEOWNERS leaves out code that decides key policies.

.github/CODEOWNERS names "What holds key policies" as components/keys.py only. But the key layer's
policies are also decided by the code that parses and replays the grants file
(components/key_grants.py, components/key_layer.py), the layer dispatch and grants-file parsing
(__main__.py compose_key_layer, components/stack_config.py), and, at run time, by the JIT API that
writes the approved key policy (ztai_runtime/jit/grants.py, deployed by components/jit.py with the
role components/identity.py bounds). A pull request changing any of these merges without the
security team, and the JIT API change then reaches production through the WORKLOAD deployer (no
key-administration elevation; see test_workload_deployer_reaches_key_policies.py).
The secure expectation (xfail strict today): each of these paths has a code owner.
"""

from __future__ import annotations

import fnmatch

import pytest

from tests.conftest import ROOT


def _owners(path: str) -> list[str]:
    """GitHub's rule, enough for this file's patterns: the last matching line wins; a leading `/`
    anchors at the root, a trailing `/` matches everything under the directory."""
    owners: list[str] = []
    for line in (ROOT / ".github" / "CODEOWNERS").read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        pattern, *who = fields
        anchored = pattern.lstrip("/")
        if pattern.endswith("/"):
            hit = path.startswith(anchored) if pattern.startswith("/") else f"/{anchored}" in f"/{path}"
        else:
            hit = fnmatch.fnmatch(path, anchored) if pattern.startswith("/") else \
                fnmatch.fnmatch(path.rsplit("/", 1)[-1], anchored)
        if hit:
            owners = who
    return owners


def test_the_matcher_reads_the_shipped_file() -> None:
    assert _owners("components/keys.py") == ["@your-org/security"]
    assert _owners("policy_packs/zero_trust/ztpolicy/pack.py") == ["@your-org/security"]
    assert _owners("README.md") == []


@pytest.mark.parametrize("path", [
    "components/key_grants.py", "components/key_layer.py", "__main__.py",
    "components/stack_config.py", "components/jit.py", "components/identity.py",
    "ztai_runtime/jit/grants.py", "ztai_runtime/jit/handler.py",
])
def test_code_that_decides_key_policies_has_a_code_owner(path: str) -> None:
    assert (ROOT / path).exists()
    assert _owners(path), f"{path} has no code owner"
