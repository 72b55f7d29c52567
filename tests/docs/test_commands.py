"""The `ztai` commands the Markdown shows are ones the CLI takes: every command and option named in
a code span exists, and every full command in a code block parses. A renamed flag (`--config` to
`--policy-config`) or command cannot survive in the docs."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.markdown import ROOT, project_files
from ztai.cli import _parser
from ztai.clidoc import subcommands

# docs/cli.md is generated from the parser itself (and checked against it elsewhere).
MARKDOWN = [path for path in project_files(".md") if path != ROOT / "docs" / "cli.md"]

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)((?:(?!\1).)+?)\1")
_PREFIXES = ("./run ztai ", "ztai ")
# Words that stand for something left out: `ztai ...`, `--partner NAME=CA.pem …`, `encrypt\|decrypt`.
_ELISION = re.compile(r"\.\.\.|…|\|")


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    complete: bool  # a whole command from a code block, to be run as written

    def words(self) -> list[str]:
        text = self.text.removeprefix("./run ")
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        return words[1:]  # without "ztai"


def commands(text: str) -> list[Command]:
    """The `ztai` commands of a Markdown text: lines of code blocks (joined across trailing `\\`,
    without a trailing `# comment`) and code spans that start with `ztai` or `./run ztai`."""
    found = []
    lines = text.splitlines()
    fenced = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if _FENCE.match(line):
            fenced = not fenced
        elif fenced:
            start = index
            command = line.strip()
            while command.endswith("\\") and index + 1 < len(lines):
                index += 1
                command = command[:-1].rstrip() + " " + lines[index].strip()
            command = re.sub(r"\s+#\s.*$", "", command)
            if command.startswith(_PREFIXES):
                found.append(Command(start + 1, command, complete=True))
        else:
            for match in _CODE_SPAN.finditer(line):
                span = match.group(2).strip()
                if span.startswith(_PREFIXES):
                    found.append(Command(index + 1, span, complete=False))
        index += 1
    return found


def _parsers() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    return {path: parser for path, parser, _ in subcommands(_parser())}


def problems(command: Command, parsers: dict[tuple[str, ...], argparse.ArgumentParser]) -> list[str]:
    """What the CLI would not take in `command`: an unknown command or option; for a complete
    command, whatever its parser refuses."""
    words = command.words()
    path: tuple[str, ...] = ("ztai",)
    rest = list(words)
    while rest and (*path, rest[0]) in parsers:
        path = (*path, rest.pop(0))
    parser = parsers[path]
    found = []
    has_subcommands = any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)
    if has_subcommands and rest and not rest[0].startswith("-") and not _ELISION.search(rest[0]):
        found.append(f"`{' '.join(path)}` has no command {rest[0]!r}")
    options = {option for action in parser._actions for option in action.option_strings}
    for word in rest:
        if word.startswith("--") and word.split("=", 1)[0] not in options:
            found.append(f"`{' '.join(path)}` has no option {word.split('=', 1)[0]}")
    if command.complete and not found and not any(_ELISION.search(word) for word in words):
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            try:
                _parser().parse_args(words)
            except SystemExit as stop:
                if stop.code:
                    found.append(errors.getvalue().strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("document", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_documented_ztai_commands_are_ones_the_cli_takes(document: Path) -> None:
    parsers = _parsers()
    wrong = [f"{document.relative_to(ROOT)}:{command.line}: {command.text}: {problem}"
             for command in commands(document.read_text(encoding="utf-8"))
             for problem in problems(command, parsers)]
    assert not wrong, "commands the CLI does not take:\n" + "\n".join(wrong)


def test_the_docs_show_complete_commands() -> None:
    # Without complete commands the parse check above would have nothing to run.
    complete = [command for path in MARKDOWN
                for command in commands(path.read_text(encoding="utf-8")) if command.complete]
    assert len(complete) >= 5, complete


# -- the checker itself --------------------------------------------------------------------------

def test_checker_finds_commands_in_spans_and_blocks() -> None:
    text = ("Run `ztai policy analyze --file x.json` or `pulumi up`.\n"
            "```sh\n./run ztai weights decrypt --context a=b \\\n    in.enc out  # comment\n"
            "pulumi preview\n```\n")
    assert commands(text) == [Command(1, "ztai policy analyze --file x.json", complete=False),
                              Command(3, "./run ztai weights decrypt --context a=b in.enc out",
                                      complete=True)]


@pytest.mark.parametrize(("text", "complete", "expected"), [
    ("ztai policy analyze --config policy.json", False, "`ztai policy analyze` has no option --config"),
    ("ztai truststore issue-test-client --out-cert c.pem", False,
     "`ztai truststore issue-test-client` has no option --out-cert"),
    ("ztai truststore verify", False, "`ztai truststore` has no command 'verify'"),
    ("./run ztai weights encrypt --key-id alias/k in.bin", True, "required: OUTPUT"),
    ("ztai preview --json --quiet --stack dev", True, "not allowed with argument"),
])
def test_checker_reports_what_the_cli_refuses(text: str, complete: bool, expected: str) -> None:
    found = problems(Command(1, text, complete), _parsers())
    assert found and expected in found[0], found


@pytest.mark.parametrize(("text", "complete"), [
    ("ztai weights encrypt --key-id alias/k --context a=b in.bin out.enc", True),
    ("ztai truststore build --partner NAME=CA.pem … --output truststore.pem", True),
    ("ztai weights encrypt\\|decrypt", False),
    ("ztai ...", False),
    ("ztai --version", True),
])
def test_checker_accepts_what_the_cli_takes(text: str, complete: bool) -> None:
    assert problems(Command(1, text, complete), _parsers()) == []
