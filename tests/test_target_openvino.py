"""OpenVINO targets: FP32 from the Paddle model, INT8 from quantkit's own scales.

The INT8 artifact carries quantkit's calibration as FakeQuantize ops and int8 weights
(quantkit/targets/openvino.py); these tests check it keeps FP32's answers, that the
compiled model really runs its convolutions in u8/i8, and that it packages, verifies and
serves like every other target.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401 - before paddle (zlib)
from quantkit.calibration.calibrate import calibrate
from quantkit.calibration.config import CalibrationConfig
from quantkit.datasets import text_crops
from quantkit.errors import QuantkitError
from quantkit.targets.convert import convert, open_artifact
from quantkit.targets.openvino import runtime_precisions

pytestmark = pytest.mark.slow
TINY = Path(__file__).parent / "data" / "paddle3"


@pytest.fixture(scope="module")
def mnist_artifacts(trained_model_dir, quantized_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("openvino-mnist")
    return {"fp32": convert(trained_model_dir, "intel-openvino-fp32", root / "fp32"),
            "int8": convert(quantized_model_dir, "intel-openvino-int8", root / "int8"),
            "reference": convert(trained_model_dir, "intel-cpu-fp32", root / "reference")}


def _outputs(folder, images: np.ndarray, batch: int = 250) -> np.ndarray:
    predictor = open_artifact(folder)
    name = predictor.input_names[0]
    return np.concatenate([predictor.run({name: images[i:i + batch]})[0]
                           for i in range(0, len(images), batch)])


def test_fp32_matches_paddle_on_the_demo_model(mnist_artifacts, mnist_test_slice):
    images = mnist_test_slice.images[:500]
    openvino = _outputs(mnist_artifacts["fp32"].folder, images)
    paddle = _outputs(mnist_artifacts["reference"].folder, images)
    assert np.abs(openvino - paddle).max() < 1e-4
    # The demo model's fc is the legacy `mul` op, which OpenVINO's Paddle frontend cannot
    # read: the adapter read its ONNX export instead, and says so.
    assert mnist_artifacts["fp32"].settings["read_with"] == "onnx"


def test_int8_keeps_the_demo_models_top1(mnist_artifacts, mnist_test_slice):
    """INT8 within half a point of FP32 on 2000 images (measured values: README)."""
    labels = mnist_test_slice.labels[:, 0]
    fp32 = np.mean(_outputs(mnist_artifacts["reference"].folder,
                            mnist_test_slice.images).argmax(1) == labels)
    int8 = np.mean(_outputs(mnist_artifacts["int8"].folder,
                            mnist_test_slice.images).argmax(1) == labels)
    assert fp32 > 0.9
    assert abs(int8 - fp32) <= 0.005, (fp32, int8)


def test_int8_convolutions_run_in_int8(mnist_artifacts, mnist_test_slice):
    """OpenVINO's runtime model names each layer's execution precision."""
    predictor = open_artifact(mnist_artifacts["int8"].folder)
    feeds = {"image": mnist_test_slice.images[:1]}
    predictor.run(feeds)
    precisions = runtime_precisions(predictor.compiled_for(feeds))
    int8 = sum(count for key, count in precisions.items()
               if key.startswith("Convolution") and key.endswith(("u8", "i8")))
    assert int8 >= 27, precisions  # every conv of MobileNetV1
    assert not [key for key in precisions if key.startswith("Convolution f32")], precisions
    recorded = mnist_artifacts["int8"].settings
    assert recorded["kernels"] == precisions  # recorded at conversion, the same
    quantization = recorded["quantization"]
    assert quantization["weights"] == 28 and quantization["activation_inputs"] >= 28
    # Paddle also records the fc's output scales; no op OpenVINO quantizes reads them, and
    # the ONNX export it was read from renamed them: they are listed, not needed.
    assert set(quantization["missing"]) <= {"fc_0.tmp_0", "fc_0.tmp_1"}


def test_fp32_runs_in_fp32(mnist_artifacts, mnist_test_slice):
    predictor = open_artifact(mnist_artifacts["fp32"].folder)
    feeds = {"image": mnist_test_slice.images[:1]}
    predictor.run(feeds)
    precisions = runtime_precisions(predictor.compiled_for(feeds))
    assert precisions and all(key.endswith("f32") for key in precisions), precisions


@pytest.fixture(scope="module")
def classifier_artifacts(tmp_path_factory):
    """The PP-OCR direction classifier, read by OpenVINO's Paddle frontend itself."""
    root = tmp_path_factory.mktemp("openvino-cls")
    model = text_crops.ppocr_cls_model_dir()
    files = dict(model_filename=text_crops.MODEL_FILENAME,
                 params_filename=text_crops.PARAMS_FILENAME)
    crops = text_crops.calibration_crops(160)
    quantized = calibrate(None, model, root / "q", CalibrationConfig(batch_size=16,
                                                                     batch_nums=10),
                          data_loader=[{"x": batch} for batch in crops.batches(16)], **files)
    return {"int8": convert(quantized.path, "intel-openvino-int8", root / "int8"),
            "fp32": convert(model, "intel-openvino-fp32", root / "fp32", **files),
            "reference": convert(model, "intel-cpu-fp32", root / "reference", **files)}


def test_int8_keeps_the_classifiers_answers(classifier_artifacts):
    """Measured: 100% agreement on the 152 confident crops, mean |dp| 0.016 (bar 0.05)."""
    held = text_crops.heldout_crops()
    reference = open_artifact(classifier_artifacts["reference"].folder).run(
        {"x": held.images})[0]
    fp32 = open_artifact(classifier_artifacts["fp32"].folder).run({"x": held.images})[0]
    int8 = open_artifact(classifier_artifacts["int8"].folder).run({"x": held.images})[0]
    assert classifier_artifacts["int8"].settings["read_with"] == "paddle"
    assert np.abs(fp32 - reference).max() < 1e-4
    confident = reference.max(1) >= 0.8
    agreement = np.mean(int8.argmax(1)[confident] == reference.argmax(1)[confident])
    assert agreement >= 0.99 and np.abs(int8 - reference).mean() <= 0.05


def test_the_bundle_packages_verifies_and_serves(mnist_artifacts, mnist_test_slice, tmp_path):
    from fastapi.testclient import TestClient

    from quantkit.packaging import package, verify
    from quantkit.serving.app import create_app
    from quantkit.serving.settings import ServeSettings
    from quantkit.serving.source import source_from_path

    bundle = package(mnist_artifacts["int8"].folder, tmp_path / "dist")
    report = verify(bundle.with_name(bundle.name + ".tar.gz"))
    assert report.ok and report.smoke_status == "passed", report.lines()
    readme = (bundle / "README.md").read_text()
    assert "import openvino as ov" in readme and "model.xml" in readme
    client = TestClient(create_app(source_from_path(bundle), ServeSettings()))
    image = mnist_test_slice.images[:2]
    answer = client.post("/v1/predict", content=json.dumps({"inputs": {"image": image.tolist()}}),
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    served = np.array(answer.json()["outputs"][0])
    direct = open_artifact(mnist_artifacts["int8"].folder).run({"image": image})[0]
    np.testing.assert_allclose(served, direct, rtol=1e-5, atol=1e-5)


def test_refusals_name_what_to_do(trained_model_dir, fake_quant_model_dir, tmp_path):
    with pytest.raises(QuantkitError, match="is an FP32 model.*quantkit calibrate"):
        convert(trained_model_dir, "intel-openvino-int8", tmp_path / "a",
                model_filename="fp32.pdmodel", params_filename="fp32.pdiparams")
    with pytest.raises(QuantkitError, match="is a fake-quant model.*--onnx-format"):
        convert(fake_quant_model_dir, "intel-openvino-int8", tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
