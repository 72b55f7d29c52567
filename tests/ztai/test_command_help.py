"""The runtime commands keep the shared flag vocabulary (positional INPUT and OUTPUT, --output,
--force, --json, --key-id). Help text and exit codes of every command: tests/ztai/test_cli_surface.py."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from ztai import tokenize_cmd, truststore_cmd, weights_cmd


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser the three modules register, nested ones included, by command line."""
    root = argparse.ArgumentParser(prog="ztai")
    commands = root.add_subparsers(dest="command")
    for module in (weights_cmd, tokenize_cmd, truststore_cmd):
        module.register(commands)
    pending = [("ztai", root)]
    while pending:
        name, parser = pending.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += [(f"{name} {sub}", child) for sub, child in action.choices.items()]
        if parser is not root:
            yield name, parser


ALL = sorted(parsers(), key=lambda pair: pair[0])
LEAVES = [(name, parser) for name, parser in ALL
          if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)]


def test_the_commands_are_all_there() -> None:
    assert [name for name, _ in LEAVES] == [
        "ztai detokenize", "ztai tokenize", "ztai truststore build", "ztai truststore check",
        "ztai truststore issue-test-client", "ztai weights decrypt", "ztai weights encrypt"]


@pytest.mark.parametrize("name, parser", LEAVES, ids=[name for name, _ in LEAVES])
def test_the_flag_vocabulary(name: str, parser: argparse.ArgumentParser) -> None:
    options = {option for action in parser._actions for option in action.option_strings}
    positionals = [action.metavar for action in parser._actions if not action.option_strings]
    assert "--json" in options
    if name.endswith(("tokenize", "crypt")):
        assert positionals == ["INPUT", "OUTPUT"] and "--force" in options
    elif name.endswith("check"):
        assert positionals == ["INPUT"]
    else:
        assert positionals == [] and "--force" in options
        assert options & {"--output", "--output-cert"}
    assert not options & {"--out", "--out-cert", "--out-key", "--dest", "--destination", "--src"}
