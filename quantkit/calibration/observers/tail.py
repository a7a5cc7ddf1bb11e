"""The upper tail of |x|: enough of a tensor to find a high percentile bin without pass 2.

Why: core's `hist` needs a histogram over [abs min, abs max] of ALL batches, so it reads
the data twice; on the PP-OCRv4 detector at 640 the second read (a forward pass, then
np.histogram of 1.2 GB per batch) is most of calibration's time. Its threshold is the bin
holding the `percent` quantile (0.9999): only the top ~0.01% of values decide it. Kept
during pass 1, they give every bin count above a cutoff once the range is known, hence
core's bin whenever it lies above the cutoff and no float rounding could move it. Where
either is unsure, `percentile_bin` says so and the caller reads the data again: never a
different threshold than core's.
"""
from __future__ import annotations

import math

import numpy as np

_GROWTH = 32  # keep enough for this many times the values seen when pruning
_SLACK = 256
_SAMPLE = 1 << 16  # values sampled from the first batch to place the first cutoff
_CAP = 1 << 18  # values that may tie above any useful cutoff (1 MB of float32)


class UpperTail:
    """Every value >= `cutoff` seen so far (an exact multiset), with `cutoff` rising.

    `share` is the fraction of all values that must stay known (1 - percent). Holds about
    `share` x 32 of the values (0.3% for hist's 0.9999); gives up (`complete` False) when
    pruning cannot get it under twice that and `cap` (ties, e.g. a saturated tensor).
    """

    def __init__(self, share: float, bins: int, cap: int = _CAP) -> None:
        self.share = max(0.0, float(share))
        self.bins = bins
        self.low, self.high = math.inf, -math.inf
        self.cap = cap
        self.cutoff = -math.inf
        self.seen = 0
        self.complete = True
        self._parts: list[np.ndarray] = []
        self._size = 0

    def add(self, magnitudes: np.ndarray) -> None:
        """Record one batch of non-negative values (|x|, flattened)."""
        self.seen += magnitudes.size
        if not self.complete:
            return
        self.low = min(self.low, float(magnitudes.min()))
        self.high = max(self.high, float(magnitudes.max()))
        if self.cutoff == -math.inf:
            self.cutoff = self._first_cutoff(magnitudes)
        part = magnitudes[magnitudes >= self.cutoff] if self.cutoff > -math.inf \
            else magnitudes.copy()
        self._parts.append(part)
        self._size += part.size
        if self._size > 2 * self._keep():
            self._prune()
        if self._size > max(self.cap, 2 * self._keep()):
            self.complete, self._parts, self._size = False, [], 0

    def values(self) -> np.ndarray:
        return np.concatenate(self._parts) if self._parts else np.empty(0, np.float32)

    def _keep(self) -> int:
        return math.ceil(self.share * self.seen * _GROWTH) + _SLACK

    def _below(self, value: float) -> float:
        """`value` lowered by two bins of the range so far: core's bin holding the
        percentile starts below the percentile, and all of that bin must be kept."""
        return value - 2 * (self.high - self.low) / self.bins

    def _first_cutoff(self, magnitudes: np.ndarray) -> float:
        fraction = 2 * self._keep() / max(1, magnitudes.size)
        if fraction >= 1:
            return -math.inf
        sample = magnitudes[::max(1, magnitudes.size // _SAMPLE)]
        rank = int((1 - fraction) * (sample.size - 1))
        return self._below(float(np.partition(sample, rank)[rank]))

    def _prune(self) -> None:
        values = self.values()
        keep = self._keep()
        if values.size > keep:
            rank = values.size - keep
            value = self._below(float(np.partition(values, rank)[rank]))
            if value > self.cutoff:
                values = values[values >= value]
                self.cutoff = value
        self._parts, self._size = [values], values.size


def percentile_bin(tail: UpperTail, edges: np.ndarray, total: int, percent: float) -> int | None:
    """Core's hist bin (`hist_threshold`'s index) from the tail, or None if unsure.

    Core takes the first bin whose float cumulative share reaches `percent`. Bins starting
    at or above the cutoff have exact counts; the bin below them has an exact cumulative
    count too (total minus everything above). The answer is certain if it lies there and
    no cumulative count it compares is within float rounding of percent * total.
    """
    if not tail.complete or total <= 0:
        return None
    bins = edges.size - 1
    values = tail.values().astype(np.float64)
    index = np.minimum(np.searchsorted(edges, values, side="right") - 1, bins - 1)
    counts = np.bincount(index, minlength=bins)
    above = np.concatenate([np.cumsum(counts[::-1])[::-1][1:], [0]])  # counts past bin i
    cumulative = total - above
    first_exact = max(int(np.searchsorted(edges[:-1], tail.cutoff, side="left")) - 1, 0)
    need = percent * total
    margin = total * (bins + 2) * 4.5e-16  # cumsum-of-shares rounding, twice over
    if first_exact > 0 and cumulative[first_exact] >= need - margin:
        return None  # the answer may lie in bins whose counts were not kept
    reached = np.flatnonzero(cumulative[first_exact:] >= need) + first_exact
    if reached.size == 0:
        return None
    found = int(reached[0])
    unsure = [found - 1] if found == bins - 1 else [found - 1, found]
    if any(i >= first_exact and abs(cumulative[i] - need) <= margin for i in unsure):
        return None
    return found
