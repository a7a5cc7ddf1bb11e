"""A fixed pool of predictors, each owned by one thread and used by one request at a time.

Paddle Inference and Paddle Lite predictors are not thread-safe, and some keep per-thread
state (oneDNN caches), so each predictor is opened, warmed up and run by the same thread
for its whole life. Requests reach the threads through a queue, so the event loop never
blocks on inference.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from typing import Callable

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.targets.base import Predictor

Feeds = dict[str, np.ndarray]
_STOP = None


class PredictorPool:
    """`size` predictors from `open_predictor`; `run(feeds)` uses whichever is free."""

    def __init__(self, open_predictor: Callable[[], Predictor], size: int,
                 warmup: Feeds | None = None, name: str = "model") -> None:
        if size < 1:
            raise QuantkitError(f"bad value for 'workers': {size} (at least 1 predictor)")
        self.size = size
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._runs = 0
        self._rows = 0
        ready = [concurrent.futures.Future() for _ in range(size)]
        self._threads = [
            threading.Thread(target=self._work, args=(open_predictor, warmup, ready[index]),
                             name=f"quantkit-predictor-{index}", daemon=True)
            for index in range(size)]
        for thread in self._threads:
            thread.start()
        try:
            counts = [future.result() for future in ready]
        except Exception as exc:
            self.close()
            if isinstance(exc, QuantkitError):
                raise
            raise QuantkitError(f"could not open a predictor for {name}: "
                                f"{type(exc).__name__}: {exc}") from exc
        # Output count seen by the warm-up run (None when no warm-up input was given).
        self.output_count: int | None = counts[0]

    def _work(self, open_predictor: Callable[[], Predictor], warmup: Feeds | None,
              ready: concurrent.futures.Future) -> None:
        try:
            predictor = open_predictor()
            outputs = predictor.run(warmup) if warmup is not None else None
        except BaseException as exc:  # noqa: BLE001 - reported to the constructor
            ready.set_exception(exc)
            return
        ready.set_result(None if outputs is None else len(outputs))
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            feeds, future = job
            if not future.set_running_or_notify_cancel():
                continue  # the client went away while the request waited
            try:
                outputs = predictor.run(feeds)
            except BaseException as exc:  # noqa: BLE001 - one bad run must not kill the worker
                future.set_exception(exc)
                continue
            with self._lock:
                self._runs += 1
                self._rows += _rows(feeds)
            future.set_result(outputs)

    def submit(self, feeds: Feeds) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((feeds, future))
        return future

    async def run(self, feeds: Feeds) -> list[np.ndarray]:
        """Run on the next free predictor without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(feeds))

    def stats(self) -> dict:
        with self._lock:
            runs, rows = self._runs, self._rows
        return {"workers": self.size, "workers_alive": self.alive, "model_runs": runs,
                "rows_run": rows}

    @property
    def alive(self) -> int:
        return sum(thread.is_alive() for thread in self._threads)

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker once the jobs queued before this call are done."""
        for _ in self._threads:
            self._jobs.put(_STOP)
        for thread in self._threads:
            thread.join(timeout)


def _rows(feeds: Feeds) -> int:
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1
