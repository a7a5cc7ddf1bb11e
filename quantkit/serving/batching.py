"""Dynamic batching: concurrent requests merged along axis 0, run once, split back.

Small requests waste a CPU predictor (a batch of 8 costs far less than 8 batches of 1),
so requests that arrive within `max_wait_ms` of each other are concatenated up to
`max_batch` rows. Only requests whose non-batch shapes and dtypes agree are merged. Runs
on the event loop; the merged batch goes to the predictor pool like any request.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.data.feeds import FeedSpec

Feeds = dict[str, np.ndarray]
RunFn = Callable[[Feeds], Awaitable[list[np.ndarray]]]
GroupKey = tuple


def fixed_batch_reason(feeds: Sequence[FeedSpec]) -> str | None:
    """Why this model cannot be batched dynamically (its batch axis is fixed), or None."""
    for feed in feeds:
        if not feed.shape:
            return f"input '{feed.name}' is a scalar (no batch axis)"
        if feed.shape[0] != -1:
            return f"input '{feed.name}' has a fixed batch size {feed.shape[0]}"
    return None


@dataclass
class _Waiting:
    feeds: Feeds
    rows: int
    future: asyncio.Future


class DynamicBatcher:
    """Collects requests per shape group and runs each group as one batch."""

    def __init__(self, run: RunFn, max_batch: int, max_wait_ms: float) -> None:
        if max_batch < 1:
            raise QuantkitError(f"bad value for 'max_batch': {max_batch} (at least 1 row)")
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._groups: dict[GroupKey, list[_Waiting]] = {}
        self._group_rows: dict[GroupKey, int] = {}
        self._timers: dict[GroupKey, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task] = set()
        self.batches = 0  # model runs made by the batcher
        self.requests = 0  # requests answered through it
        # Set when a model's outputs turn out not to follow the batch axis: batching is
        # then off for good and every request runs on its own.
        self.disabled_reason: str | None = None

    async def run(self, feeds: Feeds, rows: int) -> list[np.ndarray]:
        """The model's outputs for this request's rows alone."""
        self.requests += 1
        if self.disabled_reason is not None or rows >= self.max_batch:
            self.batches += 1
            return await self._run(feeds)
        key = _group_key(feeds)
        if self._group_rows.get(key, 0) + rows > self.max_batch:
            self._flush(key)
        waiting = _Waiting(feeds, rows, asyncio.get_running_loop().create_future())
        self._groups.setdefault(key, []).append(waiting)
        self._group_rows[key] = self._group_rows.get(key, 0) + rows
        if self._group_rows[key] >= self.max_batch:
            self._flush(key)
        elif key not in self._timers:
            self._timers[key] = asyncio.get_running_loop().call_later(
                self.max_wait_s, self._flush, key)
        return await waiting.future

    def stats(self) -> dict:
        return {"enabled": True, "max_batch": self.max_batch,
                "max_wait_ms": self.max_wait_s * 1000.0, "batches": self.batches,
                "requests": self.requests, "disabled_reason": self.disabled_reason}

    def _flush(self, key: GroupKey) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        items = self._groups.pop(key, [])
        self._group_rows.pop(key, None)
        if not items:
            return
        task = asyncio.get_running_loop().create_task(self._run_batch(items))
        self._tasks.add(task)  # keep a reference: the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, items: list[_Waiting]) -> None:
        items = [item for item in items if not item.future.done()]  # drop cancelled
        if not items:
            return
        self.batches += 1
        if len(items) == 1:
            await _settle(items[0], self._run(items[0].feeds))
            return
        names = list(items[0].feeds)
        merged = {name: np.concatenate([item.feeds[name] for item in items]) for name in names}
        total = sum(item.rows for item in items)
        try:
            outputs = await self._run(merged)
        except Exception as exc:  # noqa: BLE001 - every merged request gets the failure
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        unsplit = next((index for index, output in enumerate(outputs)
                        if output.ndim == 0 or output.shape[0] != total), None)
        if unsplit is not None:
            self.disabled_reason = (f"output {unsplit} has shape {list(outputs[unsplit].shape)}"
                                    f" for a batch of {total} rows: it has no batch axis")
            self.batches += len(items) - 1
            await asyncio.gather(*(_settle(item, self._run(item.feeds)) for item in items))
            return
        start = 0
        for item in items:
            stop = start + item.rows
            if not item.future.done():
                item.future.set_result([output[start:stop] for output in outputs])
            start = stop


async def _settle(item: _Waiting, result: Awaitable[list[np.ndarray]]) -> None:
    try:
        outputs = await result
    except Exception as exc:  # noqa: BLE001 - handed to the waiting request
        if not item.future.done():
            item.future.set_exception(exc)
        return
    if not item.future.done():
        item.future.set_result(outputs)


def _group_key(feeds: Feeds) -> GroupKey:
    """Requests merge only when every input agrees on its non-batch shape and dtype."""
    return tuple((name, array.shape[1:], array.dtype.str) for name, array in feeds.items())
