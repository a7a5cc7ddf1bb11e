"""Run Paddle core's `PostTrainingQuantization` on quantkit's data stream.

Core 2.6 insists on a `paddle.io.DataLoader` instance; `_CoreLoader` is one that simply
replays a `FeedBatches`, which is how the tutorial's sample generator gets through.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from quantkit.calibration.config import CalibrationConfig
from quantkit.calibration.algorithms import algorithm
from quantkit.data.readers import FeedBatches
from quantkit.errors import QuantkitError
from quantkit.model_files import InferenceModel


@dataclass(frozen=True)
class CoreRunStats:
    seconds: float
    batches_seen: int


def _core_loader(batches: FeedBatches, on_batch=None):
    import paddle

    class _CoreLoader(paddle.io.DataLoader):
        """Replays feed dicts; skips DataLoader's worker set-up, which is never used."""

        def __init__(self) -> None:  # noqa: D401 - intentionally not calling super()
            self.seen = 0

        def _replay(self):
            for feed in batches:
                self.seen += 1
                if on_batch is not None:
                    on_batch()
                yield feed

        def __call__(self):
            return self._replay()

        def __iter__(self):
            return self._replay()

        def __len__(self) -> int:
            if batches.batch_nums is not None:
                return batches.batch_nums
            return sum(1 for _ in batches)

    return _CoreLoader()


def quantize_with_core(executor, model: InferenceModel, batches: FeedBatches,
                       config: CalibrationConfig, out_dir: Path, save_model_filename: str,
                       save_params_filename: str | None, scope=None,
                       on_batch=None) -> CoreRunStats:
    """Calibrate `model` and save the quantized program into `out_dir`."""
    import paddle

    # Core loads the parameters into the global scope but runs in `scope`: make them one.
    with paddle.static.scope_guard(scope or paddle.static.global_scope()), quiet_core():
        return _quantize(executor, model, batches, config, out_dir, save_model_filename,
                         save_params_filename, on_batch)


def strip_call_stacks(model_file: Path) -> int:
    """Drop the `op_callstack` attributes Paddle's save writes into feed/fetch ops.

    They hold the caller's Python stack (file paths of the venv and the calling script):
    a released model would leak them, and two identical calibrations called from
    different places would differ in bytes. Only error messages read them.
    """
    from paddle.base import core

    desc = core.ProgramDesc(model_file.read_bytes())
    stripped = 0
    for index in range(desc.num_blocks()):
        block = desc.block(index)
        for position in range(block.op_size()):
            op = block.op(position)
            if op.has_attr("op_callstack"):
                op.remove_attr("op_callstack")
                stripped += 1
    if stripped:
        model_file.write_bytes(desc.serialize_to_string())
    return stripped


def _quantize(executor, model, batches, config, out_dir, save_model_filename,
              save_params_filename, on_batch) -> CoreRunStats:
    from paddle.static.quantization import PostTrainingQuantization

    loader = _core_loader(batches, on_batch)
    started = time.perf_counter()
    # CalibrationConfig's fields are core's keyword arguments, by design.
    settings = config.to_dict()
    settings["quantizable_op_type"] = list(config.quantizable_op_type)
    settings["skip_tensor_list"] = list(config.skip_tensor_list) or None
    ptq = PostTrainingQuantization(
        executor=executor, model_dir=str(model.model_dir),
        model_filename=model.model_filename, params_filename=model.params_filename,
        data_loader=loader, **settings)
    ptq.quantize()
    if loader.seen == 0:
        raise QuantkitError("the calibration data produced no batch (with a sample generator, "
                            f"it needs at least batch_size={config.batch_size} samples)")
    save_quantized(ptq, Path(out_dir), save_model_filename, save_params_filename)
    passes = algorithm(config.algo).passes
    return CoreRunStats(seconds=time.perf_counter() - started,
                        batches_seen=loader.seen // passes)


def save_quantized(ptq, out_dir: Path, save_model_filename: str,
                   save_params_filename: str | None) -> None:
    """Core's save, made reproducible (no call stacks, fresh names) and honouring the names."""
    import paddle

    # A fresh name counter: else the Nth save in a process names a var scale_0.tmp_N.
    with paddle.utils.unique_name.guard():
        ptq.save_quantized_model(str(out_dir), model_filename=save_model_filename)
    strip_call_stacks(out_dir / save_model_filename)
    rename_params(out_dir, save_model_filename, save_params_filename)


def rename_params(out_dir: Path, save_model_filename: str, save_params_filename: str | None):
    """Core names the params after the model file; honour `save_params_filename` instead."""
    stem = save_model_filename[:-len(".pdmodel")] if save_model_filename.endswith(".pdmodel") \
        else save_model_filename
    written = out_dir / f"{stem}.pdiparams"
    if save_params_filename and written.name != save_params_filename and written.exists():
        written.rename(out_dir / save_params_filename)


_CORE_MODULES = ("paddle.static.quantization.post_training_quantization",
                 "paddle.static.quantization.quantization_pass",
                 "paddle.static.quantization.cal_kl_threshold", "paddle.static.io")


@contextlib.contextmanager
def quiet_core():
    """Silence core's per-op tqdm bars and INFO logs; quantkit reports progress itself."""
    import importlib

    modules = [importlib.import_module(name) for name in _CORE_MODULES]
    saved = []
    for module in modules:
        bar, logger = getattr(module, "tqdm", None), getattr(module, "_logger", None)
        saved.append((module, bar, logger, logger.level if logger else None))
        if bar is not None:
            module.tqdm = _SilentBar
        if logger is not None:
            logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for module, bar, logger, level in saved:
            if bar is not None:
                module.tqdm = bar
            if logger is not None:
                logger.setLevel(level)


class _SilentBar:
    """Stands in for core's tqdm (or its fallback, which has no `disable`)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __enter__(self) -> "_SilentBar":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, *args, **kwargs) -> None:
        return None
