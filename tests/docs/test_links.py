"""Every relative link in the project's Markdown resolves: to a file that exists and, where it
names a heading of a Markdown file, to that heading."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.markdown import ROOT, Link, anchors, github_anchor, project_files, relative_links

MARKDOWN = project_files(".md")


def test_the_docs_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in MARKDOWN}
    assert {"README.md", "CONTRIBUTING.md", "docs/architecture.md",
            "policy_packs/zero_trust/README.md"} <= names


@pytest.mark.parametrize("document", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for link in relative_links(document):
        target = link.resolved()
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif link.anchor and target.suffix == ".md" and link.anchor not in anchors(target):
            broken.append(f"{link}: {target.relative_to(ROOT)} has no heading #{link.anchor}")
    assert not broken, "broken links:\n" + "\n".join(broken)


# -- the link checker itself ---------------------------------------------------------------------

def test_checker_reads_links_outside_code_only(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("See [a](a.md), ![img](img/x.png \"title\") and [web](https://example.com).\n"
                    "`[not](code.md)`\n```\n[not](fenced.md)\n```\n[b](sub/b.md#part)\n",
                    encoding="utf-8")
    assert [link.target for link in relative_links(page)] == ["a.md", "img/x.png", "sub/b.md#part"]


def test_checker_sees_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# Title\n\n## The `ztai` CLI\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#the-ztai-cli) [gone](gone.md) [bad](there.md#nowhere)\n",
                    encoding="utf-8")
    links = relative_links(page)
    assert [link.resolved().exists() for link in links] == [True, False, True]
    assert [link.anchor in anchors(link.resolved()) for link in links if link.resolved().exists()] \
        == [True, False]


def test_anchors_follow_githubs_rule(tmp_path: Path) -> None:
    assert github_anchor("Status: proven offline, never deployed") == "status-proven-offline-never-deployed"
    assert github_anchor("`vpc-flow-logs-enabled`") == "vpc-flow-logs-enabled"
    assert github_anchor("Runbook: a new EIF (PCR update)") == "runbook-a-new-eif-pcr-update"
    page = tmp_path / "dup.md"
    page.write_text("## Notes\n\n## Notes\n", encoding="utf-8")
    assert anchors(page) == {"notes", "notes-1"}


def test_a_link_reports_where_it_is(tmp_path: Path) -> None:
    link = Link(ROOT / "README.md", 3, "docs/x.md#y")
    assert str(link) == "README.md:3: (docs/x.md#y)"
    assert link.path_part == "docs/x.md" and link.anchor == "y"
