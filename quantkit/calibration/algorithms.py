"""The calibration algorithms as a registry of specs: what each one is and needs.

One entry per PaddleSlim algorithm name says how many passes over the data it takes, which
engine runs it (quantkit's observers, or Paddle core's PTQ where quantkit has none), which
of core's threshold tables its scales go into, and which observer measures an activation.
The engine, the CLI and the progress bars all read these facts from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from quantkit.choices import Choice

if TYPE_CHECKING:
    from quantkit.calibration.config import CalibrationConfig

HIST_BINS = 2048  # core's `_histogram_bins`


class Algorithm(Choice):
    KL = "KL"
    HIST = "hist"
    MSE = "mse"
    EMD = "emd"
    AVG = "avg"
    ABS_MAX = "abs_max"
    MIN_MAX = "min_max"
    PTF = "ptf"


class Engine(Choice):
    QUANTKIT = "quantkit"  # quantkit's driver and numpy observers
    PADDLE_CORE = "paddle-core"  # core's PostTrainingQuantization as it is


@dataclass(frozen=True)
class AlgorithmSpec:
    """One algorithm's facts. `observer_options(config)` gives the options of its observer
    (`create_observer(name, ...)`); None where only Paddle core's PTQ can run it."""

    name: Algorithm
    passes: int  # how often the calibration data is read
    observer_options: Callable[["CalibrationConfig"], dict] | None
    var_thresholds: bool = False  # core reads its scales from _quantized_var_threshold
    signed_range: bool = False  # also records min/max (core's min_max attrs)

    @property
    def engine(self) -> Engine:
        return Engine.QUANTKIT if self.observer_options is not None else Engine.PADDLE_CORE

    def observer(self, config: "CalibrationConfig", tensor: str):
        """The observer measuring activation `tensor` under `config`."""
        from quantkit.calibration.observers import create_observer

        if self.observer_options is None:
            raise ValueError(f"algo {self.name} has no quantkit observer")
        return create_observer(str(self.name), **self.observer_options(config), name=tensor)


def _no_options(config) -> dict:
    return {}


ALGORITHMS = {spec.name: spec for spec in (
    # Core's exact two-pass KL and histogram; PaddleSlim's hist_percent (not core's default).
    AlgorithmSpec(Algorithm.KL, passes=2, var_thresholds=True,
                  observer_options=lambda c: {"bits": c.activation_bits, "two_pass": True}),
    AlgorithmSpec(Algorithm.HIST, passes=2, var_thresholds=True,
                  observer_options=lambda c: {"bins": HIST_BINS, "percent": c.hist_percent}),
    AlgorithmSpec(Algorithm.MSE, passes=1, observer_options=lambda c: {
        "bits": c.activation_bits, "onnx_format": c.onnx_format}),
    AlgorithmSpec(Algorithm.EMD, passes=1, observer_options=lambda c: {
        "bits": c.activation_bits, "onnx_format": c.onnx_format}),
    AlgorithmSpec(Algorithm.AVG, passes=1, observer_options=_no_options),
    AlgorithmSpec(Algorithm.ABS_MAX, passes=1, observer_options=_no_options),
    AlgorithmSpec(Algorithm.MIN_MAX, passes=1, observer_options=_no_options, signed_range=True),
    AlgorithmSpec(Algorithm.PTF, passes=1, observer_options=None),  # no quantkit observer
)}


def algorithm(name) -> AlgorithmSpec:
    """The spec of `name` (PaddleSlim's spelling), or a refusal with close matches."""
    return ALGORITHMS[Algorithm.parse(name, "algo")]
