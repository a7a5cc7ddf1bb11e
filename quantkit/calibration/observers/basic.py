"""The statistics-only observers: abs_max, avg, min_max, hist, and per-channel weights.

Each mirrors a `_sample_*` method of Paddle core 2.6.2's `PostTrainingQuantization`
(paddle/static/quantization/post_training_quantization.py, "core" below); the class
docstrings cite the lines and say where and why quantkit differs. State is O(1) in the
number of batches (core's avg keeps a list per batch; the histograms here are `bins` ints).
"""
from __future__ import annotations

import numpy as np

from quantkit.calibration.observers.base import ObserverBase, positive, register_observer
from quantkit.calibration.observers.tail import UpperTail, percentile_bin
from quantkit.errors import QuantkitError

# Ops whose weight's output channels are axis 1 (core utils.py:22 `_channelwise_quant_axis1_ops`):
# conv2d_transpose weights are [Cin, Cout/g, kh, kw]; mul/matmul weights are [in, out].
AXIS1_WEIGHT_OPS = frozenset({"conv2d_transpose", "mul", "matmul", "matmul_v2"})


def weight_quant_axis(op_type: str) -> int:
    """The output-channel axis of `op_type`'s weight, as core's PTQ and ONNX passes use it.

    conv2d/depthwise_conv2d weights [Cout, Cin/g, kh, kw] -> 0. (The non-ONNX
    QuantizationTransformPass, quantization_pass.py:347-356, moves matmul_v2 with trans_y to
    axis 0, but core's PTQ still computes axis-1 scales for it; onnx_format uses axis 1.)
    """
    return 1 if op_type in AXIS1_WEIGHT_OPS else 0


def _abs_peak(x: np.ndarray, axis=None) -> np.ndarray:
    """max |x| without allocating |x| (two reductions instead of a full-size copy)."""
    return np.maximum(x.max(axis=axis), -x.min(axis=axis))


@register_observer("abs_max")
class AbsMaxObserver(ObserverBase):
    """T = max |x| over all batches. Core: `_sample_abs_max`, lines 934-943.

    Core stores 0.0 for an all-zero tensor; here it is EPSILON (see the package doc).
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.abs_max = 0.0

    def _observe(self, x: np.ndarray, index: int) -> None:
        lo, hi = self._min_max(x, index)
        self.abs_max = max(self.abs_max, hi, -lo)

    def _scale(self) -> float:
        return positive(self.abs_max)


@register_observer("avg")
class AvgObserver(ObserverBase):
    """T = mean over batches of (mean over axis-0 rows of each row's max |x|).

    Core: `_sample_avg` lines 893-909 appends, per batch,
    `mean(max(|x.reshape(x.shape[0], -1)|, axis=1))`, and `quantize()` lines 486-492 takes
    the plain mean of that list: a mean of per-batch means, so a short last batch weighs as
    much as a full one. Rows are axis 0 whatever it means (a 1-D tensor gives mean |x|).
    Here the list is a running sum and count (float64), so memory does not grow.

    Core bug: a 0-D tensor (shape ()) makes `var_tensor.shape[0]` raise
    `IndexError: tuple index out of range` (line 904) and kills calibration; the
    size-0 check above it passes since a 0-D tensor has one element. Here a 0-D tensor
    counts as one row.
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self._sum = 0.0
        self._count = 0

    def _observe(self, x: np.ndarray, index: int) -> None:
        rows = x.reshape(x.shape[0] if x.ndim else 1, -1)
        row_peaks = _abs_peak(rows, axis=1)
        self._refuse(index, row_peaks)
        self._sum += float(row_peaks.mean(dtype=np.float64))
        self._count += 1

    def _scale(self) -> float:
        return positive(self._sum / self._count)


@register_observer("min_max")
class MinMaxObserver(ObserverBase):
    """Signed min(x) and max(x) over all batches; T = max(|min|, |max|).

    Core: `_sample_min_max` lines 969-983 records the signed min and max. Core's min_max
    never writes a scale: `quantize()` line 503 calls `_save_input_threhold` (op attrs
    `<var>.min`/`<var>.max`, lines 1058-1081) instead of `_update_program`, and outputs get
    `out_min`/`out_max` attrs. The only symmetric scale the int8 passes can take from that
    is T = max(|min|, |max|), which equals abs_max's T; `min_value`/`max_value` keep the
    signed pair for back ends that want it.
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.min_value = float("inf")
        self.max_value = float("-inf")

    def _observe(self, x: np.ndarray, index: int) -> None:
        lo, hi = self._min_max(x, index)
        self.min_value = min(self.min_value, lo)
        self.max_value = max(self.max_value, hi)

    def _scale(self) -> float:
        return positive(max(-self.min_value, self.max_value))


@register_observer("channel_wise_abs_max")
class PerChannelAbsMaxObserver(ObserverBase):
    """T[c] = max |w| over everything but `axis` (use `weight_quant_axis(op_type)`).

    Core: weight_quantize_type 'channel_wise_abs_max' in every `_sample_*` method (e.g.
    lines 914-932): `max(|w[i]|)` for axis 0, `max(|w[:, i]|)` for axis-1 ops. A channel
    that is all zeros gets EPSILON where core stores 0.0 (its quant_tensor then uses 1e-8).
    Several observe() calls take the elementwise max (weights are normally observed once).
    """

    def __init__(self, axis: int = 0, name: str | None = None) -> None:
        super().__init__(name)
        self.axis = axis
        self.abs_max: np.ndarray | None = None

    def _observe(self, x: np.ndarray, index: int) -> None:
        if not -x.ndim <= self.axis < x.ndim:
            raise QuantkitError(f"{self._label}: a weight of shape {x.shape} has no channel "
                                f"axis {self.axis}")
        channels = np.moveaxis(x, self.axis, 0).reshape(x.shape[self.axis], -1)
        peaks = _abs_peak(channels, axis=1).astype(np.float64)
        self._refuse(index, peaks)
        if self.abs_max is None:
            self.abs_max = peaks
        elif self.abs_max.shape != peaks.shape:
            raise QuantkitError(f"{self._label}: batch {index} has {peaks.size} channels on "
                                f"axis {self.axis}, earlier batches had {self.abs_max.size}")
        else:
            np.maximum(self.abs_max, peaks, out=self.abs_max)

    def _scale(self) -> np.ndarray:
        return np.where(self.abs_max > 0.0, self.abs_max, positive(0.0))

    @property
    def peaks(self) -> np.ndarray:
        """max |w| per channel as observed, zeros kept (what core stores as weight scales)."""
        if self.abs_max is None:
            raise QuantkitError(f"{self._label}: no weight observed")
        return self.abs_max


def hist_threshold(counts: np.ndarray, bin_width: float, percent: float) -> float:
    """Core's `_get_hist_scaling_factor` (lines 1473-1487), vectorised, without its bug.

    The first bin i where the cumulative share of counts reaches `percent`; T = (i + 0.5) *
    bin_width, the bin's centre measured from 0. The float steps are core's (divide by the
    total, then a sequential cumsum), so the same bin comes out. Core bug: when rounding
    keeps the cumulative share below `percent` (likely with hist_percent=1.0) core leaves
    hist_index = 0 and returns -0.5 * bin_width, a negative scale; here the last non-empty
    bin is taken instead.
    """
    shares = np.cumsum(counts / float(counts.sum()))
    reached = np.flatnonzero(shares >= percent)
    index = reached[0] if reached.size else np.flatnonzero(counts)[-1]
    return bin_threshold(index, bin_width)


def bin_threshold(index: int, bin_width: float) -> float:
    """Core's T for histogram bin `index`: the bin's centre, measured from 0."""
    return float((index + 0.5) * bin_width)


def _check_hist_options(bins: int, percent: float) -> None:
    if not (isinstance(bins, (int, np.integer)) and bins >= 1):
        raise QuantkitError(f"histogram bins must be a positive integer, got {bins!r}")
    if not 0.0 < percent <= 1.0:
        raise QuantkitError(f"hist percent must be in (0, 1], got {percent!r}")


@register_observer("hist-one-pass")
class HistObserver(ObserverBase):
    """One-pass `hist`: T = the `percent` quantile of |x|, by bin counts, as core finds it.

    Keeps `bins` counts of |x| over [0, top]. The first non-zero batch sets top = its max
    |x|; a batch beyond top doubles top as often as needed (top *= 2**k) and merges each run
    of 2**k old bins into one new bin, which is exact because old edges are new edges. So
    memory is `bins` ints however many batches come, and the data is read once.

    How it differs from core's two passes (`_collect_activation_abs_min_max` lines
    1083-1105, `_init_sampling_act_histogram` 1107-1122, `_sample_histogram` 985-996,
    `_get_hist_scaling_factor` 1473-1487; `TwoPassHistObserver` reproduces them exactly):
    - core's range is [global abs min, global abs max] = [lo, M], bin width (M - lo)/bins;
      here [0, top] with M <= top < 2M (top = M when the first batch holds the max), so
      the bin width w is up to 2x M/bins (with lo = 0, 2x core's). Both return the centre of the bin holding the
      same order statistic, so |T - T_core| <= (w + w_core)/2 + lo (tested).
    - core measures T from 0 although its bins start at lo (a bug: a tensor that is a
      constant c gets T ~ 0.5 whatever c is, since numpy widens the empty range to
      [c-0.5, c+0.5]); starting at 0 has no such offset.
    - all zeros: EPSILON (core gets ~0.5 from the same numpy widening).
    - T is capped at the exact max |x| (a bin centre can pass it once top > max).
    Unlike the two-pass result, top (hence T) depends a little on batch order, within
    the bound above.
    """

    def __init__(self, bins: int = 2048, percent: float = 0.99999,
                 name: str | None = None) -> None:
        super().__init__(name)
        _check_hist_options(bins, percent)
        self.bins = int(bins)
        self.percent = float(percent)
        self.counts = np.zeros(self.bins, dtype=np.int64)
        self.top = 0.0          # upper edge of the histogram's range; 0 until a non-zero batch
        self.abs_max = 0.0      # the exact max |x| seen (top rounds it up)
        self.regrowths = 0
        self._zeros = 0         # zeros seen before top is known; they go to bin 0 later

    @property
    def bin_width(self) -> float:
        return self.top / self.bins

    def histogram(self) -> tuple[np.ndarray, float]:
        """(counts over [0, top], bin width): the histogram a KL search can start from."""
        counts = self.counts.copy()
        counts[0] += self._zeros
        return counts, self.bin_width

    def _observe(self, x: np.ndarray, index: int) -> None:
        lo, hi = self._min_max(x, index)
        peak = max(hi, -lo)
        self.abs_max = max(self.abs_max, peak)
        if peak == 0.0:
            if self.top == 0.0:
                self._zeros += x.size
            else:
                self.counts[0] += x.size
            return
        if self.top == 0.0:
            self.top = peak
            self.counts[0] += self._zeros
            self._zeros = 0
        elif peak > self.top:
            self._regrow(peak)
        # float64 |x|: numpy builds float32 edges for float32 data, which would blur the
        # exact merge of old bins into new ones.
        self.counts += np.histogram(np.abs(x, dtype=np.float64), bins=self.bins,
                                    range=(0.0, self.top))[0]

    def _regrow(self, peak: float) -> None:
        factor = 2
        while self.top * factor < peak:
            factor *= 2
        if factor >= self.bins:
            merged = self.counts.sum(keepdims=True)
        else:
            padded = np.pad(self.counts, (0, -self.bins % factor))
            merged = padded.reshape(-1, factor).sum(axis=1)
        self.counts = np.zeros(self.bins, dtype=np.int64)
        self.counts[:merged.size] = merged
        self.top *= factor
        self.regrowths += 1

    def _scale(self) -> float:
        if self.top == 0.0:
            return positive(0.0)
        # A bin centre past the true max (possible once top > max) only wastes range.
        return min(hist_threshold(self.counts, self.bin_width, self.percent), self.abs_max)


@register_observer("hist")
class TwoPassHistObserver(ObserverBase):
    """Core's `hist` exactly: a range pass, then a histogram of |x| over [abs min, abs max].

    Driven like every two-pass observer (`passes == 2`): `observe(x)` on every batch, then
    `end_pass()`; again `observe(x)` on every batch, then `end_pass()`. Pass 1 records the
    abs min and max (core lines 1083-1105); `end_pass()` fixes numpy's edges over that range
    (1107-1122); pass 2 counts |x| on them (985-996; values outside the range, possible only
    if pass 2 sees other data, are dropped as in core and counted in `dropped`). T: core's
    formula (1473-1487), bugs included: measured from 0 while the bins start at the abs min,
    and ~0.5 for a constant or all-zero tensor. `from_zero=True` starts the bins at 0 instead
    (no offset bug, core's resolution) and gives EPSILON for all zeros. Only the negative-T
    bug of hist_percent=1.0 is always fixed (see `hist_threshold`). Batch order is irrelevant.

    Pass 1 also keeps the upper tail of |x| (`tail.UpperTail`); when it decides core's bin
    for certain, `needs_second_pass` is False and pass 2 may be skipped (fed or not, the
    threshold is the same: tested).
    """

    passes = 2

    def __init__(self, bins: int = 2048, percent: float = 0.99999, from_zero: bool = False,
                 name: str | None = None) -> None:
        super().__init__(name)
        _check_hist_options(bins, percent)
        self.bins = int(bins)
        self.percent = float(percent)
        self.from_zero = from_zero
        self.passes_done = 0
        self.range_batches = 0
        self.abs_min: float | None = None
        self.abs_max: float | None = None
        self.counts = np.zeros(self.bins, dtype=np.int64)
        self.edges: np.ndarray | None = None
        self.dropped = 0
        self._tail: UpperTail | None = UpperTail(1.0 - self.percent, self.bins)
        self._range_values = 0
        self._tail_bin: int | None = None  # core's bin, when pass 1's tail decided it

    @property
    def needs_second_pass(self) -> bool:
        """Whether pass 2's histogram is needed for core's threshold (after pass 1)."""
        return self._tail_bin is None

    def observe(self, x: np.ndarray) -> None:
        if self.passes_done == 0:
            self._observe_range(x)
        elif self.passes_done == 1:
            super().observe(x)  # counts pass-2 batches from 0 in `batches`
        else:
            raise QuantkitError(f"{self._label}: both passes are already closed by end_pass()")

    def end_pass(self) -> None:
        """Close a pass over the data; closing the first fixes core's histogram range."""
        if self.passes_done == 0 and self.abs_max is not None:
            self._range = (0.0 if self.from_zero else self.abs_min, self.abs_max)
            self.edges = np.histogram([], bins=self.bins, range=self._range)[1]
            self._tail_bin = percentile_bin(self._tail, self.edges, self._range_values,
                                            self.percent)
        if self.passes_done == 0:
            self._tail = None  # its memory: the bin is decided or pass 2 counts it
        self.passes_done += 1

    def scale(self) -> float:
        if self.passes_done < 2:
            raise QuantkitError(f"{self._label}: the two-pass hist needs both passes over the "
                                f"data, each closed by end_pass() ({self.passes_done} closed)")
        return super().scale()

    def _observe_range(self, x: np.ndarray) -> None:
        index = self.range_batches
        self.range_batches += 1
        array = self._as_real(x, index, "pass-1 batch")
        if array.size == 0:
            return
        absolute = np.abs(array)
        lo, hi = float(absolute.min()), float(absolute.max())
        self._refuse(index, (lo, hi), "pass-1 batch")
        self.abs_min = lo if self.abs_min is None else min(self.abs_min, lo)
        self.abs_max = hi if self.abs_max is None else max(self.abs_max, hi)
        self._tail.add(absolute.reshape(-1))
        self._range_values += absolute.size

    def _observe(self, x: np.ndarray, index: int) -> None:
        if self.edges is None:
            raise QuantkitError(f"{self._label}: pass 1 saw no values, so there is no range "
                                "to histogram pass 2 on; feed both passes the same batches")
        absolute = np.abs(x, dtype=np.float64)
        self._refuse(index, float(absolute.max()), "pass-2 batch")
        # float64 data -> the float64 edges core built from `np.histogram([], ...)`; numpy's
        # uniform path checks each value against those edges, so the counts are core's
        # `np.histogram(|x|, bins=edges)` exactly, without its per-block sort.
        counts = np.histogram(absolute, bins=self.bins, range=self._range)[0]
        self.counts += counts
        self.dropped += x.size - int(counts.sum())

    @property
    def has_data(self) -> bool:
        return self.values > 0 or (self.batches == 0 and self._tail_bin is not None)

    def _scale(self) -> float:
        if self.from_zero and self.abs_max == 0.0:
            return positive(0.0)
        if self.batches == 0 and self._tail_bin is not None:  # pass 2 was skipped
            return bin_threshold(self._tail_bin, self.edges[1] - self.edges[0])
        if self.counts.sum() == 0:
            raise QuantkitError(f"{self._label}: pass 2 saw no value inside pass 1's range; "
                                "feed both passes the same batches")
        return hist_threshold(self.counts, self.edges[1] - self.edges[0], self.percent)
