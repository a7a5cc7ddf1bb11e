"""The observer protocol, its shared plumbing and the registry `create_observer` reads.

See the package docstring (quantkit.calibration.observers) for the scale convention.
"""
from __future__ import annotations

import abc
import importlib
import inspect
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.suggest import did_you_mean

EPSILON = 1e-8
"""The scale of an all-zero tensor: core's replacement for a zero scale (utils.py:165)."""


@runtime_checkable
class Observer(Protocol):
    """What a calibration driver needs from an algorithm."""

    passes: int

    def observe(self, x: np.ndarray) -> None:
        """Record one batch of the tensor."""

    def scale(self) -> float | np.ndarray:
        """The abs threshold T (see module doc), per tensor or per channel."""


@runtime_checkable
class TwoPassObserver(Observer, Protocol):
    """An observer with `passes == 2`: all batches, `end_pass()`, all batches, `end_pass()`."""

    def end_pass(self) -> None:
        """Close one pass over the calibration data."""


class ObserverBase(abc.ABC):
    """Shared plumbing: batch counting, dtype checks, empty batches, NaN/Inf refusal.

    Subclasses implement `_observe(x, index)` on a non-empty real array and `_scale()`.
    """

    passes = 1

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.batches = 0  # observe() calls, empty ones included: the index errors report
        self.values = 0   # elements recorded

    @property
    def has_data(self) -> bool:
        return self.values > 0

    def observe(self, x: np.ndarray) -> None:
        index = self.batches
        self.batches += 1
        array = self._as_real(x, index)
        if array.size == 0:
            return
        self._observe(array, index)
        self.values += array.size

    def scale(self) -> float | np.ndarray:
        if not self.has_data:
            raise QuantkitError(f"{self._label}: no values observed in {self.batches} batch(es) "
                                "(all empty); skip quantizing it, as Paddle core does")
        return self._scale()

    @abc.abstractmethod
    def _observe(self, x: np.ndarray, index: int) -> None:
        ...

    @abc.abstractmethod
    def _scale(self) -> float | np.ndarray:
        ...

    @property
    def _label(self) -> str:
        return f"tensor {self.name!r}" if self.name else "the observed tensor"

    def _as_real(self, x, index: int, stage: str = "batch") -> np.ndarray:
        array = np.asarray(x)
        if array.dtype.kind == "f":
            return array
        if array.dtype.kind in "iub":
            return array.astype(np.float64)
        raise QuantkitError(f"{self._label}: {stage} {index} has dtype {array.dtype}; "
                            "observers take real numbers")

    def _refuse(self, index: int, values, stage: str = "batch") -> None:
        """Raise if `values` (statistics of the batch, which propagate NaN/Inf) are not finite."""
        values = np.asarray(values, dtype=np.float64)
        if np.isfinite(values).all():
            return
        what = "NaN" if np.isnan(values).any() else "Inf"
        raise QuantkitError(f"{self._label}: {stage} {index} (0-based, counting the batches "
                            f"this observer has seen) contains {what}; fix the calibration "
                            "data or the model's numerics before calibrating")

    def _min_max(self, x: np.ndarray, index: int, stage: str = "batch") -> tuple[float, float]:
        """min(x) and max(x) of a non-empty batch, refusing NaN/Inf (they propagate here)."""
        lo, hi = float(x.min()), float(x.max())
        self._refuse(index, (lo, hi), stage)
        return lo, hi


def positive(threshold: float) -> float:
    """T, or EPSILON when the tensor was all zeros."""
    return threshold if threshold > 0.0 else EPSILON


# Registry: PaddleSlim's algo names -> observer classes. The basic observers register on
# import of `basic` (below); mse/emd/KL live in `search`, imported only when asked for,
# which either registers them or lists them in a module-level `OBSERVERS` dict.
REGISTRY: dict[str, type] = {}
_LAZY = {"mse": "search", "emd": "search", "KL": "search"}


def register_observer(name: str) -> Callable[[type], type]:
    """Class decorator: make `create_observer(name)` build this class."""
    def add(cls: type) -> type:
        REGISTRY[name] = cls
        return cls
    return add


def known_algos() -> list[str]:
    return sorted(set(REGISTRY) | set(_LAZY), key=str.lower)


def create_observer(algo: str, **options) -> Observer:
    """Build the observer for `algo` (PaddleSlim's names) with its keyword options."""
    cls = _lookup(algo)
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise QuantkitError(f"observer {algo!r} ({cls.__name__}) rejects options "
                            f"{sorted(options)}: {exc}") from None
    return cls(**options)


def _lookup(algo: str) -> type:
    if algo in REGISTRY:
        return REGISTRY[algo]
    if algo in _LAZY:
        module = f"{__package__}.{_LAZY[algo]}"
        try:
            found = importlib.import_module(module)
        except ImportError as exc:
            raise QuantkitError(f"observer {algo!r} lives in {module}, which failed to "
                                f"import: {exc}") from exc
        cls = REGISTRY.get(algo) or getattr(found, "OBSERVERS", {}).get(algo)
        if cls is not None:
            return cls
        raise QuantkitError(f"{module} provides no observer for {algo!r} (neither in its "
                            "OBSERVERS dict nor by @register_observer)")
    known = known_algos()
    hint = did_you_mean(algo, known, n=3, cutoff=0.5, ignore_case=True)
    raise QuantkitError(f"unknown calibration algorithm {algo!r}{hint}: known: "
                        f"{', '.join(known)}")
