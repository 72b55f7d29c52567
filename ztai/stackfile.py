"""Read a stack's configuration the way the Pulumi CLI hands it to the program.

`Pulumi.yaml` names the project, the stack-config directory and the declared keys with their
defaults; `stacks/Pulumi.<stack>.yaml` holds the stack's values. Pulumi passes every value to the
program as a string (lists and objects as JSON), after filling in the project's declared defaults.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components import strict_yaml
from ztai.jsonfile import plain_json_problem

_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class StackFileError(ValueError):
    """The project or stack file is missing or malformed."""


@dataclass(frozen=True)
class StackFile:
    project: str
    stack: str
    project_dir: Path
    config: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    @property
    def region(self) -> str | None:
        return self.config.get("aws:region")


def _read_yaml(path: Path) -> Any:
    # Read as Pulumi's Go parser reads it: duplicate keys refused, `yes`/`no` and dates are strings.
    try:
        document = strict_yaml.read(path)
    except ValueError as error:
        raise StackFileError(str(error)) from None
    return document


def _check_plain_json(path: Path, document: Any) -> None:
    # Values reach the program as JSON text: what JSON cannot carry (NaN, numbers too large, lone
    # surrogates, nesting too deep) is named here, once the line-numbered checks found nothing.
    problem = plain_json_problem(document, max_values=100_000)
    if problem:
        raise StackFileError(f"{path}: {problem}")


def config_string(value: Any) -> str:
    """A config value as the engine passes it to a program."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def available_stacks(project_dir: Path) -> list[str]:
    project = load_project(project_dir)
    directory = project_dir / str(project.get("stackConfigDir", "."))
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in directory.glob("Pulumi.*.yaml"))


def load_project(project_dir: Path) -> dict[str, Any]:
    path = project_dir / "Pulumi.yaml"
    if not path.is_file():
        raise StackFileError(f"{project_dir.resolve()} has no Pulumi.yaml; run ztai from the "
                             "repository root or pass --project-dir")
    project = _read_yaml(path)
    _check_plain_json(path, project)
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        raise StackFileError(f"{path} must be a mapping with a `name`")
    return project


# What a stack file may hold at its top level (Pulumi's stack settings); anything else is a typo.
STACK_FILE_KEYS = ("config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt")
_YAML_TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
                    list: "a list", type(None): "nothing (null)"}


def _yaml_type(value: Any) -> str:
    return next((name for kind, name in _YAML_TYPE_NAMES.items() if type(value) is kind),
                "a mapping" if isinstance(value, dict) else type(value).__name__)


def _type_problem(value: Any, declared: Mapping[str, Any]) -> str | None:
    """How a stack-file value differs from the type Pulumi.yaml declares for its key; None if it
    does not. The program receives every value as a string and cannot tell `"3"` from `3` or
    `"false"` from `false`, so the declared type is held to here, where the YAML type is still
    known: a file then means one thing to every reader."""
    kind = declared.get("type")
    if kind == "integer" and (type(value) is not int):
        example = (value.strip() if isinstance(value, str) and value.strip().lstrip("-").isdigit()
                   else "3")
        return f"expected an integer (e.g. {example}, without quotes), got {_yaml_type(value)}"
    if kind == "boolean" and type(value) is not bool:
        return f"expected true or false (without quotes), got {_yaml_type(value)}"
    if kind == "string" and not isinstance(value, str):
        return f"expected a string, got {_yaml_type(value)} (put quotes around it if it is meant as text)"
    if kind == "array":
        if not isinstance(value, list):
            return f"expected a list, got {_yaml_type(value)} (one item per line, each after `- `)"
        items = declared.get("items")
        item_kind = items.get("type") if isinstance(items, dict) else None
        for index, item in enumerate(value):
            if (problem := _type_problem(item, {"type": item_kind})) is not None:
                return f"item {index}: {problem}"
    return None


def _plain(value: Any, containers: frozenset[int] = frozenset()) -> bool:
    """A value JSON can carry, as Pulumi passes config to the program: no YAML-only types, and
    no alias that contains itself (`&a [*a]`)."""
    if isinstance(value, list | dict):
        if id(value) in containers:
            return False
        inside = containers | {id(value)}
        if isinstance(value, list):
            return all(_plain(item, inside) for item in value)
        return all(isinstance(key, str) and _plain(item, inside) for key, item in value.items())
    return value is None or isinstance(value, str | int | float | bool)


def load_stack(project_dir: Path, stack: str) -> StackFile:
    """The stack's configuration as the engine hands it to the program (defaults filled in).

    StackFileError, listing every problem with its line, for a file Pulumi would refuse or read
    otherwise than it looks: duplicate keys, a key given twice (bare and qualified), values without
    a value or of another type than Pulumi.yaml declares, unknown top-level settings."""
    if not _STACK_NAME.match(stack):
        raise StackFileError(f"stack name {stack!r} is not valid: use letters, digits, '-', '_' "
                             "or '.', at most 100 characters")
    project = load_project(project_dir)
    name = project["name"]
    path = project_dir / str(project.get("stackConfigDir", ".")) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(available_stacks(project_dir)) or "none"
        raise StackFileError(f"stack {stack!r} has no configuration file {path}; "
                             f"stacks of this project: {known}")
    document = _read_yaml(path)
    if document is None:
        raise StackFileError(f"{path} is empty; it needs a `config:` section with the stack's keys")
    if not isinstance(document, dict):
        raise StackFileError(f"{path} must be a mapping with a `config:` section")
    unknown = [str(key) for key in document if key not in STACK_FILE_KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], STACK_FILE_KEYS, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise StackFileError(f"{path}, line {strict_yaml.line_of(document, unknown[0])}: unknown "
                             f"top-level setting `{unknown[0]}`{hint}; a stack file holds "
                             f"{', '.join(STACK_FILE_KEYS)}")
    if "config" not in document:
        raise StackFileError(f"{path} has no `config:` section; the stack's keys "
                             f"(aws:region, {name}:environment, ...) go under it")
    raw = {} if document["config"] is None else document["config"]
    if not isinstance(raw, dict):
        raise StackFileError(f"{path}: `config` must be a mapping of key: value")

    declarations = project.get("config") or {}
    declared = {(key if ":" in key else f"{name}:{key}"): declaration
                for key, declaration in declarations.items() if isinstance(declaration, dict)}
    config: dict[str, str] = {}
    given_as: dict[str, str] = {}
    problems: list[str] = []
    warnings: list[str] = []
    for given, value in raw.items():
        at = f"line {strict_yaml.line_of(raw, given)}"
        # Pulumi qualifies bare keys with the project name.
        key = str(given) if ":" in str(given) else f"{name}:{given}"
        if key in given_as:
            problems.append(f"{at}: {key} is given twice, as {given_as[key]} and as {given}; keep one")
            continue
        given_as[key] = str(given)
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Secrets are encrypted for the stack's secrets provider; offline they stay opaque.
            warnings.append(f"{key} is a secret; the offline preview uses a placeholder")
            config[key] = "offline-preview-placeholder"
            continue
        if value is None:
            problems.append(f"{at}: {key} has no value; give one, or delete the line for the default")
            continue
        if not _plain(value):
            problems.append(f"{at}: {key} is {_yaml_type(value)} that Pulumi config cannot carry "
                            "(a YAML-only type, or an alias inside itself); write a string, number, "
                            "boolean, list or mapping")
            continue
        if key in declared and (problem := _type_problem(value, declared[key])) is not None:
            problems.append(f"{at}: {key} = {json.dumps(value)}: {problem}")
            continue
        config[key] = config_string(value)
    if problems:
        raise StackFileError(f"{path} is invalid:\n" + "\n".join(f"  - {p}" for p in problems))
    _check_plain_json(path, {"config": raw})

    for full, declaration in declared.items():
        if full not in config and "default" in declaration:
            config[full] = config_string(declaration["default"])
    return StackFile(project=name, stack=stack, project_dir=project_dir, config=config,
                     warnings=warnings)


# Default per-Region quotas a stack's network counts against (Amazon VPC User Guide, "Amazon VPC
# quotas": VPCs per Region 5, internet gateways per Region 5; Amazon EC2 User Guide, "Elastic IP
# address limit": 5 per Region). Each is adjustable through Service Quotas.
DEFAULT_QUOTAS = {"VPCs": 5, "Elastic IP addresses": 5, "internet gateways": 5}
_ACCOUNT_IN_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):")


def _json_list(value: str | None) -> list[str]:
    try:
        parsed = json.loads(value) if value else []
    except ValueError:
        return []
    return [str(item) for item in parsed] if isinstance(parsed, list) else []


def target(stack_file: StackFile) -> tuple[frozenset[str], str] | None:
    """The accounts and the region a stack deploys to, as far as its file says: `aws:allowedAccountIds`,
    else the accounts of its key administrator roles; None when it does not say."""
    region = stack_file.region
    project = stack_file.project
    reference = str(stack_file.config.get(f"{project}:keyLayerStack") or "")
    if stack_file.config.get(f"{project}:layer") == "workload" and reference.count("/") == 2:
        # A workload stack names no key administrator: its accounts are its key layer's.
        with contextlib.suppress(StackFileError):
            key_layer = target(load_stack(stack_file.project_dir, reference.rsplit("/", 1)[-1]))
            if key_layer is not None and "aws:allowedAccountIds" not in stack_file.config:
                return (key_layer[0], region) if region else None
    administrators = _json_list(stack_file.config.get(f"{stack_file.project}:keyAdministratorRoleArns"))
    accounts = _json_list(stack_file.config.get("aws:allowedAccountIds")) or [
        match[1] for arn in administrators if (match := _ACCOUNT_IN_ARN.match(arn))]
    return (frozenset(accounts), region) if region and accounts else None


def network_footprint(stack_file: StackFile) -> dict[str, int]:
    """What one stack counts against DEFAULT_QUOTAS: four VPCs (the segments), and per egress
    segment an internet gateway and a NAT gateway with an Elastic IP in each zone."""
    if stack_file.config.get(f"{stack_file.project}:layer") == "keys":
        return dict.fromkeys(DEFAULT_QUOTAS, 0)  # keys and their policies: no network
    try:
        zones = int(stack_file.config.get(f"{stack_file.project}:azCount", "2"))
    except ValueError:
        zones = 2
    egress = len(_json_list(stack_file.config.get(f"{stack_file.project}:egressSegments")))
    return {"VPCs": 4, "Elastic IP addresses": zones * egress, "internet gateways": egress}


def shared_target_warnings(stack_file: StackFile) -> list[str]:
    """A warning for each other stack of the project whose file targets the same account and
    Region: their networks add up against the Region's default quotas, which a first `pulumi up`
    of the second stack would exceed (VpcLimitExceeded, AddressLimitExceeded)."""
    mine = target(stack_file)
    if mine is None:
        return []
    warnings = []
    for other_name in available_stacks(stack_file.project_dir):
        if other_name == stack_file.stack:
            continue
        try:
            other = load_stack(stack_file.project_dir, other_name)
        except StackFileError:
            continue  # that stack's own preview reports its file
        theirs = target(other)
        if theirs is None or theirs[1] != mine[1] or not theirs[0] & mine[0]:
            continue
        if not any(network_footprint(other).values()) or not any(network_footprint(stack_file).values()):
            continue  # a key layer has no network to add up
        total = {name: count + network_footprint(other)[name]
                 for name, count in network_footprint(stack_file).items()}
        over = [f"{total[name]} {name} (default quota {quota})"
                for name, quota in DEFAULT_QUOTAS.items() if total[name] > quota]
        accounts = ", ".join(sorted(theirs[0] & mine[0]))
        warnings.append(
            f"stacks {stack_file.stack!r} and {other_name!r} both target account {accounts} in "
            f"{mine[1]}: together they need " + ", ".join(f"{total[n]} {n}" for n in DEFAULT_QUOTAS)
            + (f"; over the default quotas: {'; '.join(over)}. Request increases (Service Quotas) "
               "or deploy them to separate accounts (docs/deploying.md)" if over else
               " (within the default quotas)"))
    return warnings
