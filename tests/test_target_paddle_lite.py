"""The Paddle Lite adapter: real opt conversions of the shared MobileNet (FP32, QDQ and
fake-quant INT8, weight-only INT8), the x86 FP32 .nb checked against Paddle, and every
refusal naming what is wrong (unsupported op, uncalibrated model, crashing opt, bad key)."""
from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
from conftest import paddle_fp32_logits
import pytest

import quantkit  # noqa: F401  - before paddle: importing paddle first breaks gzip
from quantkit.errors import QuantkitError
from quantkit.model_files import check_inference_model
from quantkit.targets.paddle_lite import (LiteOptions, PaddleLiteAdapter,
                                          parse_supported_ops)
from quantkit.targets.profile import load_profile, profile_from_dict


def _profile(precision: str = "int8", device: str = "arm", **options):
    options.setdefault("valid_targets", "arm" if device == "arm" else "x86")
    return profile_from_dict({"name": f"test-lite-{precision}", "backend": "paddle-lite",
                              "precision": precision, "device": device,
                              "options": options})


@pytest.fixture(scope="module")
def adapter() -> PaddleLiteAdapter:
    return PaddleLiteAdapter()  # one instance: the supported-op table is read once


@pytest.fixture(scope="module")
def fp32_model(trained_model_dir):
    return check_inference_model(trained_model_dir, "fp32.pdmodel", "fp32.pdiparams")


@pytest.fixture(scope="module")
def erfinv_model_dir(tmp_path_factory) -> Path:
    """A tiny real program with `erfinv`, an op Paddle Lite has no ARM (or host) kernel for."""
    import paddle

    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [-1, 4], "float32")
        out = paddle.static.nn.fc(paddle.erfinv(paddle.tanh(x) * 0.5), 3)
    exe = paddle.static.Executor(paddle.CPUPlace())
    scope = paddle.static.Scope()
    folder = tmp_path_factory.mktemp("erfinv")
    with paddle.static.scope_guard(scope):
        exe.run(startup)
        paddle.static.save_inference_model(str(folder / "model"), [x], [out], exe,
                                           program=main)
    return folder


def test_shipped_profiles_are_valid_for_the_adapter():
    for name, targets, precision in (("arm-lite-int8", ("arm",), "int8"),
                                     ("arm-lite-fp32", ("arm",), "fp32"),
                                     ("x86-lite-fp32", ("x86",), "fp32")):
        profile = load_profile(name)
        assert (profile.backend, profile.precision) == ("paddle-lite", precision)
        assert LiteOptions.from_profile(profile).targets == targets


def test_supported_op_table_is_read_from_opt(adapter):
    table = adapter.supported_ops(LiteOptions(valid_targets="arm"))
    assert {"conv2d", "batch_norm", "pool2d", "mul", "quantize_linear",
            "dequantize_linear", "fake_quantize_dequantize_abs_max"} <= table
    assert "erfinv" not in table
    text = ("Supported OPs on ' kARM': \n    OP_name  kARM  kHost  kUnk\n"
            "     conv2d     Y             \n   feed            Y      \n")
    assert parse_supported_ops(text) == {"conv2d", "feed"}


def test_int8_nb_from_both_calibrated_forms_is_much_smaller_than_fp32(
        adapter, fp32_model, quantized_model_dir, fake_quant_model_dir, tmp_path):
    fp32 = adapter.prepare(fp32_model, load_profile("arm-lite-fp32"), tmp_path / "fp32")
    qdq = adapter.prepare(check_inference_model(quantized_model_dir),
                          load_profile("arm-lite-int8"), tmp_path / "qdq")
    fake = adapter.prepare(check_inference_model(fake_quant_model_dir),
                           load_profile("arm-lite-int8"), tmp_path / "fake")
    for artifact, mode in ((fp32, "fp32"), (qdq, "int8-qdq"), (fake, "int8-fake-quant")):
        assert artifact.files == ("model.nb",)
        assert (artifact.folder / "model.nb").stat().st_size > 0
        assert artifact.settings["mode"] == mode
        assert "--optimize_out_type=naive_buffer" in artifact.settings["opt_command"]
        assert "--valid_targets=arm" in artifact.settings["opt_command"]
        assert artifact.settings["opt_version"].startswith("v2.13")
    assert qdq.size_bytes < 0.4 * fp32.size_bytes  # int8 weights: ~0.9 MB vs ~3.3 MB
    assert fake.size_bytes < 0.4 * fp32.size_bytes


def test_weight_only_int8_converts_an_uncalibrated_fp32_model(adapter, fp32_model, tmp_path):
    fp32 = adapter.prepare(fp32_model, load_profile("arm-lite-fp32"), tmp_path / "fp32")
    weight_only = adapter.prepare(fp32_model, _profile("int8", weight_only_int8=True),
                                  tmp_path / "wo")
    assert weight_only.settings["mode"] == "int8-weight-only"
    assert {"--quant_model=true", "--quant_type=QUANT_INT8"} <= set(
        weight_only.settings["opt_command"])
    assert 0 < weight_only.size_bytes < 0.4 * fp32.size_bytes


def test_fp32_model_refused_by_int8_profile_with_how_to_calibrate(adapter, fp32_model,
                                                                  tmp_path):
    with pytest.raises(QuantkitError) as caught:
        adapter.prepare(fp32_model, load_profile("arm-lite-int8"), tmp_path)
    message = str(caught.value)
    assert "FP32" in message and "fp32.pdmodel" in message
    assert "quantkit.quant.quant_post_static(" in message and "weight_only_int8" in message
    assert list(tmp_path.iterdir()) == []


def test_quantized_model_refused_by_fp32_profile(adapter, quantized_model_dir, tmp_path):
    with pytest.raises(QuantkitError, match="already quantized.*arm-lite-int8"):
        adapter.prepare(check_inference_model(quantized_model_dir),
                        load_profile("arm-lite-fp32"), tmp_path)


def _fake_opt(tmp_path: Path, conversion: str) -> Path:
    """An opt that answers table/version queries like the real one but not conversions."""
    real = LiteOptions().opt  # the lite side environment's paddle_lite_opt
    script = tmp_path / "fake_opt"
    script.write_text(f"#!/bin/sh\ncase \"$*\" in *--optimize_out=*) {conversion} ;; esac\n"
                      f"exec {real} \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_unsupported_op_refused_before_conversion(adapter, erfinv_model_dir, tmp_path):
    # An opt that would fail differently if asked to convert: the check must come first.
    opt = _fake_opt(tmp_path, "echo converter was called >&2; exit 99")
    model = check_inference_model(erfinv_model_dir)
    with pytest.raises(QuantkitError) as caught:
        adapter.prepare(model, _profile("fp32", opt_path=str(opt)), tmp_path / "out")
    message = str(caught.value)
    assert "'erfinv'" in message and "valid_targets=arm" in message
    assert "model.pdmodel" in message and "tanh" not in message
    assert "converter was called" not in message
    assert not (tmp_path / "out").exists()


def test_opt_abort_on_unsupported_op_is_parsed(erfinv_model_dir, tmp_path):
    """Should the table be wrong, opt itself aborts (SIGABRT): its message is parsed."""
    adapter = PaddleLiteAdapter()
    options = LiteOptions(valid_targets="arm")
    adapter._op_tables[(str(options.opt_path), "arm")] = (
        adapter.supported_ops(options) | {"erfinv"})
    with pytest.raises(QuantkitError) as caught:
        adapter.prepare(check_inference_model(erfinv_model_dir), _profile("fp32"), tmp_path)
    assert "'erfinv'" in str(caught.value) and "cannot place" in str(caught.value)


def test_crashing_opt_gives_one_line_error(adapter, quantized_model_dir, tmp_path):
    opt = _fake_opt(tmp_path, "echo 'F1127 op_lite.cc:42] Check failed: kernel' >&2; "
                              "echo Aborted >&2; exit 134")
    profile = _profile("int8", opt_path=str(opt))
    with pytest.raises(QuantkitError) as caught:
        adapter.prepare(check_inference_model(quantized_model_dir), profile, tmp_path / "o")
    message = str(caught.value)
    assert "exit 134" in message and "Check failed" in message
    assert "model.pdmodel" in message and "\n" not in message


def test_hanging_opt_times_out(adapter, quantized_model_dir, tmp_path):
    opt = _fake_opt(tmp_path, "exec sleep 60")  # exec: the timeout kills the sleeper itself
    profile = _profile("int8", opt_path=str(opt), timeout_s=2)
    with pytest.raises(QuantkitError, match="timed out after 2 s"):
        adapter.prepare(check_inference_model(quantized_model_dir), profile, tmp_path / "o")


def test_missing_opt_binary_is_named(adapter, quantized_model_dir, tmp_path):
    profile = _profile("int8", opt_path=str(tmp_path / "no-opt"))
    with pytest.raises(QuantkitError, match="opt not found: .*no-opt"):
        adapter.prepare(check_inference_model(quantized_model_dir), profile, tmp_path / "o")


@pytest.mark.parametrize("options, fault", [
    ({"valid_target": "arm"},
     "unknown option 'options.valid_target'.*did you mean 'options.valid_targets'"),
    ({"valid_targets": "arm", "threads": 2}, "unknown option 'options.threads'"),
    ({"valid_targets": "riscv"}, "options.valid_targets.*'riscv'"),
    ({"valid_targets": "x86"}, "device = 'arm'.* needs 'arm' in options.valid_targets"),
    ({"valid_targets": "arm", "weight_only_int8": "yes"}, "options.weight_only_int8"),
    ({"valid_targets": "arm", "timeout_s": 0}, "options.timeout_s"),
])
def test_bad_options_are_rejected_naming_the_key(adapter, options, fault):
    profile = profile_from_dict({"name": "bad", "backend": "paddle-lite", "precision": "int8",
                                 "device": "arm", "options": options})
    with pytest.raises(QuantkitError, match=fault):
        adapter.availability(profile)


def test_arm_and_x86_int8_cannot_run_here(adapter, quantized_model_dir, tmp_path):
    arm = load_profile("arm-lite-int8")
    available = adapter.availability(arm)
    assert not available.can_run and "needs an ARM device" in available.reason
    assert "MobileConfig" in available.reason
    artifact = adapter.prepare(check_inference_model(quantized_model_dir), arm, tmp_path)
    with pytest.raises(QuantkitError, match="cannot run .*model.nb here: needs an ARM"):
        adapter.open_predictor(artifact, arm)
    x86_int8 = adapter.availability(_profile("int8", device="cpu"))
    assert not x86_int8.can_run and "x86 INT8" in x86_int8.reason


def test_x86_fp32_nb_matches_paddle(adapter, fp32_model, trained_model_dir,
                                    mnist_test_slice, tmp_path):
    profile = load_profile("x86-lite-fp32")
    assert adapter.availability(profile).can_run
    artifact = adapter.prepare(fp32_model, profile, tmp_path)
    predictor = adapter.open_predictor(artifact, profile)
    assert list(predictor.input_names) == ["image"]
    images = np.ascontiguousarray(mnist_test_slice.images[:8], dtype=np.float32)
    for batch in (images[:1], images):
        (lite,) = predictor.run({"image": batch})
        reference = paddle_fp32_logits(trained_model_dir, batch)
        assert lite.shape == reference.shape == (len(batch), 10)
        assert np.isfinite(lite).all()
        assert np.abs(lite - reference).max() < 1e-4
        assert (lite.argmax(1) == reference.argmax(1)).all()
    with pytest.raises(QuantkitError, match="missing input 'image'"):
        predictor.run({"x": images})
