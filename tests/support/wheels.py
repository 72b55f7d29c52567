"""Tiny wheels built on the spot, so packaging with pip (`--require-hashes`, `--no-index`) runs
offline in the tests; and the parent agent's package built with a stand-in boto3 from them."""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from enclave_images.package_agent import package

# Printed at import, so a run shows that the packaged boto3 was the one loaded.
STAND_IN = "import sys\nprint('packaged boto3 stand-in', file=sys.stderr)\n"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fake_wheel(directory: Path, name: str, version: str, files: Mapping[str, str]) -> Path:
    """A pure-Python wheel `name-version-py3-none-any.whl` holding `files` (path -> text)."""
    dist_info = f"{name}-{version}.dist-info"
    contents = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},{_record_hash(text.encode())},{len(text.encode())}\n"
                     for path, text in contents.items()) + f"{dist_info}/RECORD,,\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in {**contents, f"{dist_info}/RECORD": record}.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return wheel


def requirements_for(wheels: Sequence[Path], path: Path) -> Path:
    """A hash-pinned requirements file for `wheels` (as pip's --require-hashes wants it)."""
    lines = []
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} --hash=sha256:{digest}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def target_python(directory: Path) -> str:
    """This interpreter under a name like the instance's (/usr/bin/python3.11)."""
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not link.exists():
        link.symlink_to(sys.executable)
    return str(link)


def build_agent_package(directory: Path, output: Path, *, mtime: int = 0) -> str:
    """The parent agent's package (enclave_images/package_agent.py) with a stand-in boto3 wheel,
    for this interpreter; returns its SHA-256."""
    wheelhouse = directory / "wheels"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    wheel = fake_wheel(wheelhouse, "boto3", "1.44.8", {"boto3/__init__.py": STAND_IN})
    requirements = requirements_for([wheel], directory / "requirements.txt")
    return package(output, python=target_python(directory / "python"), requirements=requirements,
                   wheelhouse=wheelhouse, mtime=mtime)
