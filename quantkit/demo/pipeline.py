"""The tutorial end to end: train, save FP32, calibrate, save INT8, evaluate both."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from quantkit.calibration.calibrate import calibrate, calibration_passes
from quantkit.calibration.config import COMMAND_LINE, CalibrationConfig
from quantkit.datasets import mnist
from quantkit.demo.evaluate import evaluate_inference_model
from quantkit.demo.train import TrainSettings, train_mobilenet
from quantkit.errors import QuantkitError


@dataclass(frozen=True)
class DemoSettings:
    train: TrainSettings = field(default_factory=TrainSettings)
    calib_batch_size: int = COMMAND_LINE.batch_size
    calib_batch_nums: int = COMMAND_LINE.batch_nums
    algo: str = str(COMMAND_LINE.algo)
    eval_limit: int | None = None  # None: the full 10k test set

    def __post_init__(self) -> None:
        if self.eval_limit is not None and (isinstance(self.eval_limit, bool) or not
                                            isinstance(self.eval_limit, int)
                                            or self.eval_limit < 1):
            raise QuantkitError(f"--eval-limit must be a whole number >= 1, got "
                                f"{self.eval_limit!r}")


@dataclass(frozen=True)
class DemoResult:
    fp32_top1: float
    int8_top1: float
    eval_images: int
    fp32_bytes: int
    int8_bytes: int
    train_seconds: float
    calibration_seconds: float
    total_seconds: float
    fp32_dir: str
    int8_dir: str
    settings: dict

    def to_dict(self) -> dict:
        return asdict(self)


class DemoProgress:
    """Callbacks the CLI hooks progress bars to; all optional."""

    def stage(self, name: str, total: int | None) -> Callable[[int], None]:
        return lambda advance: None


def model_bytes(folder: Path, names: tuple[str, ...]) -> int:
    return sum((folder / name).stat().st_size for name in names)


def run_demo(out_dir: Path, settings: DemoSettings = DemoSettings(),
             progress: DemoProgress = DemoProgress()) -> DemoResult:
    """Run the tutorial into `out_dir` (`fp32/` and `int8/` inference models)."""
    CalibrationConfig(algo=settings.algo, batch_size=settings.calib_batch_size,
                      batch_nums=settings.calib_batch_nums)  # refuse bad settings before training
    started = time.perf_counter()
    train_data = mnist.load("train")
    test_data = mnist.load("test", settings.eval_limit)

    advance = progress.stage("train", settings.train.steps)
    trained = train_mobilenet(train_data, out_dir / "fp32", settings.train,
                              on_step=lambda step, loss: advance(1))
    train_seconds = time.perf_counter() - started

    advance = progress.stage("evaluate FP32", len(test_data))
    fp32 = evaluate_inference_model(trained.model_dir, test_data.images, test_data.labels,
                                    trained.model_filename, trained.params_filename,
                                    on_batch=advance)

    import paddle

    # The tutorial's slim.quant.quant_post_static call, through the variant that reports
    # progress per batch.
    config = CalibrationConfig(algo=settings.algo, batch_size=settings.calib_batch_size,
                               batch_nums=settings.calib_batch_nums)
    advance = progress.stage("calibrate",
                             settings.calib_batch_nums * calibration_passes(config))
    quantized = calibrate(
        paddle.static.Executor(paddle.CPUPlace()), str(trained.model_dir),
        str(out_dir / "int8"), config,
        sample_generator=mnist.train(),
        model_filename=trained.model_filename,
        params_filename=trained.params_filename,
        scope=paddle.static.Scope(),
        on_batch=lambda: advance(1),
    )

    advance = progress.stage("evaluate INT8", len(test_data))
    int8 = evaluate_inference_model(quantized.path, test_data.images, test_data.labels,
                                    quantized.model_file.name, quantized.params_file.name,
                                    on_batch=advance)
    return DemoResult(
        fp32_top1=fp32.top1, int8_top1=int8.top1, eval_images=fp32.total,
        fp32_bytes=model_bytes(trained.model_dir, (trained.model_filename,
                                                   trained.params_filename)),
        int8_bytes=model_bytes(quantized.path, (quantized.model_file.name,
                                                quantized.params_file.name)),
        train_seconds=train_seconds, calibration_seconds=quantized.seconds,
        total_seconds=time.perf_counter() - started,
        fp32_dir=str(trained.model_dir), int8_dir=str(quantized.path),
        settings=asdict(settings))
