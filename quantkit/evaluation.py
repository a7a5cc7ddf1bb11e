"""Top-1 accuracy of a saved inference model on labelled arrays."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from quantkit.model_files import check_inference_model
from quantkit.onednn import use_onednn_convolutions


@dataclass(frozen=True)
class Accuracy:
    correct: int
    total: int

    @property
    def top1(self) -> float:
        return self.correct / self.total if self.total else float("nan")


def top1_of_logits(logits: np.ndarray, labels: np.ndarray) -> int:
    """How many rows of `logits` have their argmax equal to the label."""
    return int((np.argmax(logits, axis=1) == labels.reshape(-1)).sum())


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
    """Run the saved program (FP32 or fake-quantized) on `images` and count top-1 hits.

    The program runs in Paddle's executor, so a quantized model is evaluated with its
    quantize/dequantize ops exactly as saved (the numerics INT8 kernels reproduce).
    """
    import paddle

    model = check_inference_model(model_dir, model_filename, params_filename)
    paddle.enable_static()
    scope = paddle.static.Scope()
    executor = paddle.static.Executor(paddle.CPUPlace())
    with paddle.static.scope_guard(scope):
        program, feed_names, fetch_targets = load_program(model, executor)
        use_onednn_convolutions(program)
        correct = 0
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            (logits,) = executor.run(program, feed={feed_names[0]: batch},
                                     fetch_list=fetch_targets[:1])
            correct += top1_of_logits(np.asarray(logits), labels[start:start + batch_size])
            if on_batch:
                on_batch(len(batch))
    return Accuracy(correct, len(images))
