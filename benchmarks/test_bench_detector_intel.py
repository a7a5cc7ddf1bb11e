"""PP-OCRv4 det at 640, batch 1, on Intel: every FP32 and INT8 target plus OpenVINO + NNCF.

Issue 14's goals on the real model, measured side by side in one run: quantkit's
`intel-openvino-int8` within 10% of OpenVINO + NNCF INT8's p50 with the task metric (box
F1 vs the 24 held-out zoo pages' ground truth, after PP-OCR's DB post-processing: what
`quantkit.metrics.tasks.headline` reports for detection) at least NNCF's, and quantkit's
best Intel INT8 at most 0.5x the best Intel FP32. The text-map IoU vs FP32 is printed and
recorded beside it: there NNCF is closer to FP32 (README). One calibration (hist, the 12 zoo calibration images, as
zoo.toml) feeds every quantkit INT8 target; NNCF's default PTQ sees the same 12 images and
is compiled with the same OpenVINO settings (quantkit's OpenVinoPredictor). All predictors
are timed in alternating rounds so machine noise hits them alike.
"""
from __future__ import annotations

import statistics

import numpy as np
import pytest
from nncf_baseline import nncf_int8

import quantkit  # noqa: F401  - before paddle
from quantkit.benchmark.measure import time_calls
from quantkit.calibration.calibrate import calibrate
from quantkit.calibration.config import CalibrationConfig
from quantkit.data import CALIBRATION, EVAL
from quantkit.data.sources import load_dataset
from quantkit.datasets.text_crops import rapidocr_model_dir
from quantkit.metrics.tasks import headline, score
from quantkit.model_files import check_inference_model
from quantkit.targets.convert import convert, open_artifact

FILES = {"model_filename": "inference.pdmodel", "params_filename": "inference.pdiparams"}
FP32_TARGETS = ("intel-onednn-fp32", "onnxruntime-fp32", "intel-openvino-fp32")
INT8_TARGETS = ("intel-onednn-int8", "onnxruntime-int8", "intel-openvino-int8")
ROUNDS, CALLS_PER_ROUND = 4, 8
MAX_SLOWDOWN, MAX_INT8_RATIO = 1.10, 0.5


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """(predictors by name: run(x) -> map, held-out set, FP32 reference maps)."""
    root = tmp_path_factory.mktemp("det640")
    model_dir = rapidocr_model_dir("ch_PP-OCRv4_det_infer")
    feeds = check_inference_model(model_dir, **FILES).feeds
    calib = load_dataset("zoo:ppocr-det-calib", feeds, CALIBRATION, limit=12).inputs["x"]
    calibrated = calibrate(None, model_dir, root / "int8", CalibrationConfig(
        algo="hist", batch_size=2, batch_nums=6),
        data_loader=[{"x": calib[i:i + 2]} for i in range(0, 12, 2)], **FILES).path
    runs = {}
    for target in FP32_TARGETS:
        runs[target] = open_artifact(convert(model_dir, target, root / target, **FILES).folder)
    for target in INT8_TARGETS:
        runs[target] = open_artifact(convert(calibrated, target, root / target).folder)
    runs["openvino+nncf-int8"] = nncf_int8(model_dir / FILES["model_filename"], calib, root)
    predictors = {name: (lambda p: lambda x: p.run({"x": x})[0])(p) for name, p in runs.items()}
    held_out = load_dataset("zoo:ppocr-det-eval", feeds, EVAL)
    reference = _maps(predictors["intel-onednn-fp32"], held_out.inputs["x"])
    return predictors, held_out, reference


def _maps(run, images) -> np.ndarray:
    return np.concatenate([run(images[i:i + 1]) for i in range(len(images))])


def test_detector_int8_on_intel_against_fp32_and_nncf(benchmark, detector):
    predictors, held_out, reference = detector
    x = held_out.inputs["x"][:1]
    samples = {name: [] for name in predictors}

    def alternate():
        for _ in range(ROUNDS):
            for name, run in predictors.items():
                samples[name] += time_calls(lambda: run(x), warmup=2,
                                            iterations=CALLS_PER_ROUND)

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    p50 = {name: statistics.median(values) * 1e3 for name, values in samples.items()}
    p90 = {name: statistics.quantiles(values, n=10)[-1] * 1e3 for name, values in samples.items()}
    quality = {name: score("detection", _maps(run, held_out.inputs["x"]), reference,
                           held_out.truth) for name, run in predictors.items()}
    iou = {name: metrics["map_iou"] for name, metrics in quality.items()}
    task_metric = headline("detection", with_truth=True).metric  # box_f1_vs_truth
    f1 = {name: metrics[task_metric] for name, metrics in quality.items()}
    benchmark.group = "PP-OCRv4 det 640, batch 1, Intel"
    benchmark.extra_info.update(p50_ms=p50, p90_ms=p90, map_iou=iou, box_f1_vs_truth=f1)
    for name in predictors:
        print(f"{name:22s} p50 {p50[name]:7.2f} ms  p90 {p90[name]:7.2f} ms  map IoU "
              f"{iou[name]:.3f}  box F1 vs truth {f1[name]:.3f}")
    ours, nncf = "intel-openvino-int8", "openvino+nncf-int8"
    best_fp32 = min(FP32_TARGETS, key=p50.get)
    best_int8 = min(INT8_TARGETS, key=p50.get)
    failures = []
    if p50[ours] > MAX_SLOWDOWN * p50[nncf]:
        failures.append(f"{ours} {p50[ours]:.1f} ms > 1.1 x NNCF's {p50[nncf]:.1f} ms")
    if f1[ours] < f1[nncf]:
        failures.append(f"{ours} box F1 vs truth {f1[ours]:.3f} < NNCF's {f1[nncf]:.3f}")
    if p50[best_int8] > MAX_INT8_RATIO * p50[best_fp32]:
        failures.append(f"best INT8 {best_int8} {p50[best_int8]:.1f} ms > 0.5 x best FP32 "
                        f"{best_fp32} {p50[best_fp32]:.1f} ms")
    assert not failures, "; ".join(failures)
