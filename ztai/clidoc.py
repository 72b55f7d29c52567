"""docs/cli.md, written from the `ztai` argument parser so the reference cannot drift from the CLI.

    python -m ztai.clidoc            rewrite docs/cli.md
    python -m ztai.clidoc --check    exit 1 if docs/cli.md differs from what the parser says

The page is built from the parser's own data (commands, arguments, help texts, defaults), not from
argparse's formatted help, whose layout changes between Python versions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from ztai.cli import REPOSITORY, _parser
from ztai.errors import EXIT_CODES

DOC = REPOSITORY / "docs" / "cli.md"

INTRO = """\
# `ztai` command reference

`ztai` is the operator CLI: an offline preview of a stack with its policy check, the policy
pack over a stack export, and the runtime tools for model weights, tokenization and the API
truststore. Run it as `./run ztai ...` in a checkout (it sets up `.venv` first), as
`python -m ztai ...` inside that environment, or as `ztai ...` after `pip install .`.
It works from any directory inside the project: `ztai preview` looks for `Pulumi.yaml` upward
from the current directory.

This page is generated from the CLI's argument parser by `python -m ztai.clidoc`; a test fails
when the two differ. Every command also prints its own `--help`.
"""


def subcommands(parser: argparse.ArgumentParser,
                path: tuple[str, ...] = ("ztai",)) -> Iterator[tuple[tuple[str, ...],
                                                                     argparse.ArgumentParser, str]]:
    """Every parser in the tree with its command path and the one-line help its parent gives it."""
    yield path, parser, parser.description or ""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                for nested_path, nested, summary in subcommands(child, (*path, name)):
                    yield nested_path, nested, summaries.get(name, "") if nested is child else summary


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments a user types: options and positionals, not -h or the subcommand slot."""
    return [action for action in parser._actions
            if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)]


def expanded_help(action: argparse.Action, prog: str) -> str:
    """The help text with its %(default)s-style fields filled in, as --help prints it."""
    text = action.help or ""
    if "%" not in text:
        return text
    fields = {**vars(action), "prog": prog}
    for name, value in list(fields.items()):
        if isinstance(value, list | tuple):
            fields[name] = ", ".join(str(item) for item in value)
    return text % fields


def _spelling(action: argparse.Action) -> str:
    if not action.option_strings:
        return str(action.metavar or action.dest)
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or action.dest.upper()
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    suffix = f" [{metavar}]" if action.nargs == "?" else f" {metavar}"
    if action.nargs in ("*", "+"):
        suffix = f" {metavar} ..."
    return names + suffix


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    parser = _parser()
    lines = [INTRO, "## Exit status", "", "Every command exits with one of these:", "",
             "| code | meaning |", "| --- | --- |"]
    lines += [f"| {code} | {_cell(meaning)} |" for code, meaning in EXIT_CODES]
    lines += ["", "## Commands", ""]
    for path, command, summary in subcommands(parser):
        has_subcommands = any(isinstance(a, argparse._SubParsersAction) for a in command._actions)
        lines += [f"### `{' '.join(path)}`", ""]
        if summary and summary != command.description:
            lines += [_cell(summary[0].upper() + summary[1:]) + ".", ""]
        if command.description:
            lines += [_cell(command.description), ""]
        rows = arguments(command)
        if rows:
            lines += ["| argument | required | meaning |", "| --- | --- | --- |"]
            for action in rows:
                required = "yes" if action.required or not action.option_strings else ""
                if not action.option_strings and action.nargs in ("?", "*"):
                    required = ""
                meaning = expanded_help(action, " ".join(path))
                if action.choices and str(next(iter(action.choices))) not in meaning:
                    meaning += f" (one of: {', '.join(str(choice) for choice in action.choices)})"
                lines.append(f"| `{_spelling(action)}` | {required} | {_cell(meaning)} |")
            lines.append("")
        for group in command._mutually_exclusive_groups:
            names = [action.option_strings[0] for action in group._group_actions if action.option_strings]
            lines += [f"Only one of {', '.join(f'`{name}`' for name in names)} may be given.", ""]
        if has_subcommands:
            for action in command._actions:
                if isinstance(action, argparse._SubParsersAction):
                    lines += [f"Commands: {', '.join(f'`{name}`' for name in action.choices)}.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(prog="python -m ztai.clidoc",
                                      description="Write or check docs/cli.md from the ztai parser.")
    options.add_argument("--check", action="store_true",
                         help="only compare: exit 1 if docs/cli.md is out of date")
    args = options.parse_args(argv)
    text = render()
    current = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    if args.check:
        if current != text:
            print(f"{DOC} is out of date: run `python -m ztai.clidoc`", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
