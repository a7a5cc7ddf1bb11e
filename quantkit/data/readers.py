"""The calibration data forms PaddleSlim accepts, as one re-iterable stream of checked batches.

PaddleSlim takes a `sample_generator` (one sample per call), a `batch_generator` (one
batch per call) or a `data_loader` (a `paddle.io.DataLoader` or any callable/iterable of
batches); Paddle 2.6's core PTQ accepts only a `paddle.io.DataLoader`, so the tutorial's
own sample generator is rejected there. Here every form, and `Dataset.reader()`, becomes
a `FeedBatches` whose batches passed `check_feeds`.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from quantkit.data.feeds import FeedSpec, check_feeds
from quantkit.errors import QuantkitError


class FeedBatches:
    """Re-iterable batches of `{feed name: ndarray}`, each checked against the feeds."""

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
        where = f"calibration batch {index}"
        if isinstance(batch, (list, tuple)) and len(batch) == 1 and isinstance(batch[0], Mapping):
            batch = batch[0]  # a static-mode DataLoader yields one dict per place
        if isinstance(batch, Mapping):
            missing = [f.name for f in self.feeds if f.name not in batch]
            if missing:
                raise QuantkitError(f"{where} has no value for feed {', '.join(missing)} (it "
                                    f"has {', '.join(map(str, batch))})")
            fields = [batch[f.name] for f in self.feeds]
        elif isinstance(batch, (list, tuple)):
            if len(batch) < len(self.feeds):
                raise QuantkitError(f"{where} has {len(batch)} fields, the model has "
                                    f"{len(self.feeds)} feeds "
                                    f"({', '.join(f.name for f in self.feeds)})")
            fields = list(batch[:len(self.feeds)])  # extra fields (labels) are not fed
        else:
            fields = [batch]
        arrays = {feed.name: _unflatten(np.asarray(_to_numpy(value)), feed)
                  for feed, value in zip(self.feeds, fields)}
        return check_feeds(arrays, self.feeds, where)


def _to_numpy(value: Any) -> Any:
    return value.numpy() if hasattr(value, "numpy") and not isinstance(value, np.ndarray) else value


def _unflatten(array: np.ndarray, feed: FeedSpec) -> np.ndarray:
    """Flat samples (MNIST's 784 per row, as PaddleSlim's readers give them) to the feed's
    shape; anything else is left for the checker to judge."""
    sample_shape = feed.shape[1:]
    if (len(sample_shape) and all(d > 0 for d in sample_shape) and array.ndim >= 1
            and array.shape[1:] != sample_shape
            and array.size == array.shape[0] * int(np.prod(sample_shape))):
        return array.reshape((array.shape[0], *sample_shape))
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
    if sample_generator is not None:
        return from_sample_generator(feeds, sample_generator, batch_size, batch_nums)
    if batch_generator is not None:
        return FeedBatches(feeds, batch_generator, batch_nums)
    return from_data_loader(feeds, data_loader, batch_nums)
