"""Train the tutorial's MobileNetV1 on MNIST in Paddle's static graph, on the CPU.

The program is the tutorial's: `MobileNet().net(image, class_dim=10, scale)`,
cross-entropy, `Momentum(0.01, 0.9)`, batches of 64 shuffled each epoch. The only change
is speed: dense convolutions run on oneDNN (see `quantkit.onednn`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from quantkit.datasets.mnist import IMAGE_SHAPE, NUM_CLASSES, MnistSplit
from quantkit.errors import QuantkitError
from quantkit.models import MobileNet
from quantkit.onednn import use_onednn_convolutions
from quantkit.static_mode import static_mode


@dataclass(frozen=True)
class TrainSettings:
    scale: float = 0.5
    steps: int = 938  # one epoch of 60k images at batch 64
    batch_size: int = 64
    learning_rate: float = 0.01
    momentum: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale)
                and 0.05 <= self.scale <= 4.0):
            raise QuantkitError(f"--scale (the MobileNetV1 width) must be from 0.05 to 4, got "
                                f"{self.scale!r}")
        for flag, value in (("--steps", self.steps), ("batch size", self.batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise QuantkitError(f"{flag} must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class TrainedModel:
    """The FP32 inference model written by `save_inference_model` and its last loss."""

    model_dir: Path
    model_filename: str
    params_filename: str
    final_loss: float


def train_mobilenet(data: MnistSplit, out_dir: Path, settings: TrainSettings,
                    on_step: Callable[[int, float], None] | None = None,
                    prefix: str = "fp32") -> TrainedModel:
    """Train and save `{prefix}.pdmodel` / `{prefix}.pdiparams` into `out_dir`."""
    with static_mode():
        return _train(data, out_dir, settings, on_step, prefix)


def _train(data: MnistSplit, out_dir: Path, settings: TrainSettings,
           on_step: Callable[[int, float], None] | None, prefix: str) -> TrainedModel:
    import paddle

    paddle.seed(settings.seed)
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        image = paddle.static.data("image", [None, *IMAGE_SHAPE], "float32")
        label = paddle.static.data("label", [None, 1], "int64")
        logits = MobileNet().net(input=image, class_dim=NUM_CLASSES, scale=settings.scale)
        loss = paddle.mean(paddle.nn.functional.cross_entropy(logits, label))
        test_program = main.clone(for_test=True)
        paddle.optimizer.Momentum(settings.learning_rate, settings.momentum).minimize(loss)
    use_onednn_convolutions(main)

    scope = paddle.static.Scope()
    executor = paddle.static.Executor(paddle.CPUPlace())
    rng = np.random.default_rng(settings.seed)
    with paddle.static.scope_guard(scope):
        executor.run(startup)
        order = rng.permutation(len(data))
        cursor, last_loss = 0, float("nan")
        for step in range(settings.steps):
            if cursor + settings.batch_size > len(order):  # next epoch, drop_last like the tutorial
                order, cursor = rng.permutation(len(data)), 0
            rows = order[cursor:cursor + settings.batch_size]
            cursor += settings.batch_size
            (loss_value,) = executor.run(main, feed={"image": data.images[rows],
                                                     "label": data.labels[rows]},
                                         fetch_list=[loss])
            last_loss = float(np.asarray(loss_value))
            if on_step:
                on_step(step, last_loss)
        out_dir.mkdir(parents=True, exist_ok=True)
        paddle.static.save_inference_model(str(out_dir / prefix), [image], [logits], executor,
                                           program=test_program)
    return TrainedModel(out_dir, f"{prefix}.pdmodel", f"{prefix}.pdiparams", last_loss)
