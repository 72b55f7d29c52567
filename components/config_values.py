"""Parsers of single configuration values, shared by the stack keys (components.stack_config) and
the partners file (components.partners_file).

Each takes the key it parses (for the message) and the value as Pulumi hands it to the program (a
string; lists as JSON) or as YAML gives it, and returns the typed value or raises ValueError whose
message names the key, the value given and what is allowed.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components import strict_yaml
from components.api_gateway import ca_certificates
from components.text_files import NotUtf8TextError, decode_utf8

# Files the configuration names (CA bundles, the partners file) are relative to the project.
PROJECT_DIR = Path(__file__).resolve().parent.parent
# The shipped project's name, used when no Pulumi.yaml says otherwise.
DEFAULT_PROJECT = "zero-trust-ai"


def _declared_project(project_dir: Path) -> str:
    """The `name` of the project's Pulumi.yaml; DEFAULT_PROJECT when it cannot be read (the
    loaders that need the file report why)."""
    try:
        project = strict_yaml.read(project_dir / "Pulumi.yaml")
    except (ValueError, RecursionError):
        return DEFAULT_PROJECT
    name = project.get("name") if isinstance(project, dict) else None
    return name if isinstance(name, str) and name else DEFAULT_PROJECT


# The namespace of the stack keys is the project's name: Pulumi qualifies a stack file's bare keys
# with it and hands the program `<project>:<key>`. A fork that renames its project keeps working:
# the program sets it from pulumi.get_project(), the offline check from the stack file's project.
_namespace = _declared_project(PROJECT_DIR)


def use_namespace(project: str) -> None:
    """Name the stack keys `<project>:<key>` from now on (the running project's name)."""
    global _namespace
    _namespace = project


@contextlib.contextmanager
def namespace_of(project: str) -> Iterator[None]:
    """Name the stack keys `<project>:<key>` inside the block (a command checking one project)."""
    before = _namespace
    use_namespace(project)
    try:
        yield
    finally:
        use_namespace(before)


def namespace() -> str:
    """The namespace of the stack keys: the project's name."""
    return _namespace


# The types Pulumi.yaml's `config:` schema knows; "array" is a list of strings here.
SCHEMA_TYPES = ("string", "integer", "boolean", "array")
# What one stack deploys (stack key `layer`, docs/deploying.md): everything of an environment
# (combined), or one layer of a split environment (keys, workload); a CI identity and state backend
# per account (bootstrap); the organisation's guardrails (organization).
LAYERS = ("combined", "keys", "workload", "bootstrap", "organization")
ALL_LAYERS = LAYERS
# The stacks of one environment's keys and workload, whether split or not.
ENVIRONMENT_LAYERS = ("combined", "keys", "workload")
WORKLOAD_LAYERS = ("combined", "workload")
KEY_LAYERS = ("combined", "keys")


@dataclass(frozen=True)
class StackKey:
    """One stack key of the project namespace: everything Pulumi.yaml's schema, the configuration
    reference (docs/configuration.md) and the parser need. Both files are generated from KEYS in
    components/stack_config.py (`ztai config docs`), and a test fails when either differs from
    what KEYS generates."""

    description: str
    required: bool
    # (key, value as Pulumi passes it) -> typed value; ValueError naming key, value and what is allowed.
    parse: Callable[[str, Any], Any]
    default: Any = None  # written to Pulumi.yaml for keys that are not required
    type: str = "string"  # one of SCHEMA_TYPES
    allowed: tuple[str, ...] = ()  # the values allowed, when they are a short list (for the reference)
    # The layers whose stacks read the key (`layer`); given in another layer's stack, it is refused.
    layers: tuple[str, ...] = WORKLOAD_LAYERS

    @property
    def schema_default(self) -> Any:
        """The default Pulumi.yaml declares, which the engine gives every stack that does not set
        the key; None for a key every stack must set. A key required only in some layers gets an
        empty default there (Pulumi would otherwise demand it of every stack), and the parser
        treats that empty value as missing."""
        if not self.required:
            return self.default
        if self.layers == ALL_LAYERS:
            return None
        return [] if self.type == "array" else ""

    def required_in(self) -> str:
        """Where the key is required, for messages and the reference."""
        return "" if self.layers == ALL_LAYERS else f" in {' and '.join(self.layers)} stacks"


# API Gateway's default account-level throttling quota (per region): a stage or route limit
# above it is never reached.
MAX_API_RATE_LIMIT, MAX_API_BURST_LIMIT = 10_000.0, 5_000


def full(key: str) -> str:
    return f"{_namespace}:{key}"


def show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def show_number(value: Any) -> str:
    """A value meant as a number, as given: Pulumi hands the program every value as a string, so
    `91` arrives as "91" and is shown without quotes (text that is no number keeps them)."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
        return value.strip()
    return show(value)


def as_string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{full(key)} = {show(value)}: expected a non-empty string")
    return value.strip()


def as_bool(key: str, value: Any) -> bool:
    # Pulumi hands config to the program as strings ("true"/"false"); YAML may give a real bool.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{full(key)} = {show(value)}: expected true or false")


def as_int(key: str, value: Any) -> int:
    # Pulumi hands config to the program as strings; YAML in a stack file may give a real int.
    if isinstance(value, bool):
        raise ValueError(f"{full(key)} = {show(value)}: expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise ValueError(f"{full(key)} = {show_number(value)}: expected an integer")


def as_string_list(key: str, value: Any) -> list[str]:
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(
                f"{full(key)} = {show(value)}: expected a list of strings, e.g. [\"management\"]"
            ) from None
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        raise ValueError(
            f"{full(key)} = {show(value)}: expected a list of strings, e.g. [\"management\"]"
        )
    # Every list key is a set (segments, roles, regions, CIDRs, CA files, audiences): an item
    # given twice is a copy-and-paste slip, often of the line that was meant to change.
    twice = sorted({item for item in parsed if parsed.count(item) > 1})
    if twice:
        raise ValueError(f"{full(key)} = {show(value)}: {', '.join(map(repr, twice))} listed twice; "
                         "each item once")
    return parsed


def parse_rate(key: str, value: Any) -> float:
    number = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # not a number: reported below
            number = float(value)
    if isinstance(number, bool) or not isinstance(number, int | float) or not (
            0 < number <= MAX_API_RATE_LIMIT):
        # The value as given (`0`, not the float it was read as).
        raise ValueError(f"{full(key)} = {show_number(value)}: requests per second, > 0 and at "
                         f"most {MAX_API_RATE_LIMIT:g} (API Gateway's default account quota)")
    return float(number)


def parse_burst(key: str, value: Any) -> int:
    number = as_int(key, value)
    if not 0 <= number <= MAX_API_BURST_LIMIT:
        raise ValueError(f"{full(key)} = {number}: 0 to {MAX_API_BURST_LIMIT} requests "
                         "(API Gateway's default account burst)")
    return number


def ca_file(label: str, path_text: str, base: Path) -> str:
    """An absolute path to a readable PEM file of CA certificates; ValueError naming `label`."""
    path = (base / path_text).resolve()
    try:
        ca_certificates(str(path))
    except ValueError as error:
        raise ValueError(f"{label}: {error}") from None
    return str(path)


def read_project_yaml(label: str, path: Path) -> Any:
    """A YAML file a stack key names (partners, the JIT catalogue), read as Pulumi reads YAML;
    ValueError starting with `label` (the key and its value) for anything that is not one."""
    try:
        return strict_yaml.load(decode_utf8(path.resolve().read_bytes()))
    except OSError as error:
        raise ValueError(f"{label}: cannot read it as YAML ({error})") from None
    except NotUtf8TextError as problem:
        raise ValueError(f"{label}: cannot read it as YAML: the file {problem}") from None
    except RecursionError:
        raise ValueError(f"{label}: the file nests too deeply to be read") from None
    except ValueError as error:
        raise ValueError(f"{label}: cannot read it as YAML ({error})") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{label}: cannot read it as YAML (not valid YAML"
                         f"{strict_yaml.describe(error)})") from None


def distinct_choices(key: str, value: Any, allowed: Collection[str], expected: str) -> list[str]:
    """A list of distinct values, each one of `allowed`; ValueError saying `expected` otherwise."""
    values = as_string_list(key, value)
    if any(item not in allowed for item in values) or len(set(values)) != len(values):
        raise ValueError(f"{full(key)} = {show(value)}: {expected}")
    return values


def parse_regions(key: str, value: Any) -> list[str]:
    """Distinct Regions of components/aws_facts.py (replica Regions, the guardrails' allow-list)."""
    from components.aws_facts import REGION_AZ_COUNT

    return distinct_choices(key, value, REGION_AZ_COUNT, "expected distinct regions from "
                            f"components/aws_facts.py ({', '.join(sorted(REGION_AZ_COUNT))})")
