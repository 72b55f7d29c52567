"""User data never starts an enclave in debug mode or with a console (control: encryption and key management).

A debug-mode enclave reports all-zero PCRs and its console shows what the application prints, so
its parent can watch plaintext weights: debug mode is for a developer's desk, never for an
instance of the stack. The rule reads the user data of launch templates (base64, possibly gzip)
and instances (plain or `userDataBase64`), opens MIME multipart user data (cloud-init's format)
part by part, recursively (each part's Content-Transfer-Encoding, base64 or quoted-printable, and
gzip), joins shell continuation lines, and matches both the raw text and the shell's words (shlex,
so quoting cannot split a flag: `"--debug"-mode` is `--debug-mode`). It refuses

- `--debug-mode` and `--attach-console` (nitro-cli run-enclave), and `nitro-cli console`;
- `debug_mode` anywhere (the key of a `run-enclave --config` file written inline);
- `run-enclave --config FILE`: the options are then in a file the pack cannot read;
- user data it cannot decode, and shell parts shlex cannot tokenise (an unbalanced quote, e.g.
  an apostrophe in a heredoc): the words the shell would run are then unknown (fail closed).

It cannot see what user data downloads and runs (a script from S3, an `#include` URL): keep the
enclave's start in the user data or in the AMI, where this rule or the image tests see it. Not
suppressible.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import quopri
import re
import shlex
import zlib
from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known
from ztpolicy.rule import Resource, Rule

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
# EC2 limits user data to 16 KB; a gzip bomb must not make the pack allocate without bound.
MAX_DECODED_BYTES = 1 << 20
# MIME parts inside MIME parts (cloud-init allows it); deeper nesting is refused, not followed.
MAX_MIME_DEPTH = 4
# Parts cloud-init runs as shell: these are tokenised, and must tokenise.
SHELL_TYPES = frozenset({"text/x-shellscript", "text/cloud-boothook", "text/x-shellscript-per-boot",
                         "text/x-shellscript-per-instance", "text/x-shellscript-per-once"})
_MIME_START = re.compile(r"\A\s*(content-type|mime-version)\s*:", re.IGNORECASE)
_FORBIDDEN = (
    (re.compile(r"--debug-mode\b"), "--debug-mode"),
    (re.compile(r"--attach-console\b"), "--attach-console"),
    (re.compile(r"\bnitro-cli\s+console\b"), "nitro-cli console"),
    (re.compile(r"\bdebug_mode\b"), "debug_mode (a run-enclave configuration)"),
    (re.compile(r"\brun-enclave\b[^\n]*--config\b"), "run-enclave --config (options the pack cannot read)"),
)


class UserDataError(ValueError):
    """User data that is neither base64 of text nor of gzip-compressed text."""


def decoded_user_data(value: Any) -> str | None:
    """Base64 user data (a launch template's `userData`) as text; None when unset. Raises
    UserDataError when it is not base64 of (gzip-compressed) UTF-8 text."""
    if value is None or value == "":
        return None
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise UserDataError("user data is not base64") from None
    return _text(raw)


def _text(raw: bytes) -> str:
    if raw[:2] == b"\x1f\x8b":
        try:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = decompressor.decompress(raw, MAX_DECODED_BYTES)
        except zlib.error:
            raise UserDataError("user data is not valid gzip") from None
        if decompressor.unconsumed_tail:
            raise UserDataError(f"user data expands beyond {MAX_DECODED_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserDataError("user data is not UTF-8 text") from None


def user_data_parts(text: str, depth: int = 0) -> list[tuple[str, str]]:
    """(content type, text) of every leaf of MIME multipart user data, decoded; plain user data is
    one part ("text/x-shellscript" unless it is #cloud-config). Raises UserDataError."""
    if not _MIME_START.match(text):
        kind = "text/cloud-config" if text.lstrip().startswith("#cloud-config") else "text/x-shellscript"
        return [(kind, text)]
    if depth >= MAX_MIME_DEPTH:
        raise UserDataError(f"user data nests MIME deeper than {MAX_MIME_DEPTH} levels")
    message = email.message_from_string(text)
    if message.defects or (message.get_content_maintype() == "multipart"
                           and not message.is_multipart()):
        raise UserDataError("user data is malformed MIME")
    parts: list[tuple[str, str]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        text_ = _part_text(part)
        if _MIME_START.match(text_):  # a MIME document inside a part (cloud-init allows it)
            parts += user_data_parts(text_, depth + 1)
        else:
            parts.append((part.get_content_type(), text_))
    return parts


def _part_text(part: email.message.Message) -> str:
    payload = part.get_payload()
    if not isinstance(payload, str):
        raise UserDataError("user data has a MIME part without a payload")
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":
        try:
            raw = base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError):
            raise UserDataError("a MIME part of the user data is not valid base64") from None
    elif encoding == "quoted-printable":
        raw = quopri.decodestring(payload.encode("utf-8", "surrogateescape"))
    elif encoding in ("", "7bit", "8bit", "binary"):
        raw = payload.encode("utf-8", "surrogateescape")
    else:
        raise UserDataError(f"a MIME part of the user data has transfer encoding {encoding!r}")
    return _text(raw)


def shell_words(script: str) -> str:
    """The words the shell reads (quotes removed, comments dropped), space-joined. Raises
    ValueError when the script does not tokenise (an unbalanced quote)."""
    return " ".join(shlex.split(script, comments=True, posix=True))


def debug_flags(script: str, *, shell: bool = True) -> list[str]:
    """The forbidden constructs in a script, in the order of _FORBIDDEN: in its raw text and, for
    shell, in its words. Raises ValueError when a shell script does not tokenise."""
    joined = re.sub(r"\\\r?\n", " ", script)  # `cmd \` + newline continues the command
    texts = [joined, shell_words(joined)] if shell else [joined]
    return [label for pattern, label in _FORBIDDEN if any(pattern.search(text) for text in texts)]


def user_data_script(resource: Resource) -> str | None:
    """The user data of a launch template or instance as text; None when it has none or it is not
    known yet (a real preview; checked again when known). Raises UserDataError."""
    if resource.type == INSTANCE:
        plain = known(resource, "userData")
        if plain is UNKNOWN or (isinstance(plain, str) and plain):
            return None if plain is UNKNOWN else str(plain)
        encoded = known(resource, "userDataBase64")
    else:
        encoded = known(resource, "userData")
    return None if encoded is UNKNOWN else decoded_user_data(encoded)


def enclave_user_data_no_debug(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    try:
        script = user_data_script(resource)
    except UserDataError as error:
        return [f"{resource.name}: {error}; the pack cannot check it for enclave debug flags"]
    if script is None:
        return []
    try:
        parts = user_data_parts(script)
    except UserDataError as error:
        return [f"{resource.name}: {error}; the pack cannot check it for enclave debug flags"]
    found: list[str] = []
    violations: list[str] = []
    for kind, text in parts:
        try:
            flags = debug_flags(text, shell=kind in SHELL_TYPES)
        except ValueError as error:
            flags = debug_flags(text, shell=False)
            violations.append(f"{resource.name}: a {kind} part of the user data does not tokenise "
                              f"as shell ({error}); the pack cannot check it for enclave debug flags")
        found += [flag for flag in flags if flag not in found]
    return violations + [f"{resource.name} user data uses {flag}: enclaves run in production mode "
                         "only" for flag in found]


RULE = Rule(
    name="enclave-user-data-no-debug",
    description="User data must not start enclaves in debug mode or attach their console.",
    control="enclave-only decryption",
    severity=Severity.CRITICAL,
    remediation="Start the enclave with `nitro-cli run-enclave --eif-path ... --cpu-count N "
                "--memory M` and no --debug-mode, --attach-console or --config "
                "(EnclaveInferenceFleet's user data does).",
    resource_check=enclave_user_data_no_debug,
    resource_types=frozenset({LAUNCH_TEMPLATE, INSTANCE}),
    # A debug enclave's memory and console are open to its parent: never waived.
    suppressible=False,
)
