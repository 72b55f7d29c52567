"""`ztai config`: the stack keys' one declaration (KEYS in components/stack_config.py), turned
into the files that describe it, and a stack file checked against it.

    ztai config docs [--check]           write (or check) Pulumi.yaml's `config:` block and
                                         docs/configuration.md from KEYS
    ztai config check --stack NAME [--json]
                                         parse stacks/Pulumi.NAME.yaml as `pulumi up` would, and
                                         name the placeholders still in it

Exit status: 0 done (or up to date, or valid); 1 `docs --check` found a file out of date;
2 usage error, or the stack file or its configuration is invalid; 3 a bug.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ztai.errors import EXIT_OK, EXIT_VIOLATION, UsageError
from ztai.project import find_project, use_project

REFERENCE = Path("docs/configuration.md")
PROJECT_FILE = Path("Pulumi.yaml")
_TYPE_NAMES = {"string": "string", "integer": "integer", "boolean": "boolean", "array": "list of strings"}


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    config = commands.add_parser(
        "config", help="stack configuration: generated files, stack checks",
        epilog="for this command: 0 done, up to date or valid; 1 `docs --check` found a file out of date; "
               "2 usage error, or an invalid stack file or configuration; 3 a bug")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")

    docs = actions.add_parser(
        "docs", help="write Pulumi.yaml's config schema and docs/configuration.md from the keys' "
                     "declaration",
        description="Generate the `config:` block of Pulumi.yaml and docs/configuration.md from KEYS "
                    "in components/stack_config.py, the one declaration of every stack key.")
    docs.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 naming each file that differs from what KEYS "
                           "generates (for CI)")
    docs.add_argument("--project-dir", type=Path, metavar="DIR",
                      help="directory holding Pulumi.yaml (default: the nearest one at or above "
                           "the current directory)")
    docs.set_defaults(handler=_docs)

    check = actions.add_parser(
        "check", help="check a stack file without previewing it",
        description="Parse stacks/Pulumi.NAME.yaml as the program parses it under `pulumi up`, "
                    "report every problem, and name the shipped placeholders still in it.")
    check.add_argument("--stack", required=True, metavar="NAME", help="stack name (stacks/Pulumi.NAME.yaml)")
    check.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    check.add_argument("--project-dir", type=Path, metavar="DIR",
                       help="directory holding Pulumi.yaml (default: the nearest one at or above "
                            "the current directory)")
    check.set_defaults(handler=_check)


# -- generation --------------------------------------------------------------------------------
def _yaml_scalar(value: Any) -> str:
    # JSON strings, numbers, booleans and [] are YAML flow scalars with the same meaning.
    return json.dumps(value)


def render_config_block() -> str:
    """Pulumi.yaml's `config:` block: every key's type, description and (when optional) default."""
    from components.stack_config import KEYS
    lines = ["config:"]
    for key, spec in KEYS.items():
        lines += [f"  {key}:", f"    type: {spec.type}"]
        if spec.type == "array":
            lines += ["    items:", "      type: string"]
        lines.append(f"    description: {_yaml_scalar(spec.description)}")
        if spec.schema_default is not None:
            lines.append(f"    default: {_yaml_scalar(spec.schema_default)}")
    return "\n".join(lines) + "\n"


def render_project_file(current: str) -> str:
    """`current` (Pulumi.yaml's text) with its `config:` block, which ends the file, regenerated."""
    head, found, _ = current.partition("\nconfig:\n")
    if not found:
        head = current.rstrip("\n")
    return head + "\n" + render_config_block()


def _cell(text: str) -> str:
    # Markdown tables: `|` ends a cell and `<word>` would be read as an HTML tag.
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _default_cell(spec: Any) -> str:
    if spec.required:
        return f"**required**{spec.required_in()}"
    if spec.default == "":
        return "optional (unset)"
    return f"default `{_yaml_scalar(spec.default)}`"


def render_reference() -> str:
    """docs/configuration.md: the reference table of every stack key."""
    from components.config_values import namespace
    from components.stack_config import KEYS
    project = namespace()  # the project's name, as Pulumi.yaml declares it
    rows = []
    for key, spec in KEYS.items():
        allowed = ("`true`, `false`" if spec.type == "boolean"
                   else ", ".join(f"`{value}`" for value in spec.allowed))
        rows.append(f"| `{project}:{key}` | {_TYPE_NAMES[spec.type]} | {_default_cell(spec)} | "
                    f"{_cell(spec.description)} | {allowed} |")
    return "\n".join([
        "# Configuration reference",
        "",
        "<!-- Generated from KEYS in components/stack_config.py by `./run ztai config docs`;",
        "     edit the declaration there, not this file (a test fails when they differ). -->",
        "",
        f"A stack's settings live in `stacks/Pulumi.<stack>.yaml` under `config:`. Keys of this project "
        f"are written `{project}:<key>`; set them in the file or with "
        f"`pulumi config set {project}:<key> <value>`. Besides them, `aws:region` is required (a region "
        "of `components/aws_facts.py`), and other `aws:` settings of the AWS provider may be given.",
        "",
        "The stack is checked before anything is declared, and every problem is reported at once:",
        "",
        "- a value of the wrong type (`azCount: \"3\"`, `reserveFunctionConcurrency: \"false\"`), a key "
        "without a value, a key given twice, or an unknown top-level setting in the stack file;",
        f"- an unknown `{project}:` key, an unknown `aws:` setting, or a namespace that is a typo of "
        f"either (`{project}i:azCount`, `aws:regoin`), each with the key it was probably meant to be;",
        "- values outside what is allowed below, and combinations that cannot work (overlapping "
        "segments, more zones than the region has, an enclave larger than its instance).",
        "",
        "`./run ztai config check --stack <stack>` runs these checks alone; `./run preview <stack>` runs "
        "them first. Both name the shipped placeholders still in the stack (documentation account ids, "
        "example.com, the dummy hosted zone, keyless CAs, placeholder PCRs): replace them before "
        "`pulumi up`.",
        "",
        "| Key | Type | Required / default | Description | Allowed values |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])


def generated_files(project_dir: Path) -> dict[Path, str]:
    """Each generated file (relative to the project) and the text KEYS generates for it."""
    from components.config_values import namespace_of
    from ztai.stackfile import StackFileError, load_project
    project_path = project_dir / PROJECT_FILE
    try:
        current = project_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {project_path}: {error}; pass --project-dir DIR") from None
    try:
        name = load_project(project_dir)["name"]
    except StackFileError as error:
        raise UsageError(str(error)) from None
    with namespace_of(name):  # the reference names the keys `<project name>:<key>`
        return {PROJECT_FILE: render_project_file(current), REFERENCE: render_reference()}


def _docs(args: argparse.Namespace) -> int:
    stale = []
    project_dir = use_project(args.project_dir or find_project(Path.cwd()))
    for relative, text in generated_files(project_dir).items():
        path = project_dir / relative
        try:
            current = path.read_text(encoding="utf-8") if path.exists() else None
        except (OSError, UnicodeDecodeError):
            current = None  # rewritten below, or reported as out of date
        if current == text:
            print(f"{relative} is up to date", file=sys.stderr)
            continue
        stale.append(relative)
        if args.check:
            print(f"{relative} differs from what KEYS in components/stack_config.py generates; "
                  "run `./run ztai config docs`", file=sys.stderr)
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot write {path}: {error.strerror}") from None
        print(f"wrote {relative}", file=sys.stderr)
    return EXIT_VIOLATION if args.check and stale else EXIT_OK


# -- checking a stack --------------------------------------------------------------------------
def check_stack(project_dir: Path, stack: str) -> tuple[Mapping[str, Any], list[str]]:
    """The stack's file read and its configuration parsed; (summary, warnings). UsageError with
    every problem when either is invalid."""
    from components.config_values import namespace_of
    from components.stack_config import StackConfigError, parse_layer_config, placeholders
    from ztai.stackfile import StackFileError, load_stack, shared_target_warnings
    try:
        stack_file = load_stack(project_dir, stack)
    except StackFileError as error:
        raise UsageError(str(error)) from None
    # The keys are `<project name>:<key>`, as Pulumi hands them to the program.
    with namespace_of(stack_file.project):
        try:
            config = parse_layer_config(stack_file.config, f" for stack {stack!r}")
        except StackConfigError as error:
            raise UsageError(str(error)) from None
        warnings = [*stack_file.warnings, *shared_target_warnings(stack_file),
                    *(f"placeholder still in the stack configuration: {p}" for p in placeholders(config))]
    summary = {"stack": stack, "environment": config.environment, "region": config.region,
               "layer": config.layer}
    return summary, warnings


def _check(args: argparse.Namespace) -> int:
    summary, warnings = check_stack(use_project(args.project_dir or find_project(Path.cwd())), args.stack)
    if args.json:
        print(json.dumps({**summary, "valid": True, "warnings": warnings}, indent=2))
    else:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"stack {summary['stack']!r} ({summary['environment']}, {summary['region']}, "
              f"{summary['layer']} layer): configuration valid")
    return EXIT_OK
