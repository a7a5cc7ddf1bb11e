"""`calibrate`: a checked FP32 model and calibration batches -> a quantized model on disk.

The one entry point of static post-training quantization. PaddleSlim's face
(`quantkit.quant.quant_post_static`), the CLI and `quantkit run` all call it. The model is
checked before any work, the output appears atomically (nothing is written on failure),
and the calibration runs on quantkit's engine (`driver`) unless the settings need core's.
What it writes is deployable as written: a QDQ model's weights that Paddle Inference's
oneDNN INT8 pass would leave int8 (e.g. conv2d_transpose's) are stored in float
(`onednn_weights`), so `enable_mkldnn_int8()` runs it directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from quantkit.atomic import staged_folder
from quantkit.calibration.algorithms import Engine, algorithm
from quantkit.calibration.config import CalibrationConfig
from quantkit.calibration.driver import (DEFAULT_ENGINE, EngineOptions, check_skip_list,
                                         core_only_reason, quantize_with_observers)
from quantkit.calibration.onednn_weights import FloatWeightStats, restore_float_weights
from quantkit.calibration.paddle_core import quantize_with_core
from quantkit.data.readers import choose_source
from quantkit.files import PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE
from quantkit.pir.cache import copy_record as copy_pir_record
from quantkit.model_files import check_inference_model, op_input_names, refuse_quantized
from quantkit.static_mode import static_mode


@dataclass(frozen=True)
class QuantizedModel:
    """Where the quantized model was written and what it took."""

    path: Path
    model_file: Path
    params_file: Path
    config: CalibrationConfig
    batches_used: int
    seconds: float
    # QDQ weights stored in float so oneDNN's INT8 pass can run the model (None: not QDQ)
    float_weights: FloatWeightStats | None = None


def calibrate(executor, model_dir, quantize_model_path, config: CalibrationConfig, *,
              batch_generator=None, sample_generator=None, data_loader=None,
              model_filename=None, params_filename=None,
              save_model_filename=PADDLE_MODEL_FILE, save_params_filename=PADDLE_PARAMS_FILE,
              scope=None, on_batch: Callable[[], None] | None = None,
              engine: Engine | str = Engine.QUANTKIT,
              engine_options: EngineOptions = DEFAULT_ENGINE) -> QuantizedModel:
    """Calibrate the model in `model_dir` on one of PaddleSlim's data forms; save it.

    `on_batch` is called for every batch fed; KL and hist pass over the data twice
    (abs-max range, then histograms), so expect `calibration_passes(config)` x batches.
    `engine` "quantkit" is quantkit's driver (ptf and adaround still go to core, see
    `core_only_reason`), "paddle-core" is core's PTQ as it is (benchmarks compare them).
    """
    engine = Engine.parse(engine, "calibration engine")
    model = check_inference_model(model_dir, model_filename, params_filename)
    refuse_quantized(model)
    batches = choose_source(model.feeds, sample_generator=sample_generator,
                            batch_generator=batch_generator, data_loader=data_loader,
                            batch_size=config.batch_size, batch_nums=config.batch_nums)
    check_skip_list(op_input_names(model), config.skip_tensor_list)
    use_core = engine is Engine.PADDLE_CORE or core_only_reason(config) is not None
    out = Path(quantize_model_path)
    params_name = save_params_filename or Path(save_model_filename).with_suffix(
        ".pdiparams").name
    with static_mode():
        executor = executor if executor is not None else _cpu_executor()
        with staged_folder(out) as staging:
            if use_core:
                stats = quantize_with_core(executor, model, batches, config, staging,
                                           save_model_filename, save_params_filename, scope,
                                           on_batch=on_batch)
            else:
                stats = quantize_with_observers(executor, model, batches, config, staging,
                                                save_model_filename, save_params_filename,
                                                scope, on_batch=on_batch,
                                                engine=engine_options)
            float_weights = None  # fake-quant weights are float already
            if config.onnx_format:  # QDQ weights oneDNN would leave int8 go float (above)
                float_weights = restore_float_weights(staging / save_model_filename,
                                                      staging / params_name)
            copy_pir_record(model.model_dir, staging)
    return QuantizedModel(out, out / save_model_filename, out / params_name, config,
                          stats.batches_seen, stats.seconds, float_weights)


def calibration_passes(config: CalibrationConfig) -> int:
    """How many times calibration reads the data for this algo (progress bars)."""
    return algorithm(config.algo).passes


def _cpu_executor():
    import paddle

    return paddle.static.Executor(paddle.CPUPlace())
