"""The PP-OCRv4 recogniser through INT8: issue 13's bar, CER(INT8) <= CER(FP32) + 0.5 points
against the ground truth of the 128 held-out zoo lines.

Calibrated as zoo.toml does (mse, 8 batches of 8 zoo calibration lines). Measured (AMD EPYC
AVX-512 VNNI, 2026-12-02; FP32 CER 1.55%): oneDNN INT8 2.00% on the VNNI kernels since fc
stays float (3.77% with int8 fc; 6.43% with hist scales), OpenVINO INT8 1.78%. What does
not hold, and is asserted as such so that a fix shows: oneDNN's AVX2 kernels
(`ONEDNN_MAX_CPU_ISA=AVX2`) give 6.6%, the int8 conv2d alone 6.2% (its depthwise and matmul
kernels alone 2.4%), so a host without VNNI is expected to miss it natively too; ONNX
Runtime INT8 3.48% (not tested here).
"""
from __future__ import annotations

import numpy as np
import pytest
from kernels import AVX2, onednn_isas, run_artifact, unmeasured_openvino_int8, vnni_host
from zoo_int8 import calibrated_as_zoo

import quantkit  # noqa: F401  - before paddle
from quantkit.metrics.tasks import score
from quantkit.targets.convert import convert, open_artifact

pytestmark = pytest.mark.slow
MAX_CER_RISE = 0.005  # issue 13's bar: half a point of CER over FP32's, vs the truth


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    calibrated, held_out, reference = calibrated_as_zoo("ppocr-rec", root)
    fp32_cer = score("recognition", reference, truth=held_out.truth)["cer_vs_truth"]
    return calibrated, root, held_out, reference, fp32_cer


@pytest.mark.parametrize("isa", onednn_isas())
def test_onednn_int8_recogniser_reads_as_well_as_fp32(setup, isa, request):
    calibrated, root, held_out, reference, fp32_cer = setup
    if isa == AVX2:
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="oneDNN's AVX2 int8 conv2d: CER 6.6% vs FP32 1.55% (measured)"))
    elif not vnni_host():  # a host without VNNI runs older int8 kernels natively: unmeasured
        request.applymarker(pytest.mark.xfail(
            reason="oneDNN int8 without VNNI: 6.6% on its AVX2 kernels (measured on VNNI)"))
    assert held_out.rows == 128
    artifact = root / "onednn-int8"
    if not artifact.exists():
        convert(calibrated, "intel-onednn-int8", artifact)
    (scores,), _ = run_artifact(artifact, held_out.inputs, isa, batch=16)
    metrics = score("recognition", scores, reference, held_out.truth)
    assert metrics["cer_vs_truth"] <= fp32_cer + MAX_CER_RISE, (fp32_cer, metrics)


@unmeasured_openvino_int8()
def test_openvino_int8_recogniser_reads_as_well_as_fp32(setup):
    calibrated, root, held_out, reference, fp32_cer = setup
    predictor = open_artifact(convert(calibrated, "intel-openvino-int8", root / "ov-int8").folder)
    scores = np.concatenate([predictor.run(rows)[0] for rows in held_out.batches(16)])
    metrics = score("recognition", scores, reference, held_out.truth)
    assert metrics["cer_vs_truth"] <= fp32_cer + MAX_CER_RISE, (fp32_cer, metrics)
