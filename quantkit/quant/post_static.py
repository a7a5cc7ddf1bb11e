"""`quant_post_static`: PaddleSlim 2.6's static post-training quantization, as a drop-in.

Same arguments, same defaults (read from `CalibrationConfig`), same output files. What
differs is what PaddleSlim gets wrong on Paddle 2.6: all three data forms work, the model
is checked before any work (control flow, PIR json, missing or corrupt files), the output
appears atomically, and `save_params_filename` is honoured.
"""
from __future__ import annotations

from quantkit.calibration.calibrate import QuantizedModel, calibrate
from quantkit.calibration.config import DEFAULTS, CalibrationConfig
from quantkit.files import PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE


def quant_post_static(
    executor,
    model_dir,
    quantize_model_path,
    batch_generator=None,
    sample_generator=None,
    data_loader=None,
    model_filename=None,
    params_filename=None,
    save_model_filename=PADDLE_MODEL_FILE,
    save_params_filename=PADDLE_PARAMS_FILE,
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


# PaddleSlim keeps the old name as an alias.
quant_post = quant_post_static

__all__ = ["QuantizedModel", "quant_post", "quant_post_static"]
