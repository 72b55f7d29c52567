"""No issue numbers and no bare section marks in the project's text: a forker has neither the
tracker nor the specification they point at, so code, comments and docs name the control instead.
A standard's section spelt out ("RFC 5652 section 6") is fine.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.docs.markdown import ROOT, project_files

SUFFIXES = (".md", ".py", ".yaml", ".yml", ".sh", ".tpl")
SECTION_MARK = "\u00a7"
# the word issue (or issues), then a number, with or without a space or a hash in between
TICKET = re.compile(r"\bissues?\s?#?\d+", re.IGNORECASE)


def references(path: Path, root: Path = ROOT) -> list[str]:
    """Each line of `path` that holds a section mark or an issue number, as `file:line: text`."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if SECTION_MARK in line or TICKET.search(line):
            found.append(f"{path.relative_to(root).as_posix()}:{number}: {line.strip()[:100]}")
    return found


def test_no_issue_numbers_or_section_marks() -> None:
    files = project_files(*SUFFIXES)
    assert len(files) > 50
    found = [hit for path in files for hit in references(path)]
    assert not found, "name the control instead:\n" + "\n".join(found)


def test_the_check_sees_marks_and_issue_numbers(tmp_path: Path) -> None:
    word = "issue"
    sample = tmp_path / "sample.py"
    sample.write_text(f"# ok: RFC 5652 section 6, t{word} 4, {word}r 3\n# bad {SECTION_MARK}2.1\n"
                      f"# bad ({word.title()} #4)\n# bad {word}s 3\n", encoding="utf-8")
    assert [hit.split(":", 2)[1] for hit in references(sample, root=tmp_path)] == ["2", "3", "4"]
