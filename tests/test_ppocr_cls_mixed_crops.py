"""The PP-OCR direction classifier through INT8 on mixed crops: issue 13's bar where it is hard.

Calibrated as zoo.toml does (hist, the 96 zoo calibration crops in batches of 16), scored on
the 192 held-out zoo crops (page crops, rendered text and photo patches, half turned 180
degrees, random crops) against FP32: agreement >= 99% where FP32 is confident (p >= 0.8) and
mean |dp| <= 0.05 over all crops. Measured (AMD EPYC AVX-512 VNNI, 2026-12-02): oneDNN
INT8 100% / 0.037 on the VNNI kernels and 99.2% / 0.044 on the AVX2 ones (the tight one),
OpenVINO INT8 100% / 0.032; OpenVINO + NNCF's default PTQ 0.063, ONNX Runtime INT8 97.7% /
0.070 (not tested here: it misses the bar). The issue's 0.08-0.10 came from an earlier
probe's data and calibration; what differs was not isolated (fc in or out of oneDNN's int8
op set makes none here: 0.0366 both).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kernels import onednn_isas, run_artifact

import quantkit  # noqa: F401  - before paddle
from quantkit.calibration.calibrate import calibrate
from quantkit.data import CALIBRATION, EVAL
from quantkit.data.sources import load_dataset
from quantkit.datasets.text_crops import rapidocr_model_dir
from quantkit.metrics.tasks import score
from quantkit.model_files import check_inference_model
from quantkit.targets.convert import convert, open_artifact
from quantkit.zoo.config import load_zoo
from quantkit.zoo.run import zoo_calibration

CLASSIFIER = "ch_ppocr_mobile_v2_cls_infer"
FILES = {"model_filename": "inference.pdmodel", "params_filename": "inference.pdiparams"}
ZOO_CALIBRATION = zoo_calibration(load_zoo(Path(__file__).parents[1] / "zoo.toml")
                                  .named("ppocr-cls"))
MIN_CONFIDENT_AGREEMENT, MAX_MEAN_PROB_DIFF = 0.99, 0.05


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    model_dir = rapidocr_model_dir(CLASSIFIER)
    feeds = check_inference_model(model_dir, **FILES).feeds
    calib = load_dataset("zoo:ppocr-cls-calib", feeds, CALIBRATION).inputs["x"]
    step = ZOO_CALIBRATION.batch_size
    batches = [{"x": calib[i:i + step]} for i in range(0, len(calib), step)]
    calibrated = calibrate(None, model_dir, root / "int8", ZOO_CALIBRATION, data_loader=batches,
                           **FILES).path
    held_out = load_dataset("zoo:ppocr-cls-eval", feeds, EVAL)
    fp32 = open_artifact(convert(model_dir, "intel-onednn-fp32", root / "fp32", **FILES).folder)
    reference = np.concatenate([fp32.run(rows)[0] for rows in held_out.batches(64)])
    return calibrated, root, held_out, reference


def _check(probabilities, reference, held_out):
    metrics = score("classification", probabilities, reference, labels=held_out.labels)
    assert metrics["confident_agreement"] >= MIN_CONFIDENT_AGREEMENT, metrics
    assert metrics["mean_abs_prob_diff"] <= MAX_MEAN_PROB_DIFF, metrics


@pytest.mark.parametrize("isa", onednn_isas())
def test_onednn_int8_classifier_holds_on_mixed_crops(setup, isa):
    calibrated, root, held_out, reference = setup
    assert held_out.rows == 192
    artifact = root / "onednn-int8"
    if not artifact.exists():
        convert(calibrated, "intel-onednn-int8", artifact)
    (probabilities,), _ = run_artifact(artifact, held_out.inputs, isa, batch=64)
    _check(probabilities, reference, held_out)


def test_openvino_int8_classifier_holds_on_mixed_crops(setup):
    calibrated, root, held_out, reference = setup
    predictor = open_artifact(convert(calibrated, "intel-openvino-int8", root / "ov").folder)
    _check(np.concatenate([predictor.run(rows)[0] for rows in held_out.batches(64)]),
           reference, held_out)
