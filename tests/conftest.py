"""Shared fixtures: one small MobileNetV1 trained on real MNIST, reused by the session."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The demo's model: MobileNetV1 x0.5, one epoch of batch 64 (~96% top-1, ~165 s on 2 cores).
# A half-trained model is not a fair PTQ subject: at 250 steps x0.25 (67% top-1) hist
# calibration lost 10 points, where the trained one loses < 0.1.
SHARED_MODEL_SCALE, SHARED_MODEL_STEPS = 0.5, 938


@pytest.fixture(scope="session")
def mnist_test_slice():
    from quantkit.datasets import mnist

    return mnist.load("test", limit=2000)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory) -> Path:
    """The tutorial's FP32 inference model: `fp32.pdmodel` + `fp32.pdiparams`."""
    from quantkit.datasets import mnist
    from quantkit.demo.train import TrainSettings, train_mobilenet

    out = tmp_path_factory.mktemp("inference_model")
    reuse = os.environ.get("QUANTKIT_TEST_MODEL_DIR")  # a developer's shortcut, unset in CI
    if reuse:
        for name in ("fp32.pdmodel", "fp32.pdiparams"):
            shutil.copyfile(Path(reuse) / name, out / name)
        return out
    train_mobilenet(mnist.load("train"), out,
                    TrainSettings(scale=SHARED_MODEL_SCALE, steps=SHARED_MODEL_STEPS))
    return out


def _quantize(fp32_dir: Path, out: Path, onnx_format: bool) -> Path:
    import paddle

    import quantkit as slim

    paddle.enable_static()
    slim.quant.quant_post_static(
        paddle.static.Executor(paddle.CPUPlace()), str(fp32_dir), str(out),
        sample_generator=slim.datasets.mnist.train(), model_filename="fp32.pdmodel",
        params_filename="fp32.pdiparams", batch_size=32, batch_nums=10, algo="hist",
        onnx_format=onnx_format, scope=paddle.static.Scope())
    return out


@pytest.fixture(scope="session")
def quantized_model_dir(trained_model_dir, tmp_path_factory) -> Path:
    """The shared model calibrated in QDQ form (onnx_format=True): model.pdmodel/.pdiparams."""
    return _quantize(trained_model_dir, tmp_path_factory.mktemp("int8") / "qdq", True)


@pytest.fixture(scope="session")
def fake_quant_model_dir(trained_model_dir, tmp_path_factory) -> Path:
    """The shared model calibrated in the old fake-quant form (onnx_format=False)."""
    return _quantize(trained_model_dir, tmp_path_factory.mktemp("int8") / "fake", False)


def paddle_fp32_logits(model_dir: Path, images, batch: int = 250):
    """Reference logits: Paddle Inference on the FP32 model, plain CPU kernels."""
    import numpy as np

    from quantkit.targets.paddle_inference import open_cpu_predictor
    from quantkit.targets.paddle_runtime import OneDnnRecipe

    predictor = open_cpu_predictor(model_dir / "fp32.pdmodel", model_dir / "fp32.pdiparams",
                                   OneDnnRecipe(onednn=False, int8=False, threads=1))
    name = predictor.input_names[0]
    return np.concatenate([predictor.run({name: images[i:i + batch]})[0]
                           for i in range(0, len(images), batch)])


@pytest.fixture(scope="session")
def pir_models(tmp_path_factory):
    """Paddle 3 PIR models by name (tests/pir_models.py): folders of model.json +
    model.pdiparams + signatures.json."""
    from pir_models import make_models

    return make_models(tmp_path_factory.mktemp("pir-models"))
