"""Fixtures shared by the pack's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policy_packs.test_logging_rules import ztai


@pytest.fixture(scope="session")
def dev_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev stack's offline preview exported once per test process (the tests that doctor it
    copy it first): each rule's export test reads what is deployed, not its inputs only."""
    path = tmp_path_factory.mktemp("export") / "dev.json"
    run = ztai("preview", "--stack", "dev", "--export", str(path))
    assert run.returncode == 0, run.stderr
    return path
