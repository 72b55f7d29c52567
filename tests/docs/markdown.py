"""What the docs tests need to read Markdown as GitHub renders it: the project's Markdown files,
their relative links, and the anchors their headings get."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[2]

# Directories that are not the project's own text: tool caches, environments, build output.
SKIPPED_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "build", "__pycache__",
                          ".mypy_cache", ".ruff_cache", ".pytest_cache"})

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target "title") and ![alt](target); the target ends at whitespace or the closing bracket.
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def project_files(*suffixes: str) -> list[Path]:
    """Every file of the project with one of `suffixes`, outside tool and environment folders."""
    found = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in parts):
            continue
        if path.is_file() and path.name.endswith(suffixes):
            found.append(path)
    return sorted(found)


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of the text outside fenced code blocks, with code spans blanked."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, _CODE_SPAN.sub("", line)


@dataclass(frozen=True)
class Link:
    source: Path
    line: int
    target: str

    @property
    def path_part(self) -> str:
        return unquote(self.target.split("#", 1)[0])

    @property
    def anchor(self) -> str:
        return self.target.split("#", 1)[1] if "#" in self.target else ""

    def resolved(self) -> Path:
        return (self.source.parent / self.path_part).resolve() if self.path_part else self.source

    def __str__(self) -> str:
        return f"{self.source.relative_to(ROOT)}:{self.line}: ({self.target})"


def relative_links(path: Path) -> list[Link]:
    """The links of a Markdown file that point into the repository (no scheme, not `//host`)."""
    links = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in _LINK.finditer(line):
            target = match.group(1)
            if _SCHEME.match(target) or target.startswith("//"):
                continue
            links.append(Link(path, number, target))
    return links


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: the rendered text, lower case, punctuation dropped, spaces as
    hyphens (code spans and emphasis count by their text)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor the headings of a Markdown file get, duplicates numbered as GitHub does."""
    seen: Counter[str] = Counter()
    found = set()
    for _, line in _heading_lines(path.read_text(encoding="utf-8")):
        base = github_anchor(line)
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def _heading_lines(text: str) -> Iterator[tuple[int, str]]:
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            yield number, match.group(2)


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section of a Markdown text, up to the next heading of that
    level or above; empty when there is no such section."""
    lines = text.splitlines()
    for start, line in enumerate(lines):
        if line.strip() == f"## {heading}":
            end = next((i for i in range(start + 1, len(lines))
                        if re.match(r"^#{1,2}\s", lines[i])), len(lines))
            return "\n".join(lines[start + 1:end])
    return ""
