"""Latency statistics of one target at one batch size, from raw per-call samples."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from quantkit.errors import QuantkitError

# Above this coefficient of variation the spread is too wide to compare means: the
# machine was busy, or the backend varies (warm-up too short, frequency scaling).
HIGH_CV = 0.15


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call; percentiles by linear interpolation (numpy's default)."""

    iterations: int
    min_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    cv: float  # std / mean

    @property
    def is_noisy(self) -> bool:
        return self.cv > HIGH_CV

    def throughput(self, batch_size: int) -> float:
        """Samples per second of one stream: batch size over the mean call time."""
        return batch_size * 1000.0 / self.mean_ms if self.mean_ms > 0 else float("inf")

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(seconds: Sequence[float]) -> LatencyStats:
    """Statistics of per-call durations in seconds (as `measure.time_calls` returns)."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise QuantkitError("no timed iterations to summarize (iterations must be >= 1)")
    if not np.all(np.isfinite(ms)) or np.any(ms < 0):
        raise QuantkitError("latency samples must be finite and non-negative")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    return LatencyStats(iterations=int(ms.size), min_ms=float(ms.min()), mean_ms=mean,
                        p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
                        max_ms=float(ms.max()), std_ms=std,
                        cv=std / mean if mean > 0 else 0.0)
