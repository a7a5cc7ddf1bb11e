"""NVIDIA target: the TensorRT recipe is covered fully here; running it needs a GPU."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from quantkit.errors import QuantkitError
from quantkit.targets.profile import load_profile
from quantkit.targets.tensorrt import TensorRtAdapter, TensorRtRecipe


class RecordingConfig:
    """Stands in for paddle.inference.Config: records every call and its arguments."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


class FakeInference:
    class PrecisionType:
        Int8, Float32 = "Int8", "Float32"


def _calls(recipe: TensorRtRecipe, folder: Path) -> dict:
    config = RecordingConfig()
    recipe.apply(config, folder, inference_module=FakeInference)
    return {name: (args, kwargs) for name, args, kwargs in config.calls}


def test_calibrated_int8_model_uses_its_own_scales(tmp_path):
    recipe = TensorRtRecipe.for_model(load_profile("nvidia-trt-int8"), quantized=True)
    calls = _calls(recipe, tmp_path)
    assert calls["enable_use_gpu"] == ((256, 0), {})
    _, trt = calls["enable_tensorrt_engine"]
    assert trt == {"workspace_size": 1 << 30, "max_batch_size": 64, "min_subgraph_size": 3,
                   "precision_mode": "Int8", "use_static": True, "use_calib_mode": False,
                   "use_cuda_graph": False}
    assert calls["set_optim_cache_dir"] == ((str(tmp_path / "trt_engine_cache"),), {})
    (min_shapes, max_shapes, opt_shapes), _ = calls["set_trt_dynamic_shape_info"]
    assert min_shapes == {"image": [1, 1, 28, 28]} and max_shapes == {"image": [64, 1, 28, 28]}
    assert opt_shapes == {"image": [1, 1, 28, 28]}


def test_fp32_model_on_int8_profile_uses_tensorrt_calibration(tmp_path):
    recipe = TensorRtRecipe.for_model(load_profile("nvidia-trt-int8"), quantized=False)
    assert recipe.use_calib_mode is True
    assert _calls(recipe, tmp_path)["enable_tensorrt_engine"][1]["use_calib_mode"] is True


def test_fp32_profile_runs_float32(tmp_path):
    recipe = TensorRtRecipe.for_model(load_profile("nvidia-trt-fp32"), quantized=False)
    _, trt = _calls(recipe, tmp_path)["enable_tensorrt_engine"]
    assert trt["precision_mode"] == "Float32" and trt["use_calib_mode"] is False


def test_collected_shapes_use_the_tuned_file(tmp_path):
    profile = dataclasses.replace(load_profile("nvidia-trt-int8"), dynamic_shapes={},
                                  options={"collect_shapes": True})
    recipe = TensorRtRecipe.for_model(profile, quantized=True)
    with pytest.raises(QuantkitError, match="shape_range_info.pbtxt missing"):
        _calls(recipe, tmp_path)
    (tmp_path / "shape_range_info.pbtxt").write_text("")
    calls = _calls(recipe, tmp_path)
    assert calls["enable_tuned_tensorrt_dynamic_shape"] == (
        (str(tmp_path / "shape_range_info.pbtxt"), True), {})
    assert "set_trt_dynamic_shape_info" not in calls


def test_recipe_round_trips_through_json():
    recipe = TensorRtRecipe.for_model(load_profile("nvidia-trt-int8"), quantized=True)
    assert TensorRtRecipe(**json.loads(json.dumps(recipe.to_dict()))) == recipe


def test_unknown_option_is_named():
    profile = dataclasses.replace(load_profile("nvidia-trt-int8"), options={"workspace": 1})
    with pytest.raises(QuantkitError, match="unknown option 'options.workspace'.*tensorrt"):
        TensorRtRecipe.for_model(profile, quantized=True)


@pytest.mark.slow
def test_convert_writes_the_recipe_and_refuses_to_run_on_a_cpu_build(quantized_model_dir,
                                                                     tmp_path):
    from quantkit.targets.convert import convert, open_artifact
    from quantkit.targets.gpu import gpu_status

    artifact = convert(quantized_model_dir, "nvidia-trt-int8", tmp_path / "trt")
    record = json.loads((artifact.folder / "artifact.json").read_text())
    assert record["settings"]["recipe"]["use_calib_mode"] is False
    if gpu_status().can_run_tensorrt:
        pytest.skip("this machine has a GPU: the refusal does not apply")
    with pytest.raises(QuantkitError, match="needs paddlepaddle-gpu"):
        open_artifact(artifact.folder)


def _gpu_reason() -> str:
    from quantkit.targets.gpu import gpu_status

    return gpu_status().reason


@pytest.mark.slow
def test_tensorrt_int8_runs_on_a_gpu(quantized_model_dir, mnist_test_slice, tmp_path):
    from quantkit.targets.gpu import gpu_status

    if not gpu_status().can_run_tensorrt:
        pytest.skip(f"no TensorRT here: {_gpu_reason()}")
    from quantkit.targets.convert import convert, open_artifact

    artifact = convert(quantized_model_dir, "nvidia-trt-int8", tmp_path / "trt")
    predictor = open_artifact(artifact.folder)
    (logits,) = predictor.run({"image": mnist_test_slice.images[:64]})
    top1 = float((logits.argmax(1) == mnist_test_slice.labels[:64, 0]).mean())
    assert top1 > 0.85
    assert any((artifact.folder / "trt_engine_cache").iterdir())  # engine serialised
