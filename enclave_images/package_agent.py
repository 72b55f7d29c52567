"""Package the parent agent for the AMI pipeline, and print the stack keys that pin the artifacts.

    python -m enclave_images.package_agent build/parent-agent.tar.gz [--eif build/digits.eif]
        [--stack prod] [--wheelhouse DIR]

The pipeline's `enclave-artifacts` component (components/image_builder/enclave-artifacts.yaml)
installs the tarball under /opt/zero-trust-ai/parent-agent/ after checking its SHA-256 against
the stack's `parentAgentSha256`. Its layout (format 1):

    bin/ztai-parent-agent   the systemd unit's ExecStart: `<python> -E -s -S -B -m
                            enclave_images.parent.agent "$@"` from lib/
    lib/enclave_images/...  the agent and the wire protocol (AGENT_MODULES), nothing else of the
    lib/ztai_runtime/...    repository: no enclave application, no weights code, no CLI
    lib/<boto3 ...>         the agent's dependencies, pinned with hashes in requirements-parent.txt
    MANIFEST.json           {"format": 1, "module", "python", "files": {path: SHA-256}}: the
                            component checks every installed file against it

The launcher's interpreter (default /usr/bin/python3.11, which the component installs on AL2023)
runs with -E (no PYTHON* variables), -s and -S (no user or system site-packages) and -B (no
bytecode: the tree is read-only to the agent's user), so only the package and the standard
library load. Dependencies are installed by pip for that Python version: wheels only, hashes
required, no bytecode; from the index, or offline from --wheelhouse.

The archive is reproducible: members sorted, owner root, modes 0755/0644, mtimes
SOURCE_DATE_EPOCH (default 0), gzip without name or time. The same sources and wheels give the
same SHA-256. Writes `<output>.sha256` (sha256sum format) next to it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).resolve().parent / "requirements-parent.txt"
# The agent's first-party imports and their packages; a test keeps this equal to the imports of
# enclave_images/parent/agent.py and what they import in turn.
AGENT_MODULES: tuple[str, ...] = (
    "enclave_images/__init__.py", "enclave_images/protocol.py",
    "enclave_images/parent/__init__.py", "enclave_images/parent/agent.py",
    "enclave_images/parent/event_sink.py",
    "ztai_runtime/__init__.py", "ztai_runtime/inference_events.py", "ztai_runtime/jsonlog.py",
)
AGENT_MODULE = "enclave_images.parent.agent"
LAUNCHER = "bin/ztai-parent-agent"
MANIFEST = "MANIFEST.json"
FORMAT = 1
DEFAULT_PYTHON = "/usr/bin/python3.11"
INSTALL_DIR = "/opt/zero-trust-ai/parent-agent"
PROJECT = "zero-trust-ai"
ARTIFACT_PREFIX = "artifacts/"  # components/enclave_fleet/settings.py ARTIFACT_PREFIX
_PYTHON_VERSION = re.compile(r"python(\d+\.\d+)$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")

LAUNCHER_TEXT = """#!/bin/sh
# zero-trust-ai parent agent (enclave_images/package_agent.py): the packaged agent and its pinned
# dependencies only. -E ignores PYTHON* variables, -s and -S load no user or system site-packages,
# -B writes no bytecode (the tree is read-only to the agent's user).
set -eu
cd "$(dirname "$(readlink -f "$0")")/../lib"
exec {python} -E -s -S -B -m {module} "$@"
"""


class PackagingError(RuntimeError):
    pass


def stage(tree: Path, *, python: str = DEFAULT_PYTHON, requirements: Path = REQUIREMENTS,
          wheelhouse: Path | None = None) -> dict[str, str]:
    """Lay the package out in `tree` (empty or missing) and return its manifest."""
    match = _PYTHON_VERSION.search(python)
    if not _SAFE_PATH.match(python) or match is None:
        raise PackagingError(f"--python {python!r}: an absolute path ending in pythonX.Y")
    lib = tree / "lib"
    for module in AGENT_MODULES:
        target = lib / module
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPOSITORY / module).read_bytes())
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-input", "--target", str(lib), "--require-hashes", "--no-deps",
           "--only-binary=:all:", "--no-compile", "--python-version", match.group(1),
           "-r", str(requirements)]
    if wheelhouse is not None:
        pip += ["--no-index", "--find-links", str(wheelhouse)]
    result = subprocess.run(pip, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackagingError(f"pip could not install {requirements}:\n{result.stderr.strip()}")
    launcher = tree / LAUNCHER
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(LAUNCHER_TEXT.format(python=python, module=AGENT_MODULE), encoding="utf-8")
    if any(path.is_symlink() for path in tree.rglob("*")):
        raise PackagingError("the package would contain a symbolic link")
    files = {path.relative_to(tree).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
             for path in sorted(tree.rglob("*")) if path.is_file()}
    manifest = {"format": FORMAT, "module": AGENT_MODULE, "python": python,
                "install_dir": INSTALL_DIR, "files": files}
    (tree / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                 encoding="utf-8")
    return files


def write_archive(tree: Path, output: Path, mtime: int = 0) -> str:
    """A reproducible .tar.gz of `tree`; returns its SHA-256."""
    paths = sorted(tree.rglob("*"), key=lambda p: p.relative_to(tree).as_posix())
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in paths:
            info = tarfile.TarInfo(path.relative_to(tree).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = mtime
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size = path.stat().st_size
                info.mode = 0o755 if info.name == LAUNCHER else 0o644
                with open(path, "rb") as source:
                    archive.addfile(info, source)
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    Path(f"{output}.sha256").write_text(f"{digest}  {output.name}\n", encoding="utf-8")
    return digest


def package(output: Path, *, python: str = DEFAULT_PYTHON, requirements: Path = REQUIREMENTS,
            wheelhouse: Path | None = None, mtime: int | None = None) -> str:
    """Stage and archive the agent; returns the tarball's SHA-256."""
    if mtime is None:
        mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    with tempfile.TemporaryDirectory(prefix="ztai-parent-agent-") as staging:
        stage(Path(staging), python=python, requirements=requirements, wheelhouse=wheelhouse)
        return write_archive(Path(staging), output, mtime)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def pin_commands(stack: str, *, agent: tuple[Path, str], eif: tuple[Path, str] | None) -> list[str]:
    """The uploads and `pulumi config set` commands that pin the artifacts in `stack`. Object keys
    carry the checksum, so a pinned object is never overwritten by the next build."""
    lines = []
    artifacts = [("parentAgent", "parent-agent", ".tar.gz", *agent)]
    if eif is not None:
        artifacts.insert(0, ("enclaveEif", "digits", ".eif", *eif))
    for config, stem, suffix, path, digest in artifacts:
        key = f"{ARTIFACT_PREFIX}{stem}-{digest[:16]}{suffix}"
        lines += [
            f"aws s3 cp {shlex.quote(str(path))} s3://$MODEL_BUCKET/{key} --sse aws:kms "
            f"--sse-kms-key-id $INFERENCE_KEY_ARN",
            f"pulumi config set --stack {shlex.quote(stack)} {PROJECT}:{config}ObjectKey {key}",
            f"pulumi config set --stack {shlex.quote(stack)} {PROJECT}:{config}Sha256 {digest}",
        ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the tarball to write, e.g. build/parent-agent.tar.gz")
    parser.add_argument("--python", default=DEFAULT_PYTHON,
                        help=f"the instance's interpreter (default {DEFAULT_PYTHON})")
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    parser.add_argument("--wheelhouse", type=Path, help="install the wheels from here, offline")
    parser.add_argument("--eif", type=Path, help="the EIF to pin too (enclave_images/build.sh output)")
    parser.add_argument("--stack", help="print the commands that upload and pin the artifacts")
    args = parser.parse_args(argv)
    try:
        digest = package(args.output, python=args.python, requirements=args.requirements,
                         wheelhouse=args.wheelhouse)
    except (PackagingError, OSError) as error:
        print(f"package_agent: {error}", file=sys.stderr)
        return 2
    print(f"{args.output}: SHA-256 {digest}")
    if args.stack:
        eif = (args.eif, sha256_of(args.eif)) if args.eif is not None else None
        print("Upload into the fleet's model bucket (MODEL_BUCKET: `pulumi stack output modelBucket`) "
              "with its key (INFERENCE_KEY_ARN: the bucket refuses any other), then pin:")
        for line in pin_commands(args.stack, agent=(args.output, digest), eif=eif):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
