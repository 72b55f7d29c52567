"""The layers of CONTRIBUTING.md, checked on the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> top-level modules it must never import
FORBIDDEN = {
    # Runtime code ships as a Lambda asset or into the enclave image with boto3/cryptography only.
    "ztai_runtime": {"pulumi", "pulumi_aws", "pulumi_policy", "ztai", "components", "ztpolicy"},
    # Components package the runtime as an asset; they never import it (nor the CLI or the pack).
    "components": {"ztai", "ztai_runtime", "ztpolicy", "boto3"},
    # What runs in and next to the enclave ships with the runtime library only.
    "enclave_images": {"pulumi", "pulumi_aws", "pulumi_policy", "ztai", "components", "ztpolicy"},
    # The pack is reached through its analyzer protocol only.
    "policy_packs/zero_trust/ztpolicy": {"components", "ztai", "ztai_runtime", "pulumi_aws"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_its_layer(package: str) -> None:
    sources = sorted((ROOT / package).rglob("*.py"))
    assert sources, f"{package} has no modules"
    violations = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN[package])
        for path in sources
    }
    assert {path: bad for path, bad in violations.items() if bad} == {}


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom pulumi import Output\nimport ztai.cli\nfrom . import sibling\n")
    assert imported_modules(module) == {"os", "pulumi", "ztai"}
