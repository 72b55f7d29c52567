"""Seeded inference traffic for the model-extraction detector: weeks of partner clients using the
digits model as they would, and extraction clients, as inference events in the exact shape the
parent agent writes (ztai_runtime/inference_events.py), with the enclave's input summary computed
by the enclave's own code over the model the project trains.

    python -m benchmarks.inference_traffic [--days 28] [--seed 0] [--speed] [--replication]

prints the evaluation: after how many rows each extraction client was flagged, and the benign
clients' false findings per 10,000 events (docs/detection-extraction.md); `--speed` adds the
detector's cost per event, `--replication` how well a surrogate trained on N labels of each query
strategy agrees with the model (the budget the detector must beat; about a minute).

The partners' inputs are the digits of scikit-learn's bundled set (the model's own domain), each
partner with its own mix of classes and its own scanning noise, its own daily volume, batch size and
working hours (in its time zone, weekdays), and one automation client with a nightly batch. The
extraction clients: one probing with uniform random inputs over the pixel range (a new client, or
stolen credentials of one), one perturbing a few seed digits (Jacobian-style augmentation) with a
partner's credentials at ten times that partner's volume.
"""

from __future__ import annotations

import argparse
import base64
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ztai_runtime.inference_events import inference_event

DAY_S = 86_400
HOUR_S = 3_600
# Monday 2026-11-02 00:00 UTC: four weeks before the project's other datasets end.
START_S = 1_793_577_600
ROUTE = "POST /partners/{partner}/v1/infer"
# One working day in twenty, a partner sends two and a half times its usual volume.
SURGE_CHANCE = 0.05
SURGE = 2.5


@dataclass(frozen=True)
class Partner:
    """A client of the inference API and how it uses it."""

    name: str
    client_id: str
    classes: tuple[int, ...]  # the digits its own data holds
    noise: float  # its scanner's pixel noise (std, pixel units of 0..16)
    rows_per_day: int  # on a working day
    batch: int  # mean rows per request
    hours: tuple[int, int]  # working hours, local
    utc_offset: int  # hours
    weekends: bool = False
    nightly_rows: int = 0  # an automation batch at 02:00 local, in 1024-row requests


PARTNERS: tuple[Partner, ...] = (
    Partner("acme", "acme-7f3c1d2e", (0, 1, 2, 3, 4), 1.0, 4_000, 8, (8, 18), 1),
    Partner("globex", "globex-2b9e4a10", tuple(range(10)), 1.5, 12_000, 32, (7, 19), -5),
    Partner("initech", "initech-c0ffee01", (7, 8, 9), 2.0, 600, 1, (9, 17), 0),
    Partner("umbrella", "umbrella-5eed5eed", (1, 4, 7), 0.5, 2_000, 4, (0, 24), 8, weekends=True),
    Partner("hooli", "hooli-ba7c4000", tuple(range(10)), 1.0, 1_500, 16, (9, 18), 2,
            nightly_rows=8_192),
)


@functools.lru_cache(maxsize=1)
def _model() -> tuple[Any, Any]:
    """The enclave's model (trained as the image build trains it) and its input cells."""
    from enclave_images.enclave.input_cells import InputCells
    from enclave_images.enclave.model import DigitsModel
    from enclave_images.model.train import train

    data, _, _ = train()
    model = DigitsModel.from_bytes(data)
    return model, InputCells.for_weights(model.w1)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    inputs, labels = load_digits(return_X_y=True)
    return inputs, labels


def _request_id(rng: np.random.Generator) -> str:
    return base64.b64encode(rng.bytes(12)).decode()[:15] + "="


def _event(rng: np.random.Generator, at: float, client_id: str, partner: str,
           rows: np.ndarray) -> dict[str, Any]:
    _, cells = _model()
    batch = rows.tolist()
    summary = cells.summary(batch)
    request_bytes = 14 + sum(len(str(v)) + 2 for v in batch[0]) * len(batch)
    return inference_event(
        source="enclave", request_id=_request_id(rng), client_id=client_id, partner=partner,
        route=ROUTE, rows=len(batch), request_bytes=request_bytes,
        response_bytes=12 + 3 * len(batch), latency_ms=float(2 + 0.02 * len(batch) + rng.exponential(1)),
        model="digits", model_version="1", decision="served", reason=None, status=200, at=at,
        input_cells=summary["inputCells"], input_cell_count=summary["inputCellCount"])


def _partner_rows(rng: np.random.Generator, partner: Partner, count: int) -> np.ndarray:
    inputs, labels = _digits()
    pool = np.flatnonzero(np.isin(labels, partner.classes))
    chosen = inputs[rng.choice(pool, count)]
    rows: np.ndarray = np.clip(np.rint(chosen + rng.normal(0, partner.noise, chosen.shape)), 0, 16)
    return rows


def _day_requests(rng: np.random.Generator, partner: Partner, day: int) -> Iterator[tuple[float, int]]:
    """(time, rows) of one partner's requests on one day."""
    midnight = START_S + day * DAY_S - partner.utc_offset * HOUR_S
    weekday = (day % 7) < 5
    if weekday or partner.weekends:
        # Volume varies from day to day; requests are spread over the working hours, busiest mid-day.
        rows_today = int(partner.rows_per_day * rng.uniform(0.6, 1.4))
        if rng.random() < SURGE_CHANCE:
            rows_today = int(rows_today * SURGE)  # month-end, a backlog: a busy day now and then
        first, last = partner.hours
        served = 0
        while served < rows_today:
            rows = 1 if partner.batch == 1 else int(max(1, min(1024, rng.poisson(partner.batch))))
            hour = rng.triangular(first, (first + last) / 2, last)
            yield midnight + hour * HOUR_S, rows
            served += rows
    if partner.nightly_rows and weekday:
        for index in range(partner.nightly_rows // 1024):
            yield midnight + 2 * HOUR_S + index * 20 + rng.uniform(0, 5), 1024


def benign_traffic(days: int = 28, seed: int = 0,
                   partners: tuple[Partner, ...] = PARTNERS) -> list[dict[str, Any]]:
    """`days` days of every partner's requests, one served inference event each, oldest first."""
    rng = np.random.default_rng(seed)
    timed: list[tuple[float, dict[str, Any]]] = []
    for partner in partners:
        for day in range(days):
            for at, rows in _day_requests(rng, partner, day):
                timed.append((at, _event(rng, at, partner.client_id, partner.name,
                                         _partner_rows(rng, partner, rows))))
    timed.sort(key=lambda item: item[0])
    return [event for _, event in timed]


def uniform_extraction(*, start_s: float, rows: int = 20_000, batch: int = 32, every_s: float = 10.0,
                       client_id: str = "probe-9d1e0b77", partner: str = "acme",
                       seed: int = 1) -> list[dict[str, Any]]:
    """A client querying uniform random inputs over the pixel range, `batch` rows every `every_s`."""
    rng = np.random.default_rng(seed)
    events = []
    for index in range(rows // batch):
        events.append(_event(rng, start_s + index * every_s, client_id, partner,
                             np.rint(rng.uniform(0, 16, (batch, 64)))))
    return events


def perturbation_extraction(*, start_s: float, partner: Partner = PARTNERS[0], rows: int = 20_000,
                            seeds: int = 20, step: float = 3.0, seed: int = 2) -> list[dict[str, Any]]:
    """A partner's credentials used to label perturbations of a few seed digits (Jacobian-style
    augmentation, the perturbation drawn at random: the label only is returned), at ten times that
    partner's daily volume, inside its working hours from `start_s` (its local midnight)."""
    rng = np.random.default_rng(seed)
    inputs, _ = _digits()
    base = inputs[rng.choice(len(inputs), seeds, replace=False)]
    first, last = partner.hours
    per_hour = partner.rows_per_day * 10 // (last - first)
    events: list[dict[str, Any]] = []
    served, hour = 0, first
    while served < rows:
        at = start_s + hour * HOUR_S
        for _ in range(max(1, per_hour // partner.batch)):
            picked = base[rng.integers(0, seeds, partner.batch)]
            noisy = np.clip(np.rint(picked + rng.normal(0, step, picked.shape)), 0, 16)
            events.append(_event(rng, at + rng.uniform(0, HOUR_S - 1), partner.client_id,
                                 partner.name, noisy))
            served += partner.batch
        hour += 1
        if hour >= last:
            hour, start_s = first, start_s + DAY_S
    events.sort(key=lambda event: event["time"])
    return events


def evaluate(days: int = 28, seed: int = 0) -> dict[str, Any]:
    """The extraction model over benign traffic with both extraction clients mixed in at day 21: the
    rows each had drawn at its first signal, and the benign false findings per 10,000 events."""
    from ztai_runtime.detect.engine import Engine
    from ztai_runtime.detect.extraction import Extraction
    from ztai_runtime.detect.sources import event_from_record

    benign = benign_traffic(days, seed)
    attack_day = min(days - 1, 21)
    # The attackers' generators are seeded apart from the benign one (their request ids differ).
    probe = uniform_extraction(start_s=START_S + attack_day * DAY_S + 13 * HOUR_S, seed=10_001 + seed)
    partner = PARTNERS[0]
    stolen = perturbation_extraction(start_s=START_S + attack_day * DAY_S - partner.utc_offset * HOUR_S,
                                     partner=partner, seed=20_002 + seed)
    probe_ids = {event["requestId"] for event in probe}
    attack_ids = probe_ids | {event["requestId"] for event in stolen}
    if len(attack_ids) != len(probe) + len(stolen) or attack_ids & {e["requestId"] for e in benign}:
        raise AssertionError("request ids collide: the evaluation could not tell events apart")
    records = sorted(benign + probe + stolen, key=lambda event: event["time"])
    engine = Engine([Extraction()])
    served: dict[str, int] = {}
    # The rows each attacker had drawn when each of its events was answered.
    drawn: dict[str, tuple[str, int]] = {}
    for index, record in enumerate(records):
        uid = record["requestId"]
        if uid in attack_ids:
            name = "probe" if uid in probe_ids else "stolen"
            served[name] = served.get(name, 0) + record["rows"]
            drawn[uid] = (name, served[name])
        engine.process(event_from_record(record, f"traffic:[{index}]"))
    findings = engine.finish()
    first_flag: dict[str, int] = {}
    first_reason: dict[str, str] = {}
    for finding in findings:
        for uid in finding.event_ids:
            if uid in drawn:
                name, rows = drawn[uid]
                if rows < first_flag.get(name, rows + 1):
                    first_flag[name], first_reason[name] = rows, finding.reason
    false = [f for f in findings if not set(f.event_ids) & attack_ids]
    return {"benignEvents": len(benign), "days": days,
            "falseFindings": len(false), "falsePer10k": 10_000 * len(false) / max(1, len(benign)),
            "falseFindingReasons": [f.reason for f in false],
            "flaggedAfterRows": {name: first_flag.get(name) for name in ("probe", "stolen")},
            "reasons": first_reason,
            "attackRows": served}


def replication(sizes: tuple[int, ...] = (100, 200, 500, 1_000, 2_000, 5_000, 20_000),
                seed: int = 0) -> dict[str, dict[int, float]]:
    """For each query strategy and N: the agreement with the model, on the held-out digits, of a
    surrogate of the same architecture (64 hidden units, the attacker's best case) trained on N
    inputs and the labels the model gave them."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    model, _ = _model()
    inputs, _ = _digits()
    pool, held_out = train_test_split(inputs, test_size=0.25, random_state=0)  # as train() splits

    def labels(rows: np.ndarray) -> np.ndarray:
        return np.array([label for start in range(0, len(rows), 1024)
                         for label in model.predict(rows[start:start + 1024].tolist())])

    rng = np.random.default_rng(seed)
    seeds = pool[rng.choice(len(pool), 20, replace=False)]
    def uniform(n: int) -> np.ndarray:
        rows: np.ndarray = np.rint(rng.uniform(0, 16, (n, 64)))
        return rows

    def natural(n: int) -> np.ndarray:
        rows: np.ndarray = pool[rng.integers(0, len(pool), n)]
        return rows

    def perturbed(n: int) -> np.ndarray:
        rows: np.ndarray = np.clip(np.rint(seeds[rng.integers(0, 20, n)] + rng.normal(0, 3, (n, 64))),
                                   0, 16)
        return rows

    strategies = {"uniform": uniform, "natural": natural, "perturbed seeds": perturbed}
    truth = labels(held_out)
    curves: dict[str, dict[int, float]] = {}
    for name, draw in strategies.items():
        curves[name] = {}
        for size in sizes:
            queries = draw(size)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                surrogate = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=seed)
                surrogate.fit(queries / 16.0, labels(queries))
            curves[name][size] = float(np.mean(surrogate.predict(held_out / 16.0) == truth))
    return curves


def speed(days: int = 7, seed: int = 0, repeat: int = 5) -> float:
    """Microseconds per event of `Extraction.observe` over a week of traffic with a probe in it
    (the best of `repeat` runs; events parsed beforehand)."""
    import time

    from ztai_runtime.detect.extraction import Extraction
    from ztai_runtime.detect.signals import principal_of
    from ztai_runtime.detect.sources import event_from_record

    records = benign_traffic(days, seed) + uniform_extraction(start_s=START_S + 3 * DAY_S,
                                                              seed=10_001 + seed)
    records.sort(key=lambda event: event["time"])
    events = [event_from_record(record, f"traffic:[{index}]") for index, record in enumerate(records)]
    pairs = [(event, principal_of(event)) for event in events]
    best = float("inf")
    for _ in range(repeat):
        observe = Extraction().observe
        started = time.perf_counter()
        for event, principal in pairs:
            observe(event, principal)
        best = min(best, time.perf_counter() - started)
    return best / len(pairs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed", action="store_true", help="the detector's cost per event")
    parser.add_argument("--replication", action="store_true",
                        help="surrogate agreement after N labels of each query strategy")
    args = parser.parse_args()
    if args.replication:
        for name, curve in replication(seed=args.seed).items():
            print(f"{name:>16}: " + ", ".join(f"N={size:,} {agreement:.1%}"
                                                for size, agreement in curve.items()))
    if args.speed:
        print(f"Extraction.observe: {speed(seed=args.seed):.2f} µs per inference event")
    result = evaluate(args.days, args.seed)
    print(f"{result['benignEvents']:,} benign inference events over {result['days']} days")
    for name, rows in result["flaggedAfterRows"].items():
        print(f"  {name}: flagged after {rows if rows is None else format(rows, ',')} rows "
              f"(of {result['attackRows'].get(name, 0):,})")
        print(f"    {result['reasons'].get(name)}")
    print(f"  benign false findings: {result['falseFindings']} "
          f"({result['falsePer10k']:.2f} per 10,000 events)")
    for reason in result["falseFindingReasons"]:
        print(f"    {reason}")


if __name__ == "__main__":
    main()
