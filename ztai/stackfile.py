"""Read a stack's configuration the way the Pulumi CLI hands it to the program.

`Pulumi.yaml` names the project, the stack-config directory and the declared keys with their
defaults; `stacks/Pulumi.<stack>.yaml` holds the stack's values. Pulumi passes every value to the
program as a string (lists and objects as JSON), after filling in the project's declared defaults.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ztai.jsonfile import plain_json_problem, read_text

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


class _Loader(yaml.SafeLoader):
    """YAML as Pulumi reads stack files: a date is the text written (Pulumi passes `2024-01-01` on
    as that string), not a Python date."""


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)  # the timestamp resolver only tags scalars
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _read_yaml(path: Path) -> Any:
    text = read_text(path, "", StackFileError)  # any bytes: a clear error, a UTF-8 BOM accepted
    try:
        document = yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise StackFileError(f"{path} nests too deeply to be read") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StackFileError(f"{path} is not valid YAML{where}: "
                             f"{getattr(error, 'problem', error)}") from None
    # Values reach the program as JSON text: anything JSON cannot carry is named here.
    problem = plain_json_problem(document, max_values=100_000)
    if problem:
        raise StackFileError(f"{path}: {problem}")
    return document


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
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        raise StackFileError(f"{path} must be a mapping with a `name`")
    return project


def load_stack(project_dir: Path, stack: str) -> StackFile:
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
    document = _read_yaml(path) or {}
    if not isinstance(document, dict):
        raise StackFileError(f"{path} must be a mapping with a `config:` section")
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise StackFileError(f"{path}: `config` must be a mapping of key: value")

    config: dict[str, str] = {}
    warnings: list[str] = []
    for key, value in raw.items():
        key = str(key)
        if ":" not in key:
            # Pulumi qualifies bare keys with the project name.
            key = f"{name}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Secrets are encrypted for the stack's secrets provider; offline they stay opaque.
            warnings.append(f"{key} is a secret; the offline preview uses a placeholder")
            config[key] = "offline-preview-placeholder"
            continue
        config[key] = config_string(value)

    declared = project.get("config") or {}
    for key, declaration in declared.items():
        full = key if ":" in key else f"{name}:{key}"
        if full not in config and isinstance(declaration, dict) and "default" in declaration:
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
    administrators = _json_list(stack_file.config.get(f"{stack_file.project}:keyAdministratorRoleArns"))
    accounts = _json_list(stack_file.config.get("aws:allowedAccountIds")) or [
        match[1] for arn in administrators if (match := _ACCOUNT_IN_ARN.match(arn))]
    return (frozenset(accounts), region) if region and accounts else None


def network_footprint(stack_file: StackFile) -> dict[str, int]:
    """What one stack counts against DEFAULT_QUOTAS: four VPCs (the segments), and per egress
    segment an internet gateway and a NAT gateway with an Elastic IP in each zone."""
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
        total = {name: count + network_footprint(other)[name]
                 for name, count in network_footprint(stack_file).items()}
        over = [f"{total[name]} {name} (default quota {quota})"
                for name, quota in DEFAULT_QUOTAS.items() if total[name] > quota]
        accounts = ", ".join(sorted(theirs[0] & mine[0]))
        warnings.append(
            f"stacks {stack_file.stack!r} and {other_name!r} both target account {accounts} in "
            f"{mine[1]}: together they need " + ", ".join(f"{total[n]} {n}" for n in DEFAULT_QUOTAS)
            + (f"; over the default quotas: {'; '.join(over)}. Request increases (Service Quotas) "
               "or deploy them to separate accounts (docs/quotas.md)" if over else
               " (within the default quotas)"))
    return warnings
