"""Top-1 of a saved inference model (FP32 or quantized) on labelled arrays, as the tutorial does.

The program runs in Paddle's executor, so a quantized model is evaluated with its
quantize/dequantize ops exactly as saved (the numerics INT8 kernels reproduce); measured
INT8 speed belongs to the target adapters.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from quantkit.evaluation import predict_rows
from quantkit.metrics import top1
from quantkit.model_files import check_inference_model
from quantkit.onednn import use_onednn_convolutions
from quantkit.static_mode import static_mode


@dataclass(frozen=True)
class Accuracy:
    top1: float
    total: int


def load_program(model, executor):
    """`paddle.static.load_inference_model` on a checked model, into the current scope."""
    import paddle

    if model.params_file is not None and model.model_file.suffix == ".pdmodel" \
            and model.params_file.stem == model.model_file.stem:
        return paddle.static.load_inference_model(
            str(model.model_file.with_suffix("")), executor)
    return paddle.static.load_inference_model(
        str(model.model_dir), executor, model_filename=model.model_filename,
        params_filename=model.params_filename)


def evaluate_inference_model(model_dir: str | Path, images: np.ndarray, labels: np.ndarray,
                             model_filename: str | None = None,
                             params_filename: str | None = None, batch_size: int = 500,
                             on_batch: Callable[[int], None] | None = None) -> Accuracy:
    """Run the saved program on `images` (in its own scope) and score top-1 on `labels`."""
    import paddle

    model = check_inference_model(model_dir, model_filename, params_filename)
    with static_mode():
        scope = paddle.static.Scope()
        executor = paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(scope):
            program, feed_names, fetch_targets = load_program(model, executor)
            use_onednn_convolutions(program)

            def run(feeds: dict) -> list[np.ndarray]:
                return executor.run(program, feed={feed_names[0]: feeds["image"]},
                                    fetch_list=fetch_targets[:1])

            (logits,) = predict_rows(run, {"image": images}, batch_size, on_batch)
    return Accuracy(top1(logits, labels), len(images))
