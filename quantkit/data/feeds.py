"""A model's inputs, and the one set of rules every array must pass before it is fed.

Calibration batches, eval sets, smoke inputs and HTTP request bodies all end here, so the
same array is accepted or refused the same way whichever door it came in by:
- names: every feed given, nothing else;
- dtype: floats and integers into a float feed (cast); whole-number floats and integers in
  range into an integer feed; bools into a bool feed only; strings, objects, complex never;
- shape: the feed's rank, and its fixed sizes on every axis after the first (axis 0 is the
  row axis: rows are batched, so a model exported with batch 1 still takes N rows unless
  the caller feeds the model as it is, `fixed_batch=True`);
- values: finite after the cast (a float64 beyond float32's range becomes Inf and is named);
- rows: every feed (and the labels) the same number.
Each refusal is a `FeedError` naming where the data came from, the feed and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from quantkit.errors import QuantkitError


@dataclass(frozen=True)
class FeedSpec:
    """A model input: its name, its shape (-1 for batch or dynamic axes) and numpy dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def describe(self) -> str:
        return f"'{self.name}' {shape_text(self.shape)} {self.dtype}"


class FeedError(QuantkitError):
    """An input array the model cannot take: the message names its source and the feed."""


def shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def feeds_text(feeds: Sequence[FeedSpec]) -> str:
    return ", ".join(feed.describe() for feed in feeds)


def check_names(given: Sequence[str], feeds: Sequence[FeedSpec], where: str) -> None:
    """Every feed present and nothing else."""
    expected = [feed.name for feed in feeds]
    missing = [name for name in expected if name not in given]
    extra = [name for name in given if name not in expected]
    problems = []
    if missing:
        problems.append("missing input " + ", ".join(f"'{name}'" for name in missing))
    if extra:
        problems.append("unknown input " + ", ".join(f"'{name}'" for name in extra))
    if problems:
        raise FeedError(f"{_at(where)}{'; '.join(problems)} (the model takes: "
                        f"{', '.join(expected)})")


def check_feed(value: Any, feed: FeedSpec, where: str, fixed_batch: bool = False
               ) -> np.ndarray:
    """`value` as a contiguous array of the feed's dtype, or a FeedError saying why not."""
    array = np.asarray(value)
    if array.ndim == 0:
        raise FeedError(f"{_at(where)}input '{feed.name}' is a single value, not rows; the "
                        f"model expects {shape_text(feed.shape)}")
    array = _cast(array, feed, where)
    _check_shape(array, feed, where, fixed_batch)
    return array


def check_feeds(arrays: Mapping[str, Any], feeds: Sequence[FeedSpec], where: str,
                fixed_batch: bool = False) -> dict[str, np.ndarray]:
    """All feeds of one batch, checked, in feed order; their row counts must agree."""
    check_names(list(arrays), feeds, where)
    checked = {feed.name: check_feed(arrays[feed.name], feed, where, fixed_batch)
               for feed in feeds}
    check_rows({f"'{name}'": array.shape[0] for name, array in checked.items()}, where)
    return checked


def check_rows(counts: Mapping[str, int], where: str) -> int:
    """The one row count of `counts` (what -> rows), or a FeedError listing them."""
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{what} has {count}" for what, count in counts.items())
        raise FeedError(f"{_at(where)}row counts differ ({listed}); every input and the labels "
                        "need the same number of rows")
    rows = next(iter(counts.values()), 0)
    if rows == 0:
        raise FeedError(f"{where or 'the data'} has zero rows: nothing to feed")
    return int(rows)


def check_labels(labels: Any, where: str) -> np.ndarray:
    """Class indices as int64 [N]: whole numbers >= 0 ([N, 1] is flattened)."""
    labels = np.asarray(labels)
    if labels.ndim == 0:
        raise FeedError(f"{_at(where)}labels are a single value; give one label per row ([N])")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise FeedError(f"{_at(where)}labels have shape {shape_text(labels.shape)}; expected "
                        "[N] or [N, 1] class indices")
    if labels.dtype.kind == "f":
        integral = np.isfinite(labels) & (labels == np.round(labels))
        if not integral.all():
            row = int(np.flatnonzero(~integral)[0])
            raise FeedError(f"{_at(where)}label in row {row} is {labels[row]!r}, not a whole "
                            "number; labels must be class indices")
    elif labels.dtype.kind not in "iu":
        raise FeedError(f"{_at(where)}labels are {labels.dtype}; expected integer class indices")
    if labels.size and labels.min() < 0:
        row = int(np.argmin(labels))
        raise FeedError(f"{_at(where)}label in row {row} is {labels[row]}; class indices "
                        "must be >= 0")
    return np.ascontiguousarray(labels, dtype=np.int64)


def check_label_range(labels: np.ndarray, num_classes: int, where: str) -> None:
    """Refuse labels the model cannot predict: a model with C outputs predicts 0..C-1."""
    labels = np.asarray(labels)
    if labels.size and int(labels.max()) >= num_classes:
        raise FeedError(
            f"{_at(where)}largest label is {int(labels.max())} but the model has {num_classes} "
            f"outputs (classes 0..{num_classes - 1}); labels must be indices into the "
            "model's output")


# --- the rules ---------------------------------------------------------------------------

def _cast(array: np.ndarray, feed: FeedSpec, where: str) -> np.ndarray:
    want = np.dtype(feed.dtype)
    kind = array.dtype.kind
    name = f"{_at(where)}input '{feed.name}'"
    if want.kind == "b" or kind == "b":
        if want.kind != kind:
            held = "true/false values" if kind == "b" else f"{array.dtype} values"
            raise FeedError(f"{name} holds {held}, the model expects {want.name}")
        return np.ascontiguousarray(array)
    if kind not in "iuf":
        raise FeedError(f"{name} holds {_kind_name(array.dtype)}, the model expects "
                        f"{want.name} numbers")
    if want.kind == "f":
        _refuse_non_finite(array, name)
        with np.errstate(over="ignore", invalid="ignore"):
            cast = np.ascontiguousarray(array, dtype=want)
        _refuse_non_finite(cast, name, f" (a value too large for {want.name})")
        return cast
    if kind == "f":  # into an integer feed (token ids, indices): whole numbers only
        _refuse_non_finite(array, name)
        fractional = array != np.round(array)
        if fractional.any():
            first = array[fractional].flat[0]
            raise FeedError(f"{name} is {want.name}: it takes whole numbers, got {first!r}")
    info = np.iinfo(want)
    # Python ints: numpy compares uint64 with int64 limits in float64, where 2**63 - 1
    # and 2**63 are equal.
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            raise FeedError(f"{name} holds values {low}..{high} outside the {want.name} range "
                            f"[{info.min}, {info.max}]")
    return np.ascontiguousarray(array.astype(want))


def _refuse_non_finite(array: np.ndarray, name: str, after: str = "") -> None:
    if array.dtype.kind != "f":
        return
    rows = array.reshape(array.shape[0], -1)
    bad = ~np.isfinite(rows).all(axis=1)
    if not bad.any():
        return
    where_bad = np.flatnonzero(bad)
    what = "NaN" if np.isnan(rows[where_bad[0]]).any() else "Inf"
    more = f" and {len(where_bad) - 1} more row(s)" if len(where_bad) > 1 else ""
    raise FeedError(f"{name} contains {what} in row {int(where_bad[0])}{more}{after}; the "
                    "model needs finite numbers: fix or drop those rows")


def _check_shape(array: np.ndarray, feed: FeedSpec, where: str, fixed_batch: bool) -> None:
    expected = tuple(feed.shape)
    checked = expected if fixed_batch else expected[1:]
    got = array.shape if fixed_batch else array.shape[1:]
    if array.ndim != len(expected) or any(want >= 0 and want != have
                                          for want, have in zip(checked, got)):
        raise FeedError(f"{_at(where)}input '{feed.name}' has shape {shape_text(array.shape)}, the "
                        f"model expects {shape_text(expected)} (-1: any size)")


def _at(where: str) -> str:
    """The message prefix naming where the data came from ("" for an HTTP request)."""
    return f"{where}: " if where else ""


def _kind_name(dtype: np.dtype) -> str:
    if dtype.kind in "US":
        return "strings"
    if dtype.kind == "O":
        return "values that are not numbers (null, objects, or integers too large)"
    if dtype.kind == "c":
        return f"complex numbers ({dtype})"
    return f"{dtype} values"
