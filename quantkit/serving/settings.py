"""Serving settings: one frozen value holding every limit, the single source of the defaults.

The CLI help, `serve()` and `create_app()` all read their defaults from here, so the docs
and the code cannot drift apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from quantkit.errors import QuantkitError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """How one server runs its model: pool size, batch limits and request limits."""

    # Predictors in the pool; each runs one request at a time (Paddle predictors are not
    # thread-safe), so this is also how many requests run on the model at once.
    workers: int = 1
    # The largest batch the model ever runs: requests with more rows are refused (413)
    # and dynamic batches stop growing here.
    max_batch: int = 64
    # None: no dynamic batching. A number (>= 0): concurrent requests are merged for up
    # to this many milliseconds (or until `max_batch` rows) and run as one batch.
    max_wait_ms: float | None = None
    # Bodies above this are refused (413) before they are read in full.
    max_body_bytes: int = 16 * MIB

    def __post_init__(self) -> None:
        wait = self.max_wait_ms
        problems = [
            ("workers", "--workers", not _is_int(self.workers) or self.workers < 1,
             "a positive integer: how many predictors serve requests in parallel"),
            ("max_batch", "--max-batch", not _is_int(self.max_batch) or self.max_batch < 1,
             "a positive integer: the most rows one model run may take"),
            ("max_wait_ms", "--max-wait-ms", wait is not None and (
                isinstance(wait, bool) or not isinstance(wait, (int, float))
                or not math.isfinite(wait) or not 0 <= wait <= 10_000),
             "milliseconds from 0 to 10000, or None to turn dynamic batching off"),
            ("max_body_bytes", "--max-body-mb",
             not _is_int(self.max_body_bytes) or self.max_body_bytes < 1024,
             "an integer of at least 1024 bytes"),
        ]
        for name, flag, bad, expected in problems:
            if bad:
                raise QuantkitError(f"bad value for '{name}' ({flag}): "
                                    f"{getattr(self, name)!r} ({expected})")

    @property
    def batching(self) -> bool:
        return self.max_wait_ms is not None

    def to_dict(self) -> dict:
        return {"workers": self.workers, "max_batch": self.max_batch,
                "batching": self.batching, "max_wait_ms": self.max_wait_ms,
                "max_body_bytes": self.max_body_bytes}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


DEFAULTS = ServeSettings()
