"""docs/guardrails.md's statement table names every statement the guardrails ship, under the
document the code puts it in, and names no statement that does not exist: a renamed or moved
statement shows here before a reader is sent looking for it."""

from __future__ import annotations

import re

from components.guardrails import DOCUMENTS, GuardrailSettings
from tests.docs.markdown import ROOT

PAGE = ROOT / "docs" / "guardrails.md"
# A table row: | `document` or empty | what | ... ; statement names are CamelCase in backticks.
_DOCUMENT = re.compile(r"^\| `([a-z-]+)`(?: \(RCP\))? \|")
_SID = re.compile(r"`([A-Z][a-z]+(?:[A-Z][A-Za-z]*)+)`")
SETTINGS = GuardrailSettings(target_ids=("r-ab12",), organization_id="o-exampleorgid",
                             allowed_regions=("eu-west-1",))


def _table() -> dict[str, set[str]]:
    """document name -> the statement names its rows mention."""
    documents = {d.name for d in DOCUMENTS}
    found: dict[str, set[str]] = {}
    current = None
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| "):
            current = None if not line.strip() else current
            continue
        match = _DOCUMENT.match(line)
        if match and match.group(1) in documents:
            current = match.group(1)
        if current is not None:
            cells = line.split("|")
            # The statement's name is in the second column, where the table names it.
            named = set(_SID.findall(cells[2] if len(cells) > 2 else ""))
            found.setdefault(current, set()).update(named)
    return found


def test_the_table_names_each_statement_under_its_document() -> None:
    table = _table()
    shipped = {d.name: {s["Sid"] for s in d.render(SETTINGS)["Statement"]} for d in DOCUMENTS}
    assert set(table) == set(shipped)
    for name, sids in shipped.items():
        assert table[name] == sids, (name, sorted(sids - table[name]), sorted(table[name] - sids))
