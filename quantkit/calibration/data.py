"""Turn the three calibration data forms PaddleSlim accepts into one stream of feed dicts.

PaddleSlim takes a `sample_generator` (one sample per call), a `batch_generator` (one
batch per call) or a `data_loader` (a `paddle.io.DataLoader` or any callable/iterable of
batches). Paddle 2.6's core PTQ accepts only a `paddle.io.DataLoader`, so the tutorial's
own sample generator is rejected there; here every form becomes a `FeedBatches`.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.model_files import FeedSpec


class FeedBatches:
    """Re-iterable batches of `{feed name: ndarray}` built from any PaddleSlim data form."""

    def __init__(self, feeds: Sequence[FeedSpec], make_batches: Callable[[], Iterable[Any]],
                 batch_nums: int | None):
        self.feeds = tuple(feeds)
        self._make_batches = make_batches
        self.batch_nums = batch_nums

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for index, batch in enumerate(self._make_batches()):
            if self.batch_nums is not None and index >= self.batch_nums:
                return
            yield self._to_feed(batch, index)

    def _to_feed(self, batch: Any, index: int) -> dict[str, np.ndarray]:
        if isinstance(batch, (list, tuple)) and len(batch) == 1 and isinstance(batch[0], Mapping):
            batch = batch[0]  # a static-mode DataLoader yields one dict per place
        if isinstance(batch, Mapping):
            missing = [f.name for f in self.feeds if f.name not in batch]
            if missing:
                raise QuantkitError(f"calibration batch {index} has no value for feed "
                                    f"{', '.join(missing)} (it has {', '.join(map(str, batch))})")
            fields = [batch[f.name] for f in self.feeds]
        elif isinstance(batch, (list, tuple)):
            if len(batch) < len(self.feeds):
                raise QuantkitError(f"calibration batch {index} has {len(batch)} fields, the "
                                    f"model has {len(self.feeds)} feeds "
                                    f"({', '.join(f.name for f in self.feeds)})")
            fields = list(batch[:len(self.feeds)])  # extra fields (labels) are not fed
        else:
            fields = [batch]
        return {feed.name: _fit_to_feed(np.asarray(_to_numpy(value)), feed, index)
                for feed, value in zip(self.feeds, fields)}


def _to_numpy(value: Any) -> Any:
    return value.numpy() if hasattr(value, "numpy") and not isinstance(value, np.ndarray) else value


def _fit_to_feed(array: np.ndarray, feed: FeedSpec, index: int) -> np.ndarray:
    """Cast to the feed's dtype and reshape flat samples (e.g. MNIST's 784) to its shape.

    Refuses what would silently calibrate on garbage: a lossy kind change (floats into an
    integer feed, text, objects) and NaN/Inf values, naming the batch and the feed.
    """
    if array.dtype != np.dtype(feed.dtype) and not np.can_cast(array.dtype, feed.dtype,
                                                                 casting="same_kind"):
        raise QuantkitError(f"calibration batch {index} for feed '{feed.name}' has dtype "
                            f"{array.dtype}, the model expects {feed.dtype} (shape "
                            f"{list(array.shape)}, the model's {list(feed.shape)})")
    array = array.astype(feed.dtype, copy=False)
    if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        what = "NaN" if np.isnan(array).any() else "Inf"
        raise QuantkitError(f"calibration batch {index} for feed '{feed.name}' contains {what} "
                            f"(first at index {tuple(int(i) for i in bad)}); calibration "
                            "needs finite inputs")
    sample_shape = feed.shape[1:]
    if len(sample_shape) and all(d > 0 for d in sample_shape) and array.shape[1:] != sample_shape:
        per_sample = int(np.prod(sample_shape))
        if array.ndim >= 1 and array.size == array.shape[0] * per_sample:
            array = array.reshape((array.shape[0], *sample_shape))
        else:
            raise QuantkitError(f"calibration batch {index} for feed '{feed.name}' has shape "
                                f"{list(array.shape)}, the model expects {list(feed.shape)}")
    return array


def from_sample_generator(feeds: Sequence[FeedSpec], sample_generator: Callable[[], Iterable],
                          batch_size: int, batch_nums: int | None) -> FeedBatches:
    """Group samples into batches of `batch_size`, dropping a short last batch like core."""
    def batches() -> Iterator[list[np.ndarray]]:
        pending: list[Any] = []
        for sample in sample_generator():
            fields = sample if isinstance(sample, (list, tuple)) else (sample,)
            pending.append(fields[:len(feeds)])
            if len(pending) == batch_size:
                yield [np.stack([np.asarray(s[i]) for s in pending]) for i in range(len(feeds))]
                pending = []
    return FeedBatches(feeds, batches, batch_nums)


def from_batch_generator(feeds: Sequence[FeedSpec], batch_generator: Callable[[], Iterable],
                         batch_nums: int | None) -> FeedBatches:
    return FeedBatches(feeds, batch_generator, batch_nums)


def from_data_loader(feeds: Sequence[FeedSpec], data_loader: Any,
                     batch_nums: int | None) -> FeedBatches:
    """A `paddle.io.DataLoader`, a generator function, or any re-iterable of batches."""
    if callable(data_loader) and not hasattr(data_loader, "__iter__"):
        return FeedBatches(feeds, data_loader, batch_nums)
    if not hasattr(data_loader, "__iter__"):
        raise QuantkitError(f"data_loader must be a paddle.io.DataLoader, a generator "
                            f"function or an iterable of batches, got {type(data_loader).__name__}")
    if iter(data_loader) is data_loader:
        # A one-shot iterator: keep the batches, since calibration may pass over them twice.
        kept = list(itertools.islice(data_loader, batch_nums))
        return FeedBatches(feeds, lambda: iter(kept), batch_nums)
    return FeedBatches(feeds, lambda: iter(data_loader), batch_nums)


def choose_source(feeds: Sequence[FeedSpec], *, sample_generator=None, batch_generator=None,
                  data_loader=None, batch_size: int = 1,
                  batch_nums: int | None = None) -> FeedBatches:
    """Exactly one of the three data forms, as PaddleSlim requires."""
    given = [name for name, value in (("sample_generator", sample_generator),
                                      ("batch_generator", batch_generator),
                                      ("data_loader", data_loader)) if value is not None]
    if len(given) != 1:
        raise QuantkitError("pass exactly one of sample_generator, batch_generator or "
                            f"data_loader (got {', '.join(given) or 'none'})")
    if batch_size < 1:
        raise QuantkitError(f"batch_size must be >= 1, got {batch_size}")
    if batch_nums is not None and batch_nums < 1:
        raise QuantkitError(f"batch_nums must be >= 1 or None, got {batch_nums}")
    if sample_generator is not None:
        return from_sample_generator(feeds, sample_generator, batch_size, batch_nums)
    if batch_generator is not None:
        return from_batch_generator(feeds, batch_generator, batch_nums)
    return from_data_loader(feeds, data_loader, batch_nums)
