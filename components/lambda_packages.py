"""Third-party packages shipped inside a Lambda function's code archive, from checked wheels.

A function that needs a package outside the standard library and boto3 (which Lambda provides)
ships it in its own archive: `logged_function(..., packages=("orjson",))`. The program downloads
nothing: `./run lambda-packages` (which `./run preview` and `./run test` run first) puts the wheel
of every package of `requirements-lambda.txt` for the functions' runtime into
`.lambda-packages/wheels/`, pip checking it against the lock's hashes; here, while the program
composes and before any resource of the function is declared, the wheel is checked again:

- the lock pins the package (`name==version`) and lists the wheel file's sha256 among its hashes,
  so a wheel swapped on disk after the download is refused as one swapped on the index would be;
- its filename tags fit the runtime (components/functions.py: python3.13 on arm64): CPython 3.13's
  ABI or the stable ABI (abi3), or a pure-Python wheel; a manylinux aarch64 platform whose glibc
  is at most Amazon Linux 2023's, 2.34 (Lambda's python3.13 runs on Amazon Linux 2023: "Lambda
  runtimes", Lambda developer guide). An x86_64 or musl wheel would deploy and fail on import.

It is then extracted (no absolute member name, no `..`) into `.lambda-packages/<its sha256>/` and
its files are returned by their paths inside the wheel: at the archive's root, which is on the
function's sys.path (/var/task), with the `.dist-info` directory that carries the licence.

Every refusal is one `LambdaPackageError`, a `pulumi.RunError` naming the file and the fix, so
`pulumi up` and `ztai preview` print it without a traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pulumi

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements-lambda.txt"
PACKAGES_DIR = ROOT / ".lambda-packages"  # gitignored: the downloads and their extractions
WHEELS_DIR = PACKAGES_DIR / "wheels"
FIX = ("run ./run lambda-packages (./run preview and ./run test run it) to download the wheels "
       "requirements-lambda.txt pins for the functions' runtime")
# The runtime's interpreter and the newest glibc a manylinux wheel may need (Amazon Linux 2023).
PYTHON_TAG = "cp313"
MAX_GLIBC = (2, 34)
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_aarch64")
# Legacy aliases of manylinux_2_17 (the only one defined for aarch64: PEP 599).
_LEGACY_MANYLINUX = {"manylinux2014_aarch64": (2, 17)}


class LambdaPackageError(pulumi.RunError):
    """A package a function ships cannot be shipped: the message names the file and the fix."""


def canonical(name: str) -> str:
    """A package name as PyPI compares names (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(name: str, lock: Path) -> tuple[str, frozenset[str]]:
    """(version, sha256 hex digests) the lock pins for `name`."""
    try:
        text = lock.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LambdaPackageError(f"cannot read the lock file {lock} ({error}); regenerate it with "
                                 "./run lock") from None
    # One requirement per logical line: continuations joined, comments dropped.
    joined = re.sub(r"\\\n", " ", "\n".join(re.sub(r"(^|\s)#.*", "", line) for line in text.splitlines()))
    for entry in joined.splitlines():
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)(.*)", entry)
        if match and canonical(match[1]) == canonical(name):
            digests = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", match[3]))
            if digests:
                return match[2], digests
            raise LambdaPackageError(f"{lock} pins {name}=={match[2]} without a --hash=sha256:; "
                                     "regenerate it with ./run lock")
    raise LambdaPackageError(f"{lock} does not pin the package {name!r} a function ships: add "
                             f"{name}==VERSION to requirements-lambda.in, run ./run lock, then {FIX}")


def _tag_problem(wheel: Path) -> str | None:
    """Why the wheel's filename tags do not fit python3.13 on arm64 (None when they do)."""
    parts = wheel.name[:-len(".whl")].split("-")
    if len(parts) not in (5, 6):
        return "is not a wheel filename (name-version-python-abi-platform.whl)"
    pythons, abis, platforms = (set(part.split(".")) for part in parts[-3:])
    pure = "none" in abis and "any" in platforms and bool(pythons & {"py3", "py313", PYTHON_TAG})
    if pure:
        return None
    stable = {f"cp3{minor}" for minor in range(2, 14)}
    if not ((PYTHON_TAG in pythons and PYTHON_TAG in abis) or ("abi3" in abis and pythons & stable)):
        return (f"is built for {parts[-3]}-{parts[-2]}, not CPython 3.13 (cp313-cp313, an abi3 "
                "wheel of CPython 3.13 or older, or pure Python)")
    for platform in platforms:
        glibc = _LEGACY_MANYLINUX.get(platform)
        match = _MANYLINUX.fullmatch(platform)
        if match:
            glibc = (int(match[1]), int(match[2]))
        if glibc is not None and glibc <= MAX_GLIBC:
            return None
    return (f"is built for the platform {parts[-1]}, not Lambda's arm64 (a manylinux aarch64 tag "
            f"of glibc {MAX_GLIBC[0]}.{MAX_GLIBC[1]} or older)")


def verified_wheel(name: str, *, lock: Path, wheels: Path) -> tuple[Path, str]:
    """(the wheel of `name` in `wheels`, its sha256), checked against the lock and the runtime."""
    version, digests = locked(name, lock)
    candidates = sorted(path for path in wheels.glob("*.whl") if path.is_file()
                        and canonical(path.name.split("-")[0]) == canonical(name)
                        and path.name.split("-")[1:2] == [version])
    if not candidates:
        raise LambdaPackageError(f"no wheel of {name}=={version} in {wheels} (the lock {lock.name} "
                                 f"pins it for a Lambda function); {FIX}")
    if len(candidates) > 1:
        listed = ", ".join(path.name for path in candidates)
        raise LambdaPackageError(f"more than one wheel of {name}=={version} in {wheels} ({listed}): "
                                 f"remove {wheels} and {FIX}")
    [wheel] = candidates
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest not in digests:
        raise LambdaPackageError(f"{wheel}: its sha256 {digest} is not one {lock} lists for "
                                 f"{name}=={version} (changed or replaced after the download); {FIX}")
    problem = _tag_problem(wheel)
    if problem is not None:
        raise LambdaPackageError(f"{wheel} {problem}: the functions run python3.13 on arm64; {FIX}")
    return wheel, digest


def _members(wheel: Path) -> list[str]:
    """The wheel's file names, each refused if it would land outside the extraction directory."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile) as error:
        raise LambdaPackageError(f"{wheel} is not a readable wheel ({error}); {FIX}") from None
    for member in names:
        path = PurePosixPath(member.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or re.match(r"[A-Za-z]:", member):
            raise LambdaPackageError(f"{wheel} has the member {member!r}, outside the wheel's own "
                                     f"directory (an absolute path or '..'); refused; {FIX}")
    return [member for member in names if not member.endswith("/")]


def extracted(wheel: Path, digest: str, into: Path) -> dict[str, Path]:
    """{member: its file} of the wheel extracted into `into/<digest>` (made once: concurrent
    previews may race, so it is written aside and renamed into place whole)."""
    members = _members(wheel)
    target = into / digest
    if target.is_dir():
        return {member: target / member for member in members}
    into.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}-", dir=into))
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member in members:
                destination = scratch / member
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, destination.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
        try:
            os.rename(scratch, target)
        except OSError:
            if not target.is_dir():  # not another run's extraction of the same wheel: a real error
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {member: target / member for member in members}


def package_files(name: str, *, lock: Path | None = None, wheels: Path | None = None,
                  into: Path | None = None) -> dict[str, Path]:
    """{path inside the wheel: extracted file} of the package `name`, checked as the module says.
    The lock, the wheels' directory and where to extract default to the project's (read when
    called, so a test may point them elsewhere)."""
    wheel, digest = verified_wheel(name, lock=lock or LOCK, wheels=wheels or WHEELS_DIR)
    return extracted(wheel, digest, into or PACKAGES_DIR)


def package_assets(names: Sequence[str], *, lock: Path | None = None, wheels: Path | None = None,
                   into: Path | None = None) -> dict[str, pulumi.FileAsset]:
    """The files of every package in `names`, as archive entries at the archive's root."""
    assets: dict[str, pulumi.FileAsset] = {}
    for name in names:
        for member, path in package_files(name, lock=lock, wheels=wheels, into=into).items():
            if member in assets:
                raise LambdaPackageError(f"{member} is shipped by two of the packages {list(names)}; "
                                         "a function ships each file once")
            assets[member] = pulumi.FileAsset(str(path))
    return assets
