"""Models quantkit must refuse before any work, with the message naming the fault,
and without creating the output folder."""
from __future__ import annotations

import json
import shutil

import pytest

import quantkit as slim
from quantkit.errors import QuantkitError


def _quantize(model_dir, out, **kwargs):
    import paddle

    paddle.enable_static()
    slim.quant.quant_post_static(
        paddle.static.Executor(paddle.CPUPlace()), str(model_dir), str(out),
        sample_generator=slim.datasets.mnist.train(), batch_nums=1, **kwargs)


@pytest.fixture
def while_loop_model(tmp_path):
    """A hand-built program whose `while` op runs a sub-block."""
    import paddle

    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [None, 4], "float32")
        i = paddle.full([1], 0, "int64")
        limit = paddle.full([1], 3, "int64")
        _, y = paddle.static.nn.while_loop(lambda i, x: i < limit,
                                           lambda i, x: [i + 1, x * 2.0], [i, x])
        out = paddle.static.nn.fc(y, 2)
    exe = paddle.static.Executor(paddle.CPUPlace())
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope):
        exe.run(startup)
        paddle.static.save_inference_model(str(tmp_path / "loop" / "model"), [x], [out], exe,
                                           program=main)
    return tmp_path / "loop"


def test_while_op_is_refused_with_its_name(while_loop_model, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(QuantkitError, match=r"control-flow ops: while \(x1\)"):
        _quantize(while_loop_model, out, model_filename="model.pdmodel",
                  params_filename="model.pdiparams")
    assert not out.exists()


def test_an_untranslatable_pir_json_is_refused_with_the_resave_recipe(tmp_path):
    """PIR models are translated (tests/test_pir_*); one that cannot be gets the reason and
    the way back to the legacy format, and nothing is written."""
    model_dir = tmp_path / "pir"
    model_dir.mkdir()
    (model_dir / "model.json").write_text(json.dumps(
        {"base_code": {"magic": "pir", "trainable": False, "version": 1},
         "program": {"regions": []}}))
    (model_dir / "model.pdiparams").write_bytes(b"\0" * 16)
    out = tmp_path / "out"
    with pytest.raises(QuantkitError) as error:
        _quantize(model_dir, out)
    message = str(error.value)
    assert message.startswith("cannot translate the PIR program: ")
    assert "model.json" in message and "FLAGS_enable_pir_api=0" in message and "OldIrGuard" in message
    assert "\n" not in message
    assert not out.exists()
    with pytest.raises(QuantkitError, match="cannot translate the PIR program"):
        _quantize(model_dir, out, model_filename="model.json",
                  params_filename="model.pdiparams")
    assert not out.exists()


def test_truncated_params_are_refused_naming_the_file(trained_model_dir, tmp_path):
    model_dir = tmp_path / "truncated"
    shutil.copytree(trained_model_dir, model_dir)
    params = model_dir / "fp32.pdiparams"
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    out = tmp_path / "nested" / "out"
    with pytest.raises(QuantkitError, match=r"params file is truncated: .*fp32\.pdiparams"):
        _quantize(model_dir, out, model_filename="fp32.pdmodel",
                  params_filename="fp32.pdiparams")
    assert not out.exists() and not out.parent.exists()


def test_extra_bytes_in_params_are_refused(trained_model_dir, tmp_path):
    model_dir = tmp_path / "padded"
    shutil.copytree(trained_model_dir, model_dir)
    with (model_dir / "fp32.pdiparams").open("ab") as handle:
        handle.write(b"\0" * 7)
    with pytest.raises(QuantkitError, match="does not match its model"):
        _quantize(model_dir, tmp_path / "out", model_filename="fp32.pdmodel",
                  params_filename="fp32.pdiparams")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fault, expected", [
    ("missing_model", r"model file not found: .*fp32\.pdmodel"),
    ("missing_params", r"params file not found: .*fp32\.pdiparams"),
    ("corrupt_model", r"model file is corrupt or not a Paddle program: .*fp32\.pdmodel"),
    ("empty_model", r"model file is empty: .*fp32\.pdmodel"),
    ("missing_folder", r"model folder not found"),
])
def test_missing_or_corrupt_files_give_one_line(fault, expected, trained_model_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    if fault == "missing_model":
        (model_dir / "fp32.pdmodel").unlink()
    elif fault == "missing_params":
        (model_dir / "fp32.pdiparams").unlink()
    elif fault == "corrupt_model":
        (model_dir / "fp32.pdmodel").write_bytes(b"\xff\xfe not a protobuf \x00\x01" * 20)
    elif fault == "empty_model":
        (model_dir / "fp32.pdmodel").write_bytes(b"")
    else:
        shutil.rmtree(model_dir)
    out = tmp_path / "out"
    with pytest.raises(QuantkitError, match=expected) as error:
        _quantize(model_dir, out, model_filename="fp32.pdmodel", params_filename="fp32.pdiparams")
    assert "\n" not in str(error.value)
    assert not out.exists()


def test_params_check_accepts_real_fp32_and_quantized_models(trained_model_dir, tmp_path):
    from quantkit.model_files import check_inference_model

    fp32 = check_inference_model(trained_model_dir, "fp32.pdmodel", "fp32.pdiparams")
    assert fp32.feed_names == ("image",) and fp32.feeds[0].shape == (-1, 1, 28, 28)
    _quantize(trained_model_dir, tmp_path / "q", model_filename="fp32.pdmodel",
              params_filename="fp32.pdiparams", algo="abs_max")
    quantized = check_inference_model(tmp_path / "q")  # found without file names
    assert "quantize_linear" in quantized.op_types


def test_bad_settings_are_refused_before_loading(trained_model_dir, tmp_path):
    with pytest.raises(QuantkitError, match=r"unknown algo 'kl'.*'KL'"):
        _quantize(trained_model_dir, tmp_path / "out", model_filename="fp32.pdmodel",
                  params_filename="fp32.pdiparams", algo="kl")
    assert not (tmp_path / "out").exists()
