"""`quant_post_static`: PaddleSlim 2.6's static post-training quantization, as a drop-in.

Same arguments, same defaults (read from `CalibrationConfig`), same output files. What
differs is what PaddleSlim gets wrong on Paddle 2.6: all three data forms work, the model
is checked before any work (control flow, PIR json, missing or corrupt files), the output
appears atomically, and `save_params_filename` is honoured.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from quantkit.atomic import staged_folder
from quantkit.calibration.config import DEFAULTS, CalibrationConfig
from quantkit.calibration.data import choose_source
from quantkit.calibration.driver import (check_skip_list, core_only_reason,
                                         quantize_with_observers)
from quantkit.calibration.paddle_core import quantize_with_core
from quantkit.errors import QuantkitError
from quantkit.static_mode import static_mode
from quantkit.model_files import check_inference_model, op_input_names


@dataclass(frozen=True)
class QuantizedModel:
    """Where the quantized model was written and what it took."""

    path: Path
    model_file: Path
    params_file: Path
    config: CalibrationConfig
    batches_used: int
    seconds: float


def quant_post_static(
    executor,
    model_dir,
    quantize_model_path,
    batch_generator=None,
    sample_generator=None,
    data_loader=None,
    model_filename=None,
    params_filename=None,
    save_model_filename="model.pdmodel",
    save_params_filename="model.pdiparams",
    batch_size=DEFAULTS.batch_size,
    batch_nums=DEFAULTS.batch_nums,
    scope=None,
    algo=DEFAULTS.algo,
    round_type=DEFAULTS.round_type,
    hist_percent=DEFAULTS.hist_percent,
    bias_correction=DEFAULTS.bias_correction,
    quantizable_op_type=list(DEFAULTS.quantizable_op_type),
    is_full_quantize=DEFAULTS.is_full_quantize,
    weight_bits=DEFAULTS.weight_bits,
    activation_bits=DEFAULTS.activation_bits,
    activation_quantize_type=DEFAULTS.activation_quantize_type,
    weight_quantize_type=DEFAULTS.weight_quantize_type,
    optimize_model=DEFAULTS.optimize_model,
    onnx_format=DEFAULTS.onnx_format,
    skip_tensor_list=None,
    deploy_backend=DEFAULTS.deploy_backend,
) -> QuantizedModel:
    """Calibrate the FP32 inference model in `model_dir` and save it quantized.

    Exactly one of `sample_generator` (a reader creator yielding samples, e.g.
    `quantkit.datasets.mnist.test()`), `batch_generator` (yielding batches) or
    `data_loader` (a `paddle.io.DataLoader`, a generator function or an iterable of
    batches) gives the calibration data. See `CalibrationConfig` for the settings.
    Raises `QuantkitError` with a one-line message on bad input; writes nothing then.
    """
    config = CalibrationConfig.from_kwargs(
        batch_size=batch_size, batch_nums=batch_nums, algo=algo, round_type=round_type,
        hist_percent=hist_percent, bias_correction=bias_correction,
        quantizable_op_type=quantizable_op_type, is_full_quantize=is_full_quantize,
        weight_bits=weight_bits, activation_bits=activation_bits,
        activation_quantize_type=activation_quantize_type,
        weight_quantize_type=weight_quantize_type, optimize_model=optimize_model,
        onnx_format=onnx_format, skip_tensor_list=skip_tensor_list,
        deploy_backend=deploy_backend)
    return calibrate(executor, model_dir, quantize_model_path, config,
                     batch_generator=batch_generator, sample_generator=sample_generator,
                     data_loader=data_loader, model_filename=model_filename,
                     params_filename=params_filename, save_model_filename=save_model_filename,
                     save_params_filename=save_params_filename, scope=scope)


def calibrate(executor, model_dir, quantize_model_path, config: CalibrationConfig, *,
              batch_generator=None, sample_generator=None, data_loader=None,
              model_filename=None, params_filename=None,
              save_model_filename="model.pdmodel", save_params_filename="model.pdiparams",
              scope=None, on_batch: Callable[[], None] | None = None,
              engine: str = "quantkit") -> QuantizedModel:
    """`quant_post_static` with a `CalibrationConfig` and a per-batch progress callback.

    `on_batch` is called for every batch fed; KL and hist pass over the data twice
    (abs-max range, then histograms), so expect `calibration_passes(config)` x batches.
    `engine` "quantkit" is quantkit's driver (`calibration.driver`; ptf and adaround still
    go to core, see `core_only_reason`), "paddle-core" is core's PTQ as it is (benchmarks).
    """
    if engine not in ENGINES:
        raise QuantkitError(f"unknown calibration engine {engine!r}: choose one of "
                            f"{', '.join(ENGINES)}")
    model = check_inference_model(model_dir, model_filename, params_filename)
    batches = choose_source(model.feeds, sample_generator=sample_generator,
                            batch_generator=batch_generator, data_loader=data_loader,
                            batch_size=config.batch_size, batch_nums=config.batch_nums)
    check_skip_list(op_input_names(model), config.skip_tensor_list)
    quantize = quantize_with_observers if engine == "quantkit" and \
        core_only_reason(config) is None else quantize_with_core
    with static_mode():
        executor = executor if executor is not None else _cpu_executor()
        with staged_folder(quantize_model_path) as staging:
            stats = quantize(executor, model, batches, config, staging, save_model_filename,
                             save_params_filename, scope, on_batch=on_batch)
    out = Path(quantize_model_path)
    model_file = out / save_model_filename
    params_file = out / (save_params_filename or Path(save_model_filename).with_suffix(
        ".pdiparams").name)
    return QuantizedModel(out, model_file, params_file, config, stats.batches_seen,
                          stats.seconds)


ENGINES = ("quantkit", "paddle-core")


def calibration_passes(config: CalibrationConfig) -> int:
    """How many times Paddle core's PTQ reads the calibration data for this algo."""
    return 2 if config.algo in ("KL", "hist") else 1


# PaddleSlim keeps the old name as an alias.
quant_post = quant_post_static




def _cpu_executor():
    import paddle

    return paddle.static.Executor(paddle.CPUPlace())
