"""The one evaluation loop: run a model over rows in batches and keep its outputs.

Every stage that scores a model (calibration variants in Paddle's executor, benchmark
runners here or on a board, the demo) feeds rows through `predict_rows` and hands the
outputs to `quantkit.metrics`. numpy only: the benchmark runner ships it to remote hosts.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

Run = Callable[[dict], Sequence[np.ndarray]]  # feeds -> outputs in fetch order


def predict_rows(run: Run, inputs: Mapping[str, np.ndarray], batch_size: int,
                 on_batch: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Every output of `run` on all rows of `inputs`, concatenated over batches."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1 (got {batch_size})")
    rows = min(len(array) for array in inputs.values())
    pieces: list[list[np.ndarray]] = []
    for start in range(0, rows, batch_size):
        feeds = {name: np.ascontiguousarray(array[start:start + batch_size])
                 for name, array in inputs.items()}
        outputs = run(feeds)
        pieces.append([np.asarray(output) for output in outputs])
        if on_batch is not None:
            on_batch(len(next(iter(feeds.values()))))
    return [np.concatenate([piece[index] for piece in pieces])
            for index in range(len(pieces[0]))] if pieces else []
