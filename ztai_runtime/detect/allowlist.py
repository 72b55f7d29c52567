"""The allow-list: known automation whose signals are expected, each entry with its reason.

The file (YAML or JSON; `ztai detect --allow FILE`, and the stream function's configuration) is a
mapping with one key, `allow`, a list of entries:

    allow:
      - principal: "arn:aws:iam::*:role/zero-trust-ai-prod-key-rotation"
        rules: ["model:rate", "model:new-action"]
        reason: "The monthly rotation re-encrypts every data key on the 1st (docs/keys.md)."
        until: "2027-06-30"

- `principal` (required): a glob (`fnmatch`, case-sensitive) over the principal the finding names.
- `rules` (optional, default every rule and model): globs over the rule ids and model kinds.
- `reason` (required, at least 20 characters): why this is expected. An entry without a reason is
  refused: the allow-list is reviewed like code, and an unexplained exception is how a control
  quietly stops working.
- `until` (optional, `YYYY-MM-DD`): the entry stops suppressing after that day (UTC), so a
  temporary exception does not become permanent by being forgotten.

What an allow-list can never do: suppress a `critical` signal, unless the entry says
`critical: true` as well (logging switched off, a key policy rewritten, an organisation left are
never routine). Whoever can edit the file can silence detection, so the file lives in the
repository under CODEOWNERS, and every suppression is counted per entry (`AllowList.counts`,
printed by the CLI) so a silent entry is visible too.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ztai_runtime.detect.signals import Signal

MIN_REASON = 20
_ENTRY_KEYS = frozenset(("principal", "rules", "reason", "until", "critical"))
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class AllowListError(ValueError):
    """An allow-list that cannot be used: the message names the entry, the key and what is allowed."""


@dataclass(frozen=True, slots=True)
class AllowEntry:
    principal: str
    rules: tuple[str, ...]
    reason: str
    until_ms: int | None
    critical: bool

    def matches(self, signal: Signal, time_ms: int) -> bool:
        if self.until_ms is not None and time_ms >= self.until_ms:
            return False
        if signal.severity == "critical" and not self.critical:
            return False
        if not fnmatch.fnmatchcase(signal.principal, self.principal):
            return False
        return not self.rules or any(fnmatch.fnmatchcase(signal.rule, rule) for rule in self.rules)


class AllowList:
    """Entries, and how many signals each one suppressed."""

    def __init__(self, entries: Sequence[AllowEntry]) -> None:
        self.entries = tuple(entries)
        self.counts = [0] * len(self.entries)

    def suppresses(self, signal: Signal, time_ms: int) -> bool:
        for index, entry in enumerate(self.entries):
            if entry.matches(signal, time_ms):
                self.counts[index] += 1
                return True
        return False

    @classmethod
    def parse(cls, data: Any, *, source: str = "the allow-list") -> AllowList:
        """Entries from the file's parsed content; AllowListError on anything not described in the
        module docstring."""
        if not isinstance(data, Mapping) or set(data) != {"allow"}:
            raise AllowListError(f"{source}: must be a mapping with the one key 'allow' (a list of "
                                 "entries with principal, reason and optionally rules, until, critical)")
        items = data["allow"]
        if items is None:
            return cls(())
        if not isinstance(items, list):
            raise AllowListError(f"{source}: 'allow' must be a list of entries, not "
                                 f"{type(items).__name__}")
        return cls([_entry(item, f"{source}: entry {index + 1}") for index, item in enumerate(items)])


def _entry(item: Any, where: str) -> AllowEntry:
    if not isinstance(item, Mapping):
        raise AllowListError(f"{where}: must be a mapping, not {type(item).__name__}")
    unknown = sorted(str(key) for key in item if key not in _ENTRY_KEYS)
    if unknown:
        raise AllowListError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed are "
                             f"{', '.join(sorted(_ENTRY_KEYS))}")
    principal = item.get("principal")
    if not isinstance(principal, str) or not principal.strip():
        raise AllowListError(f"{where}: 'principal' is required, a glob over principals")
    if principal.strip() in ("*", "**"):
        raise AllowListError(f"{where}: 'principal' {principal!r} would allow everyone; name the "
                             "automation's role or client")
    reason = item.get("reason")
    if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON:
        raise AllowListError(f"{where} ({principal}): 'reason' is required, at least {MIN_REASON} "
                             "characters saying why this activity is expected")
    rules = item.get("rules", [])
    if isinstance(rules, str):
        rules = [rules]
    if not isinstance(rules, list) or not all(isinstance(r, str) and r for r in rules):
        raise AllowListError(f"{where} ({principal}): 'rules' must be a list of rule ids or globs")
    until = item.get("until")
    until_ms: int | None = None
    if until is not None:
        text = until.isoformat() if hasattr(until, "isoformat") else until
        if not isinstance(text, str) or not _DATE.match(text):
            raise AllowListError(f"{where} ({principal}): 'until' must be a date YYYY-MM-DD, "
                                 f"not {until!r}")
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise AllowListError(f"{where} ({principal}): 'until' {text!r} is not a date") from None
        until_ms = int(day.timestamp() * 1000) + 86_400_000  # the whole of that day
    critical = item.get("critical", False)
    if not isinstance(critical, bool):
        raise AllowListError(f"{where} ({principal}): 'critical' must be true or false")
    return AllowEntry(principal=principal, rules=tuple(rules), reason=reason.strip(),
                      until_ms=until_ms, critical=critical)
