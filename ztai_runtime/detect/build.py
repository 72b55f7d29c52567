"""Builds the detection engine with its detectors, for the CLI and the stream function alike.

`build_engine(...)` is the one place that decides which detectors run and how their learned state
is restored, so `ztai detect` over files and the stream function over the SIEM stream find the same
things in the same events.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ztai_runtime.detect.allowlist import AllowList
from ztai_runtime.detect.engine import Detector, Engine
from ztai_runtime.detect.extraction import Extraction
from ztai_runtime.detect.geo import GeoLookup
from ztai_runtime.detect.models import Behaviour, ModelSettings
from ztai_runtime.detect.rules import SigmaRules, shipped_ir
from ztai_runtime.detect.sources import WindowExceededError, collector_paused, read_events

# The shipped rules compiled, per context: they learn nothing, so a warm stream function reuses them
# instead of reading and compiling the IR on every invocation (about 3 ms each).
_SHIPPED: dict[str, SigmaRules] = {}


def _shipped_rules(context: Mapping[str, Sequence[str]] | None) -> SigmaRules:
    key = json.dumps({name: list(values) for name, values in (context or {}).items()}, sort_keys=True)
    rules = _SHIPPED.get(key)
    if rules is None:
        rules = _SHIPPED[key] = SigmaRules.from_ir(shipped_ir(), context)
    return rules


def build_engine(*, rules_ir: Mapping[str, Any] | None = None,
                 context: Mapping[str, Sequence[str]] | None = None,
                 allow: AllowList | None = None, geoip_db: str | None = None,
                 state: Mapping[str, Any] | None = None, max_ids: int | None = None,
                 settings: ModelSettings | None = None) -> Engine:
    """The engine with every detector; `state` (from `Engine.to_state()`) resumes what was learned.

    - `rules_ir`: the compiled Sigma rules (default: the rules the project ships);
    - `context`: the values the rules' placeholders expand to (the stack's keys, roles, tables);
    - `allow`: the allow-list;
    - `geoip_db`: an MMDB file for the network-origin model (optional);
    - `max_ids`: cap on the event ids a finding keeps (the stream function's state), None = all;
    - `settings`: the behavioural models' parameters (default: `ModelSettings()`).

    ValueError (GeoError, a ValueError, for the database) naming the problem on a bad IR, context,
    database or state.
    """
    if state is not None and not isinstance(state, Mapping):
        raise ValueError(f"detection state must be an object, not {type(state).__name__}")
    saved = (state or {}).get("detectors")
    if saved is None:
        saved = {}
    if not isinstance(saved, Mapping):
        raise ValueError(f"detection state: detectors must be an object of detector name -> state, "
                         f"not {type(saved).__name__}")
    for name, part in saved.items():
        if not isinstance(part, Mapping):
            raise ValueError(f"detection state: detectors.{name} must be an object, not "
                             f"{type(part).__name__}")
    rule_state = saved.get(SigmaRules.name, {})
    if rules_ir is None and not rule_state:
        rules = _shipped_rules(context)
    else:
        rules = SigmaRules.from_state(rule_state, rules_ir if rules_ir is not None else shipped_ir(),
                                      context)
    geo = GeoLookup(geoip_db) if geoip_db is not None else None
    settings = settings or ModelSettings()
    behaviour = Behaviour.from_state(saved[Behaviour.name], settings=settings, geo=geo) \
        if Behaviour.name in saved else Behaviour(settings, geo)
    extraction = Extraction.from_state(saved[Extraction.name]) if Extraction.name in saved \
        else Extraction()
    detectors: list[Detector] = [rules, behaviour, extraction]
    engine = Engine(detectors, allow=allow, max_ids=max_ids)
    if state is not None:
        engine.restore(dict(state))
    return engine


# How late the windowed read lets an event be in its CloudTrail file (after the file's delivery
# time): CloudTrail delivers "within an average of about 5 minutes of an API call"
# (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/get-and-view-cloudtrail-log-files.html),
# and a file "can contain records written at any point before" its delivery time
# (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-examples.html), so
# no bound holds for every record; an hour leaves the rare late one room, and an event later still
# costs a second reading, never a wrong order (`run_files`).
WINDOW_MS = 60 * 60_000


def run_files(paths: Iterable[str | os.PathLike[str]], make_engine: Callable[[], Engine], *,
              since_ms: int | None = None, until_ms: int | None = None,
              window_ms: int = WINDOW_MS) -> tuple[Engine, str | None]:
    """Every event of `paths` through an engine `make_engine()` builds, in event-time order (as
    `read_events` orders them), as `ztai detect` runs it. Returns the engine (not yet finished)
    and, when the windowed read could not order the input (`WindowExceededError`), why the files were
    read a second time with the exact read, into a second engine from `make_engine()` (the first
    one's state is discarded: the result is that of the exact read, whatever came first).

    The windowed read holds about `window_ms` of events and judges each as soon as its window has
    been read; the exact read holds (and spills) them all. Same events, same order, same findings.
    InputError (possibly after events were judged: act on nothing before this returns) on bad
    input."""
    paths = list(paths)
    with collector_paused():  # the run makes no reference cycles (sources.collector_paused)
        engine = make_engine()
        try:
            _feed(engine, read_events(paths, since_ms=since_ms, until_ms=until_ms, window_ms=window_ms))
            return engine, None
        except WindowExceededError as late:
            reason = str(late)
        engine = make_engine()
        _feed(engine, read_events(paths, since_ms=since_ms, until_ms=until_ms))
        return engine, reason


def _feed(engine: Engine, events: Iterable[Any]) -> None:
    process = engine.process
    for event in events:
        process(event)
