"""Accuracy budget: the algorithm and the smallest skip list that keep the drop in budget.

Why: "calibrate, measure, edit the skip list by hand, repeat" is what users of PaddleSlim
do today. Here the search is bounded and reported, in the spirit of NNCF's accuracy
control: try the asked algorithm, then the other candidates (one calibration each; a third
of `max_trials` at most); if none is within `max_drop` points, rank the best one's layers
by sensitivity (each layer
quantized alone) and keep the most harmful ones in float, one more per trial, until the
drop holds or `max_trials` variants were measured. The drop is top-1 points against FP32
with labels, else the points of argmax disagreement with FP32; for detection and
recognition eval sets it is their task metric's drop as bench reports it (box F1, CER;
`quantkit.metrics.tasks.fp32_drop`): an argmax over pixels or time steps says nothing.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from quantkit.calibration.config import CalibrationConfig
from quantkit.calibration.sensitivity import OutputError, analyze
from quantkit.calibration.session import CalibrationSession
from quantkit.errors import QuantkitError

CANDIDATE_ALGOS = ("hist", "mse", "KL", "avg", "abs_max")
DEFAULT_MAX_TRIALS = 12


@dataclass(frozen=True)
class Trial:
    algo: str
    skip: tuple[str, ...]
    drop_points: float
    error: OutputError


@dataclass
class BudgetResult:
    """What was tried, in order, and the chosen variant (None when nothing met the budget)."""

    max_drop: float
    trials: list[Trial] = field(default_factory=list)
    chosen: Trial | None = None
    ranking: list[str] = field(default_factory=list)  # layers worst first, if analysed

    @property
    def met(self) -> bool:
        return self.chosen is not None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"met": self.met}

    def summary(self) -> str:
        lines = [f"accuracy budget: max drop {self.max_drop} points"]
        for number, trial in enumerate(self.trials, 1):
            mark = "  <- chosen" if trial is self.chosen else ""
            lines.append(f"  trial {number}: algo {trial.algo}, {len(trial.skip)} layer(s) in "
                         f"float, drop {trial.drop_points:.2f} points{mark}")
        if not self.met:
            lines.append("  no trial met the budget")
        return "\n".join(lines)


def search(make_session: Callable[[CalibrationConfig], CalibrationSession],
           config: CalibrationConfig, inputs: Mapping[str, np.ndarray],
           labels: np.ndarray | None, max_drop: float,
           algos: Sequence[str] | None = None, max_trials: int = DEFAULT_MAX_TRIALS,
           on_event: Callable[[str], None] = lambda message: None,
           drop_of: Callable[[np.ndarray, np.ndarray], float] | None = None
           ) -> tuple[BudgetResult, CalibrationSession | None]:
    """Find the first variant within `max_drop`; return it with the session that wrote it.

    `drop_of(outputs, fp32_outputs)` replaces the default drop (top-1 or disagreement).
    """
    if not (isinstance(max_drop, (int, float)) and math.isfinite(max_drop) and max_drop >= 0):
        raise QuantkitError(f"max drop (--max-drop) must be a finite number of points >= 0, "
                            f"got {max_drop!r}")
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise QuantkitError(f"max trials (--max-trials) must be a whole number >= 1, got "
                            f"{max_trials!r}")
    result = BudgetResult(max_drop)
    sessions: dict[str, CalibrationSession] = {}
    reference = None
    # A third of the trials (at least one) for algorithms, the rest for skip lists.
    for algo in _algo_order(config.algo, algos)[:max(1, max_trials // 3)]:
        session = sessions[algo] = make_session(dataclasses.replace(config, algo=algo))
        if reference is None:
            reference = session.outputs(inputs, quantized=False)
        trial = _measure(session, algo, config.skip_tensor_list, inputs, reference, labels,
                         drop_of)
        result.trials.append(trial)
        on_event(f"  {algo}: drop {trial.drop_points:.2f} points")
        if trial.drop_points <= max_drop:
            result.chosen = trial
            return result, session
    best = min(result.trials, key=lambda t: t.drop_points)
    session = sessions[best.algo]
    if len(result.trials) >= max_trials:
        return result, None
    on_event(f"  ranking {len(session.layers)} layers of {best.algo} by sensitivity")
    report = analyze(session, inputs, labels)
    result.ranking = report.ranked_layers()
    skip = list(config.skip_tensor_list)
    for layer in result.ranking:
        if len(result.trials) >= max_trials:
            break
        if layer in skip:
            continue
        skip.append(layer)
        trial = _measure(session, best.algo, tuple(skip), inputs, reference, labels, drop_of)
        result.trials.append(trial)
        on_event(f"  {best.algo} with {len(skip)} layer(s) in float: drop "
                 f"{trial.drop_points:.2f} points")
        if trial.drop_points <= max_drop:
            result.chosen = trial
            return result, session
    return result, None


def _algo_order(first: str, algos: Iterable[str] | None) -> list[str]:
    order = [first] + [a for a in (algos if algos is not None else CANDIDATE_ALGOS) if a != first]
    return list(dict.fromkeys(order))


def _measure(session: CalibrationSession, algo: str, skip: Sequence[str],
             inputs: Mapping[str, np.ndarray], reference: np.ndarray,
             labels: np.ndarray | None,
             drop_of: Callable[[np.ndarray, np.ndarray], float] | None = None) -> Trial:
    outputs = session.outputs(inputs, skip=skip)
    error = OutputError.measure(outputs, reference, labels)
    drop = error.drop_points() if drop_of is None else round(drop_of(outputs, reference), 4)
    return Trial(algo, tuple(skip), drop, error)
