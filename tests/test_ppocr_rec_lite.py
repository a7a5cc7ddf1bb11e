"""`arm-lite-int8` on the PP-OCRv4 recogniser: which calibrated form Paddle Lite's opt takes.

Paddle Lite 2.13rc0's `paddle_lite_opt` segfaults on the recogniser in the QDQ format
quantkit writes by default (even with only the depthwise convs quantized) and converts it
in the older fake-quant format (`--no-onnx-format`): the README's workaround. The QDQ
refusal is asserted too, so a Lite that fixes it shows up here. Conversion only: no ARM
device is reachable from these machines.
"""
from __future__ import annotations

import pytest

import quantkit  # noqa: F401  - before paddle
from quantkit.calibration.calibrate import calibrate
from quantkit.calibration.config import CalibrationConfig
from quantkit.data import CALIBRATION
from quantkit.data.sources import load_dataset
from quantkit.datasets.text_crops import rapidocr_model_dir
from quantkit.errors import QuantkitError
from quantkit.model_files import check_inference_model
from quantkit.targets.convert import convert

pytestmark = pytest.mark.slow
FILES = {"model_filename": "inference.pdmodel", "params_filename": "inference.pdiparams"}


def _calibrated(tmp_path, onnx_format: bool):
    model_dir = rapidocr_model_dir("ch_PP-OCRv4_rec_infer")
    feeds = check_inference_model(model_dir, **FILES).feeds
    lines = load_dataset("zoo:ppocr-rec-calib", feeds, CALIBRATION, limit=8).inputs
    config = CalibrationConfig(algo="abs_max", batch_size=8, batch_nums=1,
                               onnx_format=onnx_format)
    return calibrate(None, model_dir, tmp_path / "q", config, data_loader=[lines],
                     **FILES).path


def test_the_fake_quant_recogniser_converts_to_an_int8_nb(tmp_path):
    artifact = convert(_calibrated(tmp_path, onnx_format=False), "arm-lite-int8",
                       tmp_path / "nb")
    size = (artifact.folder / "model.nb").stat().st_size
    assert 2e6 < size < 5e6, size  # int8 weights: FP32's .nb is 10.9 MB


def test_the_qdq_recogniser_still_crashes_paddle_lite_opt(tmp_path):
    with pytest.raises(QuantkitError, match=r"exit -11"):
        convert(_calibrated(tmp_path, onnx_format=True), "arm-lite-int8", tmp_path / "nb")
    assert not (tmp_path / "nb").exists()
