"""Search-based activation observers: mse, emd and KL, vectorised numpy ports of Paddle core.

Each observer records statistics batch by batch (`observe(x)`) and computes the threshold at
the end (`scale()`), in the spirit of torch.ao.quantization's observers. The threshold is the
magnitude Paddle stores as an activation's scale (core's `_quantized_threshold`), not
magnitude / 127. References are to paddle 2.6.2, `paddle/static/quantization/`:
post_training_quantization.py (PTQ) and cal_kl_threshold.py (KLT).

- mse / emd (PTQ:760-812, 814-868): per batch, try `s * max|x|` for s = 0.30, 0.32, ... 0.98
  (core's float accumulation stops short of 1.0) and keep, over ALL batches, the candidate
  with the smallest loss on its own batch (ties go to the later one). The elementwise
  fake-quant is core's, op for op; only the sums differ (float32 per block, or float64 for
  emd, here; float32 over the whole tensor in core).
- KL (PTQ:1083-1122, 985-996, 1124-1167; KLT:86-144): a histogram of |x|, then the
  TensorRT-style entropy search over candidate clip bins, here for all candidates at once
  from cumulative sums (`kl_threshold`), equal to core's `cal_kl_threshold`.
  Two passes by default (`two_pass=True`: the range from a first pass, as core does, then
  core's thresholds exactly; the caller runs `passes` passes and calls `end_pass()` after
  each); `two_pass=False` is one pass over a growing histogram, close to core's but not
  equal (see `KlObserver`).
- Memory: O(bins) per KL observer (512 KB one-pass, 16 KB two-pass), O(1) for mse/emd,
  plus temporaries of one batch; nothing grows with the number of batches.
"""
from __future__ import annotations

import math

import numpy as np

from quantkit.errors import QuantkitError

HISTOGRAM_BINS = 2048  # core's `_histogram_bins` (PTQ:371)
ZERO_SCALE = 1e-8  # core's stand-in for max|x| == 0 (PTQ:787, 841)
_FINE_PER_BIN = 32  # one-pass KL: fine bins per KL bin (bounds the grid error to ~6%)
# Block sizes: small enough for the temporaries of one block to stay in cache.
_HIST_BLOCK = 1 << 16  # values per histogram block
_SEARCH_BLOCK = 1 << 13  # values per mse/emd block, times 35 candidates
_KL_BLOCK = 1 << 18  # KL candidates x levels per block


def _core_fractions() -> np.ndarray:
    """The s values of core's `while s <= 1.0: ...; s += 0.02` loop (PTQ:794-797): 35 of them."""
    fractions, s = [], 0.3
    while s <= 1.0:
        fractions.append(s)
        s += 0.02
    return np.array(fractions)


SEARCH_FRACTIONS = _core_fractions()


def _subject(algo: str, name: str | None) -> str:
    return f"{algo} calibration" + (f" of tensor {name!r}" if name else "")


def _prepare(x, subject: str, batch: str) -> tuple[np.ndarray, float, float]:
    """Flatten `x` and return it with min(x) and max(x); refuse NaN/Inf naming the batch.

    float32/float64 stay as they are (core computes in the tensor's type); integers and
    booleans widen to float64, float16 to float32.
    """
    x = np.asarray(x)
    if x.dtype.kind in "iub":
        x = x.astype(np.float64)
    elif x.dtype == np.float16:
        x = x.astype(np.float32)
    elif x.dtype not in (np.float32, np.float64):
        raise QuantkitError(f"{subject}: {batch} has dtype {x.dtype}; observers take real "
                            "numbers")
    x = x.reshape(-1)
    if x.size == 0:
        return x, 0.0, 0.0
    high, low = x.max(), x.min()  # NaN propagates through both
    if not (np.isfinite(high) and np.isfinite(low)):
        raise QuantkitError(f"{subject}: {batch} holds NaN or Inf values; check the model "
                            "and the calibration data")
    return x, float(low), float(high)


def _min_abs(x: np.ndarray, low: float, high: float) -> float:
    """min|x|, without a temporary |x| when x has one sign (ReLU outputs)."""
    if low >= 0:
        return low
    if high <= 0:
        return -high
    return float(np.abs(x).min())


class _ScaleSearch:
    """Shared by mse and emd: per batch, a loss for every candidate; keep the best overall."""

    algo = ""
    passes = 1

    def __init__(self, bits: int = 8, onnx_format: bool = True, name: str | None = None) -> None:
        self.levels = 2 ** (bits - 1) - 1
        self.onnx_format = onnx_format  # symmetric [-128, 127]; else clip to [0, scale]
        self.name = name
        self.batches = 0  # observe() calls, empty ones included
        self.best_loss = math.inf
        self.best_scale: float | None = None

    @property
    def has_data(self) -> bool:
        return self.best_scale is not None

    def observe(self, x) -> None:
        x, low, high = _prepare(x, _subject(self.algo, self.name),
                                f"batch {self.batches} (0-based)")
        abs_max = max(high, -low)
        self.batches += 1
        if x.size == 0:  # core skips empty tensors (PTQ:783-785)
            return
        scales = SEARCH_FRACTIONS * (abs_max or ZERO_SCALE)
        losses = self._losses(x, scales)
        best = losses.min()
        if best <= self.best_loss:  # core's `<=`: a later candidate or batch wins a tie
            self.best_loss = float(best)
            self.best_scale = float(scales[np.flatnonzero(losses == best)[-1]])

    def scale(self) -> float:
        if self.best_scale is None:
            raise QuantkitError(f"{_subject(self.algo, self.name)}: no values observed in "
                                f"{self.batches} batch(es); every tensor was empty")
        return self.best_scale

    def _blocks(self, x: np.ndarray, scales: np.ndarray):
        """Yield (block of x, its fake-quantised copies under every candidate), bounded in size.

        Zeros (half of a ReLU output) quantise to 0 under every candidate, and so do the
        negatives without onnx_format: they are left out here and the losses count them.
        Values within the smallest candidate never reach the clip (x/s*127 <= 127 for every
        s >= |x|), so only the larger ones pay for it; the results are core's, bit for bit.
        """
        s = scales.astype(x.dtype)[:, None]  # core divides a float32 tensor by a Python float
        values = x[x != 0] if self.onnx_format else x[x > 0]
        inside = np.abs(values) <= s[0, 0]
        width = _SEARCH_BLOCK
        buffer = np.empty((len(scales), max(1, min(width, values.size))), x.dtype)
        for clipped, part in ((False, values[inside]), (True, values[~inside])):
            for start in range(0, part.size, width):
                block = part[None, start:start + width]
                q = buffer[:, :block.shape[1]]
                if self.onnx_format:  # PTQ:798-802
                    np.divide(block, s, out=q)
                    q *= self.levels
                    np.round(q, out=q)
                    if clipped:
                        np.clip(q, -self.levels - 1, self.levels, out=q)
                else:  # PTQ:804-808
                    if clipped:
                        np.clip(block, 0.0, s, out=q)
                        q /= s
                    else:
                        np.divide(block, s, out=q)
                    q *= self.levels
                    np.round(q, out=q)
                q /= self.levels
                q *= s
                yield block, q

    def _losses(self, x: np.ndarray, scales: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class MseObserver(_ScaleSearch):
    """Mean squared fake-quant error, searched over 35 fractions of each batch's max|x|."""

    algo = "mse"

    def _losses(self, x: np.ndarray, scales: np.ndarray) -> np.ndarray:
        total = np.zeros(len(scales))
        if not self.onnx_format:  # negatives become 0 under every candidate
            negative = x[x < 0]
            total += np.sum(negative * negative, dtype=np.float64)
        for block, q in self._blocks(x, scales):
            np.subtract(block, q, out=q)
            np.multiply(q, q, out=q)
            total += q.sum(axis=1)  # float32 pairwise per block, as core's mean
        return total / x.size


class EmdObserver(_ScaleSearch):
    """|mean(x) - mean(q)| + |std(x) - std(q)| of the fake-quantised q, searched like mse."""

    algo = "emd"

    def _losses(self, x: np.ndarray, scales: np.ndarray) -> np.ndarray:
        n = x.size
        x64 = x.astype(np.float64)
        x_mean = x64.mean()
        x_std = math.sqrt(max(float(np.dot(x64, x64)) / n - x_mean ** 2, 0.0))
        q_sum, q_square = np.zeros(len(scales)), np.zeros(len(scales))
        wide = None
        for _, q in self._blocks(x, scales):  # in float64: the loss is a small difference
            if wide is None or wide.shape[1] < q.shape[1]:
                wide = np.empty(q.shape)
            q64 = wide[:, :q.shape[1]]
            np.copyto(q64, q)
            q_sum += q64.sum(axis=1)
            q_square += np.einsum("ij,ij->i", q64, q64)
        q_mean = q_sum / n
        q_std = np.sqrt(np.maximum(q_square / n - q_mean ** 2, 0.0))
        return np.abs(x_mean - q_mean) + np.abs(x_std - q_std)


def kl_threshold(hist, bin_width: float, bits: int = 8) -> float:
    """Core's `cal_kl_threshold` (KLT:86-144) without its per-bin Python loops.

    For a candidate i (bins [0, i) kept, the rest folded into bin i-1 as P, and bins
    [0, i) merged into 2**(bits-1)-1 levels then spread back over their non-empty bins
    as Q), core sums p*log(Q_sum*p) - p*log(P_sum*q) bin by bin. That splits into
    sum(p*log p), which is a cumulative sum, and sum over levels of
    mass*log(level_sum/non_empty_bins), which cumulative sums give for every i at once.
    Same candidates, same skip of empty bins, same first-minimum tie rule and fallback.
    """
    hist = np.asarray(hist, dtype=np.float64).reshape(-1)
    n = hist.size
    start = int((n - 1) * 0.5)
    levels = 2 ** (bits - 1) - 1
    total = hist.sum()
    candidates = np.arange(max(start, 1), n)
    candidates = candidates[hist[candidates - 1] != 0]
    if candidates.size == 0 or total <= 0:  # core's fallback (KLT:136-143)
        while start > 0 and hist[start] == 0:
            start -= 1
        return float((start + 0.5) * bin_width)

    cum = np.concatenate(([0.0], np.cumsum(hist)))
    nonempty = np.concatenate(([0], np.cumsum(hist != 0)))
    plogp = np.concatenate(([0.0], np.cumsum(_xlogx(hist))))
    best_kl, best_i = math.inf, 0
    for part in np.array_split(candidates, -(-candidates.size * levels // _KL_BLOCK)):
        bounds = (part // levels)[:, None] * np.arange(levels + 1)
        bounds[:, -1] = part
        level_sum = cum[bounds[:, 1:]] - cum[bounds[:, :-1]]
        level_bins = nonempty[bounds[:, 1:]] - nonempty[bounds[:, :-1]]
        outliers = total - cum[part]
        mass = level_sum.copy()
        mass[:, -1] += outliers
        q = np.divide(level_sum, level_bins, out=np.ones_like(level_sum), where=level_bins > 0)
        p_log_q = (mass * np.log(q)).sum(axis=1)
        last = hist[part - 1] + outliers
        p_log_p = plogp[part - 1] + _xlogx(last)
        kl = (p_log_p - p_log_q) / total + np.log(cum[part]) - math.log(total)
        k = int(np.argmin(kl))
        if kl[k] < best_kl:  # strict, as core: the first minimum wins
            best_kl, best_i = float(kl[k]), int(part[k])
    return float((best_i + 0.5) * bin_width)


def _xlogx(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v * np.log(np.where(v > 0, v, 1.0))


class KlObserver:
    """KL (entropy) threshold of |x|: histogram while observing, core's KL search at the end.

    Two passes (the default, `two_pass=True`, `passes = 2`; call `end_pass()` after each
    pass): pass 1 records min|x| and max|x|, pass 2 counts on core's own edges
    (np.histogram's linspace over [min|x|, max|x|]) exactly as core's np.histogram does, so
    `scale()` equals core's, quirks included: the threshold ignores the range start min|x|
    (KLT:144), values outside the pass-1 range are dropped, and an all-zero tensor gives
    ~0.5 (np.histogram widens an empty range to [-0.5, 0.5]). `from_zero=True` starts the
    bins at 0 instead: core's resolution without the offset, and ZERO_SCALE for all zeros
    (as `TwoPassHistObserver`). This is what calibration uses.

    One pass (`two_pass=False`, `passes = 1`): a histogram of 2048*32 fine bins over
    [0, top), where `top` starts at the first non-zero max|x| and doubles (merging bin pairs
    exactly) when a batch exceeds it. `histogram()` merges the fine bins by the smallest
    integer factor that leaves <= 2048 bins up to the last non-empty one: the KL bins are
    then less than 6.25% wider than core's max|x|/2048 and end within one bin above max|x|.
    The threshold is capped at max|x|. Caveat: KL's objective is nearly flat over the sparse
    top of a histogram, so a slightly different grid can move its minimum far: on 42
    synthetic ReLU/normal/Laplace activations the one-pass threshold was equal to core's or
    within 0.1% in about half the cases, and 1-19% away in the rest.
    """

    algo = "KL"

    def __init__(self, bits: int = 8, bins: int = HISTOGRAM_BINS, two_pass: bool = True,
                 from_zero: bool = False, name: str | None = None) -> None:
        self.bits, self.bins, self.two_pass, self.name = bits, bins, two_pass, name
        self.from_zero = from_zero or not two_pass
        self.passes = 2 if two_pass else 1
        self.passes_done = 0
        self.batches = 0  # observe() calls of the current pass, empty ones included
        self.seen = 0  # elements, over the pass that histograms
        self.low, self.high = math.inf, -math.inf  # min|x|, max|x|
        if two_pass:
            self.edges: np.ndarray | None = None
            self.counts = np.zeros(bins, np.int64)
        else:
            self.top = 0.0
            self.counts = np.zeros(bins * _FINE_PER_BIN, np.int64)

    @property
    def has_data(self) -> bool:
        return self.seen > 0

    def observe(self, x) -> None:
        batch = f"batch {self.batches} (0-based)"
        if self.two_pass:
            batch += f" of pass {self.passes_done + 1}"
        x, low, high = _prepare(x, _subject(self.algo, self.name), batch)
        abs_max = max(high, -low)
        self.batches += 1
        if x.size == 0:
            return
        if not self.two_pass:
            self.high = max(self.high, abs_max)
            self._grow(abs_max)
            self._count_fine(x)
        elif self.passes_done == 0:  # PTQ:1083-1105
            self.low = min(self.low, _min_abs(x, low, high))
            self.high = max(self.high, abs_max)
            return
        elif self.edges is not None:  # PTQ:985-996
            _count_on_edges(x, _min_abs(x, low, high), abs_max, self.edges, self.counts)
        self.seen += x.size

    def end_pass(self) -> None:
        """Close a pass over the data; after the first of two, fix core's histogram range."""
        if self.two_pass and self.passes_done == 0 and self.high >= 0:  # PTQ:1107-1122
            start = 0.0 if self.from_zero else self.low
            self.edges = np.histogram([], bins=self.bins, range=(start, self.high))[1]
        self.passes_done += 1
        self.batches = 0

    def scale(self) -> float:
        subject = _subject(self.algo, self.name)
        if self.two_pass and self.passes_done < 2:
            raise QuantkitError(f"{subject}: two_pass needs both passes over the data, each "
                                f"closed by end_pass() ({self.passes_done} closed)")
        if self.seen == 0:
            raise QuantkitError(f"{subject}: no values observed; every tensor was empty")
        if self.from_zero and self.high == 0.0:
            return ZERO_SCALE
        if self.two_pass:  # PTQ:1158-1163
            return kl_threshold(self.counts, self.edges[1] - self.edges[0], self.bits)
        # a bin centre can pass max|x| once the bins end above it: cap, as core's cannot
        return min(kl_threshold(*self.histogram(), self.bits), self.high)

    def histogram(self) -> tuple[np.ndarray, float]:
        """The KL search's input: counts of |x| from 0 up, and their bin width."""
        if self.two_pass:
            return self.counts.copy(), float(self.edges[1] - self.edges[0])
        fine_width = self.top / self.counts.size
        used = int(np.flatnonzero(self.counts)[-1]) + 1
        merge = -(-used // self.bins)
        coarse = np.zeros(-(-used // merge) * merge, np.int64)
        coarse[:used] = self.counts[:used]
        return coarse.reshape(-1, merge).sum(axis=1), merge * fine_width

    def _grow(self, abs_max: float) -> None:
        if abs_max <= self.top:
            return
        if self.top == 0.0:  # zeros seen so far sit in bin 0 whatever the range
            self.top = abs_max
            return
        factor = 1
        while self.top * factor < abs_max:
            factor *= 2
        fine = self.counts.size
        merged = self.counts.reshape(-1, min(factor, fine)).sum(axis=1)
        self.counts[:] = 0
        self.counts[:merged.size] = merged
        self.top *= factor

    def _count_fine(self, x: np.ndarray) -> None:
        fine = self.counts.size
        if self.top == 0.0:
            self.counts[0] += x.size
            return
        per_unit = fine / self.top
        dtype = x.dtype if per_unit < np.finfo(x.dtype).max else np.dtype(np.float64)
        per_unit = dtype.type(per_unit)
        step = _HIST_BLOCK
        for start in range(0, x.size, step):
            scaled = np.abs(x[start:start + step]).astype(dtype, copy=False)
            scaled *= per_unit
            index = scaled.astype(np.intp)
            np.minimum(index, fine - 1, out=index)
            self.counts += np.bincount(index, minlength=fine)


def _count_on_edges(x: np.ndarray, min_abs: float, abs_max: float, edges: np.ndarray,
                    counts: np.ndarray) -> None:
    """Add np.histogram(|x|, bins=edges) to `counts` for linspace `edges`, in O(n).

    Core passes the edges array, which sends np.histogram down its sort-and-search path.
    Here a value's bin is computed (in x's precision), and only values that land within
    rounding error `tol` of an edge are placed by searching the float64 edges, as numpy
    does: bin k holds edges[k] <= v < edges[k+1], the last bin also v == edges[-1], and
    values outside the edges are dropped. So the counts are np.histogram's, exactly.
    """
    bins = edges.size - 1
    first, last = float(edges[0]), float(edges[-1])
    norm = bins / (last - first)
    dtype = x.dtype
    tol = 8 * np.finfo(dtype).eps * ((abs(first) + abs(last)) * norm + bins)
    if tol > 0.01:  # a range narrow next to its values: float32 cannot place them
        dtype = np.dtype(np.float64)
        tol = 8 * np.finfo(dtype).eps * ((abs(first) + abs(last)) * norm + bins)
    check_range = not (first <= min_abs and abs_max <= last)
    origin, per_unit = dtype.type(first), dtype.type(norm)
    step = _HIST_BLOCK
    for start in range(0, x.size, step):
        a = np.abs(x[start:start + step]).astype(dtype, copy=False)
        if check_range:  # compared in float64: numpy 1.x would round the edges to x's type
            wide = a.astype(np.float64)
            a = a[(wide >= first) & (wide <= last)]
        position = np.subtract(a, origin) if first else np.multiply(a, per_unit)
        if first:
            position *= per_unit
        whole = np.floor(position)
        index = whole.astype(np.intp)
        position -= whole
        position -= 0.5  # now within tol of +-0.5 means within tol of an edge
        near = np.abs(position, out=position) > 0.5 - tol
        if first == 0.0:  # 0 sits on edges[0], in bin 0: the zeros of a ReLU are not near
            near &= a != 0
        near = np.flatnonzero(near)
        if near.size:
            exact = np.searchsorted(edges, a[near].astype(np.float64), side="right") - 1
            index[near] = np.minimum(exact, bins - 1)
        counts += np.bincount(index, minlength=bins)


OBSERVERS = {"mse": MseObserver, "emd": EmdObserver, "KL": KlObserver}
