""""Which target should I ship?": the fastest one that keeps the accuracy budget.

Per model, machine, device class and batch size, among the targets measured there: those
whose quality drop against FP32 stays within `max_drop` points, and of those the one with
the lowest p50 latency. The quality is the task's headline metric (`Accuracy.metric`: top-1,
box F1, CER against ground truth where the eval set has it, else agreement with FP32).
Where the fastest INT8
target within budget is not faster than the fastest FP32 one, the recommendation says so
plainly: INT8 does not pay there. The Pareto front (no other target both faster and more
accurate) is what the latency-vs-accuracy plot marks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from quantkit.benchmark.formatting import fmt_ms, machine_name
from quantkit.benchmark.results import BenchRecord, BenchResults, Status

DEFAULT_MAX_DROP = 1.0  # points of the headline metric, when the user sets no budget


@dataclass(frozen=True)
class Candidate:
    target: str
    precision: str
    p50_ms: float
    quality: float | None  # the headline metric, in its unit (% or dB)
    drop_points: float | None  # against the FP32 reference (0 for the reference; lower wins)
    pareto: bool = False


@dataclass(frozen=True)
class Recommendation:
    """The answer for one machine, device class and batch size."""

    machine: str
    device: str
    batch_size: int
    metric: str
    model: str | None  # the zoo model (None: a single-model run)
    max_drop: float
    target: str | None  # None: no target kept the budget
    p50_ms: float | None
    drop_points: float | None
    int8_pays: bool | None  # None: no INT8 and FP32 pair to compare
    summary: str
    candidates: tuple[Candidate, ...]

    def to_dict(self) -> dict:
        record = asdict(self)
        record["candidates"] = [asdict(candidate) for candidate in self.candidates]
        return record


def quality(record: BenchRecord) -> tuple[str, float | None, float | None]:
    """(headline label, value in its unit: % for fractions, dB for SQNR, drop in points vs
    FP32) of one measured record."""
    accuracy = record.accuracy
    if accuracy is None or accuracy.metric is None:
        return "none", None, None
    value = accuracy.value
    if value is not None and accuracy.unit != "dB":
        value *= 100
    return accuracy.label or accuracy.metric, value, accuracy.drop_points


def recommend(results: BenchResults, max_drop: float = DEFAULT_MAX_DROP
              ) -> list[Recommendation]:
    groups: dict[tuple[str, str, str, int], list[BenchRecord]] = {}
    for record in results.records:
        if record.status == Status.OK and record.batch_size is not None \
                and record.latency_ms and "p50_ms" in record.latency_ms:
            key = (record.model or "", machine_name(record), record.device, record.batch_size)
            groups.setdefault(key, []).append(record)
    return [_answer(model or None, machine, device, batch, records, max_drop)
            for (model, machine, device, batch), records in sorted(groups.items())]


def _answer(model: str | None, machine: str, device: str, batch: int,
            records: list[BenchRecord], max_drop: float) -> Recommendation:
    measured = []
    for record in records:
        metric, value, drop = quality(record)
        measured.append(Candidate(record.target, str(record.precision),
                                  record.latency_ms["p50_ms"], value, drop))
    candidates = tuple(_mark_pareto(measured))
    metric = next((quality(record)[0] for record in records if quality(record)[1] is not None),
                  "none")
    within = [c for c in candidates if c.drop_points is not None and c.drop_points <= max_drop]
    best = min(within, key=lambda c: c.p50_ms, default=None)
    int8 = min((c for c in within if c.precision == "int8"), key=lambda c: c.p50_ms,
               default=None)
    fp32 = min((c for c in candidates if c.precision == "fp32"), key=lambda c: c.p50_ms,
               default=None)
    pays = None if int8 is None or fp32 is None else int8.p50_ms < fp32.p50_ms
    where = (f"{model} on " if model else "") + f"{machine} ({device}), batch {batch}"
    if best is None:
        summary = (f"{where}: no target kept the {max_drop:g}-point budget of {metric}"
                   if metric != "none" else f"{where}: no accuracy measured (give --eval)")
    else:
        summary = (f"{where}: ship {best.target} ({fmt_ms(best.p50_ms)} ms p50, drop "
                   f"{best.drop_points:.2f} of {max_drop:g} points of {metric})")
    if pays is False:
        summary += (f"; INT8 does not pay here: the fastest INT8 within budget, {int8.target}, "
                    f"takes {fmt_ms(int8.p50_ms)} ms, FP32 {fp32.target} {fmt_ms(fp32.p50_ms)} ms")
    elif pays:
        summary += (f"; INT8 {int8.target} is {fp32.p50_ms / int8.p50_ms:.2f}x faster than the "
                    f"fastest FP32 ({fp32.target})")
    return Recommendation(machine, device, batch, metric, model, max_drop,
                          best.target if best else None, best.p50_ms if best else None,
                          best.drop_points if best else None, pays, summary, candidates)


def _mark_pareto(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Flag the candidates no other one beats on both latency and quality (the drop vs
    FP32: lower is better whatever the metric's direction)."""
    candidates = list(candidates)
    marked = []
    for this in candidates:
        dominated = this.drop_points is None or any(
            other is not this and other.drop_points is not None
            and other.p50_ms <= this.p50_ms and other.drop_points <= this.drop_points
            and (other.p50_ms < this.p50_ms or other.drop_points < this.drop_points)
            for other in candidates)
        marked.append(Candidate(this.target, this.precision, this.p50_ms, this.quality,
                                this.drop_points, pareto=not dominated))
    return marked
