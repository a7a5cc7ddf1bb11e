"""The inputs an artifact expects, read from its own files (every backend says it its way)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.model_files import FeedSpec
from quantkit.targets.base import Artifact


def artifact_feeds(artifact: Artifact) -> tuple[FeedSpec, ...]:
    """Feed specs of a converted artifact: Lite records them, Paddle/ONNX files hold them."""
    recorded = artifact.settings.get("inputs")
    if recorded:
        return tuple(FeedSpec(item["name"], tuple(item["shape"]), item["dtype"])
                     for item in recorded)
    for name in artifact.files:
        if name.endswith(".pdmodel"):
            from quantkit.model_files import check_inference_model

            params = next((other for other in artifact.files if other.endswith(".pdiparams")),
                          None)
            return check_inference_model(artifact.folder, name, params).feeds
        if name.endswith(".onnx"):
            return _onnx_feeds(artifact.folder / name)
    raise QuantkitError(f"{artifact.folder}: cannot tell the model's inputs from "
                        f"{', '.join(artifact.files)}")


def _onnx_feeds(path: Path) -> tuple[FeedSpec, ...]:
    import onnx
    from onnx import helper

    graph = onnx.load(str(path), load_external_data=False).graph
    constants = {item.name for item in graph.initializer}
    feeds = []
    for value in graph.input:
        if value.name in constants:
            continue
        tensor = value.type.tensor_type
        shape = tuple(dim.dim_value if dim.HasField("dim_value") else -1
                      for dim in tensor.shape.dim)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
        feeds.append(FeedSpec(value.name, shape, dtype))
    return tuple(feeds)


def synthetic_inputs(feeds: tuple[FeedSpec, ...], rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded stand-in inputs for timing when no eval set is given (speed only)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for feed in feeds:
        if any(dim < 0 for dim in feed.shape[1:]):
            raise QuantkitError(f"input '{feed.name}' has dynamic dims {list(feed.shape)}: "
                                "give an eval set (--eval) so timing uses real shapes")
        shape = (rows, *feed.shape[1:])
        if np.issubdtype(np.dtype(feed.dtype), np.integer):
            arrays[feed.name] = rng.integers(0, 2, size=shape).astype(feed.dtype)
        else:
            arrays[feed.name] = rng.standard_normal(shape).astype(feed.dtype)
    return arrays


def tile_rows(arrays: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """The first `rows` rows, repeating the data when it has fewer (timing needs a batch)."""
    tiled = {}
    for name, array in arrays.items():
        repeats = -(-rows // len(array))
        tiled[name] = np.ascontiguousarray(np.concatenate([array] * repeats)[:rows])
    return tiled
