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

import numpy as np
import pytest
from kernels import onednn_isas, run_artifact, unmeasured_openvino_int8
from zoo_int8 import calibrated_as_zoo

import quantkit  # noqa: F401  - before paddle
from quantkit.metrics.tasks import score
from quantkit.targets.convert import convert, open_artifact

MIN_CONFIDENT_AGREEMENT, MAX_MEAN_PROB_DIFF = 0.99, 0.05


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    calibrated, held_out, reference = calibrated_as_zoo("ppocr-cls", root, eval_batch=64)
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


@unmeasured_openvino_int8()
def test_openvino_int8_classifier_holds_on_mixed_crops(setup):
    calibrated, root, held_out, reference = setup
    predictor = open_artifact(convert(calibrated, "intel-openvino-int8", root / "ov").folder)
    _check(np.concatenate([predictor.run(rows)[0] for rows in held_out.batches(64)]),
           reference, held_out)
