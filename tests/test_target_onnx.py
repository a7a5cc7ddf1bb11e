"""ONNX Runtime target: conversion fidelity, int8 storage, int8 kernels, accuracy, refusals."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import paddle_fp32_logits as reference_logits

import quantkit  # noqa: F401 - before paddle: importing paddle first breaks gzip (docs/measured-facts.md)
from quantkit.errors import QuantkitError
from quantkit.model_files import check_inference_model
from quantkit.targets.artifact import Artifact
from quantkit.machine import CpuIsa, cpu_isa
from quantkit.targets.onnx_runtime import (MODEL_FILE, X64_PRECISION_KEY, OnnxOptions,
                                           OnnxPredictor, OnnxRuntimeAdapter, SessionSettings,
                                           export_with_paddle2onnx, session_op_types,
                                           session_settings)
from quantkit.targets.onnx_weights import integer_initializers, quantize_linear
from quantkit.targets.profile import load_profile, profile_from_dict

INT8 = "onnxruntime-int8"
FP32 = "onnxruntime-fp32"
AVX2 = CpuIsa("x86_64", frozenset({"sse4_1", "avx2"}))
VNNI = CpuIsa("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni"}))


# ---- fast checks: profiles, options, ISA policy, the quantize arithmetic ----------------

def test_shipped_profiles_validate():
    for name, precision in ((INT8, "int8"), (FP32, "fp32")):
        profile = load_profile(name)
        assert profile.backend == "onnxruntime" and profile.precision == precision
        OnnxOptions.from_profile(profile)


def test_unknown_option_key_is_rejected_by_name():
    profile = profile_from_dict({"name": "x", "backend": "onnxruntime", "precision": "int8",
                                 "options": {"graph_optimisation": "all"}})
    with pytest.raises(QuantkitError, match="options.graph_optimisation"):
        OnnxRuntimeAdapter().availability(profile)


def test_bad_option_value_is_rejected_by_name():
    profile = profile_from_dict({"name": "x", "backend": "onnxruntime", "precision": "int8",
                                 "options": {"int8_precision": "turbo"}})
    with pytest.raises(QuantkitError, match="options.int8_precision.*turbo"):
        OnnxOptions.from_profile(profile)


def test_exact_int8_kernel_is_chosen_only_where_u8s8_saturates():
    options = OnnxOptions()
    avx2 = session_settings(options, "int8", 2, AVX2)
    assert avx2.config_entries == {X64_PRECISION_KEY: "1"} and avx2.graph_optimization == "all"
    assert "AVX2 without VNNI" in avx2.reason
    assert session_settings(options, "int8", 2, VNNI).config_entries == {}
    assert session_settings(options, "fp32", 2, AVX2).config_entries == {}
    fast = dataclasses.replace(options, int8_precision="fast")
    assert session_settings(fast, "int8", 2, AVX2).config_entries == {}
    exact = dataclasses.replace(options, int8_precision="exact")
    assert session_settings(exact, "int8", 2, VNNI).config_entries == {X64_PRECISION_KEY: "1"}


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_1 avx2 avx512f avx512_vnni\n")
    isa = cpu_isa(cpuinfo)
    assert {"avx2", "avx512_vnni"} <= isa.flags
    assert not cpu_isa(tmp_path / "missing").flags


def test_quantize_linear_matches_onnx_runtime():
    """The weight fold must compute exactly what ORT's QuantizeLinear would (per-axis)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    weight = rng.normal(0, 1, (4, 3, 2, 2)).astype(np.float32)
    weight[0, 0, 0, :] = [2.5, -2.5]  # ties: ONNX rounds half to even
    weight[1, 0, 0, :] = [1e3, -1e3]  # saturation
    scale = np.array([1.0, 0.01, 0.02, 0.05], np.float32)
    zero = np.array([0, 0, 3, -2], np.int8)
    node = helper.make_node("QuantizeLinear", ["w", "s", "z"], ["q"], axis=0)
    graph = helper.make_graph([node], "q", [], [helper.make_tensor_value_info(
        "q", TensorProto.INT8, weight.shape)], [numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {})[0]
    np.testing.assert_array_equal(quantize_linear(weight, scale, zero, axis=0), expected)
    assert onnx.checker.check_model(model) is None


def test_an_all_zero_channel_with_scale_zero_quantizes_to_its_zero_point():
    weight = np.zeros((2, 3), np.float32)
    weight[1] = [0.5, -1.0, 1.0]
    with np.errstate(all="raise"):  # no 0/0
        q = quantize_linear(weight, np.array([0.0, 1 / 127], np.float32),
                            np.array([3, 0], np.int8), axis=0)
    np.testing.assert_array_equal(q, [[3, 3, 3], [64, -127, 127]])


# ---- the shared model through the adapter ----------------------------------------------

def _model(folder: Path, stem: str):
    return check_inference_model(folder, f"{stem}.pdmodel", f"{stem}.pdiparams")


def _prepare(model, profile_name: str, out: Path) -> Artifact:
    out.mkdir(parents=True)
    artifact = OnnxRuntimeAdapter().prepare(model, load_profile(profile_name), out)
    artifact.save()
    return artifact


@pytest.fixture(scope="module")
def fp32_artifact(trained_model_dir, tmp_path_factory) -> Artifact:
    return _prepare(_model(trained_model_dir, "fp32"), FP32,
                    tmp_path_factory.mktemp("onnx") / "fp32")


@pytest.fixture(scope="module")
def int8_artifact(quantized_model_dir, tmp_path_factory) -> Artifact:
    return _prepare(_model(quantized_model_dir, "model"), INT8,
                    tmp_path_factory.mktemp("onnx") / "int8")


@pytest.fixture(scope="module")
def paddle_fp32_logits(trained_model_dir, mnist_test_slice) -> np.ndarray:
    """Reference: Paddle Inference on the FP32 model, plain CPU kernels."""
    return reference_logits(trained_model_dir, mnist_test_slice.images.astype(np.float32))


def _logits(artifact: Artifact, images: np.ndarray, profile_name: str,
            int8_precision: str | None = None) -> np.ndarray:
    profile = load_profile(profile_name)
    if int8_precision is not None:
        profile = dataclasses.replace(profile, options={**profile.options,
                                                        "int8_precision": int8_precision})
    predictor = OnnxRuntimeAdapter().open_predictor(Artifact.load(artifact.folder), profile)
    name = predictor.input_names[0]
    return np.concatenate([predictor.run({name: images[i:i + 250]})[0]
                           for i in range(0, len(images), 250)])


def _int8_kernels():
    """ORT's two x86 int8 GEMMs: exact u8u8 everywhere; fast u8s8 only where it is exact."""
    saturates = cpu_isa().u8s8_saturates
    return ["exact", pytest.param("fast", marks=pytest.mark.skipif(
        saturates, reason=f"{cpu_isa().describe()}: the fast u8s8 kernel saturates int16 sums "
                          "here (measured -4.5 points); 'auto' never picks it on such a CPU"))]


def _top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels.reshape(-1)).mean() * 100)


def test_availability_names_the_cpu_isa():
    availability = OnnxRuntimeAdapter().availability(load_profile(INT8))
    assert availability.can_run
    assert "ONNX Runtime" in availability.reason
    assert cpu_isa().describe() in availability.reason


def test_fp32_onnx_matches_paddle(fp32_artifact, paddle_fp32_logits, mnist_test_slice):
    images = mnist_test_slice.images[:250].astype(np.float32)
    onnx_logits = _logits(fp32_artifact, images, FP32)
    assert np.max(np.abs(onnx_logits - paddle_fp32_logits[:250])) < 1e-4
    assert fp32_artifact.settings["opset_version"] == 13
    assert fp32_artifact.settings["paddle2onnx_version"] == "1.3.1"


def test_int8_weights_are_int8_initializers_and_file_is_small(int8_artifact, fp32_artifact):
    import onnx

    model = onnx.load(str(int8_artifact.folder / MODEL_FILE))
    onnx.checker.check_model(model)
    weights = int8_artifact.settings["weights"]
    assert weights["rewritten"] and weights["weights_folded"] > 0
    assert len(integer_initializers(model)) == weights["weights_folded"]
    constants = {init.name for init in model.graph.initializer} | {
        node.output[0] for node in model.graph.node if node.op_type == "Constant"}
    assert not [node for node in model.graph.node
                if node.op_type == "QuantizeLinear" and node.input[0] in constants]
    assert weights["max_abs_diff_vs_export"] == 0.0  # the rewrite changed no output
    assert int8_artifact.size_bytes < 0.4 * fp32_artifact.size_bytes


def test_int8_session_runs_int8_kernels(int8_artifact):
    """ENABLE_ALL (+ the exact u8u8 kernel where needed) still fuses every Conv to int8."""
    settings = OnnxRuntimeAdapter().open_predictor(Artifact.load(int8_artifact.folder),
                                                   load_profile(INT8)).settings
    ops = session_op_types(int8_artifact.folder / MODEL_FILE, settings)
    assert ops.get("QLinearConv", 0) + ops.get("ConvInteger", 0) >= 20
    assert "Conv" not in ops
    assert int8_artifact.settings["kernels"] == ops
    session = int8_artifact.settings["session"]
    if cpu_isa().u8s8_saturates:
        assert session["config_entries"] == {X64_PRECISION_KEY: "1"}


@pytest.mark.parametrize("kernel", _int8_kernels())
def test_int8_top1_keeps_fp32_accuracy(int8_artifact, paddle_fp32_logits, mnist_test_slice,
                                       kernel):
    """Measured on 2000 images (AMD EPYC with AVX-512 VNNI, one trained model): FP32
    94.85%, float emulation of the QDQ graph 94.80%, INT8 94.80% with the exact and with
    the fast kernel (on AVX2-only hosts the exact kernel gave 94.45% vs 94.90% FP32)."""
    images = mnist_test_slice.images.astype(np.float32)
    labels = mnist_test_slice.labels
    fp32 = _top1(paddle_fp32_logits, labels)
    int8 = _top1(_logits(int8_artifact, images, INT8, kernel), labels)
    assert int8 >= fp32 - 0.5, f"INT8 top-1 {int8:.2f} vs FP32 {fp32:.2f}"
    # The int8 kernels must not lose anything against ORT's float emulation of the same
    # QDQ graph: that is what saturating u8s8 sums did (-4.5 points here).
    emulated = OnnxPredictor(int8_artifact.folder / MODEL_FILE,
                             SessionSettings("basic", 2, {}, "float emulation"))
    reference = np.concatenate([emulated.run({"image": images[i:i + 250]})[0]
                                for i in range(0, len(images), 250)])
    assert abs(int8 - _top1(reference, labels)) <= 0.15


# ---- refusals and failures ---------------------------------------------------------------

@pytest.fixture
def no_paddle2onnx(monkeypatch):
    """Refusals must come before the converter runs."""
    def forbidden(*args, **kwargs):
        raise AssertionError("paddle2onnx ran although the model should have been refused")

    monkeypatch.setattr("quantkit.targets.onnx_runtime.run_tool", forbidden)


def test_fake_quant_model_is_refused_before_paddle2onnx(fake_quant_model_dir, tmp_path,
                                                        no_paddle2onnx):
    model = _model(fake_quant_model_dir, "model")
    with pytest.raises(QuantkitError, match=r"fake_.*onnx_format=True") as info:
        OnnxRuntimeAdapter().prepare(model, load_profile(INT8), tmp_path)
    assert "quant_post_static" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_fp32_model_to_int8_profile_is_refused(trained_model_dir, tmp_path, no_paddle2onnx):
    with pytest.raises(QuantkitError, match=r"FP32 model.*calibrat.*quant_post_static"):
        OnnxRuntimeAdapter().prepare(_model(trained_model_dir, "fp32"), load_profile(INT8),
                                     tmp_path)


def test_paddle2onnx_abort_becomes_one_line_error(fake_quant_model_dir, tmp_path):
    """paddle2onnx aborts (SIGABRT) on fake-quant ops: the process must survive it."""
    model = _model(fake_quant_model_dir, "model")
    with pytest.raises(QuantkitError, match=r"paddle2onnx .*failed") as info:
        export_with_paddle2onnx(model, tmp_path / "out.onnx", 13)
    assert "\n" not in str(info.value)


def test_corrupt_model_gives_one_line_error(trained_model_dir, tmp_path):
    """A garbage program (model_files' check bypassed) makes paddle2onnx write nothing."""
    real = _model(trained_model_dir, "fp32")
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / "fp32.pdmodel").write_bytes(np.random.default_rng(0).bytes(4096))
    (bad_dir / "fp32.pdiparams").write_bytes(real.params_file.read_bytes())
    corrupt = dataclasses.replace(real, model_dir=bad_dir, model_file=bad_dir / "fp32.pdmodel",
                                  params_file=bad_dir / "fp32.pdiparams")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QuantkitError, match="paddle2onnx") as info:
        OnnxRuntimeAdapter().prepare(corrupt, load_profile(FP32), out)
    assert "\n" not in str(info.value) and "fp32.pdmodel" in str(info.value)
    assert not list(out.iterdir())
