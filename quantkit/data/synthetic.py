"""Stand-in inputs when no data is given: seeded, of the feeds' shapes (for timing only)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from quantkit.data.feeds import FeedSpec
from quantkit.errors import QuantkitError


def synthetic_inputs(feeds: Sequence[FeedSpec], rows: int, seed: int = 0,
                     shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """Seeded inputs of `rows` rows per feed; `shapes` (e.g. a profile's input_shapes) fill
    dynamic dims. Speed only: the values mean nothing to the model."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for feed in feeds:
        shape = tuple((shapes or {}).get(feed.name, feed.shape))
        if any(dim < 0 for dim in shape[1:]):
            raise QuantkitError(f"input '{feed.name}' has dynamic dims {list(shape)}: give a "
                                "data set (--eval), or input_shapes in the target profile, so "
                                "inputs have real shapes")
        shape = (rows, *shape[1:])
        if np.issubdtype(np.dtype(feed.dtype), np.integer):
            arrays[feed.name] = rng.integers(0, 2, size=shape).astype(feed.dtype)
        else:
            arrays[feed.name] = rng.standard_normal(shape).astype(feed.dtype)
    return arrays


def tile_rows(arrays: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """The first `rows` rows, repeating the data when it has fewer (timing needs a batch)."""
    tiled = {}
    for name, array in arrays.items():
        repeats = -(-rows // len(array))
        tiled[name] = np.ascontiguousarray(np.concatenate([array] * repeats)[:rows])
    return tiled
