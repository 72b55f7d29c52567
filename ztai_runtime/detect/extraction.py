"""Model extraction through the inference API: per client, rows served, query diversity and coverage
of the input space, over windows, against the client's own normal and absolute budgets.

Reads inference events (`ztai_runtime/inference_events.py`) and, for request rates, the gateway's
access log lines. An inference event the enclave served carries `inputCells` (up to 16 ids of the 256
cells of a SimHash of the rows, computed inside the enclave) and `inputCellCount` (how many distinct
cells the request's rows fall in); events written before the summary existed lack both and count
for rows and requests only.

Per client (`client:<clientId>`), per window (default one hour of event time, aligned to the hour):
- rows served;
- coverage: the distinct cells of the window, at least the union of the ids listed and at least the
  largest single request's count (a lower bound of the true figure);
- diversity: coverage / rows.
Against the client's normal: exponentially weighted mean and mean absolute deviation of each figure
over the client's past active windows (weight `alpha`, 0.05, per window: about the last 20 count),
learned when a window ends. A window's figures enter the normal clipped at the threshold they are
judged by, so one extraction window moves the normal little and a lasting change is learned over
several windows (forgets slowly, follows a real change of use).

A signal (`model:extraction`, severity high, ATLAS AML.T0024 "Exfiltration via ML Inference API") on
every served event of a window once any of these holds in it:
- coverage >= `coverage_budget` (default 160 of 256 cells; the model's natural inputs, all 1,797
  digits, occupy about 104);
- diversity >= `diversity_budget` (0.5) over at least `diversity_min_rows` (200) rows;
- rows >= `rows_budget` (20,000);
- after `warmup_windows` windows learned: rows above the client's normal (`factor` x its mean and
  `spread` mean absolute deviations above it, and at least `min_rows`), or coverage above its normal
  (the same test, at least `min_coverage` cells);
- after `known_windows` windows with requests: at least `novel_cells` cells in the window that the
  client has not queried in the last `forget_ms` (a partner's own data keeps to its cells: in the
  evaluation at most 3 new ones an hour once it is known; queries of another distribution, from
  stolen credentials, bring new cells from their first few hundred rows);
and on gateway lines of a window whose request count is above the client's normal in the same way
(at least `min_requests`): the count the parent agent cannot drop or forge.
docs/detection-extraction.md has the measured figures behind the defaults.

Cost per event: a dict lookup, a few integer operations and a set update with the listed cells (the
known cells are looked up only for a cell new to the window); memory per client: the window's and the
known cells (at most 256 each) and a handful of numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from ztai_runtime.detect.signals import Signal
from ztai_runtime.detect.sources import Event
from ztai_runtime.inference_events import CELL_SPACE, MAX_INPUT_CELLS

RULE = "model:extraction"
# MITRE ATLAS (the ATT&CK counterpart for ML systems): AML.T0024 Exfiltration via ML Inference API.
TECHNIQUE = "AML.T0024"
SEVERITY = "high"
STATE_VERSION = 1


@dataclass(frozen=True)
class ExtractionSettings:
    """The thresholds of the extraction model (docs/detection-extraction.md explains each)."""

    window_ms: int = 3_600_000
    coverage_budget: int = 160
    diversity_budget: float = 0.5
    diversity_min_rows: int = 200
    rows_budget: int = 20_000
    warmup_windows: int = 8
    alpha: float = 0.05
    factor: float = 4.0
    spread: float = 6.0
    min_rows: int = 500
    min_coverage: int = 64
    min_requests: int = 200
    novel_cells: int = 8
    known_windows: int = 48
    forget_ms: int = 30 * 86_400_000

    def __post_init__(self) -> None:
        problems = []
        for name in ("window_ms", "coverage_budget", "diversity_min_rows", "rows_budget",
                     "min_rows", "min_coverage", "min_requests", "novel_cells", "known_windows",
                     "forget_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} {value!r}: a whole number of at least 1")
        if not isinstance(self.warmup_windows, int) or self.warmup_windows < 0:
            problems.append(f"warmup_windows {self.warmup_windows!r}: a whole number of at least 0")
        if isinstance(self.coverage_budget, int) and self.coverage_budget > CELL_SPACE:
            problems.append(f"coverage_budget {self.coverage_budget}: at most {CELL_SPACE} (the cells)")
        for name, low, high in (("diversity_budget", 0.0, 1.0), ("alpha", 0.0, 1.0)):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not low < value <= high:
                problems.append(f"{name} {value!r}: a number in ({low:g}, {high:g}]")
        for name in ("factor", "spread"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < (1 if name == "factor" else 0):
                problems.append(f"{name} {value!r}: a number of at least {1 if name == 'factor' else 0}")
        if problems:
            raise ValueError("extraction settings: " + "; ".join(problems))


class _Normal:
    """An exponentially weighted mean and mean absolute deviation."""

    __slots__ = ("dev", "mean", "windows")

    def __init__(self, mean: float = 0.0, dev: float = 0.0, windows: int = 0) -> None:
        self.mean, self.dev, self.windows = mean, dev, windows

    def limit(self, settings: ExtractionSettings, floor: float) -> float:
        """Above this, a window's figure is not this client's normal."""
        return max(settings.factor * self.mean, self.mean + settings.spread * self.dev, floor)

    def learn(self, value: float, alpha: float) -> None:
        self.windows += 1
        if self.windows == 1:
            self.mean, self.dev = value, 0.0
            return
        self.dev += alpha * (abs(value - self.mean) - self.dev)
        self.mean += alpha * (value - self.mean)


class _Client:
    """One client's current window and normal."""

    __slots__ = ("cells", "coverage_limit", "coverage_normal", "gateway", "gateway_limit",
                 "gateway_normal", "known", "known_windows", "learned", "max_count", "novel",
                 "requests", "rows", "rows_limit", "rows_normal", "start", "total", "version")

    def __init__(self, start: int) -> None:
        self.start = start
        self.rows = self.requests = self.gateway = self.max_count = 0
        self.cells: set[int] = set()
        # The cells the client has queried (cell -> start of the last window it did), and this
        # window's cells outside them; `known_windows` counts the windows `known` has learned.
        self.known: dict[int, int] = {}
        self.known_windows = 0
        self.novel: set[int] = set()
        # The limits the current window is judged by (from the normals; none while warming up).
        self.rows_limit = self.coverage_limit = self.gateway_limit = float("inf")
        self.version: str | None = None
        self.learned = 0
        self.total = 0
        self.rows_normal, self.coverage_normal, self.gateway_normal = _Normal(), _Normal(), _Normal()

    def window_coverage(self) -> int:
        return max(len(self.cells), self.max_count)

    def set_limits(self, settings: ExtractionSettings) -> None:
        if self.learned >= settings.warmup_windows:
            self.rows_limit = self.rows_normal.limit(settings, settings.min_rows)
            self.coverage_limit = self.coverage_normal.limit(settings, settings.min_coverage)
            self.gateway_limit = self.gateway_normal.limit(settings, settings.min_requests)

    def to_state(self) -> dict[str, Any]:
        return {"start": self.start, "rows": self.rows, "requests": self.requests,
                "gateway": self.gateway, "cells": sorted(self.cells), "maxCount": self.max_count,
                "known": [[cell, start] for cell, start in sorted(self.known.items())],
                "knownWindows": self.known_windows, "novel": sorted(self.novel),
                "version": self.version, "learned": self.learned, "total": self.total,
                "normals": [[n.mean, n.dev, n.windows] for n in (self.rows_normal, self.coverage_normal,
                                                       self.gateway_normal)]}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> _Client:
        client = cls(int(data["start"]))
        client.rows, client.requests = int(data["rows"]), int(data["requests"])
        client.gateway, client.cells = int(data["gateway"]), {int(cell) for cell in data["cells"]}
        client.known = {int(cell): int(start) for cell, start in data["known"]}
        client.known_windows = int(data["knownWindows"])
        client.novel = {int(cell) for cell in data["novel"]}
        client.max_count, client.learned = int(data["maxCount"]), int(data["learned"])
        version = data.get("version")
        client.version = version if isinstance(version, str) else None
        client.total = int(data["total"])
        rows, coverage, gateway = (_Normal(float(mean), float(dev), int(windows))
                                   for mean, dev, windows in data["normals"])
        client.rows_normal, client.coverage_normal, client.gateway_normal = rows, coverage, gateway
        return client


class Extraction:
    """The model-extraction detector (a `Detector` of `ztai_runtime.detect.engine`)."""

    name = "extraction"

    def __init__(self, settings: ExtractionSettings | None = None) -> None:
        self.settings = settings or ExtractionSettings()
        self.clients: dict[str, _Client] = {}

    def observe(self, event: Event, principal: str) -> list[Signal]:
        """Learns from the event first (its window), then judges the window it is in."""
        kind = event.kind
        if kind != "inference" and kind != "gateway":  # the fast path of most events
            return []
        if principal == "client:-":
            return []  # nobody verified: the refusal rules' business, not a client's behaviour
        record = event.record
        if kind == "inference" and record.get("decision") != "served":
            return []
        client = self._window(principal, event.time_ms)
        if kind == "gateway":
            client.gateway += 1
            if client.gateway >= client.gateway_limit:
                return [self._signal(principal, client, event.time_ms, [
                    f"{client.gateway:,} requests at the gateway (its normal "
                    f"{_figure(client.gateway_normal)} per active window)"])]
            return []
        rows = record.get("rows")
        if isinstance(rows, int) and rows > 0:
            client.rows += rows
            client.total += rows
        client.requests += 1
        cells = record.get("inputCells")
        if isinstance(cells, list):
            version = record.get("modelVersion")
            if version != client.version:
                # Another model version numbers its cells afresh: this window's coverage restarts.
                client.version = version if isinstance(version, str) else None
                client.cells, client.novel, client.known = set(), set(), {}
                client.known_windows = 0
                client.max_count = 0
            # A summary of another shape is skipped, not counted (min/max and a set's update run in
            # C: a Python loop over the ids would double the cost of an event).
            try:
                if len(cells) <= MAX_INPUT_CELLS and (not cells or (
                        min(cells) >= 0 and max(cells) < CELL_SPACE)):
                    window = client.cells
                    before = len(window)
                    window.update(cells)
                    # A cell new to the client is new to the window too: only then look it up (most
                    # requests of a busy window add no cell to it).
                    if len(window) != before and client.known_windows >= self.settings.known_windows:
                        fresh = set(cells)
                        fresh.difference_update(client.known)
                        client.novel |= fresh
            except TypeError:
                pass
            count = record.get("inputCellCount")
            if isinstance(count, int) and client.max_count < count <= CELL_SPACE:
                client.max_count = count
        return self._judge(principal, client, event.time_ms)

    def _window(self, principal: str, time_ms: int) -> _Client:
        window = self.settings.window_ms
        start = time_ms - time_ms % window
        client = self.clients.get(principal)
        if client is None:
            client = self.clients[principal] = _Client(start)
        elif start > client.start:
            self._learn(client)
            client.start = start
            client.rows = client.requests = client.gateway = client.max_count = 0
            client.cells, client.novel = set(), set()
            client.set_limits(self.settings)
        return client

    def _learn(self, client: _Client) -> None:
        """The ended window into the client's normal, clipped at the limits it was judged by."""
        alpha = self.settings.alpha
        # Only windows with requests of each kind count (a night without requests is no normal,
        # and a detector fed no gateway lines learns no gateway normal). The limits are infinite
        # while the client warms up.
        if client.requests:
            client.rows_normal.learn(min(client.rows, client.rows_limit), alpha)
            client.coverage_normal.learn(min(client.window_coverage(), client.coverage_limit), alpha)
        if client.gateway:
            client.gateway_normal.learn(min(client.gateway, client.gateway_limit), alpha)
        client.learned += 1
        if client.cells:
            known, start = client.known, client.start
            for cell in client.cells:
                known[cell] = start
            client.known_windows += 1
            if client.known_windows % 24 == 0:  # forget cells unused for forget_ms, now and then
                oldest = start - self.settings.forget_ms
                for cell in [cell for cell, seen in known.items() if seen < oldest]:
                    del known[cell]

    def _judge(self, principal: str, client: _Client, time_ms: int) -> list[Signal]:
        settings = self.settings
        coverage = client.window_coverage()
        rows = client.rows
        why: list[str] = []
        if coverage >= settings.coverage_budget:
            why.append(f"its queries fall in {coverage} of the {CELL_SPACE} input cells "
                       f"(budget {settings.coverage_budget}; the model's natural inputs occupy about 104)")
        if rows >= settings.diversity_min_rows and coverage >= settings.diversity_budget * rows:
            why.append(f"{coverage / rows:.2f} distinct cells per row over {rows:,} rows "
                       f"(budget {settings.diversity_budget:g}; natural inputs about 0.25 at 200 rows)")
        if rows >= settings.rows_budget:
            why.append(f"{rows:,} rows served (budget {settings.rows_budget:,} per window)")
        if rows >= client.rows_limit:
            why.append(f"{rows:,} rows served, its normal {_figure(client.rows_normal)} "
                       "per active window")
        if coverage >= client.coverage_limit:
            why.append(f"{coverage} input cells covered, its normal "
                       f"{_figure(client.coverage_normal)}")
        if len(client.novel) >= settings.novel_cells:
            why.append(f"{len(client.novel)} input cells it has not queried before (it had "
                       f"queried {len(client.known)})")
        if not why:
            return []
        return [self._signal(principal, client, time_ms, why)]

    def _signal(self, principal: str, client: _Client, time_ms: int, why: list[str]) -> Signal:
        start = datetime.fromtimestamp(client.start / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
        minutes = self.settings.window_ms // 60_000
        reason = (f"possible model extraction by {principal}: in the {minutes}-minute window from "
                  f"{start}, " + "; ".join(why) + f" ({client.total:,} rows served to it in all)")
        return Signal(rule=RULE, severity=SEVERITY, principal=principal, reason=reason,
                      technique=TECHNIQUE)

    def to_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "settings": asdict(self.settings),
                "clients": {name: client.to_state() for name, client in self.clients.items()}}

    @classmethod
    def from_state(cls, data: dict[str, Any], *, settings: ExtractionSettings | None = None) -> Extraction:
        """The detector `to_state()` saved. `settings` (default: those saved with it) may change
        the thresholds; the learned normals carry over. ValueError on a state of another version or
        shape."""
        version = data.get("version") if isinstance(data, dict) else None
        if version != STATE_VERSION:
            raise ValueError(f"extraction state version {version!r} is not {STATE_VERSION}: "
                             "start from no state")
        saved = data.get("settings")
        if saved is not None and not isinstance(saved, dict):
            raise ValueError(f"extraction state: settings must be an object, not {type(saved).__name__}")
        clients = data.get("clients")
        if clients is not None and not isinstance(clients, dict):
            raise ValueError(f"extraction state: clients must be an object of client -> state, not "
                             f"{type(clients).__name__}")
        if settings is None:
            known = {f.name for f in fields(ExtractionSettings)}
            try:
                settings = ExtractionSettings(**{k: v for k, v in (saved or {}).items() if k in known})
            except (TypeError, ValueError) as error:
                raise ValueError(f"extraction state: settings are malformed ({error})") from None
        detector = cls(settings)
        try:
            detector.clients = {str(name): _Client.from_state(client)
                                for name, client in (clients or {}).items()}
            for client in detector.clients.values():
                client.set_limits(settings)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"extraction state: a client's entry is malformed ({error!r})") from None
        return detector


def _figure(normal: _Normal) -> str:
    return f"{normal.mean:,.0f} ± {normal.dev:,.0f}"
