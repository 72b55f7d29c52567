"""Every repository path the Markdown names in backticks (`components/keys.py`,
`ztai_runtime/tokenize/`) exists, so a moved or renamed file cannot leave the docs pointing at
nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.markdown import ROOT, project_files

MARKDOWN = project_files(".md")

_CODE_SPAN = re.compile(r"(`+)((?:(?!\1).)+?)\1")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
# A placeholder in a path stands for any name: `stacks/Pulumi.<stack>.yaml`, `rules/*.py`.
_PLACEHOLDER = re.compile(r"<[^<>/]+>|\*+")
# Where a path ends: a `:line`, `#anchor` or `::test` suffix is not part of the file name.
_SUFFIX = re.compile(r"(::|:\d|#).*$")


def _top_level_names(root: Path) -> set[str]:
    return {path.name for path in root.iterdir() if not path.name.startswith(".")}


def repository_paths(text: str, root: Path) -> list[tuple[int, str]]:
    """(line number, path) of each code span outside fenced blocks that is a repository path: one
    word that starts with a top-level directory of the repository followed by "/", or that is a
    top-level file. Commands, options and paths of other systems (`/etc/...`, `s3://...`) are not."""
    top_level = _top_level_names(root)
    found = []
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        for match in _CODE_SPAN.finditer(line):
            span = match.group(2).strip()
            if not span or any(char.isspace() for char in span):
                continue
            path = _SUFFIX.sub("", span)
            first = path.split("/", 1)[0]
            if first in top_level and ("/" in path or (root / first).is_file()):
                found.append((number, path))
    return found


def exists(root: Path, path: str) -> bool:
    """Whether `path` names something in the repository; a placeholder matches any name."""
    if not _PLACEHOLDER.search(path):
        return (root / path).exists()
    pattern = _PLACEHOLDER.sub("*", path).rstrip("/")
    return any(True for _ in root.glob(pattern))


@pytest.mark.parametrize("document", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_backticked_repository_paths_exist(document: Path) -> None:
    missing = [f"{document.relative_to(ROOT)}:{line}: `{path}`"
               for line, path in repository_paths(document.read_text(encoding="utf-8"), ROOT)
               if not exists(ROOT, path)]
    assert not missing, "paths that do not exist in the repository:\n" + "\n".join(missing)


# -- the checker itself --------------------------------------------------------------------------

def test_checker_picks_repository_paths_only(tmp_path: Path) -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "run").write_text("", encoding="utf-8")
    (tmp_path / "Pulumi.yaml").write_text("", encoding="utf-8")
    text = ("`components/keys.py:12` and `components/net.py#L3`, `tests/x.py::test_y`\n"
            "not `components` alone, not `/etc/components/x`, not `ztai preview --stack dev`,\n"
            "`s3://components/x`, `unknown/dir.py`\n"
            "```\n`components/fenced.py`\n```\n"
            "`Pulumi.yaml` and `run`\n")
    found = repository_paths(text, tmp_path)
    assert found == [(1, "components/keys.py"), (1, "components/net.py"), (7, "Pulumi.yaml"),
                     (7, "run")]


def test_checker_reports_a_moved_file_and_accepts_placeholders(tmp_path: Path) -> None:
    (tmp_path / "components" / "enclave_fleet").mkdir(parents=True)
    (tmp_path / "components" / "enclave_fleet" / "fleet.py").write_text("", encoding="utf-8")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text("", encoding="utf-8")
    assert exists(tmp_path, "components/enclave_fleet/fleet.py")
    assert exists(tmp_path, "components/enclave_fleet/")
    assert not exists(tmp_path, "components/enclave_fleet.py")
    assert exists(tmp_path, "stacks/Pulumi.<stack>.yaml")
    assert exists(tmp_path, "components/enclave_fleet/*.py")
    assert not exists(tmp_path, "stacks/partners/<env>.yaml")
