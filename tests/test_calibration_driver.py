"""quantkit's calibration driver writes what Paddle core's PTQ writes, for every algo.

The small CNN in tests/data/paddle3 is calibrated twice per case, by core's
`PostTrainingQuantization` as it is (`engine="paddle-core"`) and by the driver
(`engine="quantkit"`); the saved programs and every saved tensor are compared. The driver
runs its forwards on plain kernels here (bit-equal activations); oneDNN forwards are
checked separately to agree within float32 rounding.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401  - before paddle
from quantkit.calibration import driver
from quantkit.calibration.config import CalibrationConfig
from quantkit.errors import QuantkitError
from quantkit.calibration.calibrate import calibrate

DATA = Path(__file__).parent / "data" / "paddle3"
MODEL, PARAMS = "model.pdmodel", "model.pdiparams"
BATCHES, BATCH = 4, 8
DRIVER_ALGOS = ("abs_max", "avg", "hist", "mse", "emd", "KL")  # min_max: its own test


def _images(seed: int = 0, count: int = BATCHES * BATCH) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Mostly dark images with bright strokes, like MNIST: skewed activation histograms.
    images = rng.random((count, 1, 28, 28), dtype=np.float32) ** 4
    images[:, :, 10:14, 4:24] += 0.8
    return images


def _batches(images: np.ndarray):
    def generate():
        for start in range(0, len(images), BATCH):
            yield [images[start:start + BATCH]]
    return generate


# Bit-equal activations to core's: the driver's forwards on plain kernels, unless a test
# asks for the oneDNN forwards the engine uses by default.
PLAIN = driver.EngineOptions(onednn_forward=False)
ONEDNN = driver.EngineOptions(onednn_forward=True)


def _calibrate(out: Path, engine: str, config: CalibrationConfig, images=None,
               engine_options=PLAIN, **kwargs):
    return calibrate(None, DATA, out, config, batch_generator=_batches(
        _images() if images is None else images), model_filename=MODEL,
        params_filename=PARAMS, engine=engine, engine_options=engine_options, **kwargs)


def _saved(folder: Path) -> tuple[list[str], dict[str, np.ndarray], dict]:
    """(op types, persistable tensors by name, quantization attrs) of a saved model."""
    import paddle

    paddle.enable_static()
    try:
        scope = paddle.static.Scope()
        executor = paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(scope):
            program, _, _ = paddle.static.load_inference_model(
                str(folder / "model"), executor)
        tensors = {var.name: np.array(scope.find_var(var.name).get_tensor())
                   for var in program.list_vars()
                   if var.persistable and var.name not in ("feed", "fetch")}
        ops = program.global_block().ops
        attrs = {(op.type, tuple(op.output_arg_names), name): op.attr(name)
                 for op in ops for name in op.attr_names
                 if "threshold" in name or name in ("out_min", "out_max", "bit_length")}
        return [op.type for op in ops], tensors, attrs
    finally:
        paddle.disable_static()


def _by_content(tensors: dict[str, np.ndarray]) -> tuple[dict, list]:
    """Non-QDQ names per-channel scales `channel_scale_N` from a process-wide counter."""
    named = {k: v for k, v in tensors.items() if not k.startswith("channel_scale_")}
    counted = sorted((v.tolist() for k, v in tensors.items() if k.startswith("channel_scale_")))
    return named, counted


def _assert_same_model(core_dir: Path, ours_dir: Path, rtol: float = 0.0,
                       attrs: bool = True) -> None:
    core_ops, core_tensors, core_attrs = _saved(core_dir)
    our_ops, our_tensors, our_attrs = _saved(ours_dir)
    assert our_ops == core_ops
    core_named, core_counted = _by_content(core_tensors)
    our_named, our_counted = _by_content(our_tensors)
    assert sorted(our_named) == sorted(core_named)
    assert len(our_counted) == len(core_counted)
    for a, b in zip(our_counted, core_counted):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
    for name, value in core_named.items():
        np.testing.assert_allclose(our_named[name], value, rtol=rtol, atol=0, err_msg=name)
    if not attrs:
        return
    assert sorted(our_attrs) == sorted(core_attrs)
    for key, value in core_attrs.items():
        np.testing.assert_allclose(our_attrs[key], value, rtol=max(rtol, 1e-7), err_msg=key)


@pytest.mark.parametrize("onnx_format", [True, False], ids=["qdq", "fake-quant"])
@pytest.mark.parametrize("algo", DRIVER_ALGOS)
def test_driver_writes_cores_model(tmp_path, algo, onnx_format):
    config = CalibrationConfig(algo=algo, batch_size=BATCH, batch_nums=BATCHES,
                               onnx_format=onnx_format)
    core = _calibrate(tmp_path / "core", "paddle-core", config)
    ours = _calibrate(tmp_path / "ours", "quantkit", config)
    assert ours.batches_used == core.batches_used == BATCHES
    # avg: core averages per-batch maxima in float32, the observer in float64.
    _assert_same_model(core.path, ours.path, rtol=2e-7 if algo == "avg" else 0.0)


@pytest.mark.parametrize("onnx_format", [True, False], ids=["qdq", "fake-quant"])
def test_min_max_is_quantized_with_the_symmetric_threshold(tmp_path, onnx_format):
    """Core's min_max saves no scale (an unquantized model); quantkit's uses max(|min|,|max|),
    which is abs_max's threshold: same program and tensors as core's abs_max."""
    settings = dict(batch_size=BATCH, batch_nums=BATCHES, onnx_format=onnx_format)
    core_min_max = _calibrate(tmp_path / "core-mm", "paddle-core",
                              CalibrationConfig(algo="min_max", **settings))
    assert not any("quant" in op for op in _saved(core_min_max.path)[0])
    core = _calibrate(tmp_path / "core", "paddle-core", CalibrationConfig(algo="abs_max", **settings))
    ours = _calibrate(tmp_path / "ours", "quantkit", CalibrationConfig(algo="min_max", **settings))
    _assert_same_model(core.path, ours.path, attrs=False)


@pytest.mark.parametrize("settings", [
    dict(weight_quantize_type="abs_max"),
    dict(is_full_quantize=True),
    dict(bias_correction=True, onnx_format=False),
    dict(activation_bits=7, weight_bits=7),
    dict(quantizable_op_type=["conv2d"]),
    dict(skip_tensor_list=["conv2d_1.w_0"]),
], ids=lambda s: ",".join(s))
def test_driver_honours_paddleslim_settings(tmp_path, settings):
    config = CalibrationConfig.from_kwargs(algo="hist", batch_size=BATCH, batch_nums=BATCHES,
                                           **settings)
    core = _calibrate(tmp_path / "core", "paddle-core", config)
    ours = _calibrate(tmp_path / "ours", "quantkit", config)
    _assert_same_model(core.path, ours.path)


def test_skip_list_leaves_that_layer_in_float(tmp_path):
    config = CalibrationConfig(algo="abs_max", batch_size=BATCH, skip_tensor_list=("conv2d_1.w_0",))
    ops, tensors, _ = _saved(_calibrate(tmp_path / "q", "quantkit", config).path)
    assert "conv2d_1.w_0@scale" not in tensors and "conv2d_0.w_0@scale" in tensors
    assert ops.count("quantize_linear") > 0


def test_onednn_forward_agrees_with_core_within_float_rounding(tmp_path):
    config = CalibrationConfig(algo="hist", batch_size=BATCH, batch_nums=BATCHES)
    core = _calibrate(tmp_path / "core", "paddle-core", config)
    ours = _calibrate(tmp_path / "ours", "quantkit", config, engine_options=ONEDNN)
    _assert_same_model(core.path, ours.path, rtol=1e-5)


def test_second_pass_runs_the_model_again_when_replay_exceeds_its_budget(tmp_path):
    config = CalibrationConfig(algo="KL", batch_size=BATCH, batch_nums=BATCHES)
    replayed = _calibrate(tmp_path / "replayed", "quantkit", config)
    fed = []
    no_replay = driver.EngineOptions(onednn_forward=False, replay_budget_bytes=0)
    rerun = _calibrate(tmp_path / "rerun", "quantkit", config, on_batch=lambda: fed.append(1),
                       engine_options=no_replay)
    assert len(fed) == 2 * BATCHES  # both passes report progress
    _assert_same_model(replayed.path, rerun.path)


def test_progress_counts_both_passes_when_replaying(tmp_path):
    fed = []
    _calibrate(tmp_path / "q", "quantkit", CalibrationConfig(algo="hist", batch_size=BATCH),
               on_batch=lambda: fed.append(1))
    assert len(fed) == 2 * BATCHES


def test_all_zero_calibration_data_gives_finite_positive_scales(tmp_path):
    zeros = np.zeros((BATCHES * BATCH, 1, 28, 28), np.float32)
    for algo in ("abs_max", "hist", "KL", "mse"):
        out = _calibrate(tmp_path / algo, "quantkit", CalibrationConfig(algo=algo, batch_size=BATCH),
                         images=zeros)
        _, tensors, _ = _saved(out.path)
        scales = [v for k, v in tensors.items() if k.endswith("@scale")]
        assert scales and all(np.isfinite(s).all() and (s > 0).all() for s in scales), algo


def test_fewer_batches_than_asked_warns_and_uses_them(tmp_path):
    config = CalibrationConfig(algo="abs_max", batch_size=BATCH, batch_nums=10)
    with pytest.warns(UserWarning, match=r"batch_nums=10 but the data gave only 4"):
        out = _calibrate(tmp_path / "q", "quantkit", config)
    assert out.batches_used == BATCHES and out.model_file.is_file()


def test_nan_in_calibration_data_names_the_batch_and_feed(tmp_path):
    images = _images()
    images[2 * BATCH + 3, 0, 5, 5] = np.nan
    with pytest.raises(QuantkitError, match=r"calibration batch 2: input 'image' contains NaN"):
        _calibrate(tmp_path / "q", "quantkit", CalibrationConfig(algo="KL", batch_size=BATCH),
                   images=images)
    assert not (tmp_path / "q").exists()


def test_inf_in_calibration_data_is_refused(tmp_path):
    images = _images()
    images[0, 0, 0, 0] = np.inf
    with pytest.raises(QuantkitError, match=r"calibration batch 0: input 'image' contains Inf"):
        _calibrate(tmp_path / "q", "quantkit", CalibrationConfig(batch_size=BATCH), images=images)


def test_wrong_shape_names_the_feed_and_both_shapes(tmp_path):
    images = np.zeros((BATCHES * BATCH, 3, 28, 28), np.float32)
    with pytest.raises(QuantkitError, match=r"input 'image' has shape \[8, 3, 28, 28\], the "
                                            r"model expects \[-1, 1, 28, 28\]"):
        _calibrate(tmp_path / "q", "quantkit", CalibrationConfig(batch_size=BATCH), images=images)


def test_lossy_dtype_is_refused_naming_both_dtypes(tmp_path):
    images = _images().astype(np.complex64)
    with pytest.raises(QuantkitError, match=r"input 'image' holds complex numbers \(complex64\), "
                                            r"the model expects float32"):
        _calibrate(tmp_path / "q", "quantkit", CalibrationConfig(batch_size=BATCH), images=images)


def test_integer_images_are_widened(tmp_path):
    images = (_images() * 255).astype(np.uint8)
    out = _calibrate(tmp_path / "q", "quantkit", CalibrationConfig(batch_size=BATCH),
                     images=images)
    assert out.model_file.is_file()


def test_unknown_skip_entry_lists_close_matches(tmp_path):
    config = CalibrationConfig(batch_size=BATCH, skip_tensor_list=("conv2d_1.w0",))
    with pytest.raises(QuantkitError, match=r"'conv2d_1.w0' \(did you mean 'conv2d_1.w_0'"):
        _calibrate(tmp_path / "q", "quantkit", config)
    assert not (tmp_path / "q").exists()


def test_unknown_algo_lists_close_matches():
    with pytest.raises(QuantkitError, match=r"unknown algo 'kl' \(did you mean 'KL'"):
        CalibrationConfig(algo="kl")


def test_unknown_engine_is_refused(tmp_path):
    with pytest.raises(QuantkitError, match="unknown calibration engine"):
        _calibrate(tmp_path / "q", "fast", CalibrationConfig(batch_size=BATCH))


@pytest.mark.parametrize("settings", [dict(algo="ptf"), dict(round_type="adaround")],
                         ids=["ptf", "adaround"])
def test_core_only_settings_still_calibrate(tmp_path, settings):
    config = CalibrationConfig(batch_size=BATCH, batch_nums=2, **settings)
    assert driver.core_only_reason(config)
    out = _calibrate(tmp_path / "q", "quantkit", config)
    assert out.model_file.is_file()


def test_the_driver_leaves_the_callers_scope_alone(tmp_path):
    """oneDNN forwards may leave weights in oneDNN layouts; in a shared scope a later
    plain-kernel run of a model with the same variable names then fails to reorder them."""
    import paddle

    scope = paddle.static.Scope()
    _calibrate(tmp_path / "q", "quantkit", CalibrationConfig(batch_size=BATCH), scope=scope,
               engine_options=ONEDNN)
    assert scope.find_var("conv2d_0.w_0") is None
    empty = paddle.static.Scope()
    with paddle.static.scope_guard(empty):  # scope=None: core's default is the global scope
        _calibrate(tmp_path / "default", "quantkit", CalibrationConfig(batch_size=BATCH),
                   engine_options=ONEDNN)
    assert empty.find_var("conv2d_0.w_0") is None
